/* pidfds, scheduling attributes, I/O priority and kcmp beyond what LTP's
 * tests of them check (session 13 added them to Moat):
 * - a pidfd polls readable only once its process has exited, stays readable
 *   while the zombie waits, and reads are EINVAL; pidfd_send_signal to an
 *   exited process is ESRCH; waitid(P_PIDFD, WNOHANG) before the exit finds
 *   nothing, after it reaps; a pidfd of a thread that is not its group's
 *   leader is EINVAL without PIDFD_THREAD; pidfd_getfd of an fd the target
 *   lacks is EBADF, and the copy is the same open file (kcmp KCMP_FILE);
 * - sched_setattr's size rules (0 is the first version, < 48 is E2BIG with
 *   the kernel's size written back), SCHED_BATCH keeps the nice given,
 *   RESET_ON_FORK shows in sched_getscheduler and resets a child's policy;
 * - ioprio_set/get by process, process group and user; invalid classes;
 * - kcmp of fork and CLONE_VM/CLONE_FILES children. */
#include "t.h"
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

struct attr {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t prio;
    uint64_t runtime, deadline, period;
    uint32_t umin, umax;
};

static int pollin(int fd) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int r = poll(&p, 1, 0);
    return r < 0 ? -1 : (p.revents & POLLIN ? 1 : 0);
}

static void *thread_main(void *arg) {
    *(pid_t *)arg = gettid();
    pause();
    return NULL;
}

