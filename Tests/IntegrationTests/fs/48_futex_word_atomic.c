/* The kernel changes a futex word atomically with respect to the
 * application's own atomics on it (FUTEX_WAKE_OP's operation, FUTEX_WAITERS
 * on a PI word, FUTEX_OWNER_DIED at a robust owner's death). A thread adds 2
 * to the word with lock xadd in a tight loop while the main thread applies
 * FUTEX_WAKE_OP's ADD 1 to it: no update of either may be lost. A Sentry
 * that reads the word and writes it back loses the spinner's additions made
 * in between. Also: the operation on a read-only or unmapped word is EFAULT. */
#include "t.h"
#include <linux/futex.h>
#include <pthread.h>

static unsigned word, dummy;
static volatile int done;
static long adds;

static void *spinner(void *a) {
    while (!done) { __atomic_fetch_add(&word, 2, __ATOMIC_SEQ_CST); adds++; }
    return a;
}

static long wake_op(void *uaddr2, unsigned op) {
    return syscall(SYS_futex, &dummy, FUTEX_WAKE_OP | FUTEX_PRIVATE_FLAG, 0, 0, uaddr2, op);
}

int main(void) {
    pthread_t th;
    pthread_create(&th, NULL, spinner, NULL);
    while (__atomic_load_n(&word, __ATOMIC_SEQ_CST) == 0) ;   /* the spinner runs */
    const int ops = 3000;
    int bad = 0;
    for (int i = 0; i < ops; i++)
        if (wake_op(&word, FUTEX_OP(FUTEX_OP_ADD, 1, FUTEX_OP_CMP_EQ, 0)) != 0) bad++;
    done = 1;
    pthread_join(th, NULL);
    say("wake_op calls failed: %d", bad);
    unsigned expect = (unsigned)(2 * adds + ops);
    if (word == expect) say("word == 2 * spinner adds + %d wake_op adds: yes", ops);
    else say("word == 2 * spinner adds + %d wake_op adds: no, lost %ld", ops, (long)expect - (long)word);

    unsigned *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    T(wake_op(ro, FUTEX_OP(FUTEX_OP_SET, 1, FUTEX_OP_CMP_EQ, 0)));
    T(ro[0]);
    munmap(ro, 4096);
    T(wake_op(ro, FUTEX_OP(FUTEX_OP_SET, 1, FUTEX_OP_CMP_EQ, 0)));
    return 0;
}
