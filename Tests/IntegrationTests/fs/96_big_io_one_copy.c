/* Reads and writes of at least 256 KiB: Moat has the task's own stub make
 * a big write (one host pwrite from the application's memory into the
 * file) once the buffer is checked against the application's mappings,
 * and copies through the Sentry otherwise; big reads copy from a mapping
 * of the file. (The stub also made reads while this program was written:
 * the read cases stay, as the same edges.) What the
 * application sees must not change: whole transfers, short counts at a
 * page that is not mapped or does not allow the access, EFAULT when no
 * byte moves, a buffer that is a shared file mapping past the file's end
 * (the host's SIGBUS pages: a short count or EFAULT, never a signal),
 * O_APPEND, pwrite past the end, the size and the mtime, on /tmp (Moat's
 * tmpfs, memfd past 1 MiB) and /work (the Gofer's files), and a read of
 * the image's own file /work/prog. */
#include "t.h"

#define KiB 1024
#define MiB (1 << 20)
#define BIG (512 * KiB)

static unsigned long sum(const unsigned char *p, size_t n) {
    unsigned long h = 1469598103934665603UL;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211UL;
    return h;
}

static long size_of(int fd) { struct stat st; return fstat(fd, &st) == 0 ? (long)st.st_size : -1; }

/* A BIG buffer, page aligned, filled with `c`, whose page at `hole` (an
 * offset, -1 for none) gets protection `prot`. */
static unsigned char *buffer(int c, long hole, int prot) {
    unsigned char *b = mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED) return NULL;
    memset(b, c, BIG);
    if (hole >= 0) mprotect(b + hole, 4096, prot);
    return b;
}

static void file(const char *path) {
    say("== %s", path);
    int fd = T(open(path, O_RDWR | O_CREAT | O_TRUNC, 0644));
    if (fd < 0) return;
    unsigned char *a = buffer('a', -1, 0);
    /* Past 1 MiB first (Moat's tmpfs then keeps the bytes in a memfd). */
    for (int i = 0; i < 4; i++) T(write(fd, a, BIG));
    say("size %ld", size_of(fd));

    /* mtime moves on a big write. */
    struct timespec old[2] = { { 1, 0 }, { 1, 0 } };
    T(futimens(fd, old));
    unsigned char *b = buffer('b', -1, 0);
    T(pwrite(fd, b, BIG, 100));
    struct stat st;
    fstat(fd, &st);
    say("mtime moved %d", st.st_mtim.tv_sec != 1);

    /* Sources with a page that cannot be read: a short write, or EFAULT. */
    unsigned char *c = buffer('c', 256 * KiB, PROT_NONE);
    T(pwrite(fd, c, BIG, 4096));
    T(pwrite(fd, c + 256 * KiB, BIG - 256 * KiB, 4096));
    unsigned char *r = buffer('r', 128 * KiB, PROT_READ);
    unsigned char *gone = buffer('g', -1, 0);
    munmap(gone, BIG);
    T(pwrite(fd, gone, BIG, 0));
    T(write(fd, gone, BIG));

    /* Targets with a page that cannot be written: a short read, or EFAULT. */
    T(pread(fd, r, BIG, 0));
    T(pread(fd, r + 128 * KiB, BIG, 0));
    T(pread(fd, gone, BIG, 0));
    say("sum %lx", sum(r, 128 * KiB));
    mprotect(r, BIG, PROT_READ);
    T(pread(fd, r, BIG, 0));

    /* Whole transfers, at the end, past the end, O_APPEND. */
    unsigned char *w = buffer('w', -1, 0);
    T(pread(fd, w, BIG, 0));
    say("sum %lx", sum(w, BIG));
    T(pread(fd, w, BIG, size_of(fd) - 1000));
    say("sum %lx", sum(w, 1000));
    T(pread(fd, w, BIG, size_of(fd)));
    T(pwrite(fd, a, BIG, 3 * MiB));
    say("size %ld", size_of(fd));
    T(lseek(fd, 0, SEEK_CUR));
    int ap = T(open(path, O_WRONLY | O_APPEND));
    if (ap >= 0) {
        T(write(ap, b, BIG));
        T(lseek(ap, 0, SEEK_CUR));
        T(pwrite(ap, a, BIG, 0));
        say("size %ld", size_of(fd));
        close(ap);
    }
    T(lseek(fd, 0, SEEK_SET));
    long total = 0, n;
    unsigned long h = 0;
    while ((n = read(fd, w, BIG)) > 0) { h ^= sum(w, n) + (unsigned long)total; total += n; }
    say("read all %ld %lx", total, h);

    /* Buffers that are a shared mapping of a two-page file: past its end
     * the host has no page (SIGBUS if touched); reads and writes through
     * them stop there. */
    char small[64];
    snprintf(small, sizeof small, "%s.small", path);
    int sfd = T(open(small, O_RDWR | O_CREAT | O_TRUNC, 0644));
    if (sfd >= 0) {
        T(ftruncate(sfd, 8192));
        unsigned char *m = mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
        if (m != MAP_FAILED) {
            memset(m, 's', 8192);
            T(pwrite(fd, m, BIG, 0));
            T(pwrite(fd, m + 8192, BIG - 8192, 0));
            T(pread(fd, m, BIG, 0));
            T(pread(fd, m + 8192, BIG - 8192, 0));
            say("mapped sum %lx", sum(m, 8192));
            munmap(m, BIG);
        }
        close(sfd);
        T(unlink(small));
    }
    T(lseek(fd, 0, SEEK_SET));
    total = 0; h = 0;
    while ((n = read(fd, w, BIG)) > 0) { h ^= sum(w, n) + (unsigned long)total; total += n; }
    say("read all %ld %lx", total, h);
    close(fd);
    T(unlink(path));
}

/* The program's own file, from the image (a Gofer-donated host fd). */
static void image(void) {
    say("== /work/prog");
    int fd = T(open("/work/prog", O_RDONLY));
    if (fd < 0) return;
    unsigned char *w = buffer('w', -1, 0);
    long total = 0, n;
    unsigned long h = 0;
    while ((n = read(fd, w, BIG)) > 0) { h ^= sum(w, n) + (unsigned long)total; total += n; }
    say("read all %d %lx", total == size_of(fd), h);
    unsigned char *r = buffer('r', 64 * KiB, PROT_READ);
    T(pread(fd, r, BIG, 0));
    unsigned char *c = buffer('c', 300 * KiB, PROT_NONE);
    T(pread(fd, c, BIG, 0));
    say("sum %lx", sum(c, 300 * KiB));
    close(fd);
}

int main(void) {
    file("/tmp/one");
    file("/work/one");
    image();
    say("alive");
    return 0;
}
