/* Overruns of POSIX timers (counted on the queued signal, reported by
 * timer_getoverrun once it is taken), absolute times already past, the
 * clocks and notify kinds timer_create takes, epoll nesting limits (ELOOP)
 * and RLIMIT_CPU (SIGXCPU at the soft limit, which then grows by a second,
 * SIGKILL at the hard one). Timing-dependent values print as ranges. */
#include "t.h"
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>

static timer_t mk(clockid_t clk, int notify, int sig) {
    struct sigevent ev = {0};
    ev.sigev_notify = notify;
    ev.sigev_signo = sig;
    int id = -1;
    /* The raw call: glibc builds SIGEV_THREAD itself. */
    long r = syscall(SYS_timer_create, clk, &ev, &id);
    if (r != 0) { say("timer_create(%d, notify %d) = -1 %s", (int)clk, notify, ename(errno)); return (timer_t)-1; }
    return (timer_t)(long)id;
}

static void overruns(void) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &s, NULL);
    timer_t tm = mk(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGRTMIN);
    struct itimerspec its = {{0, 1000000}, {0, 1000000}};
    T(timer_settime(tm, 0, &its, NULL));
    usleep(100000);
    siginfo_t si;
    T(sigwaitinfo(&s, &si) == SIGRTMIN);
    say("si_code SI_TIMER: %d, si_overrun >= 20: %d", si.si_code == SI_TIMER, si.si_overrun >= 20);
    say("timer_getoverrun == si_overrun: %d", timer_getoverrun(tm) == si.si_overrun);
    /* A few periods later its next signal is queued; timer_delete takes it
     * away (Linux frees it with the timer), so nothing stale reaches the
     * sigwaits below, however late this process runs. */
    usleep(5000);
    T(timer_delete(tm));
    struct timespec zero = {0, 0};
    say("timer_delete drops its queued signal: %d", sigtimedwait(&s, &si, &zero) == -1 && errno == EAGAIN);

    /* An absolute time 1 s past with a 10 ms period: one signal at once,
     * the periods since then as its overrun. Linux counts the periods up to
     * the dequeue, so a loaded machine adds one per 10 ms between the
     * settime and the return: the bound allows what this run took. */
    tm = mk(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGRTMIN);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    its.it_value.tv_sec = now.tv_sec - 1;
    its.it_value.tv_nsec = now.tv_nsec;
    its.it_interval.tv_nsec = 10000000;
    T(timer_settime(tm, TIMER_ABSTIME, &its, NULL));
    struct timespec wait = {2, 0};
    T(sigtimedwait(&s, &si, &wait) == SIGRTMIN);
    struct timespec after;
    clock_gettime(CLOCK_MONOTONIC, &after);
    long late = ((after.tv_sec - now.tv_sec) * 1000000000L + (after.tv_nsec - now.tv_nsec)) / 10000000L;
    say("past absolute: overrun in 95..110 plus the periods the call took: %d", si.si_overrun >= 95 && si.si_overrun <= 110 + late);
    T(timer_delete(tm));

    /* The same with a 1 ns period: counted, not stepped, saturating. */
    tm = mk(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGRTMIN);
    its.it_value.tv_sec = now.tv_sec - 3;
    its.it_interval.tv_nsec = 1;
    T(timer_settime(tm, TIMER_ABSTIME, &its, NULL));
    T(sigtimedwait(&s, &si, &wait) == SIGRTMIN);
    say("1 ns period: overrun == INT_MAX: %d", si.si_overrun == INT_MAX);
    T(timer_delete(tm));
}

static void clocks(void) {
    timer_t tm;
    if ((tm = mk(CLOCK_TAI, SIGEV_SIGNAL, SIGRTMIN)) != (timer_t)-1) { say("CLOCK_TAI: ok"); timer_delete(tm); }
    if ((tm = mk(CLOCK_MONOTONIC, SIGEV_THREAD, SIGRTMIN)) != (timer_t)-1) { say("raw SIGEV_THREAD: ok"); timer_delete(tm); }
    mk(CLOCK_MONOTONIC, SIGEV_THREAD, 0);
    mk(CLOCK_MONOTONIC, 3, SIGRTMIN);
    mk(12, SIGEV_SIGNAL, SIGRTMIN);
}

static void epoll_nesting(void) {
    struct epoll_event ev = {.events = EPOLLIN};
    int a = epoll_create1(0), b = epoll_create1(0);
    T(epoll_ctl(a, EPOLL_CTL_ADD, b, &ev));
    T(epoll_ctl(b, EPOLL_CTL_ADD, a, &ev));      /* a cycle */
    T(epoll_ctl(b, EPOLL_CTL_ADD, b, &ev));      /* itself */
    close(a); close(b);
    /* Chains built top-down and bottom-up. */
    int e[8];
    for (int i = 0; i < 8; i++) e[i] = epoll_create1(0);
    for (int i = 0; i + 1 < 8; i++) { printf("down %d: ", i); T(epoll_ctl(e[i], EPOLL_CTL_ADD, e[i + 1], &ev)); }
    for (int i = 0; i < 8; i++) close(e[i]);
    for (int i = 0; i < 8; i++) e[i] = epoll_create1(0);
    for (int i = 7; i > 0; i--) { printf("up %d: ", i); T(epoll_ctl(e[i - 1], EPOLL_CTL_ADD, e[i], &ev)); }
    for (int i = 0; i < 8; i++) close(e[i]);
}

static int pfd[2];
static volatile int xcpu;
static void on_xcpu(int sig) {
    (void)sig;
    struct rlimit r;
    getrlimit(RLIMIT_CPU, &r);
    char c = (char)('0' + r.rlim_cur);
    if (xcpu++ == 0) write(pfd[1], &c, 1);
}

static void cpu_limit(void) {
    T(pipe(pfd));
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        signal(SIGXCPU, on_xcpu);
        struct rlimit r = {1, 2};
        setrlimit(RLIMIT_CPU, &r);
        for (;;) __asm__ volatile("" ::: "memory");
    }
    close(pfd[1]);
    int st;
    waitpid(p, &st, 0);
    char c = '?';
    read(pfd[0], &c, 1);
    say("RLIMIT_CPU child: signaled %d, sig %d, soft limit after SIGXCPU %c",
        WIFSIGNALED(st), WIFSIGNALED(st) ? WTERMSIG(st) : -1, c);
    close(pfd[0]);
}

int main(void) {
    in_child("overruns", overruns);
    clocks();
    epoll_nesting();
    cpu_limit();
    return 0;
}
