// Futex waits woken by another thread, once every thread is warmed up (in
// Moat: each thread has made enough calls to be served by seccomp
// notifications, where a waker answers the woken thread's FUTEX_WAIT
// itself): condition-variable hand-offs, with signals landing on the
// waiters meanwhile, timed waits that are woken and ones that time out,
// a requeue, pthread_join's wake at thread exit, and an exit_group while
// threads sleep in futex waits. Prints only counts and results Linux
// guarantees.
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long fx(atomic_int *w, int op, int val, const struct timespec *ts, atomic_int *w2, int val3) {
    return syscall(SYS_futex, w, op, val, ts, w2, val3);
}

// Enough cheap calls for Moat to give the thread its fast-path layer.
static void warm(void) { for (int i = 0; i < 80; i++) (void)syscall(SYS_getppid); }

// ---- 1. a token ring of condition variables, with signals ---------------
#define RING 6
#define HOPS 6000
struct slot { pthread_mutex_t mu; pthread_cond_t cv; long token; };
static struct slot slots[RING];
static atomic_long handled;
static atomic_int ringDone;
static pthread_t ringThreads[RING];

static void onUsr1(int s) { (void)s; atomic_fetch_add(&handled, 1); }

static void *ringWorker(void *arg) {
    int me = (int)(long)arg, next = (me + 1) % RING;
    warm();
    long seen = 0;
    for (;;) {
        pthread_mutex_lock(&slots[me].mu);
        while (slots[me].token < 0) pthread_cond_wait(&slots[me].cv, &slots[me].mu);
        long t = slots[me].token;
        slots[me].token = -1;
        pthread_mutex_unlock(&slots[me].mu);
        seen++;
        pthread_mutex_lock(&slots[next].mu);
        slots[next].token = t + 1;
        pthread_cond_signal(&slots[next].cv);
        pthread_mutex_unlock(&slots[next].mu);
        if (t >= HOPS) return (void *)seen;
    }
}

static void *ringKicker(void *arg) {
    (void)arg;
    warm();
    int sent = 0;
    while (!atomic_load(&ringDone) && sent < 3000) {
        for (int i = 0; i < RING; i++) pthread_kill(ringThreads[i], SIGUSR1);
        sent += RING;
        usleep(200);
    }
    return NULL;
}

static void ring(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = onUsr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    for (int i = 0; i < RING; i++) {
        pthread_mutex_init(&slots[i].mu, NULL);
        pthread_cond_init(&slots[i].cv, NULL);
        slots[i].token = -1;
    }
    for (int i = 0; i < RING; i++) pthread_create(&ringThreads[i], NULL, ringWorker, (void *)(long)i);
    pthread_t k;
    pthread_create(&k, NULL, ringKicker, NULL);
    usleep(20000);
    pthread_mutex_lock(&slots[0].mu);
    slots[0].token = 0;
    pthread_cond_signal(&slots[0].cv);
    pthread_mutex_unlock(&slots[0].mu);
    long total = 0;
    for (int i = 0; i < RING; i++) { void *r; pthread_join(ringThreads[i], &r); total += (long)r; }
    atomic_store(&ringDone, 1);
    pthread_join(k, NULL);
    // Every hop up to HOPS is seen once, and each thread sees one of the
    // RING hops past it on its way out.
    printf("ring: hops seen %ld (expected %d), signals handled: %s\n", total, HOPS + RING,
           atomic_load(&handled) > 0 ? "some" : "none");
}

