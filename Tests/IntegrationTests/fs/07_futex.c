/* Futex semantics beyond WAIT/WAKE: robust mutexes whose owner dies (in
 * another process, through shared memory), FUTEX_WAKE_OP, and a
 * process-shared condition variable. Not file-system calls, but the same
 * differential harness. */
#include "t.h"
#include <linux/futex.h>
#include <pthread.h>

static long futex(int *uaddr, int op, int val, long val2, int *uaddr2, int val3) {
    return syscall(SYS_futex, uaddr, op, val, val2, uaddr2, val3);
}

int main(void) {
    /* a robust, process-shared mutex in shared memory */
    pthread_mutex_t *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pthread_mutexattr_t at;
    pthread_mutexattr_init(&at);
    pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
    T(pthread_mutex_init(m, &at));
    pid_t c = fork();
    if (c == 0) { pthread_mutex_lock(m); _exit(0); }   /* dies holding it */
    waitpid(c, NULL, 0);
    int r = pthread_mutex_lock(m);
    say("lock after the owner died: %s", r == EOWNERDEAD ? "EOWNERDEAD" : r == 0 ? "0" : "other");
    T(pthread_mutex_consistent(m));
    T(pthread_mutex_unlock(m));
    T(pthread_mutex_lock(m));
    T(pthread_mutex_unlock(m));
    /* the same with a waiter blocked while the owner dies */
    int *go = (int *)(m + 1);
    *go = 0;
    c = fork();
    if (c == 0) {
        pthread_mutex_lock(m);
        __atomic_store_n(go, 1, __ATOMIC_SEQ_CST);
        usleep(200000);
        _exit(0);
    }
    while (!__atomic_load_n(go, __ATOMIC_SEQ_CST)) usleep(1000);
    r = pthread_mutex_lock(m);                          /* blocks until the child dies */
    say("blocked lock when the owner died: %s", r == EOWNERDEAD ? "EOWNERDEAD" : r == 0 ? "0" : "other");
    waitpid(c, NULL, 0);
    /* FUTEX_WAKE_OP with no waiters: the operation on the second word */
    int w1 = 0, w2 = 5;
    T(futex(&w1, FUTEX_WAKE_OP_PRIVATE, 1, 1, &w2, FUTEX_OP(FUTEX_OP_ADD, 3, FUTEX_OP_CMP_EQ, 5)));
    say("w2=%d", w2);
    T(futex(&w1, FUTEX_WAKE_OP_PRIVATE, 1, 1, &w2, FUTEX_OP(FUTEX_OP_OR, 0x10, FUTEX_OP_CMP_GT, 100)));
    say("w2=%d", w2);
    T(futex(&w1, FUTEX_WAKE_OP_PRIVATE, 1, 1, &w2, FUTEX_OP(FUTEX_OP_ANDN | (FUTEX_OP_OPARG_SHIFT << 0), 4, FUTEX_OP_CMP_NE, 0)));
    say("w2=%d", w2);
    T(futex(&w1, FUTEX_WAKE_OP_PRIVATE, 1, 1, &w2, FUTEX_OP(7, 0, 0, 0)));
    T(futex(&w1, FUTEX_WAKE_OP_PRIVATE, 1, 1, (int *)2, 0));
    /* a process-shared condition variable across fork */
    pthread_cond_t *cv = (pthread_cond_t *)(go + 16);
    pthread_mutex_t *cm = (pthread_mutex_t *)(cv + 1);
    int *flag = (int *)(cm + 1);
    pthread_condattr_t ca; pthread_condattr_init(&ca); pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
    pthread_cond_init(cv, &ca);
    pthread_mutexattr_t ma; pthread_mutexattr_init(&ma); pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(cm, &ma);
    *flag = 0;
    c = fork();
    if (c == 0) {
        pthread_mutex_lock(cm);
        while (!*flag) pthread_cond_wait(cv, cm);
        pthread_mutex_unlock(cm);
        _exit(7);
    }
    usleep(100000);
    pthread_mutex_lock(cm); *flag = 1; pthread_cond_broadcast(cv); pthread_mutex_unlock(cm);
    int st; waitpid(c, &st, 0);
    say("child woken by the shared condvar: status %d", WEXITSTATUS(st));
    return 0;
}
