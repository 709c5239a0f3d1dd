/* POSIX interval timers (signal, thread-directed, none, absolute, overrun,
 * delete), membarrier, and the scheduling-policy calls. Timing-dependent
 * values are printed as ranges, not raw numbers. */
#include "t.h"
#include <linux/membarrier.h>
#include <sched.h>
#include <signal.h>
#include <time.h>
#include <sys/prctl.h>

static volatile int fired, lastval, lastcode;
static void on_alarm(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    fired++;
    lastval = si->si_value.sival_int;
    lastcode = si->si_code;
}

int main(void) {
    struct sigaction sa = {0};
    sa.sa_sigaction = on_alarm;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGRTMIN, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    timer_t tid;
    struct sigevent ev = {0};
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGRTMIN;
    ev.sigev_value.sival_int = 42;
    T(timer_create(CLOCK_MONOTONIC, &ev, &tid));
    struct itimerspec its = {.it_value = {0, 50000000}, .it_interval = {0, 20000000}};
    T(timer_settime(tid, 0, &its, NULL));
    struct itimerspec cur;
    T(timer_gettime(tid, &cur));
    say("armed: value in (0, 50ms]: %d interval=%ld", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= 50000000, cur.it_interval.tv_nsec);
    while (fired < 4) pause();
    say("fired %d times, value %d, code SI_TIMER: %d", fired >= 4, lastval, lastcode == SI_TIMER);
    struct itimerspec zero = {0};
    T(timer_settime(tid, 0, &zero, &cur));
    say("old interval %ld", cur.it_interval.tv_nsec);
    T(timer_gettime(tid, &cur));
    say("disarmed: %ld.%ld", (long)cur.it_value.tv_sec, cur.it_value.tv_nsec);
    /* overruns: block the signal, let it expire several times */
    sigset_t s; sigemptyset(&s); sigaddset(&s, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &s, NULL);
    struct itimerspec fast = {.it_value = {0, 10000000}, .it_interval = {0, 10000000}};
    fired = 0;
    T(timer_settime(tid, 0, &fast, NULL));
    usleep(200000);
    sigprocmask(SIG_UNBLOCK, &s, NULL);
    T(timer_settime(tid, 0, &zero, NULL));
    int ov = timer_getoverrun(tid);
    /* How many expirations the overrun counts depends on when the signal is
     * delivered (scheduling, load): Linux promises only a count >= 0. */
    say("overrun after a blocked stretch is a count: %d", ov >= 0);
    T(timer_delete(tid));
    T(timer_delete(tid));
    T(timer_gettime(tid, &cur));
    /* absolute expiry on CLOCK_REALTIME, default sigevent (SIGALRM) */
    timer_t t2;
    T(timer_create(CLOCK_REALTIME, NULL, &t2));
    struct timespec now; clock_gettime(CLOCK_REALTIME, &now);
    struct itimerspec abs = {.it_value = {now.tv_sec, now.tv_nsec}};
    abs.it_value.tv_nsec += 30000000;
    if (abs.it_value.tv_nsec >= 1000000000) { abs.it_value.tv_sec++; abs.it_value.tv_nsec -= 1000000000; }
    fired = 0;
    /* SIGALRM blocked until sigsuspend: a loaded machine may expire the
     * timer before the wait starts, and pause() would then wait forever. */
    sigset_t alrm, prev; sigemptyset(&alrm); sigaddset(&alrm, SIGALRM);
    sigprocmask(SIG_BLOCK, &alrm, &prev);
    T(timer_settime(t2, TIMER_ABSTIME, &abs, NULL));
    while (!fired) sigsuspend(&prev);
    sigprocmask(SIG_SETMASK, &prev, NULL);
    say("absolute timer fired: %d", fired > 0);
    T(timer_delete(t2));
    /* SIGEV_NONE: only polled */
    ev.sigev_notify = SIGEV_NONE;
    T(timer_create(CLOCK_MONOTONIC, &ev, &t2));
    struct itimerspec once = {.it_value = {5, 0}};
    T(timer_settime(t2, 0, &once, NULL));
    T(timer_gettime(t2, &cur));
    say("SIGEV_NONE remaining about 5 s: %d", cur.it_value.tv_sec == 4 || cur.it_value.tv_sec == 5);
    T(timer_delete(t2));
    /* errors */
    T(timer_create(12345, NULL, &t2));
    ev.sigev_notify = SIGEV_SIGNAL; ev.sigev_signo = 100;
    T(timer_create(CLOCK_MONOTONIC, &ev, &t2));
    ev.sigev_signo = SIGRTMIN;
    T(timer_create(CLOCK_MONOTONIC, &ev, &t2));
    struct itimerspec bad = {.it_value = {0, 2000000000}};
    T(timer_settime(t2, 0, &bad, NULL));
    T(timer_settime(t2, 8, &once, NULL));
    T(timer_delete(t2));
    /* membarrier */
    int q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0);
    say("PRIVATE_EXPEDITED supported: %d", (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0);
    T(syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0));
    T(syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0));
    T(syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0));
    T(syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 1));
    /* scheduling policy */
    struct sched_param sp = {0};
    T(sched_setscheduler(0, SCHED_OTHER, &sp));
    T(sched_setscheduler(0, SCHED_BATCH, &sp));
    T(sched_getscheduler(0));
    T(sched_setscheduler(0, SCHED_OTHER, &(struct sched_param){5}));
    T(sched_setscheduler(0, 77, &sp));
    T(sched_setparam(0, &sp));
    struct timespec rr;
    T(sched_rr_get_interval(0, &rr));
    T(sched_setscheduler(0, SCHED_OTHER, &sp));
    /* PR_SET_PDEATHSIG: a grandchild is told of its parent's death */
    T(prctl(PR_SET_CHILD_SUBREAPER, 1));
    /* Two pipes: with one, a parent scheduled late could take the
     * grandchild's byte and leave the child waiting for ever. */
    int pfd[2]; T(pipe(pfd));
    int gfd[2]; T(pipe(gfd));
    pid_t c = fork();
    if (c == 0) {
        pid_t g = fork();
        if (g == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            int sig = -1; prctl(PR_GET_PDEATHSIG, &sig);
            char m = sig == SIGTERM ? 'y' : 'n';
            write(gfd[1], &m, 1);
            for (;;) pause();
        }
        char m; read(gfd[0], &m, 1);
        write(pfd[1], &m, 1);
        _exit(0);                       /* the grandchild's parent dies */
    }
    close(gfd[0]); close(gfd[1]);
    char m = 0; T(read(pfd[0], &m, 1));
    say("PR_GET_PDEATHSIG gave SIGTERM: %c", m);
    int st; T(waitpid(c, &st, 0) == c);
    pid_t g = waitpid(-1, &st, 0);      /* reparented to us, the subreaper */
    say("grandchild reaped: %d, killed by signal %d", g > 0, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    T(prctl(PR_SET_PDEATHSIG, 99));
    return 0;
}
