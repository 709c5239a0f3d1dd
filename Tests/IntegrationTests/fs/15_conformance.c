/* Gaps an independent syscall suite found (issue 15), each checked against
 * Linux: poll's POLLRDNORM/POLLWRNORM bits, pipe sizes and packet pipes,
 * the legacy getdents, O_PATH descriptors, open's O_TRUNC and O_CREAT
 * corners, clone/clone3 validation, affinity across fork, statx's mount id
 * and dirfd rules, unshare(CLONE_NEWUTS) and (CLONE_NEWNS), fs.nr_open, writes that run into
 * an unmapped page, CPU-time clocks. */
#include "t.h"
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <linux/sched.h>

struct old_dirent { unsigned long ino, off; unsigned short reclen; char name[]; };

static void polls(void) {
    int p[2]; T(pipe(p));
    struct pollfd f[2] = {{p[0], POLLIN | POLLRDNORM | POLLRDBAND | POLLPRI, 0}, {p[1], POLLOUT | POLLWRNORM | POLLWRBAND, 0}};
    T(poll(f, 2, 0));
    say("empty pipe: read end %#x, write end %#x", f[0].revents, f[1].revents);
    T(write(p[1], "x", 1));
    f[0].events = POLLRDNORM;                     /* only RDNORM: must be reported */
    T(poll(f, 1, 1000));
    say("pipe with data, POLLRDNORM only: %#x", f[0].revents);
    close(p[1]);
    f[0].events = POLLIN | POLLRDNORM;
    T(poll(f, 1, 0));
    say("writer gone: %#x", f[0].revents);
    close(p[0]);
    int s[2]; T(socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    struct pollfd g = {s[0], POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM | POLLWRBAND, 0};
    T(poll(&g, 1, 0));
    say("socketpair idle: %#x", g.revents);
    T(write(s[1], "y", 1));
    T(poll(&g, 1, 0));
    say("socketpair with data: %#x", g.revents);
    close(s[0]); close(s[1]);
    T(socketpair(AF_INET, 75, 0, s));
    T(socketpair(AF_INET, SOCK_STREAM, 6, s));
    T(socketpair(AF_INET, SOCK_STREAM, 1, s));
    T(socketpair(AF_INET, SOCK_DGRAM, 17, s));
    T(socketpair(AF_INET, SOCK_DGRAM, 6, s));
    T(socketpair(AF_INET, SOCK_RAW, 0, s));
    int fd = T(open("pollfile", O_CREAT | O_RDWR, 0600));
    struct pollfd h = {fd, POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM | POLLPRI, 0};
    T(poll(&h, 1, 0));
    say("regular file: %#x", h.revents);
    close(fd);
}

static void pipes(void) {
    int p[2]; T(pipe2(p, O_NONBLOCK));
    T(fcntl(p[0], F_GETPIPE_SZ));
    T(fcntl(p[1], F_SETPIPE_SZ, 5000));           /* rounds up to two pages */
    T(fcntl(p[0], F_GETPIPE_SZ));
    T(fcntl(p[1], F_SETPIPE_SZ, 0));              /* at least a page */
    char buf[9000]; memset(buf, 'a', sizeof buf);
    T(write(p[1], buf, 4096));
    T(write(p[1], buf, 1));                       /* full */
    T(fcntl(p[1], F_SETPIPE_SZ, 65536));
    T(write(p[1], buf, sizeof buf));
    int n = 0; T(ioctl(p[0], FIONREAD, &n)); say("FIONREAD %d", n);
    T(fcntl(p[1], F_SETPIPE_SZ, 4096));           /* the data would not fit */
    close(p[0]); close(p[1]);
    int fd = T(open("pollfile", O_RDONLY));
    T(fcntl(fd, F_GETPIPE_SZ));
    close(fd);
    /* packet mode: each write is a packet, a short read drops the rest */
    T(pipe2(p, O_DIRECT | O_NONBLOCK));
    say("F_GETFL has O_DIRECT: %d", (fcntl(p[1], F_GETFL) & O_DIRECT) != 0);
    T(write(p[1], "hello", 5));
    T(write(p[1], "world!", 6));
    char r[16] = {0};
    T(read(p[0], r, 3)); say("first read: %s", r);
    memset(r, 0, sizeof r);
    T(read(p[0], r, sizeof r)); say("second read: %s", r);
    T(read(p[0], r, sizeof r));
    close(p[0]); close(p[1]);
    /* EPIPE with SIGPIPE ignored, and reads at EOF */
    signal(SIGPIPE, SIG_IGN);
    T(pipe(p)); close(p[0]);
    T(write(p[1], "z", 1));
    close(p[1]);
    T(pipe(p)); close(p[1]);
    T(read(p[0], r, 1));
    close(p[0]);
    T(pipe2(p, 0x4000000));                       /* unknown flag */
}

static void dirs(void) {
    T(mkdir("d", 0755));
    close(T(open("d/f1", O_CREAT | O_WRONLY, 0644)));
    T(symlink("f1", "d/l1"));
    int fd = T(open("d", O_RDONLY | O_DIRECTORY));
    char buf[4096];
    long n = T(syscall(SYS_getdents, fd, buf, sizeof buf));
    int count = 0, types_ok = 1, aligned = 1;
    for (long off = 0; off < n;) {
        struct old_dirent *d = (void *)(buf + off);
        char type = buf[off + d->reclen - 1];
        if (!strcmp(d->name, "f1") && type != DT_REG) types_ok = 0;
        if (!strcmp(d->name, "l1") && type != DT_LNK) types_ok = 0;
        if (!strcmp(d->name, ".") && type != DT_DIR) types_ok = 0;
        if (d->reclen % 8) aligned = 0;
        count++; off += d->reclen;
    }
    say("getdents: %d entries, types right: %d, records 8-aligned: %d", count, types_ok, aligned);
    T(syscall(SYS_getdents, fd, buf, sizeof buf));
    T(lseek(fd, 0, SEEK_SET));
    T(syscall(SYS_getdents, fd, buf, 10));         /* too small for one record */
    close(fd);
    /* O_PATH: fstat works, reading the directory does not */
    fd = T(open("d", O_PATH));
    struct stat st;
    T(fstat(fd, &st)); say("O_PATH fstat is a directory: %d", S_ISDIR(st.st_mode));
    T(syscall(SYS_getdents64, fd, buf, sizeof buf));
    T(syscall(SYS_getdents, fd, buf, sizeof buf));
    T(fchmod(fd, 0700));
    int nb = 1; T(ioctl(fd, FIONBIO, &nb));
    T(mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED);
    close(fd);
    fd = T(open("d/l1", O_PATH | O_NOFOLLOW));
    T(fstat(fd, &st)); say("O_PATH|O_NOFOLLOW on a symlink: is a link %d", S_ISLNK(st.st_mode));
    close(fd);
    /* open corners */
    T(open("d", O_CREAT | O_RDONLY, 0644));
    T(open("d", O_CREAT | O_WRONLY, 0644));
    T(open("d/", O_CREAT | O_RDONLY, 0644));
    T(open("d", O_RDONLY | O_DIRECTORY | O_CREAT, 0644));
    T(open("d", O_WRONLY));
    fd = T(open("d/f1", O_WRONLY)); T(write(fd, "12345", 5)); close(fd);
    struct stat before, after;
    stat("d/f1", &before);
    struct timespec pause_ = {0, 20000000}; nanosleep(&pause_, NULL);
    fd = T(open("d/f1", O_RDONLY | O_TRUNC));     /* Linux truncates anyway */
    fstat(fd, &after); close(fd);
    say("O_RDONLY|O_TRUNC: size %lld, mtime moved %d, ctime moved %d", (long long)after.st_size,
        after.st_mtim.tv_sec * 1000000000L + after.st_mtim.tv_nsec > before.st_mtim.tv_sec * 1000000000L + before.st_mtim.tv_nsec,
        after.st_ctim.tv_sec * 1000000000L + after.st_ctim.tv_nsec > before.st_ctim.tv_sec * 1000000000L + before.st_ctim.tv_nsec);
    stat("d/f1", &before); nanosleep(&pause_, NULL);
    close(T(open("d/f1", O_WRONLY | O_TRUNC)));    /* already empty: times still move */
    stat("d/f1", &after);
    say("O_TRUNC of an empty file moves mtime: %d",
        after.st_mtim.tv_sec * 1000000000L + after.st_mtim.tv_nsec > before.st_mtim.tv_sec * 1000000000L + before.st_mtim.tv_nsec);
    T(chmod("d/f1", 0444));
    T(open("d/f1", O_RDONLY | O_TRUNC) >= 0);      /* root: DAC override */
    T(open("d/f1", O_WRONLY | O_CREAT | O_EXCL, 0644));
    T(open("d/f1", O_RDWR | O_WRONLY));            /* access mode 3 */
}

static int child_fn(void *arg) { (void)arg; _exit(0); }

static long clone3_(struct clone_args *a, size_t size) { return syscall(SYS_clone3, a, size); }

static void clones(void) {
    struct clone_args a;
    memset(&a, 0, sizeof a);
    a.flags = 1ULL << 40;                         /* unknown */
    a.exit_signal = SIGCHLD;
    T(clone3_(&a, sizeof a));
    a.flags = CLONE_SIGHAND | CLONE_VM | CLONE_CLEAR_SIGHAND;
    T(clone3_(&a, sizeof a));
    a.flags = CLONE_THREAD | CLONE_SIGHAND | CLONE_VM;  /* with an exit signal */
    T(clone3_(&a, sizeof a));
    a.flags = CLONE_PARENT;
    T(clone3_(&a, sizeof a));
    a.flags = 0; a.exit_signal = 0x100;
    T(clone3_(&a, sizeof a));
    a.exit_signal = SIGCHLD;
    T(clone3_(&a, 32));                           /* smaller than the first version */
    T(clone3_(&a, 8192));                         /* larger than a page */
    a.stack = 0x10000; a.stack_size = 0;
    T(clone3_(&a, sizeof a));
    a.stack = 0; a.flags = CLONE_DETACHED;
    T(clone3_(&a, sizeof a));
    a.flags = CLONE_FS | CLONE_NEWNS;
    T(clone3_(&a, sizeof a));
    a.flags = CLONE_SIGHAND;                      /* without CLONE_VM */
    T(clone3_(&a, sizeof a));
    /* CLONE_CLEAR_SIGHAND: a handled signal is default in the child, an ignored one stays */
    signal(SIGUSR1, (void (*)(int))child_fn);
    signal(SIGUSR2, SIG_IGN);
    memset(&a, 0, sizeof a);
    a.flags = CLONE_CLEAR_SIGHAND; a.exit_signal = SIGCHLD;
    long c = clone3_(&a, sizeof a);
    if (c == 0) {
        struct sigaction s1, s2;
        sigaction(SIGUSR1, NULL, &s1); sigaction(SIGUSR2, NULL, &s2);
        _exit((s1.sa_handler == SIG_DFL ? 1 : 0) | (s2.sa_handler == SIG_IGN ? 2 : 0));
    }
    say("clone3 CLEAR_SIGHAND made a child: %d", c > 0);
    int st; waitpid(c, &st, 0);
    say("CLEAR_SIGHAND child: handler reset %d, ignore kept %d", WEXITSTATUS(st) & 1, (WEXITSTATUS(st) >> 1) & 1);
    signal(SIGUSR1, SIG_DFL); signal(SIGUSR2, SIG_DFL);
    /* a non-canonical TLS */
    static char stack[65536];
    T(clone(child_fn, stack + sizeof stack, CLONE_SETTLS | SIGCHLD, NULL, NULL, (void *)0x800000000000UL, NULL));
    /* affinity is inherited */
    cpu_set_t set; CPU_ZERO(&set); CPU_SET(0, &set);
    T(sched_setaffinity(0, sizeof set, &set));
    c = fork();
    if (c == 0) {
        cpu_set_t got; CPU_ZERO(&got);
        sched_getaffinity(0, sizeof got, &got);
        _exit(CPU_COUNT(&got) == 1 && CPU_ISSET(0, &got) ? 0 : 1);
    }
    waitpid(c, &st, 0);
    say("affinity inherited across fork: %d", WEXITSTATUS(st) == 0);
    CPU_ZERO(&set);
    T(sched_setaffinity(0, sizeof set, &set));    /* empty */
    T(sched_getaffinity(0, 4, &set));             /* too small */
    T(sched_setaffinity(99999, sizeof set, &set));
}

static void statxs(void) {
    struct statx a, b;
    T(statx(AT_FDCWD, "d", 0, STATX_BASIC_STATS | STATX_MNT_ID, &a));
    say("statx: STATX_MNT_ID reported %d", (a.stx_mask & STATX_MNT_ID) != 0);
    T(statx(AT_FDCWD, "d/f1", 0, STATX_BASIC_STATS, &b));
    say("same mount, same id: %d, mask has MNT_ID unasked %d", a.stx_mnt_id == b.stx_mnt_id, (b.stx_mask & STATX_MNT_ID) != 0);
    T(statx(AT_FDCWD, "/proc/self", 0, STATX_BASIC_STATS, &b));
    say("another mount, another id: %d", a.stx_mnt_id != b.stx_mnt_id);
    T(statx(AT_FDCWD, "d", AT_NO_AUTOMOUNT, 0x7fff0000, &b));   /* unknown mask bits: ignored */
    T(statx(AT_FDCWD, "d", 0, 0x80000000U, &b));                /* STATX__RESERVED */
    T(statx(-1, "/proc", 0, STATX_BASIC_STATS, &b));            /* absolute: dirfd unused */
    int fd = open("pollfile", O_RDONLY);
    T(statx(fd, "/proc", 0, STATX_BASIC_STATS, &b));            /* even a file */
    T(statx(fd, "proc", 0, STATX_BASIC_STATS, &b));
    T(open("/proc", O_RDONLY | O_DIRECTORY) >= 0);
    T(openat(-1, "/proc", O_RDONLY) >= 0);
    T(mkdirat(-1, "/tmp/abs_mkdirat", 0755));
    close(fd);
}

static void namespaces(void) {
    pid_t c = fork();
    if (c == 0) {
        if (unshare(CLONE_NEWUTS) != 0) _exit(1);
        sethostname("inside", 6);
        struct utsname u; uname(&u);
        _exit(strcmp(u.nodename, "inside") == 0 ? 0 : 2);
    }
    int st; waitpid(c, &st, 0);
    say("unshare(CLONE_NEWUTS) child: status %d", WEXITSTATUS(st));
    struct utsname u; uname(&u);
    say("parent hostname unchanged: %d", strcmp(u.nodename, "inside") != 0);
    T(unshare(0x1));                              /* CSIGNAL bits: unknown */
    T(unshare(CLONE_FILES | CLONE_FS));
    /* A mount namespace: root may make one (unshare and clone), a user
     * without CAP_SYS_ADMIN may not; clone refuses it with CLONE_FS. Only
     * results: Moat's new namespace shares the mount tree (sysUnshare). */
    c = fork();
    if (c == 0) {
        T(unshare(CLONE_NEWNS));
        T(unshare(CLONE_NEWNS | CLONE_FS | CLONE_FILES));
        T(syscall(SYS_clone, CLONE_NEWNS | CLONE_FS | SIGCHLD, 0, 0, 0, 0));
        long k = syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);
        if (k == 0) _exit(7);
        int kst = 0;
        if (k > 0) waitpid(k, &kst, 0);
        say("clone(CLONE_NEWNS) as root: %s, child status %d", k > 0 ? "ok" : ename(errno), WEXITSTATUS(kst));
        T(setuid(65534));
        T(unshare(CLONE_NEWNS));
        T(syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0));
        _exit(0);
    }
    waitpid(c, &st, 0);
    say("unshare(CLONE_NEWNS) child: status %d", WEXITSTATUS(st));
}

