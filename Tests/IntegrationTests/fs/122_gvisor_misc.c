// What gVisor's syscall programs (session 18, compat24) showed Moat doing
// unlike Linux, checked natively and in Moat: kill() of a non-leader
// thread's tid, IN_ACCESS from a directory listing, /proc/self/auxv and
// oom_score_adj, exec of a CLONE_FILES vfork child keeping the parent's
// close-on-exec descriptors, process_vm_readv of a child just forked,
// PTRACE_ATTACH to a second thread and wait(tid), TIOCNOTTY without a
// controlling terminal, a pty writer that fills the buffer, syslog's size
// and read, and /proc/self/maps columns (names at 73, a shared anonymous
// mapping's /dev/zero name).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/inotify.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

static int tidpipe[2];

static void *sleeper(void *arg) {
    (void)arg;
    pid_t tid = (pid_t)syscall(SYS_gettid);
    if (write(tidpipe[1], &tid, sizeof tid) != sizeof tid) _exit(3);
    for (;;) pause();
    return NULL;
}

static void kill_tid(void) {
    if (pipe(tidpipe) != 0) { perror("pipe"); return; }
    pthread_t th;
    pthread_create(&th, NULL, sleeper, NULL);
    pid_t tid;
    if (read(tidpipe[0], &tid, sizeof tid) != sizeof tid) { puts("kill tid: no tid"); return; }
    printf("kill(non-leader tid, 0) = %d\n", kill(tid, 0));
}

static void listing_is_access(void) {
    mkdir("/tmp/g122", 0755);
    int in = inotify_init1(IN_NONBLOCK);
    int wd = inotify_add_watch(in, "/tmp/g122", IN_ACCESS);
    DIR *d = opendir("/tmp/g122");
    int n = 0;
    while (readdir(d)) n++;
    closedir(d);
    char buf[4096];
    ssize_t r = read(in, buf, sizeof buf);
    if (r <= 0) { printf("listing: %d entries, no event\n", n); }
    else {
        struct inotify_event *e = (struct inotify_event *)buf;
        printf("listing: %d entries, event wd ok %d mask %#x\n", n, e->wd == wd, e->mask);
    }
    close(in);
    rmdir("/tmp/g122");
}

static void auxv(void) {
    int fd = open("/proc/self/auxv", O_RDONLY);
    if (fd < 0) { printf("auxv: open errno %d\n", errno); return; }
    unsigned long v[512];
    ssize_t r = read(fd, v, sizeof v);
    close(fd);
    int pagesz = 0, entry = 0, last_null = 0;
    for (ssize_t i = 0; i + 1 < r / 8; i += 2) {
        if (v[i] == AT_PAGESZ) pagesz = v[i + 1] == 4096;
        if (v[i] == AT_ENTRY) entry = v[i + 1] == getauxval(AT_ENTRY);
        if (v[i] == AT_NULL) last_null = (i + 2) * 8 == r;
    }
    printf("auxv: pagesz %d entry %d ends with AT_NULL %d\n", pagesz, entry, last_null);
}

static void oom_score_adj(void) {
    char b[32] = {0};
    int fd = open("/proc/self/oom_score_adj", O_RDWR);
    if (fd < 0) { printf("oom_score_adj: open errno %d\n", errno); return; }
    ssize_t r = pread(fd, b, sizeof b - 1, 0);
    printf("oom_score_adj: %.*s", (int)r, b);
    printf("write \"7\\0\": %zd\n", write(fd, "7", 2));
    errno = 0;
    ssize_t w = write(fd, "1001", 4);
    printf("write 1001: %zd errno %d\n", w, errno);
    close(fd);
    fd = open("/proc/self/oom_score_adj", O_RDONLY);
    memset(b, 0, sizeof b);
    r = read(fd, b, sizeof b - 1);
    printf("oom_score_adj reopened: %.*s", (int)r, b);
    close(fd);
    fd = open("/proc/self/oom_score", O_RDONLY);
    r = fd < 0 ? -1 : read(fd, b, sizeof b - 1);
    int s = r > 0 ? atoi(b) : -1;
    printf("oom_score in 0..1000: %d\n", s >= 0 && s <= 1000);
    if (fd >= 0) close(fd);
}