int main(void) {
    /* pidfd life cycle */
    int go[2];
    Q(pipe(go));
    pid_t c = fork();
    if (c == 0) { char b; read(go[0], &b, 1); _exit(7); }
    int pfd = T(syscall(SYS_pidfd_open, c, 0));
    say("poll before exit = %d", pollin(pfd));
    siginfo_t si = {0};
    T(waitid(P_PIDFD, pfd, &si, WEXITED | WNOHANG));
    say("WNOHANG si_pid set = %d", si.si_pid != 0);
    char x;
    T(read(pfd, &x, 1));
    T(syscall(SYS_pidfd_send_signal, pfd, 0, NULL, 0));
    T(syscall(SYS_pidfd_send_signal, pfd, SIGCONT, NULL, 1));
    T(fcntl(pfd, F_GETFD));
    Q(write(go[1], "x", 1));
    struct pollfd p = { .fd = pfd, .events = POLLIN };
    T(poll(&p, 1, 5000));
    say("revents POLLIN = %d", !!(p.revents & POLLIN));
    say("poll after exit (zombie) = %d", pollin(pfd));
    T(syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0));
    si.si_pid = 0;
    T(waitid(P_PIDFD, pfd, &si, WEXITED));
    say("si_code = %d, si_status = %d, pid matches = %d", si.si_code, si.si_status, si.si_pid == c);
    T(waitid(P_PIDFD, pfd, &si, WEXITED));
    T(syscall(SYS_pidfd_send_signal, pfd, 0, NULL, 0));
    close(pfd);
    T(syscall(SYS_pidfd_open, 0, 0));
    T(syscall(SYS_pidfd_open, getpid(), O_CLOEXEC));
    int self = T(syscall(SYS_pidfd_open, getpid(), O_NONBLOCK));
    T(fcntl(self, F_GETFL) & O_NONBLOCK ? 1 : 0);
    T(waitid(P_PIDFD, self, &si, WEXITED));
    T(syscall(SYS_pidfd_getfd, self, 999, 0));
    T(syscall(SYS_pidfd_getfd, self, 0, 1));
    T(syscall(SYS_pidfd_getfd, 0, 0, 0));
    int dup_ = T(syscall(SYS_pidfd_getfd, self, go[1], 0));
    T(syscall(SYS_kcmp, getpid(), getpid(), 0, dup_, go[1]));
    T(syscall(SYS_kcmp, getpid(), getpid(), 0, dup_, go[0]) > 0);
    close(dup_);
    pthread_t th;
    volatile pid_t tid = 0;
    pthread_create(&th, NULL, thread_main, (void *)&tid);
    while (!tid) sched_yield();
    T(syscall(SYS_pidfd_open, tid, 0));
    int tfd = syscall(SYS_pidfd_open, tid, O_EXCL);
    say("PIDFD_THREAD open ok = %d", tfd >= 0);
    if (tfd >= 0) close(tfd);
    close(self);

    /* sched attributes */
    struct attr a = {0}, g = {0};
    a.size = 40; a.policy = SCHED_BATCH;
    T(syscall(SYS_sched_setattr, 0, &a, 0));
    say("size written back = %u", a.size);
    memset(&a, 0, sizeof a); a.size = 0; a.policy = SCHED_BATCH; a.nice = 3;
    T(syscall(SYS_sched_setattr, 0, &a, 0));
    T(syscall(SYS_sched_getattr, 0, &g, sizeof g, 0));
    say("getattr size %u policy %u nice %d prio %u", g.size, g.policy, g.nice, g.prio);
    T(syscall(SYS_sched_getattr, 0, &g, 48, 0));
    say("getattr(48) size %u", g.size);
    T(sched_getscheduler(0));
    T(getpriority(PRIO_PROCESS, 0));
    memset(&a, 0, sizeof a); a.size = sizeof a; a.policy = SCHED_OTHER; a.flags = 1; /* RESET_ON_FORK */
    T(syscall(SYS_sched_setattr, 0, &a, 0));
    T(sched_getscheduler(0));
    struct sched_param sp = { .sched_priority = 5 };
    T(sched_setscheduler(0, SCHED_RR | SCHED_RESET_ON_FORK, &sp));
    T(sched_getscheduler(0));
    c = fork();
    if (c == 0) {
        struct sched_param q = {0};
        printf("child policy %d\n", sched_getscheduler(0));
        sched_getparam(0, &q);
        printf("child prio %d\n", q.sched_priority);
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    memset(&a, 0, sizeof a); a.size = sizeof a; a.policy = SCHED_OTHER; a.flags = 0x80;
    T(syscall(SYS_sched_setattr, 0, &a, 0));
    memset(&a, 0, sizeof a); a.size = sizeof a; a.policy = 7;
    T(syscall(SYS_sched_setattr, 0, &a, 0));
    sp.sched_priority = 0;
    T(sched_setscheduler(0, SCHED_OTHER, &sp));
    T(sched_get_priority_max(SCHED_DEADLINE));
    T(sched_get_priority_min(SCHED_IDLE));

    /* ioprio */
    T(syscall(SYS_ioprio_set, 1, 0, (2 << 13) | 3));
    T(syscall(SYS_ioprio_get, 1, 0));
    T(syscall(SYS_ioprio_get, 2, 0));
    /* (by user: every process of the uid on the host counts natively) */
    T(syscall(SYS_ioprio_set, 1, 0, (4 << 13)));
    T(syscall(SYS_ioprio_set, 1, 0, (0 << 13) | 1));
    T(syscall(SYS_ioprio_set, 4, 0, 0));
    T(syscall(SYS_ioprio_get, 1, 999999));
    c = fork();
    if (c == 0) { printf("child ioprio %ld\n", syscall(SYS_ioprio_get, 1, 0)); fflush(stdout); _exit(0); }
    waitpid(c, NULL, 0);

    /* kcmp */
    c = fork();
    if (c == 0) { pause(); _exit(0); }
    T(syscall(SYS_kcmp, getpid(), c, 1, 0, 0) != 0);   /* KCMP_VM */
    T(syscall(SYS_kcmp, getpid(), c, 2, 0, 0) != 0);   /* KCMP_FILES */
    T(syscall(SYS_kcmp, getpid(), c, 4, 0, 0) != 0);   /* KCMP_SIGHAND */
    T(syscall(SYS_kcmp, getpid(), c, 0, go[0], go[0])); /* inherited: the same file */
    T(syscall(SYS_kcmp, getpid(), getpid(), 1, 0, 0));
    T(syscall(SYS_kcmp, getpid(), c, 8, 0, 0));
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    T(syscall(SYS_kcmp, getpid(), c, 1, 0, 0));
    return 0;
}
