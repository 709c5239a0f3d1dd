/* Linux native AIO (session 15, issue 15: LTP's io_* tests): io_setup's
 * checks and the ring it maps (struct aio_ring, which libaio reads in user
 * space), io_submit of PREAD/PWRITE/PREADV/PWRITEV/FSYNC on a file with
 * completions signalled on an eventfd (IOCB_FLAG_RESFD), io_getevents and
 * io_pgetevents, reaping from the ring by hand as libaio does, the ring
 * wrapping round, each argument error, RWF_NOWAIT on an empty pipe, a
 * signal ending a wait, io_cancel, a forked child (no contexts), and
 * io_destroy unmapping the ring. */
#include "t.h"
#include <linux/aio_abi.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <pthread.h>

struct ring { unsigned id, nr, head, tail, magic, compat, incompat, hdrlen; struct io_event ev[]; };

static long setup_(unsigned n, aio_context_t *c) { return syscall(SYS_io_setup, n, c); }
static long destroy_(aio_context_t c) { return syscall(SYS_io_destroy, c); }
static long submit_(aio_context_t c, long n, struct iocb **v) { return syscall(SYS_io_submit, c, n, v); }
static long getev_(aio_context_t c, long mn, long n, struct io_event *e, struct timespec *to) {
    return syscall(SYS_io_getevents, c, mn, n, e, to);
}

static void prep(struct iocb *cb, int op, int fd, void *buf, size_t n, long long off, unsigned long long data) {
    memset(cb, 0, sizeof *cb);
    cb->aio_lio_opcode = op; cb->aio_fildes = fd; cb->aio_buf = (unsigned long)buf;
    cb->aio_nbytes = n; cb->aio_offset = off; cb->aio_data = data;
}

/* Submits one iocb; prints io_submit's result and, for a submitted one,
 * its event (data, whether obj is the iocb, res). */
static void one(const char *what, aio_context_t ctx, struct iocb *cb) {
    struct iocb *v[1] = { cb };
    long r = submit_(ctx, 1, v);
    if (r != 1) { say("%s: io_submit = %ld %s", what, r, r < 0 ? ename(errno) : ""); return; }
    struct io_event ev;
    long g = getev_(ctx, 1, 1, &ev, NULL);
    say("%s: io_submit = 1, io_getevents = %ld, data %llu, obj is iocb %d, res %lld%s%s", what, g,
        (unsigned long long)ev.data, ev.obj == (unsigned long)cb, (long long)ev.res,
        ev.res < 0 ? " " : "", ev.res < 0 ? ename((int)-ev.res) : "");
}

static void on_alarm(int s) { (void)s; }

/* Another thread's submission completes the main thread's wait (whichever
 * comes first: the event waits in the ring otherwise). */
static aio_context_t shared_ctx;
static int shared_fd;
static void *submitter(void *arg) {
    static char b[4];
    static struct iocb cb;
    struct iocb *v[1] = { &cb };
    prep(&cb, IOCB_CMD_PREAD, shared_fd, b, 4, 0, 61);
    (void)arg;
    usleep(20000);
    return (void *)submit_(shared_ctx, 1, v);
}

static int aio_lines(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    char l[512];
    int n = 0;
    while (f && fgets(l, sizeof l, f)) if (strstr(l, "/[aio] (deleted)")) n++;
    if (f) fclose(f);
    return n;
}

