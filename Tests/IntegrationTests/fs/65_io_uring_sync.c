/* io_uring with the operations LTP io_uring01/io_uring03 use: setup's size
 * rules and argument errors, the three ring mappings, NOP, WRITE, READ (at
 * an offset and at the file position, -1), READV, WRITEV, FSYNC and
 * READ_FIXED/WRITE_FIXED through registered buffers, with the completion
 * results and the errors of a bad opcode, an unregistered fixed file, a
 * fixed buffer outside its registration or index, and register/enter on a
 * file that is not a ring. Every operation here completes without waiting
 * (regular files), so the completions are compared as a set (sorted by
 * user_data), not by arrival order. */
#include "t.h"
#include <linux/io_uring.h>

static int ring;
static struct io_uring_params p;
static unsigned *sq_head, *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
static struct io_uring_sqe *sqes;
static struct io_uring_cqe *cqes;

static long setup(unsigned entries, struct io_uring_params *pp) { return syscall(__NR_io_uring_setup, entries, pp); }
static long enter(int fd, unsigned n, unsigned min, unsigned flags) { return syscall(__NR_io_uring_enter, fd, n, min, flags, NULL, 0); }
static long reg(int fd, unsigned op, void *arg, unsigned n) { return syscall(__NR_io_uring_register, fd, op, arg, n); }

static void queue(unsigned char op, int fd, void *addr, unsigned len, long long off, unsigned long long ud, unsigned char flags, unsigned short bi) {
    unsigned t = *sq_tail, i = t & *sq_mask;
    struct io_uring_sqe *s = &sqes[i];
    memset(s, 0, sizeof *s);
    s->opcode = op; s->fd = fd; s->addr = (unsigned long)addr; s->len = len; s->off = off;
    s->user_data = ud; s->flags = flags; s->buf_index = bi;
    sq_array[i] = i;
    __atomic_store_n(sq_tail, t + 1, __ATOMIC_RELEASE);
}

static int cmpcqe(const void *a, const void *b) {
    const struct io_uring_cqe *x = a, *y = b;
    return x->user_data < y->user_data ? -1 : x->user_data > y->user_data;
}

/* Submits what is queued, waits for all of it, prints the completions. */
static void run(const char *what, unsigned n) {
    long r = enter(ring, n, n, IORING_ENTER_GETEVENTS);
    say("%s: enter = %ld", what, r);
    struct io_uring_cqe got[16];
    unsigned k = 0, h = *cq_head;
    while (h != __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE) && k < 16) got[k++] = cqes[h++ & *cq_mask];
    __atomic_store_n(cq_head, h, __ATOMIC_RELEASE);
    qsort(got, k, sizeof *got, cmpcqe);
    for (unsigned i = 0; i < k; i++)
        say("  cqe user_data %llu res %d%s%s", (unsigned long long)got[i].user_data, got[i].res,
            got[i].res < 0 ? " " : "", got[i].res < 0 ? ename(-got[i].res) : "");
}

