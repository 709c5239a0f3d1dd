/* futex_waitv (session 15, issue 15: LTP's futex_waitv01-03): its argument
 * checks in Linux's order, a word that differs (EAGAIN), an expired
 * absolute timeout on either clock, a FUTEX_WAKE from another thread on one
 * of several private words (the result is that word's index), the same on
 * shared memory across a fork, and a signal ending the wait. No result
 * depends on timing: each wake is retried until it finds the waiter. */
#include "t.h"
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <time.h>

#ifndef FUTEX_32
#define FUTEX_32 2
#endif
struct waitv { uint64_t val, uaddr; uint32_t flags, reserved; };

static long waitv(struct waitv *w, unsigned n, unsigned flags, struct timespec *to, int clock) {
    return syscall(449, w, n, flags, to, clock);
}


static uint32_t words[8];
static volatile uint32_t *target;
static int target_private;

static void *waker(void *arg) {
    (void)arg;
    /* Until it finds the waiter: one wake woke one task. */
    while (syscall(SYS_futex, target, FUTEX_WAKE | (target_private ? FUTEX_PRIVATE_FLAG : 0), 1, NULL, NULL, 0) != 1) sched_yield();
    return NULL;
}

static void on_alarm(int s) { (void)s; }

int main(void) {
    struct waitv w[130];
    memset(w, 0, sizeof w);
    for (int i = 0; i < 8; i++) { w[i].uaddr = (uintptr_t)&words[i]; w[i].flags = FUTEX_32 | FUTEX_PRIVATE_FLAG; }
    struct timespec to = t_deadline(CLOCK_MONOTONIC, 1000), bad = { 0, 2000000000L };

    say("-- argument checks");
    T(waitv(w, 1, 1, &to, CLOCK_MONOTONIC));
    T(waitv(w, 0, 0, &to, CLOCK_MONOTONIC));
    T(waitv(w, 129, 0, &to, CLOCK_MONOTONIC));
    T(waitv(NULL, 1, 0, &to, CLOCK_MONOTONIC));
    T(waitv(w, 1, 0, &to, CLOCK_TAI));
    T(waitv(w, 1, 0, (struct timespec *)8, CLOCK_MONOTONIC));
    T(waitv(w, 1, 0, &bad, CLOCK_MONOTONIC));
    T(waitv((struct waitv *)8, 1, 0, &to, CLOCK_MONOTONIC));
    w[1].flags = FUTEX_PRIVATE_FLAG; T(waitv(w, 2, 0, &to, CLOCK_MONOTONIC));
    w[1].flags = FUTEX_32 | 1; T(waitv(w, 2, 0, &to, CLOCK_MONOTONIC));
    w[1].flags = FUTEX_32; w[1].reserved = 1; T(waitv(w, 2, 0, &to, CLOCK_MONOTONIC));
    w[1].reserved = 0; w[1].flags = FUTEX_32 | FUTEX_PRIVATE_FLAG;
    w[1].uaddr += 1; T(waitv(w, 2, 0, &to, CLOCK_MONOTONIC));
    w[1].uaddr = 0; T(waitv(w, 2, 0, &to, CLOCK_MONOTONIC));
    w[1].uaddr = (uintptr_t)&words[1];
    w[1].val = 1ULL << 32; T(waitv(w, 2, 0, &to, CLOCK_MONOTONIC));
    w[1].val = 0;
    words[2] = 5; T(waitv(w, 3, 0, &to, CLOCK_MONOTONIC));
    words[2] = 0;

    say("-- timeouts (absolute)");
    struct timespec past = { 1, 0 };
    T(waitv(w, 2, 0, &past, CLOCK_MONOTONIC));
    T(waitv(w, 2, 0, &past, CLOCK_REALTIME));
    struct timespec soon = t_deadline(CLOCK_REALTIME, 10);
    T(waitv(w, 2, 0, &soon, CLOCK_REALTIME));

    say("-- a wake on one of eight private words");
    for (int k = 0; k < 8; k += 7) {
        target = &words[k]; target_private = 1;
        pthread_t th;
        pthread_create(&th, NULL, waker, NULL);
        struct timespec t2 = t_deadline(CLOCK_MONOTONIC, 20000);
        T(waitv(w, 8, 0, &t2, CLOCK_MONOTONIC));
        pthread_join(th, NULL);
    }
    say("-- no timeout, a wake on a word named twice (the first entry)");
    w[5].uaddr = (uintptr_t)&words[3];
    target = &words[3]; target_private = 1;
    pthread_t th;
    pthread_create(&th, NULL, waker, NULL);
    T(waitv(w, 8, 0, NULL, 0));
    pthread_join(th, NULL);
    w[5].uaddr = (uintptr_t)&words[5];

    say("-- shared memory, woken from another process");
    uint32_t *shm = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    struct waitv sw[3] = { { 0, (uintptr_t)&shm[0], FUTEX_32, 0 }, { 0, (uintptr_t)&shm[10], FUTEX_32, 0 },
                           { 0, (uintptr_t)&words[0], FUTEX_32 | FUTEX_PRIVATE_FLAG, 0 } };
    pid_t pid = fork();
    if (pid == 0) {
        while (syscall(SYS_futex, &shm[10], FUTEX_WAKE, 1, NULL, NULL, 0) != 1) sched_yield();
        _exit(0);
    }
    struct timespec t3 = t_deadline(CLOCK_MONOTONIC, 20000);
    T(waitv(sw, 3, 0, &t3, CLOCK_MONOTONIC));
    int st;
    waitpid(pid, &st, 0);
    say("child exit %d", WEXITSTATUS(st));

    say("-- a signal ends the wait");
    struct sigaction sa = { 0 };
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = { { 0, 0 }, { 0, 50000 } };
    setitimer(ITIMER_REAL, &it, NULL);
    T(waitv(w, 2, 0, NULL, 0));
    return 0;
}