static void limits(void) {
    FILE *f = fopen("/proc/sys/fs/nr_open", "r");
    long nr = 0; if (f) { fscanf(f, "%ld", &nr); fclose(f); }
    say("nr_open read: %d", nr > 0);
    struct rlimit r = {nr + 1, nr + 1};
    T(setrlimit(RLIMIT_NOFILE, &r));
    r.rlim_cur = r.rlim_max = 1024;
    T(setrlimit(RLIMIT_NOFILE, &r));
}

static void partial_writes(void) {
    long pg = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(m + pg, pg);
    memset(m, 'q', pg);
    int fd = T(open("partial", O_CREAT | O_RDWR | O_TRUNC, 0644));
    T(write(fd, m + pg - 100, 200));              /* 100 bytes, then a hole */
    T(write(fd, m + pg, 10));                     /* nothing: EFAULT */
    struct iovec iv[2] = {{m, 5}, {m + pg, 5}};
    T(writev(fd, iv, 2));
    struct stat st; fstat(fd, &st); say("file size %lld", (long long)st.st_size);
    close(fd);
}

static volatile int spin_stop;
static void *spinner(void *arg) { (void)arg; while (!spin_stop) {} return NULL; }

static long ns_of(clockid_t c) { struct timespec ts; if (clock_gettime(c, &ts)) return -1; return ts.tv_sec * 1000000000L + ts.tv_nsec; }

