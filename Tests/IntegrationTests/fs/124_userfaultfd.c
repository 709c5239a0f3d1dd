/* userfaultfd(2) with a handler thread serving the faults of the main
 * thread: the API handshake and its errors, MISSING faults resolved by
 * UFFDIO_COPY and UFFDIO_ZEROPAGE, EEXIST and ENOENT, a page touched before
 * the registration (no fault), MADV_DONTNEED making a page missing again,
 * write protection (a WP fault's flags, then the write goes through),
 * UFFDIO_WAKE with nothing filled (the fault comes again), poll on a
 * blocking fd, a fork's child (not registered), UFFDIO_MOVE (the source
 * reads zero after), UFFDIO_POISON (SIGBUS, also after the fd is closed),
 * unregistering, and a close of the fd while a thread waits (the fault
 * then fills with zeros).
 * Moat keeps missing pages from the stub on the host (MM/Userfault.swift):
 * the KVM row leaves this program out. */
#include "t.h"
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/ioctl.h>

#ifndef UFFDIO_MOVE
struct uffdio_move { __u64 dst, src, len, mode; __s64 move; };
#define UFFDIO_MOVE _IOWR(UFFDIO, 0x05, struct uffdio_move)
#endif
#ifndef UFFDIO_POISON
struct uffdio_poison { struct uffdio_range range; __u64 mode; __s64 updated; };
#define UFFDIO_POISON _IOWR(UFFDIO, 0x08, struct uffdio_poison)
#define UFFD_FEATURE_POISON (1 << 14)
#endif

#define PG 4096L
static int uffd = -1;
static char *base;          /* 10 registered pages */
static char *src;           /* a page of source bytes */

enum { FILL_COPY, FILL_ZERO, FILL_WAKE_THEN_COPY, FILL_UNPROTECT, FILL_CLOSE, FILL_MOVE, FILL_POISON };
static int plan[8];         /* what the handler does for each fault, in order */
static int nplan, served;

/* The handler's lines, printed by the main thread once it is joined (the
 * faulting thread runs on as soon as a page is filled). */