static void vfork_files_exec(void) {
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    char *argv[] = {"true", NULL}, *envp[] = {NULL};
    pid_t c = (pid_t)syscall(SYS_clone, SIGCHLD | CLONE_VFORK | CLONE_FILES, 0, 0, 0, 0);
    if (c == 0) { execve("/bin/true", argv, envp); _exit(1); }
    int st;
    waitpid(c, &st, 0);
    struct stat sb;
    printf("vfork+CLONE_FILES exec: child status %d, parent's cloexec fd fstat %d\n", st, fstat(fd, &sb));
    close(fd);
}

static void vm_read_new_child(void) {
    static char word[16] = "from the child";
    pid_t c = fork();
    if (c == 0) { sleep(10); _exit(0); }
    memset(word, 0, sizeof word);              // the parent's copy only
    char got[16] = {0};
    struct iovec l = {got, 14}, r = {word, 14};
    ssize_t n = process_vm_readv(c, &l, 1, &r, 1, 0);
    printf("process_vm_readv of a new child: %zd \"%s\"\n", n, n > 0 ? got : "");
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
}

static void attach_second_thread(void) {
    int p[2];
    if (pipe(p) != 0) return;
    pid_t c = fork();
    if (c == 0) {
        tidpipe[1] = p[1];
        pthread_t th;
        pthread_create(&th, NULL, sleeper, NULL);
        for (;;) pause();
    }
    pid_t tid;
    if (read(p[0], &tid, sizeof tid) != sizeof tid) { puts("attach: no tid"); return; }
    int r = (int)ptrace(PTRACE_ATTACH, tid, 0, 0);
    int st = 0;
    pid_t w = waitpid(tid, &st, __WALL);
    printf("attach second thread: %d, wait returned the tid %d, stopped by SIGSTOP %d\n",
           r, w == tid, WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP);
    if (w != tid) fprintf(stderr, "wait: %d (tid %d) status %#x errno %d\n", w, tid, st, errno);
    ptrace(PTRACE_DETACH, tid, 0, 0);
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    close(p[0]); close(p[1]);
}

static void pty(void) {
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) || unlockpt(m)) { printf("pty: errno %d\n", errno); return; }
    int s = open(ptsname(m), O_RDWR | O_NOCTTY | O_NONBLOCK);
    errno = 0;
    int r = ioctl(m, TIOCNOTTY);
    printf("TIOCNOTTY on the master: %d errno %d\n", r, errno);
    errno = 0;
    r = ioctl(s, TIOCNOTTY);
    printf("TIOCNOTTY on a terminal that is not ours: %d errno %d\n", r, errno);
    static char chunk[8192];
    memset(chunk, 'x', sizeof chunk);
    long total = 0;
    ssize_t w;
    while ((w = write(s, chunk, sizeof chunk)) > 0 && total < (64L << 20)) total += w;
    printf("replica writes nobody reads stop with EAGAIN: %d, bounded: %d\n", w < 0 && errno == EAGAIN, total < (64L << 20));
    close(s);
    close(m);
}

static void klog(void) {
    char b[100];
    printf("syslog size > 0: %d, read all >= 0: %d\n", klogctl(10, NULL, 0) > 0, klogctl(3, b, sizeof b) >= 0);
}

static void maps(void) {
    char *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char *priv = mmap(NULL, 4096 * 3, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(priv + 4096, 4096);   // its first page: a line of its own
    char line[512], want[64], wantp[64];
    snprintf(want, sizeof want, "%lx-", (unsigned long)shared);
    snprintf(wantp, sizeof wantp, "%lx-", (unsigned long)priv);
    FILE *f = fopen("/proc/self/maps", "r");
    int exe_col = -1;
    while (fgets(line, sizeof line, f)) {
        char *slash = strchr(line, '/');
        if (exe_col < 0 && strstr(line, "/work/prog")) exe_col = (int)(slash - line);
        if (!strncmp(line, want, strlen(want))) printf("shared anonymous: %s", slash ? slash : "(no name)\n");
        if (!strncmp(line, wantp, strlen(wantp))) printf("private anonymous ends with a space: %d\n", line[strlen(line) - 2] == ' ');
    }
    fclose(f);
    printf("program name at column %d\n", exe_col);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    kill_tid();
    listing_is_access();
    auxv();
    oom_score_adj();
    vfork_files_exec();
    vm_read_new_child();
    attach_second_thread();
    pty();
    klog();
    maps();
    return 0;
}
