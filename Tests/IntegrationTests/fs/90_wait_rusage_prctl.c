/* wait, getrusage, prctl and getcpu as gVisor's wait, getrusage, prctl and
 * getcpu tests found them in Moat:
 * - waitid refuses unknown option bits (EINVAL), accepts __WNOTHREAD,
 *   __WCLONE and __WALL; __WNOTHREAD sees only the calling thread's
 *   children; a traced child that exited can be reaped with __WCLONE;
 * - wait4's and waitid's rusage and RUSAGE_CHILDREN carry a waited-for
 *   child's CPU time and peak resident set (grandchildren's too), never a
 *   child reaped because SIGCHLD is ignored nor an unreaped zombie;
 *   RUSAGE_SELF has a resident set;
 * - PR_SET_DUMPABLE keeps 0 or 1 (2 is EINVAL), fork copies it, exec
 *   resets it; PR_SET_MM without CAP_SYS_RESOURCE is EPERM, with stray
 *   arguments EINVAL, PR_SET_MM_MAP_SIZE answers 104;
 * - getcpu names a CPU the affinity mask allows.
 * CPU times are compared only as "more than nothing spent" against a child
 * that spins for a fixed amount of its own CPU time (no timing). */
#include "t.h"
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <linux/capability.h>

static long cpu_us(const struct rusage *r) {
    return (r->ru_utime.tv_sec + r->ru_stime.tv_sec) * 1000000L + r->ru_utime.tv_usec + r->ru_stime.tv_usec;
}

/* A child that burns 200 ms of its own CPU time, touches `kb` KiB, exits 0. */
static pid_t spinner(int kb) {
    pid_t c = fork();
    if (c == 0) {
        if (kb) { char *p = malloc((size_t)kb * 1024); for (int i = 0; i < kb * 1024; i += 4096) p[i] = 1; }
        struct timespec ts;
        do clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts); while (ts.tv_sec == 0 && ts.tv_nsec < 200000000);
        _exit(0);
    }
    return c;
}

static volatile pid_t thread_child;
static int thread_waited;   /* printed by the main thread after the join: one order of lines */
static void *fork_in_thread(void *arg) {
    int *fds = arg;
    thread_child = fork();
    if (thread_child == 0) _exit(0);
    char b;
    read(fds[0], &b, 1);   /* the main thread's check first */
    int st;
    thread_waited = waitpid(thread_child, &st, __WNOTHREAD) == thread_child;
    return NULL;
}

static void waits(void) {
    siginfo_t si;
    T(waitid(P_ALL, 0, &si, WEXITED | WNOHANG | 0x40));
    T(waitid(P_ALL, 0, &si, WEXITED | WNOHANG | __WNOTHREAD | __WCLONE | __WALL));
    T(waitid(P_ALL, 0, &si, WNOHANG));

    /* __WNOTHREAD: the child of another thread is not ours to wait for. */
    int fds[2];
    Q(pipe(fds));
    pthread_t th;
    Q(pthread_create(&th, NULL, fork_in_thread, fds));
    while (!thread_child) sched_yield();
    T(waitid(P_PID, thread_child, &si, WEXITED | __WNOTHREAD));
    T(write(fds[1], "x", 1));
    pthread_join(th, NULL);
    say("the forking thread's waitpid(__WNOTHREAD) took its child: %d", thread_waited);
    close(fds[0]); close(fds[1]);

    /* A traced child that exited: its tracer may reap it with __WCLONE. */
    int go[2];
    Q(pipe(go));
    pid_t c = fork();
    if (c == 0) { close(go[0]); ptrace(PTRACE_TRACEME, 0, 0, 0); close(go[1]); _exit(0); }
    close(go[1]);
    char b;
    read(go[0], &b, 1);
    close(go[0]);
    T(waitid(P_PID, c, &si, WEXITED | WNOWAIT));
    int st;
    T(wait4(c, &st, __WCLONE, NULL) == c);
    T(waitpid(-1, &st, WNOHANG));
}

