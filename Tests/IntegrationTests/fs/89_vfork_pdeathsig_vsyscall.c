/* Waits and exits of processes that hung or failed in Moat (gVisor's vfork,
 * prctl and time tests, LTP sched_setscheduler04):
 * - a SIGCHLD that arrives while a parent waits for its vfork child stays
 *   pending (the parent does not come back early) and is delivered once the
 *   child exits;
 * - PR_SET_PDEATHSIG fires when the *thread* that forked the child exits,
 *   the rest of the process running on, and not when another thread exits;
 * - the legacy vsyscall page: time, gettimeofday and getcpu return to the
 *   caller; time with a bad pointer, or a call to no entry point, is SIGSEGV
 *   (needs the host's vsyscall page, x86-64's default "xonly");
 * - a child that has exited and is not yet reaped still answers
 *   sched_getscheduler, sched_getparam, sched_getaffinity, getpriority,
 *   ioprio_get and kcmp (its memory and files compare as none, KCMP_FILE is
 *   EBADF); after the reap all are ESRCH.
 * A broken wait ends by a 30 s alarm in the waiting child (a failure line),
 * never in a hang; no result depends on timing. */
#include "t.h"
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <poll.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static volatile sig_atomic_t sigchlds;
static void on_chld(int s) { (void)s; sigchlds++; }

static void vfork_sigchld(void) {
    struct sigaction sa = { .sa_handler = on_chld };
    sigfillset(&sa.sa_mask);
    Q(sigaction(SIGCHLD, &sa, NULL));
    int go[2];
    Q(pipe(go));
    pid_t first = fork();
    if (first == 0) { char b; read(go[0], &b, 1); _exit(3); }
    int pfd = (int)syscall(SYS_pidfd_open, first, 0);
    static volatile int child_ran_to_end;
    child_ran_to_end = 0;
    int before = sigchlds;
    pid_t v = vfork();
    if (v == 0) {
        /* Let the first child exit and wait until it has (its SIGCHLD is
         * then pending in the parent, which is still waiting for us). */
        write(go[1], "x", 1);
        struct pollfd p = { .fd = pfd, .events = POLLIN };
        poll(&p, 1, -1);
        child_ran_to_end = 1;
        _exit(4);
    }
    say("vfork returned after its child exited: %s", child_ran_to_end ? "yes" : "no");
    int st;
    T(waitpid(first, &st, 0) == first);
    say("first child: exit %d", WEXITSTATUS(st));
    T(waitpid(v, &st, 0) == v);
    say("vfork child: exit %d", WEXITSTATUS(st));
    say("SIGCHLD delivered after vfork: %s", sigchlds > before ? "yes" : "no");
    close(pfd); close(go[0]); close(go[1]);
    signal(SIGCHLD, SIG_DFL);
}

struct forker { int sig; int ready[2]; pid_t child; };

/* Forks a child that asks for `sig` when its parent thread dies, tells us
 * it did, and sleeps (a 30 s alarm ends a wait that never comes). */
static void *fork_and_exit(void *arg) {
    struct forker *f = arg;
    f->child = fork();
    if (f->child == 0) {
        prctl(PR_SET_PDEATHSIG, f->sig);
        alarm(30);
        write(f->ready[1], "x", 1);
        for (;;) pause();
    }
    char b;
    read(f->ready[0], &b, 1);
    return NULL;
}

static void *just_exit(void *arg) { (void)arg; return NULL; }

