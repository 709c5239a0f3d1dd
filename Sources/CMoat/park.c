// A task's sleep in the Sentry (Task.block): one futex word per task.
//
// It replaces a pthread condition variable waited on with Kernel.mu. With
// the condition variable, glibc takes the mutex back after the wait in its
// "contended" state, so the sleeper's next unlock always made a FUTEX_WAKE
// even with nobody waiting; and a wake always went through the condvar's
// futex. Here the sleeper releases Kernel.mu itself before sleeping and
// takes it back with an ordinary lock, and a waker makes a host call only
// when the sleeper is really asleep in the kernel:
//
//   0 armed: the task set it (Kernel.mu held) and has not slept yet
//   1 woken: a waker came; the sleeper returns without sleeping
//   2 asleep: the sleeper is in (or entering) FUTEX_WAIT on the word
//
// A wake that comes after the sleeper has left and armed the word for
// another wait is a spurious wake of that wait: callers re-check.
#define _GNU_SOURCE
#include "cmoat.h"
#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void moat_park_arm(int32_t *w) { __atomic_store_n(w, 0, __ATOMIC_RELEASE); }

int moat_park_wait(int32_t *w, int64_t deadline_ns) {
    struct timespec ts, *tp = NULL;
    if (deadline_ns >= 0) {
        ts.tv_sec = deadline_ns / 1000000000;
        ts.tv_nsec = deadline_ns % 1000000000;
        tp = &ts;
    }
    for (;;) {
        int32_t cur = 0;
        if (!__atomic_compare_exchange_n(w, &cur, 2, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) && cur == 1) return 0;
        // Absolute CLOCK_MONOTONIC deadline (FUTEX_WAIT_BITSET without
        // FUTEX_CLOCK_REALTIME); a signal (EINTR) or a stale value (EAGAIN)
        // only loops.
        long r = syscall(SYS_futex, w, FUTEX_WAIT_BITSET_PRIVATE, 2, tp, NULL, FUTEX_BITSET_MATCH_ANY);
        if (__atomic_load_n(w, __ATOMIC_ACQUIRE) == 1) return 0;
        if (r != 0 && errno == ETIMEDOUT) return ETIMEDOUT;
    }
}

void moat_park_wake(int32_t *w) {
    if (__atomic_exchange_n(w, 1, __ATOMIC_ACQ_REL) == 2)
        syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}
