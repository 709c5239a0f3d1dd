// Asynchronous I/O interfaces as programs use them: io_uring's rings in one
// mapping (IORING_FEAT_SINGLE_MMAP: the completion ring read through the
// submission ring's mapping, as liburing does), Linux's ring layout
// (io_sqring_offsets / io_cqring_offsets), NOP and READV completions with
// their user_data, an invalid opcode, ring wrap-around; a native AIO ring
// moved by mremap (io_submit then takes the new address, the old one is
// EINVAL; growing it is EFAULT); and a socket's I/O-signal owner
// (FIOSETOWN / SIOCSPGRP / FIOGETOWN / SIOCGPGRP, FIOASYNC: one SIGIO per
// arrival, none when the pair is closed).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/io_uring.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static const char *ename(int e) {
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

#define T(expr) ({ long t_r_ = (long)(expr); if (t_r_ == -1) printf("%s = -1 %s\n", #expr, ename(errno)); else printf("%s = %ld\n", #expr, t_r_); errno = 0; t_r_; })

struct ring {
    int fd;
    struct io_uring_params p;
    char *sq;                 // the rings, mapped once at IORING_OFF_SQ_RING
    struct io_uring_sqe *sqes;
};

static int ring_open(struct ring *r, unsigned entries) {
    memset(r, 0, sizeof *r);
    r->fd = syscall(SYS_io_uring_setup, entries, &r->p);
    if (r->fd < 0) { printf("io_uring_setup = -1 %s\n", ename(errno)); return -1; }
    size_t sqsz = r->p.sq_off.array + r->p.sq_entries * 4, cqsz = r->p.cq_off.cqes + r->p.cq_entries * sizeof(struct io_uring_cqe);
    size_t sz = sqsz > cqsz ? sqsz : cqsz;
    r->sq = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
    r->sqes = mmap(NULL, r->p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
    if (r->sq == MAP_FAILED || r->sqes == MAP_FAILED) { printf("ring mmap failed\n"); return -1; }
    return 0;
}

#define U32(r, off) (*(volatile uint32_t *)((r)->sq + (off)))

/* Queues one entry at the SQ tail (through the index array). */
static void queue(struct ring *r, uint8_t op, int fd, uint64_t addr, uint32_t len, uint64_t data) {
    uint32_t tail = U32(r, r->p.sq_off.tail), mask = U32(r, r->p.sq_off.ring_mask);
    uint32_t slot = tail & mask;
    struct io_uring_sqe *e = &r->sqes[slot];
    memset(e, 0, sizeof *e);
    e->opcode = op; e->fd = fd; e->addr = addr; e->len = len; e->user_data = data;
    ((uint32_t *)(r->sq + r->p.sq_off.array))[slot] = slot;
    __atomic_store_n((uint32_t *)(r->sq + r->p.sq_off.tail), tail + 1, __ATOMIC_RELEASE);
}

/* Reaps every completion, printing user_data and res. */
static void reap(struct ring *r) {
    uint32_t head = U32(r, r->p.cq_off.head), tail = U32(r, r->p.cq_off.tail), mask = U32(r, r->p.cq_off.ring_mask);
    struct io_uring_cqe *cqes = (struct io_uring_cqe *)(r->sq + r->p.cq_off.cqes);
    for (; head != tail; head++) printf("  cqe user_data %llu res %d\n", (unsigned long long)cqes[head & mask].user_data, cqes[head & mask].res);
    __atomic_store_n((uint32_t *)(r->sq + r->p.cq_off.head), head, __ATOMIC_RELEASE);
}

static void uring(void) {
    struct ring r;
    if (ring_open(&r, 4) != 0) return;
    printf("entries sq %u cq %u single mmap %d\n", r.p.sq_entries, r.p.cq_entries, !!(r.p.features & IORING_FEAT_SINGLE_MMAP));
    // The offsets vary with the kernel's version (cache-line padding):
    // only what every version keeps.
    printf("sq array cache-line aligned %d, past the cqes %d\n", r.p.sq_off.array % 64 == 0,
           r.p.sq_off.array >= r.p.cq_off.cqes + r.p.cq_entries * sizeof(struct io_uring_cqe));
    printf("ring fields read through one mapping: sq entries %u mask %u, cq entries %u mask %u\n",
           U32(&r, r.p.sq_off.ring_entries), U32(&r, r.p.sq_off.ring_mask), U32(&r, r.p.cq_off.ring_entries), U32(&r, r.p.cq_off.ring_mask));
    queue(&r, IORING_OP_NOP, -1, 0, 0, 42);
    T(syscall(SYS_io_uring_enter, r.fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0));
    reap(&r);
    // More than a ring's worth over several rounds: indexes wrap.
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 3; i++) queue(&r, IORING_OP_NOP, -1, 0, 0, 100 + 10 * round + i);
        T(syscall(SYS_io_uring_enter, r.fd, 3, 3, IORING_ENTER_GETEVENTS, NULL, 0));
        reap(&r);
    }
    queue(&r, 0xfe, -1, 0, 0, 7);
    T(syscall(SYS_io_uring_enter, r.fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0));
    reap(&r);
    int fd = open("/work/uring-data", O_RDWR | O_CREAT | O_TRUNC, 0644);
    T(write(fd, "0123456789abcdef", 16));
    char a[8] = {0}, b[8] = {0};
    struct iovec iov[2] = { { a, 6 }, { b, 6 } };
    queue(&r, IORING_OP_READV, fd, (uint64_t)(uintptr_t)iov, 2, 555);
    queue(&r, IORING_OP_READV, 999, (uint64_t)(uintptr_t)iov, 2, 556);
    T(syscall(SYS_io_uring_enter, r.fd, 2, 2, IORING_ENTER_GETEVENTS, NULL, 0));
    reap(&r);
    printf("read \"%s\" \"%s\"\n", a, b);
    close(fd);
    unlink("/work/uring-data");
    close(r.fd);
}

