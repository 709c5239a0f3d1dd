/* Signal and id edges gVisor's sigaltstack, rtsignal, uidgid and futex
 * programs found in Moat:
 * - setuid(-1) and setgid(-1) are EINVAL (setresuid's -1 means "unchanged");
 * - sigaltstack: SS_ONSTACK in ss_flags is accepted as 0; changing or
 *   disabling the stack from a handler running on it is EPERM, and the old
 *   stack is still reported (with SS_ONSTACK);
 * - rt_sigqueueinfo delivers the caller's si_errno;
 * - FUTEX_WAKE with a count of 0 wakes a waiter; a shared wake on private
 *   memory does not wake a private waiter (nothing waits, so both wakes
 *   report how many they woke without any timing). */
#include "t.h"
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>

static char altstack[1 << 16];
static volatile int perm_ret, perm_errno, perm_flags, disable_ret, disable_errno, got_errno;

static void on_usr1(int s) {
    (void)s;
    stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack }, old;
    errno = 0;
    perm_ret = sigaltstack(&ss, &old);
    perm_errno = errno;
    stack_t cur;
    sigaltstack(NULL, &cur);
    perm_flags = cur.ss_flags;
    stack_t off = { .ss_flags = SS_DISABLE };
    errno = 0;
    disable_ret = sigaltstack(&off, NULL);
    disable_errno = errno;
}

static void on_usr2(int s, siginfo_t *si, void *uc) { (void)s; (void)uc; got_errno = si->si_errno; }

static int futex_word = 1;
static volatile int waiter_ready;
static void *waiter(void *arg) {
    (void)arg;
    waiter_ready = 1;
    syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 1, NULL, NULL, 0);
    return NULL;
}

int main(void) {
    T(syscall(SYS_setuid, -1));
    T(syscall(SYS_setgid, -1));
    T(syscall(SYS_setresuid, -1, -1, -1));

    stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = SS_ONSTACK };
    T(sigaltstack(&ss, NULL));
    struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_ONSTACK };
    Q(sigaction(SIGUSR1, &sa, NULL));
    T(raise(SIGUSR1));
    say("in the handler: change %d %s, flags %d, disable %d %s", perm_ret, ename(perm_errno), perm_flags,
        disable_ret, ename(disable_errno));
    stack_t cur;
    T(sigaltstack(NULL, &cur));
    say("after: flags %d, size %zu", cur.ss_flags, cur.ss_size);

    struct sigaction sa2 = { .sa_sigaction = on_usr2, .sa_flags = SA_SIGINFO };
    Q(sigaction(SIGUSR2, &sa2, NULL));
    siginfo_t si = { .si_code = SI_QUEUE, .si_errno = 0x1234 };
    T(syscall(SYS_rt_sigqueueinfo, getpid(), SIGUSR2, &si));
    say("si_errno delivered: 0x%x", got_errno);

    /* No waiter: both wakes find nothing. With one private waiter: a shared
     * wake leaves it, a private wake of count 0 takes it. The waiter is
     * known to wait once a private wake of 0 returns 1 (retried until). */
    T(syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 0, NULL, NULL, 0));
    pthread_t th;
    Q(pthread_create(&th, NULL, waiter, NULL));
    while (!waiter_ready) sched_yield();
    long shared = -2, priv = -2;
    for (int i = 0; i < 1000000; i++) {      /* bounded: a wake of 0 that never wakes must not hang */
        /* Until the waiter sleeps, neither wake finds it; once it does,
         * the shared wake must still find nothing. */
        shared = syscall(SYS_futex, &futex_word, FUTEX_WAKE, 1, NULL, NULL, 0);
        if (shared != 0) break;
        priv = syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 0, NULL, NULL, 0);
        if (priv == 1) break;
        sched_yield();
    }
    say("shared wake of a private waiter: %ld; private wake of 0: %ld", shared, priv);
    if (priv != 1 && shared != 1) while (syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0) != 1) sched_yield();
    pthread_join(th, NULL);
    return 0;
}