// ---- 2. plain FUTEX_WAIT / FUTEX_WAKE ping-pong ------------------------
static atomic_int ping, pong;
static void *ponger(void *arg) {
    (void)arg;
    warm();
    for (int i = 0; i < 3000; i++) {
        while (atomic_load(&ping) == 0) fx(&ping, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
        atomic_store(&ping, 0);
        atomic_store(&pong, 1);
        fx(&pong, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
    return NULL;
}
static void pingpong(void) {
    pthread_t p;
    pthread_create(&p, NULL, ponger, NULL);
    warm();
    int rounds = 0;
    for (int i = 0; i < 3000; i++) {
        atomic_store(&ping, 1);
        fx(&ping, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
        while (atomic_load(&pong) == 0) fx(&pong, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
        atomic_store(&pong, 0);
        rounds++;
    }
    pthread_join(p, NULL);
    printf("pingpong: %d rounds\n", rounds);
}

// ---- 3. timed waits: woken before the deadline, and timing out ---------
static atomic_int tw;
static atomic_int twReady;
static void *timedWaiter(void *arg) {
    (void)arg;
    warm();
    struct timespec ts = { 5, 0 };
    atomic_store(&twReady, 1);
    long r = fx(&tw, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
    return (void *)(long)(r == 0 ? 0 : errno);
}
static void timed(void) {
    pthread_t w;
    pthread_create(&w, NULL, timedWaiter, NULL);
    while (!atomic_load(&twReady)) usleep(1000);
    usleep(50000);
    long n = 0;
    // Wake it (retrying until it is queued: the flag is set just before).
    for (int i = 0; i < 100 && n == 0; i++) { n = fx(&tw, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0); if (!n) usleep(10000); }
    void *r;
    pthread_join(w, &r);
    printf("timed wait woken: wake returned %ld, wait returned %s\n", n, (long)r == 0 ? "0" : strerror((int)(long)r));
    warm();
    struct timespec ts = { 0, 30 * 1000 * 1000 };
    atomic_int never = 0;
    long t = fx(&never, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
    printf("timed wait unwoken: %ld %s\n", t, t == 0 ? "" : strerror(errno));
}

// ---- 4. requeue: one woken, the rest moved and woken from the second word
static atomic_int rq1, rq2;
static atomic_int rqQueued;
static void *rqWaiter(void *arg) {
    (void)arg;
    warm();
    atomic_fetch_add(&rqQueued, 1);
    long r = fx(&rq1, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    return (void *)(long)(r == 0 ? 0 : errno);
}
static void requeue(void) {
    pthread_t w[4];
    for (int i = 0; i < 4; i++) pthread_create(&w[i], NULL, rqWaiter, NULL);
    while (atomic_load(&rqQueued) < 4) usleep(1000);
    usleep(100000);
    long r = fx(&rq1, FUTEX_CMP_REQUEUE_PRIVATE, 1, (const struct timespec *)(long)3, &rq2, 0);
    long woken = 0;
    for (int i = 0; i < 100 && woken < 3; i++) {
        woken += fx(&rq2, FUTEX_WAKE_PRIVATE, 3, NULL, NULL, 0);
        if (woken < 3) usleep(10000);
    }
    int zeros = 0;
    for (int i = 0; i < 4; i++) { void *x; pthread_join(w[i], &x); zeros += (long)x == 0; }
    printf("requeue: woke+moved %ld, then woke %ld, waits returning 0: %d\n", r, woken, zeros);
}

// ---- 5. pthread_join: the exiting thread's CLONE_CHILD_CLEARTID wake ----
static void *quick(void *arg) { warm(); return arg; }
static void joins(void) {
    long sum = 0;
    for (int i = 0; i < 40; i++) {
        pthread_t t;
        pthread_create(&t, NULL, quick, (void *)(long)i);
        void *r;
        pthread_join(t, &r);
        sum += (long)r;
    }
    printf("joins: sum %ld\n", sum);
}

// ---- 6. exit_group while threads sleep in futex waits -------------------
static atomic_int never2;
static void *sleeper(void *arg) { (void)arg; warm(); for (;;) fx(&never2, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0); }
static void exitWhileWaiting(void) {
    pid_t pid = fork();
    if (pid == 0) {
        warm();
        pthread_t t[3];
        for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, sleeper, NULL);
        usleep(100000);
        _exit(7);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("exit with sleepers: %s %d\n", WIFEXITED(st) ? "exited" : "signaled", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    // And killed by a signal while they sleep.
    pid = fork();
    if (pid == 0) {
        warm();
        pthread_t t[3];
        for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, sleeper, NULL);
        for (;;) pause();
    }
    usleep(150000);
    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
    printf("killed with sleepers: %s %d\n", WIFEXITED(st) ? "exited" : "signaled", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    warm();
    ring();
    pingpong();
    timed();
    requeue();
    joins();
    exitWhileWaiting();
    return 0;
}