static char hlog[4096];
static void hsay(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void hsay(const char *fmt, ...) {
    size_t n = strlen(hlog);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(hlog + n, sizeof hlog - n, fmt, ap);
    va_end(ap);
    strncat(hlog, "\n", sizeof hlog - strlen(hlog) - 1);
}
#define HT(expr) ({ long r_ = (long)(expr); int e_ = errno; \
    if (r_ == -1) hsay("handler: %s = -1 %s", #expr, ename(e_)); else hsay("handler: %s = %ld", #expr, r_); r_; })
static void join(pthread_t th) {
    pthread_join(th, NULL);
    fputs(hlog, stdout);
    hlog[0] = 0;
}

/* Serves `nplan` faults as the plan says, printing each message. */
static void *handler(void *arg) {
    (void)arg;
    while (served < nplan) {
        struct pollfd p = { .fd = uffd, .events = POLLIN };
        if (poll(&p, 1, 5000) != 1) { hsay("handler: poll timed out"); return NULL; }
        struct uffd_msg m;
        if (read(uffd, &m, sizeof m) != sizeof m) { hsay("handler: read: %s", ename(errno)); return NULL; }
        unsigned long page = (m.arg.pagefault.address - (unsigned long)base) / PG;
        hsay("handler: event %#x page %lu offset-in-page %lu flags %#llx", m.event, page,
            (unsigned long)(m.arg.pagefault.address % PG), (unsigned long long)m.arg.pagefault.flags);
        unsigned long at = m.arg.pagefault.address & ~(PG - 1);
        switch (plan[served++]) {
        case FILL_COPY: {
            memset(src, 'A' + (int)page, PG);
            struct uffdio_copy c = { .dst = at, .src = (unsigned long)src, .len = PG };
            HT(ioctl(uffd, UFFDIO_COPY, &c));
            hsay("handler: copy = %lld", (long long)c.copy);
            break;
        }
        case FILL_ZERO: {
            struct uffdio_zeropage z = { .range = { at, PG } };
            HT(ioctl(uffd, UFFDIO_ZEROPAGE, &z));
            hsay("handler: zeropage = %lld", (long long)z.zeropage);
            break;
        }
        case FILL_WAKE_THEN_COPY: {
            /* Woken without a page, the thread faults again: one more message. */
            struct uffdio_range r = { at, PG };
            HT(ioctl(uffd, UFFDIO_WAKE, &r));
            plan[served - 1] = FILL_COPY; served--;
            break;
        }
        case FILL_UNPROTECT: {
            hsay("handler: byte still %d while the writer waits", base[m.arg.pagefault.address - (unsigned long)base]);
            struct uffdio_writeprotect w = { .range = { at, PG }, .mode = 0 };
            HT(ioctl(uffd, UFFDIO_WRITEPROTECT, &w));
            break;
        }
        case FILL_MOVE: {
            memset(src, 'M', PG);
            struct uffdio_move mv = { .dst = at, .src = (unsigned long)src, .len = PG };
            HT(ioctl(uffd, UFFDIO_MOVE, &mv));
            hsay("handler: move = %lld", (long long)mv.move);
            break;
        }
        case FILL_POISON: {
            struct uffdio_poison po = { .range = { at, PG } };
            HT(ioctl(uffd, UFFDIO_POISON, &po));
            hsay("handler: poison = %lld", (long long)po.updated);
            break;
        }
        case FILL_CLOSE:
            HT(close(uffd));
            uffd = -1;
            return NULL;
        }
    }
    return NULL;
}

static void serve(int n, const int *what) {
    nplan = n; served = 0;
    memcpy(plan, what, n * sizeof *what);
}

static sigjmp_buf jb;
static void on_sigbus(int sig) { (void)sig; siglongjmp(jb, 1); }

/* Reads a byte of `p`: its value, or -2 for a SIGBUS. */
static int touch(volatile char *p) {
    if (sigsetjmp(jb, 1)) return -2;
    return *p;
}

int main(void) {
    signal(SIGBUS, on_sigbus);
    base = mmap(NULL, 10 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    src = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    base[7 * PG] = 'T';     /* touched before the registration: present */

    T(syscall(SYS_userfaultfd, 0x40000000));
    uffd = T(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
    char buf[64];
    T(read(uffd, buf, sizeof buf));                      /* before UFFDIO_API */
    struct uffdio_api api = { .api = 0x55 };
    T(ioctl(uffd, UFFDIO_API, &api));
    say("bad api: features %#llx", (unsigned long long)api.features);
    api = (struct uffdio_api){ .api = UFFD_API, .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_POISON };
    T(ioctl(uffd, UFFDIO_API, &api));
    say("api: register+unregister+api ioctls %s", (api.ioctls & 0x8000000000000003ULL) == 0x8000000000000003ULL ? "yes" : "no");
    T(ioctl(uffd, UFFDIO_API, &api));                    /* only once */
    T(read(uffd, buf, 8));                               /* shorter than a message */
    T(read(uffd, buf, sizeof buf));                      /* nothing pending */

    struct uffdio_register reg = { .range = { (unsigned long)base + 1, PG }, .mode = UFFDIO_REGISTER_MODE_MISSING };
    T(ioctl(uffd, UFFDIO_REGISTER, &reg));
    reg = (struct uffdio_register){ .range = { (unsigned long)base, 10 * PG }, .mode = 8 };
    T(ioctl(uffd, UFFDIO_REGISTER, &reg));
    reg.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP;
    T(ioctl(uffd, UFFDIO_REGISTER, &reg));
    say("register: copy zeropage wake writeprotect ioctls %s",
        (reg.ioctls & ((1ULL << _UFFDIO_COPY) | (1ULL << _UFFDIO_ZEROPAGE) | (1ULL << _UFFDIO_WAKE) | (1ULL << _UFFDIO_WRITEPROTECT))) ==
        ((1ULL << _UFFDIO_COPY) | (1ULL << _UFFDIO_ZEROPAGE) | (1ULL << _UFFDIO_WAKE) | (1ULL << _UFFDIO_WRITEPROTECT)) ? "yes" : "no");

    /* Outside the registered range: ENOENT; a page filled twice: EEXIST. */
    struct uffdio_copy c = { .dst = (unsigned long)src, .src = (unsigned long)src, .len = PG };
    T(ioctl(uffd, UFFDIO_COPY, &c));
    c = (struct uffdio_copy){ .dst = (unsigned long)base + 6 * PG, .src = (unsigned long)src, .len = PG };
    memset(src, 'P', PG);
    T(ioctl(uffd, UFFDIO_COPY, &c));
    say("copy = %lld, page 6 reads %c", (long long)c.copy, base[6 * PG]);
    T(ioctl(uffd, UFFDIO_COPY, &c));
    say("second copy = %lld", (long long)c.copy);
    say("page 7 (touched before) reads %c", base[7 * PG]);

    pthread_t th;
    /* Page 0 by COPY, page 1 by ZEROPAGE, page 2 woken first then copied. */
    serve(3, (int[]){ FILL_COPY, FILL_ZERO, FILL_WAKE_THEN_COPY });
    pthread_create(&th, NULL, handler, NULL);
    char p0 = base[0 * PG + 10], p1 = base[1 * PG + 20], p2 = base[2 * PG];
    join(th);
    say("page 0 reads %c, page 1 reads %d, page 2 reads %c", p0, p1, p2);

    /* MADV_DONTNEED: page 0 is missing again. */
    T(madvise(base, PG, MADV_DONTNEED));
    serve(1, (int[]){ FILL_ZERO });
    pthread_create(&th, NULL, handler, NULL);
    p0 = base[0];
    join(th);
    say("page 0 after MADV_DONTNEED reads %d", p0);

    /* Write protection: a write to page 6 waits for the handler. */
    struct uffdio_writeprotect wp = { .range = { (unsigned long)base + 6 * PG, PG }, .mode = UFFDIO_WRITEPROTECT_MODE_WP };
    T(ioctl(uffd, UFFDIO_WRITEPROTECT, &wp));
    say("page 6 still readable: %c", base[6 * PG]);
    serve(1, (int[]){ FILL_UNPROTECT });
    pthread_create(&th, NULL, handler, NULL);
    base[6 * PG + 5] = 'W';
    join(th);
    say("page 6 byte 5 after the write: %c", base[6 * PG + 5]);

    /* A blocking uffd polls as an error (Linux: read could block anyway). */
    int b = T(syscall(SYS_userfaultfd, O_CLOEXEC));
    struct uffdio_api api2 = { .api = UFFD_API };
    T(ioctl(b, UFFDIO_API, &api2));
    struct pollfd p = { .fd = b, .events = POLLIN };
    T(poll(&p, 1, 0));
    say("blocking uffd revents %#x", p.revents);
    T(close(b));

    /* A fork's child has no registration: its page 3 reads zero. */
    pid_t pid = fork();
    if (pid == 0) { say("child: page 3 reads %d", base[3 * PG]); _exit(0); }
    int st;
    waitpid(pid, &st, 0);
    say("child exit %d", WEXITSTATUS(st));

    /* UFFDIO_MOVE fills page 8 from the source, which is then empty. */
    serve(1, (int[]){ FILL_MOVE });
    pthread_create(&th, NULL, handler, NULL);
    char p8 = base[8 * PG];
    join(th);
    say("page 8 reads %c, the source now %d", p8, src[0]);

    /* UFFDIO_POISON: the access gets SIGBUS. */
    serve(1, (int[]){ FILL_POISON });
    pthread_create(&th, NULL, handler, NULL);
    int p9 = touch(base + 9 * PG);
    join(th);
    say("page 9 reads %d", p9);

    /* Unregistered pages fault no more. */
    struct uffdio_range ur = { (unsigned long)base + 4 * PG, PG };
    T(ioctl(uffd, UFFDIO_UNREGISTER, &ur));
    say("page 4 after unregister reads %d", base[4 * PG]);

    /* The fd closed while a thread waits: the fault is then an ordinary one. */
    serve(1, (int[]){ FILL_CLOSE });
    pthread_create(&th, NULL, handler, NULL);
    char p5 = base[5 * PG];
    join(th);
    say("page 5 after close reads %d", p5);
    base[3 * PG] = 'x';
    say("page 3 writable after close: %c", base[3 * PG]);
    say("page 9 after close reads %d", touch(base + 9 * PG));
    T(madvise(base + 9 * PG, PG, MADV_DONTNEED));
    say("page 9 after MADV_DONTNEED reads %d", touch(base + 9 * PG));
    return 0;
}
