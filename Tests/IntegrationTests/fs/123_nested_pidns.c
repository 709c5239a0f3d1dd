/* Pid namespaces nested two levels below the program's (session 21, issue
 * 15). A is the init of ns1 (clone with CLONE_NEWPID and a mount namespace
 * of its own, where it mounts a /proc of ns1); B, A's child, is the init of
 * ns2 inside ns1; C is B's child and D C's. Each process prints its pids as
 * its own namespace numbers them, and what it learns of the others: A sees
 * B and C by their ns1 numbers (clone's result, SO_PEERCRED, SCM_CREDENTIALS,
 * waitid's si_pid, /proc/PID/status NSpid from its level down), C sees A as
 * 0 (SO_PEERCRED, a signal's si_pid) and B as 1; each namespace counts from
 * 1 on its own (ns_last_pid); B, an init, takes D when C exits; B's exit
 * kills what is left in ns2; nsfs: NS_GET_PARENT and setns for children
 * into a namespace below (allowed) and above (EINVAL, EPERM); clone3's
 * set_tid, a pid per level from the child's namespace up (A's own levels
 * only: EEXIST, EINVAL). Every line is about numbers Linux defines, none a
 * host pid. */
#include "t.h"
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>

#define NS_GET_PARENT 0xb702
#define SOCK "/tmp/fs123.sock"

static char stack_a[1 << 16], stack_b[1 << 16];
static int deathpipe[2];   /* held by E alone in the end: EOF once ns2 is gone */
static int ns1fd = -1;     /* A's /proc/self/ns/pid */
static int c_to_b[2];      /* C tells B it may signal */

/* A /proc/PID/status line, its value after the tab. */
static void status_line(const char *label, int pid, const char *key) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0) { say("%s: open -1 %s", label, ename(errno)); return; }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    size_t kl = strlen(key);
    for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
        if (!strncmp(l, key, kl) && l[kl] == ':') {
            char *v = l + kl + 1;
            while (*v == '\t') v++;
            for (char *p = v; *p; p++) if (*p == '\t') *p = ' ';
            say("%s %s: %s", label, key, v);
            return;
        }
    say("%s %s: none", label, key);
}

static long last_pid(void) {
    char buf[32] = {0};
    int fd = open("/proc/sys/kernel/ns_last_pid", O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n > 0 ? atol(buf) : -1;
}

/* clone3 with set_tid; the child exits at once. The pid or -1 errno. */
static long clone3_tid(unsigned long flags, const pid_t *tids, size_t n) {
    struct { uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup; } a;
    memset(&a, 0, sizeof a);
    a.flags = flags; a.exit_signal = SIGCHLD; a.set_tid = (uintptr_t)tids; a.set_tid_size = n;
    fflush(stdout);
    long r = syscall(SYS_clone3, &a, sizeof a);
    if (r == 0) _exit(0);
    if (r > 0) waitpid(r, NULL, 0);
    return r;
}

static int wait_signal(int sig) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    siginfo_t si;
    if (sigwaitinfo(&s, &si) < 0) return -1;
    return si.si_pid;
}

/* C: the client of A's socket, then D's parent. */
static void run_c(void) {
    say("C: getpid = %d, getppid = %d", getpid(), getppid());
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    strcpy(a.sun_path, SOCK);
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) { say("C: connect -1 %s", ename(errno)); _exit(1); }
    struct ucred cr;
    socklen_t len = sizeof cr;
    Q(getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &len));
    say("C: SO_PEERCRED of A's socket: pid %d, uid %d", cr.pid, cr.uid);
    char x = 'c';
    Q(write(s, &x, 1));
    Q(read(s, &x, 1));                          /* A is ready for the credentials */
    /* SCM_CREDENTIALS with its own pid as its namespace numbers it. */
    union { char b[CMSG_SPACE(sizeof(struct ucred))]; struct cmsghdr h; } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = { &x, 1 };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b };
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    h->cmsg_level = SOL_SOCKET; h->cmsg_type = SCM_CREDENTIALS; h->cmsg_len = CMSG_LEN(sizeof(struct ucred));
    struct ucred mine = { getpid(), getuid(), getgid() };
    memcpy(CMSG_DATA(h), &mine, sizeof mine);
    Q(sendmsg(s, &m, 0));
    say("C: SIGUSR2 from A, si_pid = %d", wait_signal(SIGUSR2));
    Q(write(c_to_b[1], "x", 1));
    say("C: SIGUSR1 from B, si_pid = %d", wait_signal(SIGUSR1));
    pid_t d = fork();
    if (d == 0) {
        /* D: orphaned when C exits, then B's (its namespace's init). */
        for (int i = 0; i < 500 && getppid() != 1; i++) usleep(10000);
        say("D: getpid = %d, getppid once C is gone = %d", getpid(), getppid());
        _exit(4);
    }
    _exit(3);
}

