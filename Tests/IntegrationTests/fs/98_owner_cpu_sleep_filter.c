/* Process, pipe and socket details gVisor's syscall suite found in Moat
 * (priority, chown, socket, clock_nanosleep, getrusage, membarrier,
 * sigstop, tcp_socket):
 * - /proc/self/stat shows the nice value and priority (20 + nice);
 * - a pipe's inode is owned by its creator: fchown changes its owner
 *   (fstat shows it), and a caller without CAP_CHOWN that does not own it
 *   gets EPERM;
 * - bind gives a Unix socket's file the mode fchmod gave the socket, less
 *   the umask;
 * - clock_nanosleep on the process CPU clock sleeps until that much CPU
 *   time is spent (a spinning thread spends it); on the caller's own
 *   thread clock it is EINVAL;
 * - MAP_POPULATE'd memory counts in a waited-for child's ru_maxrss;
 * - membarrier offers (and does) the expedited global barrier;
 * - restart_syscall with nothing to restart is EINTR;
 * - SO_ATTACH_FILTER takes a valid classic BPF program on a TCP socket,
 *   refuses one that jumps past its end (EINVAL), and SO_DETACH_FILTER
 *   removes it (ENOENT when none is left);
 * - a chown drops a file's capabilities (security.capability).
 * Nothing here depends on timing: the sleep is measured in CPU time, which
 * Linux guarantees, against the same clock. */
#include "t.h"
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <linux/filter.h>
#include <sys/xattr.h>

static void nice_in_stat(void) {
    pid_t c = fork();
    if (c == 0) {
        T(setpriority(PRIO_PROCESS, 0, 12));
        char b[1024] = {0};
        int fd = open("/proc/self/stat", O_RDONLY);
        read(fd, b, sizeof b - 1);
        close(fd);
        /* Fields after the command's closing parenthesis: state is 3. */
        char *p = strrchr(b, ')');
        int field = 2;
        long prio = 0, nice = 0;
        for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
            field++;
            if (field == 18) prio = atol(tok);
            if (field == 19) { nice = atol(tok); break; }
        }
        say("stat priority %ld nice %ld", prio, nice);
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
}

static void pipe_owner(void) {
    int fds[2];
    struct stat s;
    T(pipe2(fds, O_CLOEXEC));
    fstat(fds[0], &s);
    say("new pipe: uid %u gid %u mode %o", s.st_uid, s.st_gid, s.st_mode);
    T(fchown(fds[0], 65534, 65534));
    fstat(fds[1], &s);
    say("after fchown: uid %u gid %u", s.st_uid, s.st_gid);
    T(fchmod(fds[1], 0640));
    fstat(fds[0], &s);
    say("after fchmod: mode %o", s.st_mode);
    pid_t c = fork();
    if (c == 0) {
        /* Not the owner, no CAP_CHOWN (a non-root effective uid drops it). */
        T(setresgid(-1, 1000, -1));
        T(setresuid(-1, 1000, -1));
        T(fchown(fds[1], 1000, 1000));
        T(fchmod(fds[1], 0600));
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
    close(fds[0]); close(fds[1]);
}

static void socket_mode(void) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct stat st;
    T(fchmod(s, 0765));
    fstat(s, &st);
    say("socket mode after fchmod %o", st.st_mode);
    mode_t old = umask(0123);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, "/tmp/96.sock");
    unlink(a.sun_path);
    T(bind(s, (struct sockaddr *)&a, sizeof a));
    umask(old);
    T(stat(a.sun_path, &st));
    say("bound file mode %o", st.st_mode);
    unlink(a.sun_path);
    close(s);
}

static volatile int spin_done;
static void *spin(void *arg) {
    (void)arg;
    while (!spin_done) {}
    return NULL;
}

