/* Nice values weight CPU time (session 19, Moat issue 15; LTP nice05):
 * two busy processes on one CPU share it by their nice values' weights, as
 * CFS does (nice 0 gets about 9 times the CPU of nice 10, nice -5 about 3
 * times that of nice 0). Each pair runs a second, pinned to one CPU the
 * parent's affinity allows; only whether the ratio clears a wide margin
 * is printed (3x where CFS gives 9x, 1.5x where it gives 3x), never times.
 * Threads follow the same rule (nice applies to the calling thread). */
#include "t.h"
#include <pthread.h>
#include <sys/resource.h>
#include <sys/time.h>

static double cpu_of(struct rusage *ru) {
    return ru->ru_utime.tv_sec + ru->ru_utime.tv_usec / 1e6 + ru->ru_stime.tv_sec + ru->ru_stime.tv_usec / 1e6;
}

static void spin(void) {
    volatile unsigned long n = 0;
    for (;;) n++;
}

/* Two children at nice `a` and `b`, busy for a second: their CPU times. */
static void pair(int a, int b, double *ta, double *tb) {
    int go[2];
    pipe(go);
    pid_t p[2];
    int nice_of[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        p[i] = fork();
        if (p[i] == 0) {
            close(go[1]);
            if (setpriority(PRIO_PROCESS, 0, nice_of[i]) != 0) { say("setpriority %d: %s", nice_of[i], ename(errno)); _exit(1); }
            char c;
            read(go[0], &c, 1);           /* both start together */
            spin();
        }
    }
    close(go[0]);
    close(go[1]);
    struct timespec ts = {1, 0};
    nanosleep(&ts, NULL);
    double t[2];
    for (int i = 0; i < 2; i++) {
        kill(p[i], SIGKILL);
        int st;
        struct rusage ru;
        wait4(p[i], &st, 0, &ru);
        t[i] = cpu_of(&ru);
    }
    *ta = t[0]; *tb = t[1];
}

static volatile int thread_nice_ok;
static void *thread_spin(void *arg) {
    int inc = (int)(long)arg;
    if (nice(inc) == -1 && errno) say("nice(%d): %s", inc, ename(errno));
    thread_nice_ok++;
    spin();
    return NULL;
}

int main(void) {
    /* One CPU: the last the affinity allows. */
    cpu_set_t set;
    CPU_ZERO(&set);
    sched_getaffinity(0, sizeof set, &set);
    int cpu = -1;
    for (int i = 0; i < CPU_SETSIZE; i++) if (CPU_ISSET(i, &set)) cpu = i;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    T(sched_setaffinity(0, sizeof set, &set));

    double a, b;
    pair(0, 10, &a, &b);
    say("nice 0 ran over 3x as long as nice 10: %d", a > 3 * b);
    pair(-5, 0, &a, &b);
    say("nice -5 ran over 1.5x as long as nice 0: %d", a > 1.5 * b);

    /* Threads of one process, each with its own nice value (nice05's way). */
    pid_t p = fork();
    if (p == 0) {
        pthread_t th[2];
        pthread_create(&th[0], NULL, thread_spin, (void *)0L);
        pthread_create(&th[1], NULL, thread_spin, (void *)10L);
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
        clockid_t c0, c1;
        struct timespec t0, t1;
        pthread_getcpuclockid(th[0], &c0); pthread_getcpuclockid(th[1], &c1);
        clock_gettime(c0, &t0); clock_gettime(c1, &t1);
        double d0 = t0.tv_sec + t0.tv_nsec / 1e9, d1 = t1.tv_sec + t1.tv_nsec / 1e9;
        say("thread at nice 0 ran over 3x as long as the one at nice 10: %d", d0 > 3 * d1);
        _exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    say("threads' process: %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
}
