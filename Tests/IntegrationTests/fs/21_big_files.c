/* Files past 1 MiB: Moat's tmpfs keeps their bytes in a memfd and copies
 * between it and the application without a bounce buffer. Sequential 1 MiB
 * writes, pwrite inside and past the end, O_APPEND, one read of the whole
 * file, writes and reads whose buffer ends (or starts) in an unmapped page
 * (Linux writes or reads the part before it; none at all is EFAULT),
 * truncation and a shared mapping, on /tmp and /work. (A write past the end
 * from an unmapped buffer is left out: whether the file grows to the write's
 * position depends on the host file system.) */
#include "t.h"

#define MiB (1 << 20)

static unsigned long sum(const unsigned char *p, size_t n) {
    unsigned long h = 1469598103934665603UL;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211UL;
    return h;
}

static long size_of(int fd) { struct stat st; return fstat(fd, &st) == 0 ? (long)st.st_size : -1; }

static void big(const char *path) {
    say("== %s", path);
    int fd = T(open(path, O_RDWR | O_CREAT | O_TRUNC, 0644));
    if (fd < 0) return;
    unsigned char *buf = malloc(8 * MiB);
    for (int c = 0; c < 3; c++) {
        for (int i = 0; i < MiB; i++) buf[i] = (unsigned char)(i * 7 + c * 13);
        T(write(fd, buf, MiB));
    }
    say("size %ld", size_of(fd));
    T(pwrite(fd, "inside", 6, 2 * MiB + MiB / 2));
    T(pwrite(fd, "past", 4, 5 * MiB));
    say("size %ld", size_of(fd));
    T(lseek(fd, 0, SEEK_SET));
    long n = T(read(fd, buf, 8 * MiB));
    if (n > 0) say("sum %lx", sum(buf, n));
    T(read(fd, buf, 10));
    T(lseek(fd, 0, SEEK_END));

    /* A buffer whose second page is unmapped, and one with no page at all. */
    unsigned char *two = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(two, 'z', 8192);
    munmap(two + 4096, 4096);
    T(pwrite(fd, two, 8192, 6 * MiB - 100));
    say("size %ld", size_of(fd));
    T(pwrite(fd, two + 4096, 100, MiB));
    T(pread(fd, two, 8192, MiB));
    T(pread(fd, two + 4096, 100, MiB));
    T(pread(fd, two, 8192, size_of(fd) - 10));
    say("tail %.10s", (char *)two);
    /* Big reads (Moat maps the file for them) into a half-unmapped buffer. */
    unsigned char *half = mmap(NULL, 512 << 10, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(half + (256 << 10), 256 << 10);
    T(pread(fd, half, 512 << 10, 0));
    T(pread(fd, half + (256 << 10), 512 << 10, 0));
    T(pread(fd, half, 512 << 10, size_of(fd) - 1000));
    say("sum %lx", sum(half, 1000));
    munmap(half, 256 << 10);

    int ap = T(open(path, O_WRONLY | O_APPEND));
    if (ap >= 0) {
        T(write(ap, buf, MiB + 3));
        T(pwrite(ap, "app", 3, 0));
        say("size %ld", size_of(fd));
        close(ap);
    }
    T(ftruncate(fd, MiB + MiB / 2));
    T(pread(fd, buf, 100, MiB + MiB / 2));
    T(pread(fd, buf, 100, MiB + MiB / 2 - 50));

    unsigned char *m = mmap(NULL, MiB + MiB / 2, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m != MAP_FAILED) {
        say("mapped byte %d", m[MiB + 5]);
        m[MiB + 5] = 'M';
        T(pread(fd, buf, 1, MiB + 5));
        say("read back %c", buf[0]);
        T(pwrite(fd, "W", 1, MiB + 6));
        say("mapped sees %c", m[MiB + 6]);
        munmap(m, MiB + MiB / 2);
    }
    T(lseek(fd, 0, SEEK_SET));
    n = T(read(fd, buf, 8 * MiB));
    if (n > 0) say("sum %lx", sum(buf, n));
    close(fd);
    T(unlink(path));
    free(buf);
}

int main(void) {
    big("/tmp/big");
    big("/work/big");
    say("alive");
    return 0;
}
