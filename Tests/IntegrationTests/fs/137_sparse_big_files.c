// Files far larger than memory, holding almost nothing: one byte written at
// 5.6 GB in /tmp (a tmpfs) and in /work (the container's files), read back
// through read, pread and a mapping at that offset, with SEEK_DATA and
// SEEK_HOLE around it, then truncated past 2^40 and back. CPython's mmap
// tests do the same; Moat's tmpfs once refused any write past 4 GiB (EFBIG).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void try(const char *path) {
    const off_t far = 0x14FFFFFFFLL;
    unlink(path);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { printf("%s: open: %s\n", path, strerror(errno)); return; }
    printf("%s: pwrite at 5.6 GB: %zd\n", path, pwrite(fd, "Z", 1, far));
    struct stat st;
    fstat(fd, &st);
    printf("  size %lld\n", (long long)st.st_size);
    char c = 0;
    ssize_t n = pread(fd, &c, 1, far);
    printf("  pread there: %zd '%c'\n", n, c);
    c = 1;
    n = pread(fd, &c, 1, 1LL << 30);
    printf("  pread at 1 GB: %zd %d\n", n, c);
    off_t d = lseek(fd, 0, SEEK_DATA);
    printf("  SEEK_DATA from 0: %s\n", d < 0 ? strerror(errno) : d <= far ? "at or before the byte" : "past it");
    printf("  SEEK_HOLE from the byte: %lld\n", (long long)lseek(fd, far, SEEK_HOLE));
    printf("  lseek SEEK_END: %lld\n", (long long)lseek(fd, 0, SEEK_END));
    char *m = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, far & ~4095LL);
    if (m == MAP_FAILED) printf("  mmap: %s\n", strerror(errno));
    else { printf("  mapped byte: '%c', before it: %d\n", m[far & 4095], m[(far & 4095) - 1]); munmap(m, 8192); }
    printf("  ftruncate to 2^40: %d\n", ftruncate(fd, 1LL << 40));
    fstat(fd, &st);
    printf("  size %lld\n", (long long)st.st_size);
    printf("  ftruncate to 10: %d\n", ftruncate(fd, 10));
    fstat(fd, &st);
    printf("  size %lld\n", (long long)st.st_size);
    n = pwrite(fd, "Y", 1, 0x7fffffffffffffffLL);
    printf("  pwrite at LLONG_MAX: %zd %s\n", n, n < 0 ? strerror(errno) : "");
    close(fd);
    unlink(path);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    try("/tmp/sparse");
    try("/work/sparse");
    return 0;
}
