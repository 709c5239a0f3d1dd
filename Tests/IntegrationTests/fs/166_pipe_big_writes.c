/* Pipe writes bigger than the pipe: the bytes arrive whole and in order
 * whatever the write and read sizes, a write that meets an unmapped page
 * part-way writes the pages before it, a nonblocking one fills the pipe and
 * stops, a signal ends a blocked one with the count written so far, and a
 * reader that goes away ends one with a short count or EPIPE. Moat copies a
 * big write's next chunk from the application with its kernel lock given
 * up (perf22); these are the results that must not move. */
#include "t.h"
#include <signal.h>
#include <sys/ioctl.h>

static unsigned char pat(long i) { return (unsigned char)(i * 7 % 251); }

static void on_alarm(int s) { (void)s; }

int main(void) {
    int p[2];
    signal(SIGPIPE, SIG_IGN);

    /* 1. Integrity: 4 MiB in writes of assorted sizes, read in other sizes. */
    static unsigned char wb[1 << 20], rb[1 << 20];
    const long total = 4L << 20;
    T(pipe(p));
    pid_t c = fork();
    if (c == 0) {
        close(p[0]);
        static const long sizes[] = {1 << 20, 100000, 65537, 3, 17000, 4096, 250000};
        long off = 0;
        for (int k = 0; off < total; k++) {
            long n = sizes[k % 7];
            if (n > total - off) n = total - off;
            for (long i = 0; i < n; i++) wb[i] = pat(off + i);
            long d = 0;
            while (d < n) {
                ssize_t w = write(p[1], wb + d, n - d);
                if (w <= 0) _exit(3);
                d += w;
            }
            off += n;
        }
        _exit(0);
    }
    close(p[1]);
    {
        static const long rsizes[] = {1 << 20, 1, 70000, 4095, 300000};
        long got = 0, bad = -1;
        for (int k = 0;; k++) {
            ssize_t r = read(p[0], rb, rsizes[k % 5]);
            if (r < 0) { printf("read failed %s\n", ename(errno)); break; }
            if (r == 0) break;
            for (ssize_t i = 0; i < r; i++)
                if (rb[i] != pat(got + i) && bad < 0) bad = got + i;
            got += r;
        }
        int st;
        waitpid(c, &st, 0);
        printf("integrity: %ld bytes, first bad %ld, child status %d\n", got, bad, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        close(p[0]);
    }

    /* 2. An unmapped page part-way: the pages before it are written. */
    long pg = sysconf(_SC_PAGESIZE);
    unsigned char *m = mmap(NULL, 8 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(m, 'm', 8 * pg);
    munmap(m + 5 * pg, 3 * pg);
    T(pipe(p));
    T(write(p[1], m, 8 * pg));
    T(ioctl(p[0], FIONREAD, &(int){0}));
    { int n = -1; ioctl(p[0], FIONREAD, &n); printf("FIONREAD %d\n", n); }
    T(write(p[1], m + 5 * pg, 3 * pg));
    close(p[0]); close(p[1]);

    /* 3. Nonblocking: a big write fills the pipe and stops; the next is EAGAIN. */
    T(pipe2(p, O_NONBLOCK));
    static unsigned char big[300000];
    memset(big, 'b', sizeof big);
    T(write(p[1], big, 100000));
    { int n = -1; ioctl(p[0], FIONREAD, &n); printf("FIONREAD %d\n", n); }
    T(write(p[1], big, 100000));
    T(read(p[0], rb, 65536));
    T(write(p[1], big, 100000));
    T(fcntl(p[1], F_SETPIPE_SZ, 4096));
    close(p[0]); close(p[1]);
    T(pipe2(p, O_NONBLOCK));
    T(fcntl(p[1], F_SETPIPE_SZ, 4096));
    T(write(p[1], big, 100000));
    T(fcntl(p[1], F_SETPIPE_SZ, 1 << 20));
    T(write(p[1], big, 300000));
    { int n = -1; ioctl(p[0], FIONREAD, &n); printf("FIONREAD %d\n", n); }
    close(p[0]); close(p[1]);

    /* 4. A signal ends a blocked big write with what it wrote. */
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    T(pipe(p));
    alarm(1);
    T(write(p[1], big, 300000));
    alarm(1);
    T(write(p[1], big, 300000));
    alarm(0);
    close(p[0]); close(p[1]);

    /* 5. The reader goes away: a short count or EPIPE, then EPIPE. */
    T(pipe(p));
    c = fork();
    if (c == 0) {
        close(p[1]);
        usleep(100000);
        ssize_t r = read(p[0], rb, 10000);
        _exit(r == 10000 ? 0 : 1);
    }
    close(p[0]);
    {
        ssize_t w = write(p[1], wb, sizeof wb);
        int e = errno;
        printf("write after reader left: %s\n", w > 0 && w < (ssize_t)sizeof wb ? "short" : w < 0 && e == EPIPE ? "EPIPE" : "other");
        T(write(p[1], wb, 100000));
        int st;
        waitpid(c, &st, 0);
        printf("reader status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
    close(p[1]);

    /* 6. Two big writers and one small: every byte arrives, none twice. */
    T(pipe(p));
    for (int k = 0; k < 3; k++) {
        if (fork() == 0) {
            close(p[0]);
            long n = k == 2 ? 512 : 700000, per = k == 2 ? 512 : 200000;
            unsigned char *b = malloc(n);
            memset(b, 'A' + k, n);
            for (int j = 0; j < (k == 2 ? 400 : 3); j++) {
                long d = 0;
                while (d < n) { ssize_t w = write(p[1], b + d, per < n - d ? per : n - d); if (w <= 0) _exit(3); d += w; }
            }
            _exit(0);
        }
    }
    close(p[1]);
    {
        long cnt[3] = {0}, other = 0;
        ssize_t r;
        while ((r = read(p[0], rb, 65536 + 123)) > 0)
            for (ssize_t i = 0; i < r; i++) {
                if (rb[i] >= 'A' && rb[i] <= 'C') cnt[rb[i] - 'A']++; else other++;
            }
        int st, ok = 0;
        while (wait(&st) > 0) ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
        printf("writers: A %ld B %ld C %ld other %ld, %d exited 0\n", cnt[0], cnt[1], cnt[2], other, ok);
    }
    close(p[0]);
    return 0;
}
