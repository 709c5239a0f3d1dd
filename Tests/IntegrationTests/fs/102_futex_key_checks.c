/* The futex key checks of Linux's get_futex_key (session 15, issue 15: LTP's
 * futex_wake05, futex_cmp_requeue02/03): a shared operation (no
 * FUTEX_PRIVATE_FLAG) pins the word's page, so an unmapped or PROT_NONE
 * page, or a shared file page past the file's end, is EFAULT for WAKE,
 * CMP_REQUEUE (either word) and WAKE_OP, while a private WAKE never looks at
 * the page; misaligned words are EINVAL; negative wake or requeue counts and
 * a zero bitset are EINVAL. */
#include "t.h"
#include <linux/futex.h>

static long fx(void *a, int op, int val, long val2, void *a2, int val3) {
    return syscall(SYS_futex, a, op, val, val2, a2, val3);
}

int main(void) {
    long pg = 4096;
    uint32_t *unmapped = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(unmapped, pg);
    uint32_t *none = mmap(NULL, pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int fd = open("futex.dat", O_CREAT | O_RDWR | O_TRUNC, 0644);
    ftruncate(fd, pg);
    uint32_t *trunc = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ftruncate(fd, 0);
    static uint32_t word = 7, word2 = 0;
    char *odd = (char *)&word + 1;

    say("-- FUTEX_WAKE, shared then private");
    T(fx(unmapped, FUTEX_WAKE, 1, 0, NULL, 0));
    T(fx(none, FUTEX_WAKE, 1, 0, NULL, 0));
    T(fx(trunc, FUTEX_WAKE, 1, 0, NULL, 0));
    T(fx(&word, FUTEX_WAKE, 1, 0, NULL, 0));
    T(fx(unmapped, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, 0, NULL, 0));
    T(fx(none, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, 0, NULL, 0));
    T(fx(odd, FUTEX_WAKE, 1, 0, NULL, 0));
    T(fx(&word, FUTEX_WAKE_BITSET, 1, 0, NULL, 0));
    T(fx(&word, FUTEX_WAKE_BITSET | FUTEX_PRIVATE_FLAG, 1, 0, NULL, 1));

    say("-- FUTEX_CMP_REQUEUE and FUTEX_REQUEUE");
    T(fx(&word, FUTEX_CMP_REQUEUE, 1, -1, &word2, 7));
    T(fx(&word, FUTEX_CMP_REQUEUE, -1, 1, &word2, 7));
    T(fx(&word, FUTEX_CMP_REQUEUE, 1, 0xffffffffL, &word2, 7));
    T(fx(&word, FUTEX_CMP_REQUEUE, 1, 1, &word2, 8));
    T(fx(&word, FUTEX_CMP_REQUEUE, 1, 1, &word2, 7));
    T(fx(unmapped, FUTEX_CMP_REQUEUE, 1, 1, &word2, 7));
    T(fx(&word, FUTEX_CMP_REQUEUE, 1, 1, unmapped, 7));
    T(fx(&word, FUTEX_CMP_REQUEUE, 1, 1, none, 7));
    T(fx(&word, FUTEX_CMP_REQUEUE, 1, 1, unmapped, 8));
    T(fx(&word, FUTEX_CMP_REQUEUE | FUTEX_PRIVATE_FLAG, 1, 1, unmapped, 7));
    T(fx(&word, FUTEX_CMP_REQUEUE, 1, 1, odd, 7));
    T(fx(&word, FUTEX_REQUEUE, 1, 1, none, 0));
    T(fx(&word, FUTEX_REQUEUE | FUTEX_PRIVATE_FLAG, 1, 1, &word2, 0));

    say("-- FUTEX_WAKE_OP");
    int op = FUTEX_OP(FUTEX_OP_ADD, 1, FUTEX_OP_CMP_EQ, 0);
    T(fx(unmapped, FUTEX_WAKE_OP, 1, 1, &word2, op));
    T(fx(&word, FUTEX_WAKE_OP, 1, 1, &word2, op));
    say("word2 %u", word2);
    T(fx(&word, FUTEX_WAKE_OP, 1, 1, none, op));
    T(fx(none, FUTEX_WAKE_OP | FUTEX_PRIVATE_FLAG, 1, 1, &word2, op));
    say("word2 %u", word2);
    return 0;
}