int main(void) {
    aio_context_t ctx = 0, bad = 1;
    say("-- io_setup checks");
    T(setup_(1, NULL));
    T(setup_(1, &bad));
    T(setup_(0, &ctx));
    T(setup_(-1, &ctx));
    T(setup_(0x80000000u, &ctx));
    T(setup_(65537, &ctx));
    T(setup_(4, &ctx));
    struct ring *rg = (struct ring *)ctx;
    say("ring: magic %#x compat %u incompat %u header %u head %u tail %u, nr >= 4: %d, id < 8: %d",
        rg->magic, rg->compat, rg->incompat, rg->hdrlen, rg->head, rg->tail, rg->nr >= 4, rg->id < 8);
    say("maps lines for /[aio] (deleted): %d", aio_lines());

    int fd = open("aio.dat", O_CREAT | O_RDWR | O_TRUNC, 0644);
    int efd = eventfd(0, EFD_NONBLOCK);
    static char out[] = "hello aio world";
    static char in[64];
    struct iocb cb;

    say("-- a write signalled on an eventfd");
    prep(&cb, IOCB_CMD_PWRITE, fd, out, 15, 0, 0x1234);
    cb.aio_flags = IOCB_FLAG_RESFD; cb.aio_resfd = efd; cb.aio_key = 7;
    struct iocb *v[4] = { &cb };
    T(submit_(ctx, 1, v));
    say("aio_key after submit: %u", cb.aio_key);
    uint64_t cnt = 0;
    T(read(efd, &cnt, 8));
    say("eventfd count %llu", (unsigned long long)cnt);
    say("ring tail - head: %u", (rg->tail - rg->head + rg->nr) % rg->nr);
    struct io_event ev[8];
    T(getev_(ctx, 1, 8, ev, NULL));
    say("event: data %#llx obj is iocb %d res %lld res2 %lld", (unsigned long long)ev[0].data,
        ev[0].obj == (unsigned long)&cb, (long long)ev[0].res, (long long)ev[0].res2);
    say("ring head == tail: %d", rg->head == rg->tail);

    say("-- reads, vectors, sync");
    prep(&cb, IOCB_CMD_PREAD, fd, in, 3, 6, 1); one("pread 3 at 6", ctx, &cb);
    say("read: %.3s", in);
    prep(&cb, IOCB_CMD_PREAD, fd, in, 64, 100, 2); one("pread past the end", ctx, &cb);
    struct iovec iov[2] = { { in, 5 }, { in + 5, 10 } };
    memset(in, 0, sizeof in);
    prep(&cb, IOCB_CMD_PREADV, fd, iov, 2, 0, 3); one("preadv 2", ctx, &cb);
    say("readv: %.15s", in);
    static char a1[] = "AB", a2[] = "CDE";
    struct iovec wv[2] = { { a1, 2 }, { a2, 3 } };
    prep(&cb, IOCB_CMD_PWRITEV, fd, wv, 2, 20, 4); one("pwritev 2 at 20", ctx, &cb);
    T(pread(fd, in, 64, 15));
    struct stat sb;
    fstat(fd, &sb);
    say("file from 20: %.5s, size %ld, offset still %ld", in + 5, (long)sb.st_size, (long)lseek(fd, 0, SEEK_CUR));
    prep(&cb, IOCB_CMD_FSYNC, fd, NULL, 0, 0, 5); one("fsync", ctx, &cb);
    prep(&cb, IOCB_CMD_FDSYNC, fd, NULL, 0, 0, 6); one("fdsync", ctx, &cb);
    prep(&cb, IOCB_CMD_FDSYNC, fd, NULL, 1, 0, 7); one("fdsync with nbytes", ctx, &cb);

    say("-- several at once, in order");
    struct iocb c3[3];
    for (int i = 0; i < 3; i++) { prep(&c3[i], IOCB_CMD_PREAD, fd, in + 10 * i, 2, i, 10 + i); v[i] = &c3[i]; }
    T(submit_(ctx, 3, v));
    T(getev_(ctx, 3, 3, ev, NULL));
    say("data %llu %llu %llu res %lld %lld %lld", (unsigned long long)ev[0].data, (unsigned long long)ev[1].data,
        (unsigned long long)ev[2].data, (long long)ev[0].res, (long long)ev[1].res, (long long)ev[2].res);
    T(submit_(ctx, 0, v));

    say("-- reaping from the ring by hand (as libaio)");
    prep(&c3[0], IOCB_CMD_PREAD, fd, in, 1, 0, 21);
    prep(&c3[1], IOCB_CMD_PREAD, fd, in, 1, 0, 22);
    v[0] = &c3[0]; v[1] = &c3[1];
    T(submit_(ctx, 2, v));
    unsigned h = rg->head, seen = 0;
    while (h != rg->tail) { seen = seen * 100 + (unsigned)rg->ev[h].data; h = (h + 1) % rg->nr; }
    rg->head = h;
    say("reaped by hand: %u", seen);
    struct timespec zero = { 0, 0 }, short_ = { 0, 1000000 };
    T(getev_(ctx, 1, 8, ev, &zero));
    T(getev_(ctx, 1, 8, ev, &short_));

    say("-- the ring wraps round");
    int ok = 1;
    for (int i = 0; i < 3 * (int)rg->nr; i++) {
        prep(&cb, IOCB_CMD_PREAD, fd, in, 1 + i % 5, 0, 1000 + i);
        v[0] = &cb;
        if (submit_(ctx, 1, v) != 1 || getev_(ctx, 1, 1, ev, NULL) != 1 || ev[0].data != 1000u + i || ev[0].res != 1 + i % 5) ok = 0;
    }
    say("wrapped ok: %d, head == tail: %d", ok, rg->head == rg->tail);

    say("-- io_submit errors");
    struct iocb *nullv[1] = { NULL };
    prep(&cb, IOCB_CMD_PREAD, fd, in, 4, 0, 0); v[0] = &cb;
    T(submit_(0, 1, v));
    T(submit_(ctx + 4096, 1, v));
    T(submit_(ctx, -1, v));
    T(submit_(ctx, 1, (struct iocb **)8));
    T(submit_(ctx, 1, nullv));
    prep(&cb, IOCB_CMD_PREAD, -1, in, 4, 0, 0); T(submit_(ctx, 1, v));
    int ro = open("aio.dat", O_RDONLY);
    prep(&cb, IOCB_CMD_PWRITE, ro, out, 4, 0, 0); T(submit_(ctx, 1, v));
    prep(&cb, IOCB_CMD_PREAD, fd, in, 4, 0, 0); cb.aio_reserved2 = 1; T(submit_(ctx, 1, v));
    prep(&cb, 99, fd, in, 4, 0, 0); T(submit_(ctx, 1, v));
    prep(&cb, IOCB_CMD_PREAD, fd, in, 4, 0, 0); cb.aio_rw_flags = 0x10000000; T(submit_(ctx, 1, v));
    prep(&cb, IOCB_CMD_PREAD, fd, in, 4, 0, 0); cb.aio_rw_flags = RWF_APPEND | 0x20; T(submit_(ctx, 1, v));
    prep(&cb, IOCB_CMD_PREAD, fd, in, 4, -1, 0); T(submit_(ctx, 1, v));
    prep(&cb, IOCB_CMD_PREAD, fd, in, (size_t)-1, 0, 0); T(submit_(ctx, 1, v));
    prep(&cb, IOCB_CMD_PREADV, fd, iov, 1025, 0, 0); T(submit_(ctx, 1, v));
    prep(&cb, IOCB_CMD_PREADV, fd, (void *)8, 2, 0, 0); T(submit_(ctx, 1, v));
    prep(&cb, IOCB_CMD_PREAD, fd, in, 4, 0, 0); cb.aio_flags = IOCB_FLAG_RESFD; cb.aio_resfd = fd; T(submit_(ctx, 1, v));
    prep(&cb, IOCB_CMD_PREAD, fd, in, 4, 0, 0); cb.aio_flags = IOCB_FLAG_RESFD; cb.aio_resfd = 999; T(submit_(ctx, 1, v));
    /* The first iocb goes in, the second fails: the count of those that went in. */
    prep(&c3[0], IOCB_CMD_PREAD, fd, in, 2, 0, 31); prep(&c3[1], IOCB_CMD_PREAD, -1, in, 2, 0, 32);
    v[0] = &c3[0]; v[1] = &c3[1];
    T(submit_(ctx, 2, v));
    T(getev_(ctx, 1, 8, ev, &zero));

    say("-- io_getevents and io_pgetevents");
    T(getev_(0, 0, 0, NULL, NULL));
    T(getev_(ctx, 2, 1, ev, &zero));
    T(getev_(ctx, -1, 1, ev, &zero));
    T(getev_(ctx, 1, 1, ev, (struct timespec *)8));
    prep(&cb, IOCB_CMD_PREAD, fd, in, 4, 0, 41); v[0] = &cb;
    T(submit_(ctx, 1, v));
    T(getev_(ctx, 1, 1, NULL, &zero));
    sigset_t none; sigemptyset(&none);
    struct { sigset_t *p; size_t n; } usig = { &none, 8 }, badsize = { &none, 4 };
    T(syscall(SYS_io_pgetevents, ctx, 1, 1, ev, &zero, &badsize));
    T(syscall(SYS_io_pgetevents, ctx, 1, 1, ev, &zero, &usig));
    say("pgetevents data %llu", (unsigned long long)ev[0].data);

    say("-- a signal ends a wait");
    struct sigaction sa = { 0 };
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = { { 0, 0 }, { 0, 50000 } };
    setitimer(ITIMER_REAL, &it, NULL);
    T(getev_(ctx, 1, 1, ev, NULL));

    say("-- a wait completed by another thread's submission");
    shared_ctx = ctx; shared_fd = fd;
    pthread_t th;
    void *thr;
    pthread_create(&th, NULL, submitter, NULL);
    T(getev_(ctx, 1, 1, ev, NULL));
    pthread_join(th, &thr);
    say("submitted %ld, event data %llu res %lld", (long)thr, (unsigned long long)ev[0].data, (long long)ev[0].res);

    say("-- RWF_NOWAIT on an empty pipe");
    int p[2];
    pipe(p);
    prep(&cb, IOCB_CMD_PREAD, p[0], in, 8, 0, 51); cb.aio_rw_flags = RWF_NOWAIT; one("nowait read of an empty pipe", ctx, &cb);
    write(p[1], "xyz", 3);
    prep(&cb, IOCB_CMD_PREAD, p[0], in, 8, 0, 52); one("read of a pipe with data", ctx, &cb);
    prep(&cb, IOCB_CMD_PWRITE, p[1], out, 5, 12345, 53); one("write to a pipe (offset ignored)", ctx, &cb);

    say("-- io_cancel");
    T(syscall(SYS_io_cancel, ctx, NULL, ev));
    T(syscall(SYS_io_cancel, ctx, &cb, ev));
    cb.aio_key = 5;
    T(syscall(SYS_io_cancel, ctx, &cb, ev));

    say("-- a forked child has no contexts");
    pid_t pid = fork();
    if (pid == 0) {
        prep(&cb, IOCB_CMD_PREAD, fd, in, 4, 0, 0); v[0] = &cb;
        T(submit_(ctx, 1, v));
        T(destroy_(ctx));
        aio_context_t c2 = 0;
        T(setup_(1, &c2));
        T(destroy_(c2));
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    say("child exit %d", WEXITSTATUS(st));

    say("-- io_destroy");
    aio_context_t ctx2 = 0;
    T(setup_(1, &ctx2));
    say("two contexts: %d, maps lines %d", ctx2 != ctx, aio_lines());
    T(destroy_(ctx));
    T(destroy_(ctx));
    T(destroy_(0));
    say("maps lines %d", aio_lines());
    T(destroy_(ctx2));
    say("maps lines %d", aio_lines());
    return 0;
}
