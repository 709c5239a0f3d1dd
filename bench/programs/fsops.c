/*
 * fsops: file-system micro-benchmarks.
 *
 *   fsops open   FILE N     open+close of FILE, N times         -> ns_per_op
 *   fsops stat   FILE N     stat of FILE, N times               -> ns_per_op
 *   fsops read4k FILE N     4 KiB pread at offset 0, N times    -> ns_per_op
 *   fsops seqread FILE      read FILE start to end, 1 MiB reads  -> mib_per_s
 *   fsops seqwrite FILE M   write M MiB to FILE (1 MiB writes,
 *                           fsync not included), then unlink    -> mib_per_s
 *   fsops files  DIR N      create N 100-byte files in DIR, then
 *                           unlink them all                     -> ms_total
 *   fsops pipe   - M        a child writes M MiB into a pipe in 1 MiB
 *                           writes, the parent reads them with 1 MiB
 *                           reads (each returns what the pipe holds)
 *                           until EOF, and waits for the child   -> mib_per_s
 *
 * Timed with clock_gettime(CLOCK_MONOTONIC) around the loop only.
 * Build static: gcc -O2 -static -o fsops fsops.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static void die(const char *what) { perror(what); exit(1); }

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: see the comment in fsops.c\n"); return 2; }
    const char *op = argv[1], *path = argv[2];
    long n = argc > 3 ? atol(argv[3]) : 0;
    static char buf[1 << 20];
    double t0, t1;
    if (!strcmp(op, "open")) {
        t0 = now();
        for (long i = 0; i < n; i++) { int fd = open(path, O_RDONLY); if (fd < 0) die("open"); close(fd); }
        t1 = now();
        printf("ns_per_op=%.1f\n", (t1 - t0) / n);
    } else if (!strcmp(op, "stat")) {
        struct stat st;
        t0 = now();
        for (long i = 0; i < n; i++) if (stat(path, &st) != 0) die("stat");
        t1 = now();
        printf("ns_per_op=%.1f\n", (t1 - t0) / n);
    } else if (!strcmp(op, "read4k")) {
        int fd = open(path, O_RDONLY);
        if (fd < 0) die("open");
        t0 = now();
        for (long i = 0; i < n; i++) if (pread(fd, buf, 4096, 0) != 4096) die("pread");
        t1 = now();
        printf("ns_per_op=%.1f\n", (t1 - t0) / n);
    } else if (!strcmp(op, "seqread")) {
        int fd = open(path, O_RDONLY);
        if (fd < 0) die("open");
        long total = 0;
        ssize_t r;
        t0 = now();
        while ((r = read(fd, buf, sizeof buf)) > 0) total += r;
        t1 = now();
        if (r < 0) die("read");
        printf("mib_per_s=%.1f\n", total / 1048576.0 / ((t1 - t0) / 1e9));
    } else if (!strcmp(op, "seqwrite")) {
        memset(buf, 'x', sizeof buf);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) die("open");
        t0 = now();
        for (long i = 0; i < n; i++) if (write(fd, buf, sizeof buf) != sizeof buf) die("write");
        t1 = now();
        close(fd);
        unlink(path);
        printf("mib_per_s=%.1f\n", n / ((t1 - t0) / 1e9));
    } else if (!strcmp(op, "files")) {
        char p[4096];
        memset(buf, 'y', 100);
        t0 = now();
        for (long i = 0; i < n; i++) {
            snprintf(p, sizeof p, "%s/f%ld", path, i);
            int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
            if (fd < 0) die("create");
            if (write(fd, buf, 100) != 100) die("write");
            close(fd);
        }
        for (long i = 0; i < n; i++) {
            snprintf(p, sizeof p, "%s/f%ld", path, i);
            if (unlink(p) != 0) die("unlink");
        }
        t1 = now();
        printf("ms_total=%.2f\n", (t1 - t0) / 1e6);
    } else if (!strcmp(op, "pipe")) {
        int p[2];
        if (pipe(p) != 0) die("pipe");
        t0 = now();
        pid_t c = fork();
        if (c < 0) die("fork");
        if (c == 0) {
            close(p[0]);
            memset(buf, 'p', sizeof buf);
            for (long i = 0; i < n; i++) {
                for (size_t off = 0; off < sizeof buf;) {
                    ssize_t w = write(p[1], buf + off, sizeof buf - off);
                    if (w <= 0) die("write");
                    off += w;
                }
            }
            _exit(0);
        }
        close(p[1]);
        long total = 0;
        ssize_t r;
        while ((r = read(p[0], buf, sizeof buf)) > 0) total += r;
        if (r < 0) die("read");
        int st;
        if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0) die("child");
        t1 = now();
        if (total != n * (long)sizeof buf) { fprintf(stderr, "pipe: %ld bytes, not %ld\n", total, n * (long)sizeof buf); return 1; }
        printf("mib_per_s=%.1f\n", total / 1048576.0 / ((t1 - t0) / 1e9));
    } else {
        fprintf(stderr, "unknown op %s\n", op);
        return 2;
    }
    return 0;
}
