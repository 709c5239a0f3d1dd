/* Runs of big writes (256 KiB and more) where Moat's stub keeps the file's
 * host fd between calls (Kernel/StubFD.swift): it must always write the file
 * the application named, whatever happened to the last one. Writes that
 * alternate between two files; a file closed and deleted, then a new one
 * written (the Sentry may give the new file the old one's host fd number);
 * dup2 over the written fd; a fork whose child writes the same file and
 * another one while the parent goes on; two threads writing two files; a
 * file shrunk under the run; exec after a big write. On /tmp (Moat's
 * tmpfs, a memfd past 1 MiB) and /work (the Gofer's files). Each file's
 * size and a checksum of its bytes are printed. */
#include "t.h"
#include <pthread.h>

#define KiB 1024
#define BIG (512 * KiB)

static unsigned long sum_fd(int fd) {
    static unsigned char b[BIG];
    unsigned long h = 1469598103934665603UL;
    long n, off = 0;
    while ((n = pread(fd, b, BIG, off)) > 0) {
        for (long i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211UL;
        off += n;
    }
    return h ^ (unsigned long)off;
}

static void show(const char *label, const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) { say("%s: open = -1 %s", label, ename(errno)); return; }
    struct stat st;
    fstat(fd, &st);
    say("%s: size %lld sum %lx", label, (long long)st.st_size, sum_fd(fd));
    close(fd);
}

static unsigned char *filled(int c) {
    unsigned char *b = mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED) return NULL;
    for (long i = 0; i < BIG; i++) b[i] = (unsigned char)(c + i % 251);
    return b;
}

struct job { const char *path; int c; };

static void *writer(void *arg) {
    struct job *j = arg;
    unsigned char *b = filled(j->c);
    int fd = open(j->path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || !b) return (void *)1L;
    long bad = 0;
    for (int i = 0; i < 6; i++) if (write(fd, b, BIG) != BIG) bad++;
    close(fd);
    return (void *)bad;
}

static void dir(const char *d, const char *self) {
    char a[64], b[64], c[64], e[64];
    snprintf(a, sizeof a, "%s/ka", d);
    snprintf(b, sizeof b, "%s/kb", d);
    snprintf(c, sizeof c, "%s/kc", d);
    snprintf(e, sizeof e, "%s/ke", d);
    say("== %s", d);
    unsigned char *x = filled('x'), *y = filled('y'), *z = filled('z');
    if (!x || !y || !z) { say("mmap failed"); return; }

    /* Alternating between two files, by write and by pwrite. */
    int fa = T(open(a, O_RDWR | O_CREAT | O_TRUNC, 0644));
    int fb = T(open(b, O_RDWR | O_CREAT | O_TRUNC, 0644));
    for (int i = 0; i < 4; i++) {
        T(write(fa, x, BIG));
        T(write(fb, y, BIG));
    }
    T(pwrite(fa, y, BIG, 3 * BIG));
    T(pwrite(fb, x, BIG, 5 * BIG));
    show("a", a);
    show("b", b);

    /* Closed and deleted, then a new file: its bytes go to it alone. */
    T(close(fa));
    T(unlink(a));
    int fc = T(open(c, O_RDWR | O_CREAT | O_TRUNC, 0644));
    for (int i = 0; i < 4; i++) T(write(fc, z, BIG));
    show("c", c);
    show("a gone", a);

    /* dup2 over the written fd: the fd now names b; writes go there. */
    T(dup2(fb, fc));
    T(pwrite(fc, z, BIG, 0));
    show("b after dup2", b);
    show("c after dup2", c);

    /* Shrunk under the run, then written past the new end. */
    T(ftruncate(fb, 4096));
    T(pwrite(fb, x, BIG, 8192));
    show("b shrunk", b);

    /* A fork: the child writes b and e, the parent b again after it. */
    pid_t p = fork();
    if (p == 0) {
        int fe = open(e, O_RDWR | O_CREAT | O_TRUNC, 0644);
        int ok = pwrite(fb, y, BIG, 0) == BIG && write(fe, z, BIG) == BIG && pwrite(fb, z, BIG, BIG) == BIG;
        close(fe);
        _exit(ok ? 0 : 1);
    }
    int st = 0;
    waitpid(p, &st, 0);
    say("child exit %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    T(pwrite(fb, x, BIG, 2 * BIG));
    show("b after fork", b);
    show("e", e);

    /* Two threads, two files. */
    struct job ja = { a, 'p' }, je = { e, 'q' };
    pthread_t t1, t2;
    void *r1 = (void *)-1L, *r2 = (void *)-1L;
    if (pthread_create(&t1, NULL, writer, &ja) == 0 && pthread_create(&t2, NULL, writer, &je) == 0) {
        pthread_join(t1, &r1);
        pthread_join(t2, &r2);
    }
    say("threads %ld %ld", (long)r1, (long)r2);
    show("a threads", a);
    show("e threads", e);

    /* exec right after a big write: the new program writes the file too. */
    T(pwrite(fb, y, BIG, 0));
    p = fork();
    if (p == 0) {
        char fdarg[16];
        snprintf(fdarg, sizeof fdarg, "%d", fb);
        execl(self, self, "child", fdarg, (char *)NULL);
        _exit(127);
    }
    waitpid(p, &st, 0);
    say("exec child exit %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    show("b after exec", b);

    close(fb);
    close(fc);
    unlink(b); unlink(c); unlink(e); unlink(a);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "child") == 0) {
        /* The exec'd child: one big write to the fd it was handed. */
        unsigned char *b = filled('k');
        return b && pwrite(atoi(argv[2]), b, BIG, BIG) == BIG ? 0 : 1;
    }
    dir("/tmp", argv[0]);
    dir("/work", argv[0]);
    say("alive");
    return 0;
}
