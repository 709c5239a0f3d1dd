// The nsfs pid translations of Linux 6.11 on a child pid namespace and on
// the creator's own: NS_GET_PID_FROM_PIDNS / NS_GET_TGID_FROM_PIDNS (a pid
// of the fd's namespace as the caller numbers it) and NS_GET_PID_IN_PIDNS /
// NS_GET_TGID_IN_PIDNS (a pid of the caller's as the fd's namespace numbers
// it), ESRCH for a process the other side cannot see or that does not
// exist, EINVAL on a namespace that is not a pid one; a thread's tid and
// its process's tgid told apart. Also what a namespace's init sees of the
// namespace above: kill(-1) with nothing to signal (ESRCH) and a signal's
// sender from outside (si_pid 0). Prints comparisons and errno names only.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define NSIO 0xb7
#define NS_GET_PID_FROM_PIDNS _IOR(NSIO, 0x6, int)
#define NS_GET_TGID_FROM_PIDNS _IOR(NSIO, 0x7, int)
#define NS_GET_PID_IN_PIDNS _IOR(NSIO, 0x8, int)
#define NS_GET_TGID_IN_PIDNS _IOR(NSIO, 0x9, int)

static const char *ename(int e) {
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

/* ioctl's result compared with `want` (0: print the errno). */
static void q(const char *what, int fd, unsigned long cmd, long arg, long want) {
    errno = 0;
    long r = ioctl(fd, cmd, arg);
    if (r < 0) printf("%s = -1 %s\n", what, ename(errno));
    else printf("%s: %s\n", what, want && r == want ? "as expected" : "other");
    fflush(stdout);
}

static int rootfd = -1;
static int pipefd[2];

static int child(void *arg) {
    (void)arg;
    char c;
    if (read(pipefd[0], &c, 1) != 1) return 9;
    pid_t parent = (pid_t)(long)arg;
    printf("child: getpid = %d, getppid = %d\n", getpid(), getppid());
    // The creator's namespace: the child's own pid there is not 1.
    errno = 0;
    long mine = ioctl(rootfd, NS_GET_PID_IN_PIDNS, 1);
    printf("child: own pid in the parent namespace > 1: %s\n", mine > 1 ? "yes" : ename(errno));
    q("child: parent's pid from the parent namespace", rootfd, NS_GET_PID_FROM_PIDNS, parent, 0);
    q("child: own pid back from the parent namespace", rootfd, NS_GET_PID_FROM_PIDNS, mine, 1);
    // An init alone in its namespace: kill(-1) has no target.
    errno = 0;
    long r = kill(-1, 0);
    printf("child: kill(-1, 0) = %ld %s\n", r, r < 0 ? ename(errno) : "");
    // A signal from the parent namespace: its sender is not seen (si_pid 0).
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    siginfo_t si;
    if (sigwaitinfo(&set, &si) == SIGUSR1) printf("child: SIGUSR1 from outside: si_pid %d, si_code %d\n", si.si_pid, si.si_code);
    fflush(stdout);
    return 0;
}

static volatile pid_t thread_tid;

static void *idle(void *arg) {
    (void)arg;
    thread_tid = syscall(SYS_gettid);
    pause();
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    rootfd = open("/proc/self/ns/pid", O_RDONLY);
    if (rootfd < 0) { printf("open ns/pid: %s\n", ename(errno)); return 1; }
    pid_t me = getpid();
    q("own pid from own namespace", rootfd, NS_GET_PID_FROM_PIDNS, me, me);
    q("own pid in own namespace", rootfd, NS_GET_PID_IN_PIDNS, me, me);
    q("pid 0", rootfd, NS_GET_PID_FROM_PIDNS, 0, 0);
    q("no such pid", rootfd, NS_GET_PID_FROM_PIDNS, 4000000, 0);

    // A thread: its tid as a pid, its tgid as the process.
    pthread_t th;
    pthread_create(&th, NULL, idle, NULL);
    for (int i = 0; i < 1000 && !thread_tid; i++) usleep(1000);
    pid_t tid = thread_tid;
    if (tid) {
        q("thread: pid from own namespace", rootfd, NS_GET_PID_FROM_PIDNS, tid, tid);
        q("thread: tgid from own namespace", rootfd, NS_GET_TGID_FROM_PIDNS, tid, me);
        q("thread: tgid in own namespace", rootfd, NS_GET_TGID_IN_PIDNS, tid, me);
    } else {
        printf("thread not found\n");
    }

    int uts = open("/proc/self/ns/uts", O_RDONLY);
    q("on a UTS namespace", uts, NS_GET_PID_FROM_PIDNS, me, 0);

    if (pipe(pipefd) != 0) return 1;
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);              // the child inherits it blocked
    static char stack[256 * 1024];
    pid_t c = clone(child, stack + sizeof stack, CLONE_NEWPID | SIGCHLD, (void *)(long)me);
    if (c < 0) { printf("clone(CLONE_NEWPID): %s\n", ename(errno)); return 1; }
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/pid", c);
    int nsfd = open(path, O_RDONLY);
    if (nsfd < 0) printf("open child ns: %s\n", ename(errno));
    q("child's pid 1 from its namespace", nsfd, NS_GET_PID_FROM_PIDNS, 1, c);
    q("child's pid 1, tgid", nsfd, NS_GET_TGID_FROM_PIDNS, 1, c);
    q("child in its namespace", nsfd, NS_GET_PID_IN_PIDNS, c, 1);
    q("child's tgid in its namespace", nsfd, NS_GET_TGID_IN_PIDNS, c, 1);
    q("self in the child's namespace", nsfd, NS_GET_PID_IN_PIDNS, me, 0);
    q("pid 2 of the child's namespace", nsfd, NS_GET_PID_FROM_PIDNS, 2, 0);
    if (write(pipefd[1], "x", 1) != 1) return 1;
    kill(c, SIGUSR1);
    int st = 0;
    waitpid(c, &st, 0);
    printf("child: exited %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    q("child gone", nsfd, NS_GET_PID_FROM_PIDNS, 1, 0);
    return 0;
}