static long long cpu_ns(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void cpu_clock_sleep(void) {
    pthread_t th;
    pthread_create(&th, NULL, spin, NULL);
    struct timespec d = {0, 300000000};
    long long before = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
    T(syscall(SYS_clock_nanosleep, CLOCK_PROCESS_CPUTIME_ID, 0, &d, NULL));
    long long spent = cpu_ns(CLOCK_PROCESS_CPUTIME_ID) - before;
    say("process CPU time slept at least 300 ms: %s", spent >= 300000000LL ? "yes" : "no");
    /* An absolute deadline already passed returns at once. */
    struct timespec past = {0, 1};
    T(syscall(SYS_clock_nanosleep, CLOCK_PROCESS_CPUTIME_ID, TIMER_ABSTIME, &past, NULL));
    spin_done = 1;
    pthread_join(th, NULL);
    T(syscall(SYS_clock_nanosleep, CLOCK_THREAD_CPUTIME_ID, 0, &d, NULL));
    clockid_t mine;
    pthread_getcpuclockid(pthread_self(), &mine);
    T(syscall(SYS_clock_nanosleep, mine, 0, &d, NULL));
}

static void populate_rss(void) {
    pid_t c = fork();
    if (c == 0) {
        pid_t g = fork();
        if (g == 0) {
            /* 8 MiB faulted in by mmap itself, never touched after. */
            void *p = mmap(NULL, 8 << 20, PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
            _exit(p == MAP_FAILED);
        }
        int st;
        waitpid(g, &st, 0);
        _exit(WEXITSTATUS(st));
    }
    int st;
    waitpid(c, &st, 0);
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    say("grandchild exit %d, RUSAGE_CHILDREN maxrss above 8 MiB: %s", WEXITSTATUS(st), ru.ru_maxrss > 8192 ? "yes" : "no");
}

static void barriers(void) {
    long q = syscall(SYS_membarrier, 0, 0);
    say("membarrier query offers GLOBAL_EXPEDITED and its registration: %s", q >= 0 && (q & 6) == 6 ? "yes" : "no");
    T(syscall(SYS_membarrier, 4 /* REGISTER_GLOBAL_EXPEDITED */, 0));
    T(syscall(SYS_membarrier, 2 /* GLOBAL_EXPEDITED */, 0));
    T(syscall(SYS_membarrier, 2, 1));
}

static void filters(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sock_filter accept_all[] = {{BPF_RET | BPF_K, 0, 0, 0xffff}};
    struct sock_filter bad_jump[] = {{BPF_JMP | BPF_JEQ | BPF_K, 3, 0, 1}, {BPF_RET | BPF_K, 0, 0, 0}};
    struct sock_filter no_ret[] = {{BPF_LD | BPF_W | BPF_ABS, 0, 0, 0}};
    struct sock_fprog good = {1, accept_all}, jump = {2, bad_jump}, noret = {1, no_ret};
    int zero = 0;
    T(setsockopt(s, SOL_SOCKET, SO_ATTACH_FILTER, &jump, sizeof jump));
    T(setsockopt(s, SOL_SOCKET, SO_ATTACH_FILTER, &noret, sizeof noret));
    T(setsockopt(s, SOL_SOCKET, SO_DETACH_FILTER, &zero, sizeof zero));
    T(setsockopt(s, SOL_SOCKET, SO_ATTACH_FILTER, &good, sizeof good));
    T(setsockopt(s, SOL_SOCKET, SO_DETACH_FILTER, &zero, sizeof zero));
    T(setsockopt(s, SOL_SOCKET, SO_DETACH_FILTER, &zero, sizeof zero));
    close(s);
}

static void chown_drops_caps(void) {
    int fd = open("/work/96.cap", O_CREAT | O_WRONLY, 0755);
    close(fd);
    /* struct vfs_cap_data, revision 2: CAP_NET_BIND_SERVICE permitted. */
    uint32_t cap[5] = {0x02000000, 1u << 10, 0, 0, 0};
    T(setxattr("/work/96.cap", "security.capability", cap, sizeof cap, 0));
    char buf[64];
    T(getxattr("/work/96.cap", "security.capability", buf, sizeof buf));
    T(chown("/work/96.cap", 65534, -1));
    T(getxattr("/work/96.cap", "security.capability", buf, sizeof buf));
    unlink("/work/96.cap");
}

int main(void) {
    nice_in_stat();
    pipe_owner();
    socket_mode();
    cpu_clock_sleep();
    populate_rss();
    barriers();
    T(syscall(SYS_restart_syscall));
    filters();
    chown_drops_caps();
    return 0;
}