static void pdeathsig_thread(void) {
    /* The forking thread exits: the child gets its signal. */
    struct forker f = { .sig = SIGKILL };
    Q(pipe(f.ready));
    pthread_t th;
    Q(pthread_create(&th, NULL, fork_and_exit, &f));
    pthread_join(th, NULL);
    int st;
    T(waitpid(f.child, &st, 0) == f.child);
    say("child of an exited thread: %s %d", WIFSIGNALED(st) ? "signal" : "exit",
        WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    close(f.ready[0]); close(f.ready[1]);

    /* Another thread exits: the main thread's child is not signalled. */
    struct forker g = { .sig = SIGUSR1 };
    Q(pipe(g.ready));
    g.child = fork();
    if (g.child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGUSR1);
        alarm(30);
        write(g.ready[1], "x", 1);
        for (;;) pause();
    }
    char b;
    read(g.ready[0], &b, 1);
    Q(pthread_create(&th, NULL, just_exit, NULL));
    pthread_join(th, NULL);
    T(kill(g.child, SIGTERM));
    T(waitpid(g.child, &st, 0) == g.child);
    say("child of the live thread: %s %d", WIFSIGNALED(st) ? "signal" : "exit",
        WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    close(g.ready[0]); close(g.ready[1]);
}

typedef long (*vtime_fn)(long *);
typedef long (*vgtod_fn)(void *, void *);
typedef long (*vgetcpu_fn)(unsigned *, unsigned *, void *);
#define VSYSCALL 0xffffffffff600000UL

static void how_it_ends(const char *what, void (*fn)(void)) {
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) { fn(); _exit(0); }
    int st;
    waitpid(c, &st, 0);
    say("%s: %s %d", what, WIFSIGNALED(st) ? "killed by signal" : "exit", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}
static void bad_time(void) { ((vtime_fn)(VSYSCALL + 0x400))((long *)1); }
static void bad_entry(void) { ((vtime_fn)(VSYSCALL + 0x100))(NULL); }
static void bad_gtod(void) { ((vgtod_fn)VSYSCALL)((void *)1, NULL); }

static void vsyscalls(void) {
    long t0 = time(NULL), out = 0;
    long r = ((vtime_fn)(VSYSCALL + 0x400))(&out);
    say("vsyscall time: result %s, stored %s", r >= t0 && r <= t0 + 5 ? "now" : "wrong",
        out == r ? "the same" : "other");
    struct timeval tv = { 0 };
    r = ((vgtod_fn)VSYSCALL)(&tv, NULL);
    say("vsyscall gettimeofday = %ld, seconds %s", r, tv.tv_sec >= t0 && tv.tv_sec <= t0 + 5 ? "now" : "wrong");
    unsigned cpu = 999;
    r = ((vgetcpu_fn)(VSYSCALL + 0x800))(&cpu, NULL, NULL);
    say("vsyscall getcpu = %ld, cpu %s", r, cpu < 4096 ? "set" : "unset");
    how_it_ends("vsyscall time(0x1)", bad_time);
    how_it_ends("vsyscall gettimeofday(0x1)", bad_gtod);
    how_it_ends("vsyscall page +0x100", bad_entry);
}

static void zombie_queries(void) {
    pid_t c = fork();
    if (c == 0) _exit(5);
    siginfo_t si;
    T(waitid(P_PID, c, &si, WEXITED | WNOWAIT));
    struct sched_param p = { .sched_priority = 7 };
    cpu_set_t set;
    T(sched_getscheduler(c));
    T(sched_getparam(c, &p));
    say("priority %d", p.sched_priority);
    T(sched_getaffinity(c, sizeof set, &set) > 0);
    errno = 0;
    T(getpriority(PRIO_PROCESS, c));
    T(syscall(SYS_ioprio_get, 1, c) >= 0);
    T(syscall(SYS_kcmp, c, c, 1 /* KCMP_VM */, 0, 0));
    T(syscall(SYS_kcmp, c, c, 2 /* KCMP_FILES */, 0, 0));
    T(syscall(SYS_kcmp, c, c, 4 /* KCMP_SIGHAND */, 0, 0));
    T(syscall(SYS_kcmp, getpid(), c, 1 /* KCMP_VM */, 0, 0) > 0);
    T(syscall(SYS_kcmp, getpid(), c, 0 /* KCMP_FILE */, 0, 0));
    T(kill(c, 0));
    int st;
    T(waitpid(c, &st, 0) == c);
    T(sched_getscheduler(c));
    T(sched_getparam(c, &p));
    T(sched_getaffinity(c, sizeof set, &set));
    T(getpriority(PRIO_PROCESS, c));
    T(syscall(SYS_kcmp, c, c, 1 /* KCMP_VM */, 0, 0));
}

int main(void) {
    vfork_sigchld();
    pdeathsig_thread();
    vsyscalls();
    zombie_queries();
    return 0;
}
