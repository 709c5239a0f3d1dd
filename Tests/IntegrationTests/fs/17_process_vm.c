/* process_vm_readv/writev on the caller itself and on a child: copies
 * across iovec boundaries, partial copies, argument errors and the ptrace
 * attach permission (an unprivileged process may not read root's memory). */
#include "t.h"
#include <sys/uio.h>

static char area[3 * 4096] __attribute__((aligned(4096)));
static char bad_page_at_end[2 * 4096] __attribute__((aligned(4096)));

static long rv(pid_t pid, struct iovec *l, int ln, struct iovec *r, int rn, int flags) {
    return syscall(SYS_process_vm_readv, pid, l, ln, r, rn, flags);
}
static long wv(pid_t pid, struct iovec *l, int ln, struct iovec *r, int rn, int flags) {
    return syscall(SYS_process_vm_writev, pid, l, ln, r, rn, flags);
}

int main(void) {
    for (int i = 0; i < (int)sizeof area; i++) area[i] = (char)('a' + i % 26);
    char a[10] = {0}, b[20] = {0};
    struct iovec l[2] = {{a, 10}, {b, 20}};
    struct iovec r[2] = {{area + 4090, 12}, {area + 100, 18}};
    pid_t me = getpid();

    /* Itself: 30 bytes scattered over two local and two remote segments. */
    T(rv(me, l, 2, r, 2, 0));
    say("read: %.10s|%.20s", a, b);
    T(rv(me, l, 2, r, 2, 1));                               /* flags */
    T(rv(me, l, 1025, r, 2, 0));                            /* too many */
    T(rv(me, l, 0, r, 2, 0));                               /* nothing asked */
    T(rv(999999, l, 0, r, 2, 0));                           /* ... before the lookup */
    T(rv(999999, l, 2, r, 2, 0));
    T(rv(me, l, 2, (struct iovec *)8, 2, 0));               /* unreadable vector */
    T(rv(me, (struct iovec *)8, 2, r, 2, 0));
    struct iovec neg = {a, (size_t)-1};
    T(rv(me, &neg, 1, r, 2, 0));

    /* Partial: the second remote page is unmapped. */
    munmap(bad_page_at_end + 4096, 4096);
    char big[6000];
    struct iovec lb = {big, sizeof big};
    struct iovec rb = {bad_page_at_end + 1000, 6000};
    T(rv(me, &lb, 1, &rb, 1, 0));
    struct iovec rbad = {bad_page_at_end + 4096, 10};
    T(rv(me, &lb, 1, &rbad, 1, 0));
    struct iovec rtwo[2] = {{area, 5}, {bad_page_at_end + 4096, 10}};
    T(rv(me, &lb, 1, rtwo, 2, 0));
    struct iovec lbad = {(void *)8, 10};
    T(rv(me, &lbad, 1, r, 1, 0));

    /* A child: read its changed memory, write into it, let it check. */
    int up[2], down[2];
    T(pipe(up)); T(pipe(down));
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        memcpy(area, "child-data", 10);
        write(up[1], "r", 1);
        char c;
        read(down[0], &c, 1);
        say("child sees: %.12s", area + 20);
        /* Unprivileged now: root's memory is out of reach, its own is not. */
        if (setresgid(1000, 1000, 1000) || setresuid(1000, 1000, 1000)) say("setresuid failed");
        char x[4];
        struct iovec lx = {x, 4}, rx = {area, 4};
        T(rv(getppid(), &lx, 1, &rx, 1, 0));
        T(rv(getpid(), &lx, 1, &rx, 1, 0));
        write(up[1], "d", 1);
        read(down[0], &c, 1);
        _exit(0);
    }
    char c;
    read(up[0], &c, 1);
    char got[10];
    struct iovec lg = {got, 10}, rg = {area, 10};
    T(rv(p, &lg, 1, &rg, 1, 0));
    say("parent read: %.10s", got);
    struct iovec lw = {"written-by-parent", 12}, rw = {area + 20, 12};
    T(wv(p, &lw, 1, &rw, 1, 0));
    say("own copy unchanged: %.12s", area + 20);
    write(down[1], "w", 1);
    read(up[0], &c, 1);
    /* The child changed its uids: root keeps access (CAP_SYS_PTRACE). */
    T(rv(p, &lg, 1, &rg, 1, 0));
    write(down[1], "x", 1);
    int st;
    waitpid(p, &st, 0);
    T(rv(p, &lg, 1, &rg, 1, 0));                            /* reaped */
    return 0;
}