static void aio_mremap(void) {
    aio_context_t ctx = 0;
    T(syscall(SYS_io_setup, 16, &ctx));
    int fd = open("/work/aio-data", O_RDWR | O_CREAT | O_TRUNC, 0644);
    char buf[] = "aio!";
    struct iocb cb = { .aio_data = 0x123, .aio_lio_opcode = IOCB_CMD_PWRITE, .aio_fildes = fd,
                       .aio_buf = (uint64_t)(uintptr_t)buf, .aio_nbytes = 4 };
    struct iocb *cbs[1] = { &cb };
    // The ring's size depends on the CPU count: /proc/self/maps has it.
    size_t len = 0;
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    while (maps && fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo == ctx) len = hi - lo;
    }
    if (maps) fclose(maps);
    printf("ring found in maps: %d\n", len > 0);
    char *dst = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *moved = mremap((void *)ctx, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
    printf("mremap moved the ring: %d\n", moved == dst);
    T(syscall(SYS_io_submit, ctx, 1, cbs));
    aio_context_t old = ctx;
    ctx = (aio_context_t)(uintptr_t)dst;
    (void)old;
    T(syscall(SYS_io_submit, ctx, 1, cbs));
    struct io_event ev[1];
    T(syscall(SYS_io_getevents, ctx, 1, 1, ev, NULL));
    printf("event data %#llx res %lld\n", (unsigned long long)ev[0].data, (long long)ev[0].res);
    char *big = mmap(NULL, 2 * len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *grown = mremap((void *)ctx, len, 2 * len, MREMAP_MAYMOVE | MREMAP_FIXED, big);
    printf("mremap growing the ring: %s\n", grown == MAP_FAILED ? ename(errno) : "moved");
    T(syscall(SYS_io_destroy, ctx));
    close(fd);
    unlink("/work/aio-data");
}

static volatile int sigio;
static void on_io(int s) { (void)s; sigio++; }

static void sock_owner(void) {
    int sv[2];
    T(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv));
    int owner = -1;
    T(ioctl(sv[1], FIOGETOWN, &owner));
    printf("owner %d\n", owner);
    T(ioctl(sv[1], SIOCGPGRP, &owner));
    printf("owner %d\n", owner);
    int me = getpid();
    T(ioctl(sv[1], FIOSETOWN, &me));
    T(ioctl(sv[1], FIOGETOWN, &owner));
    printf("owner is me: %d\n", owner == me);
    T(fcntl(sv[1], F_GETOWN) == me);
    int pg = -getpgrp();
    T(ioctl(sv[1], SIOCSPGRP, &pg));
    T(ioctl(sv[1], SIOCGPGRP, &owner));
    printf("owner is my group: %d\n", owner == pg);
    T(ioctl(sv[1], FIOSETOWN, (void *)8));
    int bad = 0x7ffffff0;
    T(ioctl(sv[1], FIOSETOWN, &bad));
    int fd = open("/work", O_RDONLY);
    T(ioctl(fd, FIOSETOWN, &me));
    close(fd);
    T(ioctl(sv[1], FIOSETOWN, &me));
    signal(SIGIO, on_io);
    int on = 1;
    T(ioctl(sv[1], FIOASYNC, &on));
    T(write(sv[0], "abc", 3));
    printf("SIGIO after one write: %d\n", sigio);
    T(write(sv[0], "def", 3));
    printf("SIGIO after two writes: %d\n", sigio);
    // The peer's close wakes the owner too (unix_release_sock: POLL_HUP).
    close(sv[0]);
    printf("SIGIO after the peer's close: %d\n", sigio);
    close(sv[1]);
    printf("SIGIO after close: %d\n", sigio);
    signal(SIGIO, SIG_DFL);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("-- io_uring\n");
    uring();
    printf("-- aio ring moved\n");
    aio_mremap();
    printf("-- socket owner\n");
    sock_owner();
    return 0;
}