/* B: the init of ns2. */
static int run_b(void *arg) {
    (void)arg;
    say("B: getpid = %d, getppid = %d, getsid(0) = %d", getpid(), getppid(), getsid(0));
    errno = 0;
    T(setns(ns1fd, CLONE_NEWPID));              /* above its own: EINVAL */
    int own = open("/proc/self/ns/pid", O_RDONLY);
    T(ioctl(own, NS_GET_PARENT));               /* above its own: EPERM */
    close(own);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    sigaddset(&s, SIGUSR2);
    sigprocmask(SIG_BLOCK, &s, NULL);
    Q(pipe(c_to_b));
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) { close(c_to_b[0]); run_c(); }
    close(c_to_b[1]);
    char x;
    Q(read(c_to_b[0], &x, 1));                  /* C heard from A */
    Q(kill(c, SIGUSR1));
    int st1 = 0, st2 = 0;
    pid_t r1 = waitpid(c, &st1, 0);
    pid_t r2 = waitpid(-1, &st2, 0);            /* D, an orphan B inherited */
    say("B: fork = %d, waitpid(C) = %d status %d, then waitpid(-1) = %d status %d", c, r1, WEXITSTATUS(st1), r2, WEXITSTATUS(st2));
    say("B: ns_last_pid = %ld", last_pid());
    /* E outlives nothing: B's exit kills it. */
    fflush(stdout);
    if (fork() == 0) { for (;;) pause(); }
    close(deathpipe[1]);
    return 5;
}

/* A: the init of ns1. */
static int run_a(void *arg) {
    (void)arg;
    say("A: getpid = %d, getppid = %d", getpid(), getppid());
    Q(mount("proc", "/proc", "proc", 0, NULL));
    ns1fd = open("/proc/self/ns/pid", O_RDONLY);
    unlink(SOCK);
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    strcpy(a.sun_path, SOCK);
    Q(bind(l, (struct sockaddr *)&a, sizeof a));
    Q(listen(l, 1));
    fflush(stdout);
    pid_t b = clone(run_b, stack_b + sizeof stack_b, CLONE_NEWPID | SIGCHLD, NULL);
    if (b < 0) { say("A: clone(CLONE_NEWPID) = -1 %s", ename(errno)); return 1; }
    close(deathpipe[1]);
    int s = accept(l, NULL, NULL);
    char x;
    Q(read(s, &x, 1));                          /* C has printed */
    say("A: clone(CLONE_NEWPID) = %d", b);
    struct ucred cr;
    socklen_t len = sizeof cr;
    Q(getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &len));
    say("A: SO_PEERCRED of C's socket: pid %d", cr.pid);
    int one = 1;
    Q(setsockopt(s, SOL_SOCKET, SO_PASSCRED, &one, sizeof one));
    Q(write(s, &x, 1));
    union { char b[CMSG_SPACE(sizeof(struct ucred))]; struct cmsghdr h; } ctl;
    struct iovec iov = { &x, 1 };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b };
    Q(recvmsg(s, &m, 0));
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    if (h && h->cmsg_type == SCM_CREDENTIALS) {
        struct ucred got;
        memcpy(&got, CMSG_DATA(h), sizeof got);
        say("A: SCM_CREDENTIALS from C: pid %d", got.pid);
    } else say("A: no SCM_CREDENTIALS");
    status_line("A: /proc/1", 1, "NSpid");
    status_line("A: /proc/B", b, "NSpid");
    status_line("A: /proc/B", b, "NSpgid");
    status_line("A: /proc/C", cr.pid, "NSpid");
    status_line("A: /proc/C", cr.pid, "NStgid");
    /* B's namespace: its parent is A's; A may make it its children's and come back. */
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/pid", b);
    int ns2fd = open(path, O_RDONLY);
    int par = ioctl(ns2fd, NS_GET_PARENT);
    struct stat s1, s2;
    fstat(ns1fd, &s1);
    say("A: NS_GET_PARENT of ns2 is ns1: %s", par >= 0 && fstat(par, &s2) == 0 && s1.st_ino == s2.st_ino ? "yes" : ename(errno));
    T(setns(ns2fd, CLONE_NEWPID));
    T(setns(ns1fd, CLONE_NEWPID));
    Q(kill(cr.pid, SIGUSR2));
    siginfo_t si;
    memset(&si, 0, sizeof si);
    Q(waitid(P_PID, b, &si, WEXITED));
    say("A: waitid(B): si_pid %d, si_code %d, si_status %d", si.si_pid, si.si_code, si.si_status);
    say("A: ns_last_pid = %ld", last_pid());
    /* E, the last of ns2, was killed with B: its end of the pipe is closed. */
    say("A: read of the pipe E held = %zd", read(deathpipe[0], &x, 1));
    pid_t t1[] = { 1, 42 }, t2[] = { 77 }, t3[] = { 1, 1 }, t4[] = { 5 }, t5[] = { 1, 2, 3, 4 };
    T(clone3_tid(CLONE_NEWPID, t1, 2));         /* pid 1 of a new namespace, 42 in ns1 */
    T(clone3_tid(0, t2, 1));                    /* 77 in ns1 */
    T(clone3_tid(CLONE_NEWPID, t3, 2));         /* 1 is A's in ns1: EEXIST */
    T(clone3_tid(CLONE_NEWPID, t4, 1));         /* a new namespace's first is 1: EINVAL */
    T(clone3_tid(CLONE_NEWPID, t5, 4));         /* three levels from the child up: EINVAL */
    unlink(SOCK);
    return 6;
}

int main(void) {
    Q(pipe(deathpipe));
    fflush(stdout);
    pid_t a = clone(run_a, stack_a + sizeof stack_a, CLONE_NEWPID | CLONE_NEWNS | SIGCHLD, NULL);
    if (a < 0) { say("clone = -1 %s", ename(errno)); return 1; }
    close(deathpipe[0]); close(deathpipe[1]);
    int st = 0;
    T(waitpid(a, &st, 0) == a);
    say("main: A exited %d", WEXITSTATUS(st));
    return 0;
}
