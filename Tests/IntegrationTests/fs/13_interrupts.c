/* Signals that interrupt blocking calls, faults and signal storms across
 * threads: the moments when Moat must turn a call it serves without the
 * thread's registers (its seccomp-notification fast path) back into a full
 * ptrace stop, or rewind a call that never reached it. Also run with
 * --platform ptrace by the suite. */
#include "t.h"
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/time.h>

static int pfd[2];
static volatile sig_atomic_t hits;
static void on_alarm(int s) { (void)s; hits++; }
static void on_alarm_write(int s) { (void)s; hits++; if (write(pfd[1], "x", 1) != 1) _exit(3); }

/* The alarm repeats until disarmed: a loaded machine may run the blocking
 * call only after the first expiry, and a one-shot alarm would then leave
 * it blocked (natively too). Counts of hits are printed as ">= 1". */
static void arm(long usec) {
    struct itimerval it = { { 0, usec }, { 0, usec } };
    setitimer(ITIMER_REAL, &it, NULL);
}
static void disarm(void) {
    struct itimerval it = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_REAL, &it, NULL);
}

static void blocking_read(void) {
    char c;
    T(pipe(pfd));
    /* Without SA_RESTART: the read ends with EINTR. */
    struct sigaction sa = { 0 };
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    arm(20000);
    T(read(pfd[0], &c, 1));
    disarm();
    say("hits after EINTR read: %d", hits >= 1);
    /* With SA_RESTART: the handler writes a byte; the restarted read gets it. */
    sa.sa_handler = on_alarm_write;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    arm(20000);
    T(read(pfd[0], &c, 1));
    disarm();
    say("read byte %c, hits %d", c, hits >= 2);
    /* On a loaded machine the repeating alarm may have fired more than once
     * before the restarted read: each expiry wrote an "x", so drain them, or
     * the pipe below is one byte short of full and the 1-byte write fits
     * (natively too). */
    fcntl(pfd[0], F_SETFL, O_NONBLOCK);
    while (read(pfd[0], &c, 1) == 1) {}
    /* A blocking write to a full pipe, interrupted (no SA_RESTART). */
    sa.sa_handler = on_alarm;
    sa.sa_flags = 0;
    sigaction(SIGALRM, &sa, NULL);
    T(fcntl(pfd[1], F_SETFL, O_NONBLOCK));
    long filled = 0;
    while (write(pfd[1], "0123456789abcdef", 16) == 16) filled += 16;
    say("pipe filled: %s", filled > 0 ? "yes" : "no");
    T(fcntl(pfd[1], F_SETFL, 0));
    arm(20000);
    T(write(pfd[1], "y", 1));
    disarm();
    close(pfd[0]);
    close(pfd[1]);
}

static void sleeps(void) {
    struct timespec req = { 5, 0 }, rem = { 0, 0 };
    arm(20000);
    int r = nanosleep(&req, &rem);
    disarm();
    say("nanosleep = %d %s, remaining under 5 s: %s", r, r ? ename(errno) : "", rem.tv_sec < 5 ? "yes" : "no");
    /* select with no fds is restarted never (EINTR). */
    struct timeval tv = { 5, 0 };
    arm(20000);
    T(select(0, NULL, NULL, NULL, &tv));
    disarm();
}

static sigjmp_buf jb;
static void on_segv(int s) { (void)s; siglongjmp(jb, 1); }

static void faults(void) {
    struct sigaction sa = { 0 };
    sa.sa_handler = on_segv;
    sigaction(SIGSEGV, &sa, NULL);
    int caught = 0;
    for (int i = 0; i < 300; i++) {
        if (sigsetjmp(jb, 1) == 0) {
            *(volatile int *)(uintptr_t)(16 + i) = i;   /* page 0: never mapped */
        } else {
            caught++;
            /* a fast-path call between faults */
            if (getppid() < 0) say("getppid failed");
        }
    }
    say("faults caught: %d", caught);
    signal(SIGSEGV, SIG_DFL);
}

/* Threads blocked in reads, each interrupted by pthread_kill. */
#define NT 8
static int tp[NT][2];
static long tres[NT];
static int terr[NT];
static int tdone[NT];
static void on_usr1(int s) { (void)s; }
static void *reader(void *arg) {
    long i = (long)arg;
    char c;
    tres[i] = read(tp[i][0], &c, 1);
    terr[i] = tres[i] < 0 ? errno : 0;
    __atomic_store_n(&tdone[i], 1, __ATOMIC_SEQ_CST);
    /* then a burst of fast calls */
    for (int k = 0; k < 2000; k++) if (getppid() < 0) break;
    return NULL;
}

static void thread_interrupts(void) {
    struct sigaction sa = { 0 };
    sa.sa_handler = on_usr1;   /* no SA_RESTART */
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t th[NT];
    for (long i = 0; i < NT; i++) { T(pipe(tp[i])); pthread_create(&th[i], NULL, reader, (void *)i); }
    usleep(50000);
    /* Again until each has returned: a reader that had not reached its
     * read yet (a loaded machine) takes the next signal in it. */
    for (int i = 0; i < NT; i++)
        while (!__atomic_load_n(&tdone[i], __ATOMIC_SEQ_CST)) { pthread_kill(th[i], SIGUSR1); usleep(20000); }
    for (int i = 0; i < NT; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < NT; i++) say("reader %d: %ld %s", i, tres[i], terr[i] ? ename(terr[i]) : "");
}

/* A storm: a thread makes fast calls while another signals it constantly. */
static volatile sig_atomic_t storm_hits;
static volatile int storm_stop;
static long storm_writes;
static void on_usr2(int s) { (void)s; storm_hits++; }
static void *storm_worker(void *arg) {
    (void)arg;
    int fd = open("/dev/null", O_WRONLY);
    long ok = 0;
    while (!storm_stop) {
        if (write(fd, "z", 1) == 1) { ok++; __atomic_store_n(&storm_writes, ok, __ATOMIC_SEQ_CST); }
        else if (errno != EINTR) { say("write: %s", ename(errno)); break; }
    }
    close(fd);
    return (void *)ok;
}
static void storm(void) {
    struct sigaction sa = { 0 };
    sa.sa_handler = on_usr2;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, NULL);
    pthread_t th;
    pthread_create(&th, NULL, storm_worker, NULL);
    for (int i = 0; i < 500; i++) { pthread_kill(th, SIGUSR2); if (i % 50 == 0) usleep(1000); }
    /* The worker must get through after the storm: on a loaded machine it
     * may not have been scheduled at all during it (natively too). */
    for (int i = 0; i < 1000 && __atomic_load_n(&storm_writes, __ATOMIC_SEQ_CST) == 0; i++) usleep(10000);
    usleep(20000);
    storm_stop = 1;
    void *ok;
    pthread_join(th, &ok);
    say("storm: worker wrote: %s, handler ran: %s", (long)ok > 0 ? "yes" : "no", storm_hits > 0 ? "yes" : "no");
}

int main(void) {
    blocking_read();
    sleeps();
    faults();
    thread_interrupts();
    storm();
    say("done");
    return 0;
}