int main(void) {
    struct io_uring_params q;
    memset(&q, 0, sizeof q);
    T(setup(0, &q));
    T(setup(4, NULL));
    q.resv[1] = 1;
    T(setup(4, &q));
    memset(&q, 0, sizeof q);
    q.flags = IORING_SETUP_CQSIZE;
    T(setup(4, &q));                                   /* cq_entries 0 */
    q.cq_entries = 2;
    T(setup(4, &q));                                   /* fewer than sq */
    q.cq_entries = 13;
    int r2 = T(setup(3, &q));
    say("CQSIZE 13 for 3: sq %u cq %u", q.sq_entries, q.cq_entries);
    close(r2);

    ring = T(setup(3, &p));
    say("3 entries: sq %u cq %u", p.sq_entries, p.cq_entries);
    say("fd flags: cloexec %d", (fcntl(ring, F_GETFD) & FD_CLOEXEC) != 0);
    char *sq = mmap(NULL, p.sq_off.array + p.sq_entries * 4, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
    char *cq = mmap(NULL, p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
    sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) { say("mmap failed: %s", ename(errno)); return 1; }
    sq_head = (unsigned *)(sq + p.sq_off.head); sq_tail = (unsigned *)(sq + p.sq_off.tail);
    sq_mask = (unsigned *)(sq + p.sq_off.ring_mask); sq_array = (unsigned *)(sq + p.sq_off.array);
    cq_head = (unsigned *)(cq + p.cq_off.head); cq_tail = (unsigned *)(cq + p.cq_off.tail);
    cq_mask = (unsigned *)(cq + p.cq_off.ring_mask); cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    say("ring_entries sq %u cq %u, masks %u %u", *(unsigned *)(sq + p.sq_off.ring_entries),
        *(unsigned *)(cq + p.cq_off.ring_entries), *sq_mask, *cq_mask);

    int fd = T(open("f", O_RDWR | O_CREAT | O_TRUNC, 0644));
    static char wbuf[] = "hello, io_uring world";
    char rbuf[64] = {0}, a[8] = {0}, b[8] = {0};
    queue(IORING_OP_NOP, -1, NULL, 0, 0, 1, 0, 0);
    queue(IORING_OP_WRITE, fd, wbuf, 21, 0, 2, 0, 0);
    run("nop+write", 2);
    queue(IORING_OP_READ, fd, rbuf, 5, 7, 3, 0, 0);
    run("read at 7", 1);
    say("  read \"%s\"", rbuf);
    T(lseek(fd, 0, SEEK_CUR));
    memset(rbuf, 0, sizeof rbuf);
    queue(IORING_OP_READ, fd, rbuf, 5, -1, 4, 0, 0);
    run("read at position", 1);
    say("  read \"%s\", position now %ld", rbuf, (long)lseek(fd, 0, SEEK_CUR));
    struct iovec iv[2] = {{a, 4}, {b, 4}};
    queue(IORING_OP_READV, fd, iv, 2, 1, 5, 0, 0);
    queue(IORING_OP_FSYNC, fd, NULL, 0, 0, 6, 0, 0);
    run("readv+fsync", 2);
    say("  readv \"%s\" \"%s\"", a, b);
    struct iovec wv[2] = {{"AB", 2}, {"CD", 2}};
    queue(IORING_OP_WRITEV, fd, wv, 2, 30, 7, 0, 0);
    run("writev at 30", 1);
    struct stat st;
    fstat(fd, &st);
    say("  size %lld", (long long)st.st_size);

    /* An unknown opcode ends the submission: the NOP after it stays queued. */
    queue(250, fd, NULL, 0, 0, 8, 0, 0);
    queue(IORING_OP_NOP, -1, NULL, 0, 0, 15, 0, 0);
    run("bad opcode, then nop", 2);
    run("the nop left queued", 1);
    queue(IORING_OP_READ, 0, rbuf, 4, 0, 9, IOSQE_FIXED_FILE, 0);
    run("fixed file", 1);
    queue(IORING_OP_READ_FIXED, fd, rbuf, 4, 0, 10, 0, 0);
    run("unregistered buffer", 1);

    char *fixed = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct iovec fv = {fixed, 4096};
    T(reg(ring, IORING_UNREGISTER_BUFFERS, NULL, 0));
    T(reg(ring, IORING_REGISTER_BUFFERS, &fv, 0));
    T(reg(ring, IORING_REGISTER_BUFFERS, &fv, 1));
    T(reg(ring, IORING_REGISTER_BUFFERS, &fv, 1));
    queue(IORING_OP_READ_FIXED, fd, fixed + 100, 21, 0, 11, 0, 0);
    run("read_fixed", 1);
    queue(IORING_OP_READ_FIXED, fd, fixed + 4090, 21, 0, 12, 0, 0);
    run("read_fixed past the buffer", 1);
    queue(IORING_OP_READ_FIXED, fd, fixed, 4, 0, 13, 0, 1);
    run("read_fixed of buffer index 1", 1);
    say("  fixed read \"%.21s\"", fixed + 100);
    memcpy(fixed, "FIXED", 5);
    queue(IORING_OP_WRITE_FIXED, fd, fixed, 5, 40, 14, 0, 0);
    run("write_fixed at 40", 1);
    memset(rbuf, 0, sizeof rbuf);
    T(pread(fd, rbuf, 64, 0));
    for (int i = 0; i < 45; i++) if (!rbuf[i]) rbuf[i] = '.';
    say("  file \"%s\"", rbuf);
    T(reg(ring, IORING_UNREGISTER_BUFFERS, NULL, 0));
    T(reg(ring, IORING_UNREGISTER_BUFFERS, NULL, 0));
    T(enter(ring, 0, 0, 0));

    int pp[2];
    T(pipe(pp));
    T(enter(pp[0], 1, 0, 0));
    T(reg(pp[0], IORING_REGISTER_BUFFERS, &fv, 1));
    T(enter(999, 1, 0, 0));
    T(close(ring));
    T(close(fd));
    T(unlink("f"));
    return 0;
}