static void cpu_clocks(void) {
    long p0 = ns_of(CLOCK_PROCESS_CPUTIME_ID), t0 = ns_of(CLOCK_THREAD_CPUTIME_ID);
    long w0 = ns_of(CLOCK_MONOTONIC);
    while (ns_of(CLOCK_MONOTONIC) - w0 < 200000000L) {}  /* burn 0.2 s of wall time */
    long p1 = ns_of(CLOCK_PROCESS_CPUTIME_ID), t1 = ns_of(CLOCK_THREAD_CPUTIME_ID);
    say("process CPU clock advanced: %d, thread CPU clock advanced: %d", p1 > p0, t1 > t0);
    clockid_t cid;
    T(clock_getcpuclockid(0, &cid));
    say("clock_getcpuclockid(0) readable: %d", ns_of(cid) > 0);
    T(clock_getcpuclockid(getpid(), &cid));
    pthread_t th; pthread_create(&th, NULL, spinner, NULL);
    T(pthread_getcpuclockid(pthread_self(), &cid));
    say("pthread_getcpuclockid(self) readable: %d", ns_of(cid) > 0);
    /* a sleeping thread's clock does not move by the sleep */
    long s0 = ns_of(CLOCK_THREAD_CPUTIME_ID);
    struct timespec nap = {0, 300000000}; nanosleep(&nap, NULL);
    long s1 = ns_of(CLOCK_THREAD_CPUTIME_ID);
    say("thread clock over a 0.3 s sleep grew less than 0.2 s: %d", s1 - s0 < 200000000L);
    spin_stop = 1; pthread_join(th, NULL);
    struct timespec res;
    T(clock_getres(CLOCK_THREAD_CPUTIME_ID, &res));
    T(clock_gettime((clockid_t)-100000, &res));  /* the CPU clock of no process */
    FILE *f = fopen("/proc/self/stat", "r");
    unsigned long ut = 0, stt = 0;
    if (f) { fscanf(f, "%*d %*s %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stt); fclose(f); }
    say("/proc/self/stat utime+stime > 0: %d", ut + stt > 0);
}

int main(void) {
    polls();
    pipes();
    dirs();
    clones();
    statxs();
    namespaces();
    limits();
    partial_writes();
    cpu_clocks();
    return 0;
}