static void rusages(void) {
    struct rusage self, kids, r;
    T(getrusage(RUSAGE_SELF, &self));
    say("self maxrss > 0: %d", self.ru_maxrss > 0);
    T(getrusage(RUSAGE_CHILDREN, &kids));
    long before = cpu_us(&kids);

    pid_t c = spinner(0);
    int st;
    T(wait4(c, &st, 0, &r) == c);
    say("wait4 rusage: cpu spent %d, maxrss > 0 %d", cpu_us(&r) >= 200000, r.ru_maxrss > 0);
    c = spinner(0);
    siginfo_t si;
    T(syscall(SYS_waitid, P_PID, c, &si, WEXITED, &r));
    say("waitid rusage: cpu spent %d, maxrss > 0 %d", cpu_us(&r) >= 200000, r.ru_maxrss > 0);
    T(getrusage(RUSAGE_CHILDREN, &kids));
    say("children: cpu of both %d", cpu_us(&kids) - before >= 400000);

    /* A grandchild's 8 MiB shows in the grandparent's RUSAGE_CHILDREN. */
    c = fork();
    if (c == 0) { pid_t g = spinner(8192); int s; waitpid(g, &s, 0); _exit(0); }
    T(waitpid(c, &st, 0) == c);
    T(getrusage(RUSAGE_CHILDREN, &kids));
    say("children maxrss > 8 MiB: %d", kids.ru_maxrss > 8192);

    /* Ignored SIGCHLD and unreaped zombies add nothing. */
    c = fork();
    if (c == 0) {
        struct rusage k0, k1;
        getrusage(RUSAGE_CHILDREN, &k0);
        signal(SIGCHLD, SIG_IGN);
        pid_t g = spinner(0);
        int s;
        int w = (int)waitpid(g, &s, 0);
        say("wait with SIGCHLD ignored: %d %s", w, ename(errno));
        signal(SIGCHLD, SIG_DFL);
        g = fork();
        if (g == 0) _exit(0);
        siginfo_t i;
        waitid(P_PID, g, &i, WEXITED | WNOWAIT);
        getrusage(RUSAGE_CHILDREN, &k1);
        say("children after ignored and zombie: cpu same %d, maxrss %ld", cpu_us(&k1) == cpu_us(&k0), k1.ru_maxrss);
        _exit(0);
    }
    T(waitpid(c, &st, 0) == c);
}

static void dumpable(void) {
    T(prctl(PR_GET_DUMPABLE));
    T(prctl(PR_SET_DUMPABLE, 2));
    T(prctl(PR_SET_DUMPABLE, 0));
    T(prctl(PR_GET_DUMPABLE));
    pid_t c = fork();
    if (c == 0) {
        printf("child: dumpable %d\n", prctl(PR_GET_DUMPABLE));
        fflush(stdout);
        execl("/proc/self/exe", "prog", "after-exec", (char *)NULL);
        _exit(9);
    }
    int st;
    T(waitpid(c, &st, 0) == c);
    T(prctl(PR_SET_DUMPABLE, 1));
    T(prctl(PR_GET_DUMPABLE));

    T(prctl(PR_SET_MM, PR_SET_MM_START_CODE, 0, 0, 1));
    unsigned size = 0;
    T(prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE, &size, 0, 0));
    say("prctl_mm_map size %u", size);
    c = fork();
    if (c == 0) {
        /* Without CAP_SYS_RESOURCE (drop it from the effective set). */
        struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
        struct __user_cap_data_struct d[2];
        syscall(SYS_capget, &h, d);
        d[CAP_SYS_RESOURCE / 32].effective &= ~(1u << (CAP_SYS_RESOURCE % 32));
        syscall(SYS_capset, &h, d);
        T(prctl(PR_SET_MM, PR_SET_MM_START_CODE, 0, 0, 0));
        _exit(0);
    }
    T(waitpid(c, &st, 0) == c);
}

static void getcpu_in_mask(void) {
    cpu_set_t orig, one;
    T(sched_getaffinity(0, sizeof orig, &orig));
    int last = -1;
    for (int i = 0; i < CPU_SETSIZE; i++) if (CPU_ISSET(i, &orig)) last = i;
    CPU_ZERO(&one);
    CPU_SET(last, &one);
    T(sched_setaffinity(0, sizeof one, &one));
    unsigned cpu = 9999;
    T(syscall(SYS_getcpu, &cpu, NULL, NULL));
    say("getcpu is the one allowed: %d", (int)cpu == last);
    T(sched_setaffinity(0, sizeof orig, &orig));
}

int main(int argc, char **argv) {
    if (argc > 1) { say("after exec: dumpable %d", prctl(PR_GET_DUMPABLE)); return 0; }
    waits();
    rusages();
    dumpable();
    getcpu_in_mask();
    return 0;
}
