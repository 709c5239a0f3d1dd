/* Negative positions and lengths never index a file's bytes: pread64,
 * pwrite64, preadv, pwritev and preadv2/pwritev2 at offset -1 (or below)
 * and an iovec with a negative length, on a tmpfs file, a memfd and a file
 * of the root. Under Moat preadv at -1 once returned Sentry memory from
 * before the file's bytes and pwritev at -1 crashed the Sentry. */
#include "t.h"
#include <sys/mman.h>
#include <sys/uio.h>

static void probe(const char *label, int fd) {
    char buf[64] = {0};
    struct iovec v = {buf, sizeof buf};
    struct iovec neg = {buf, (size_t)-1};
    say("== %s", label);
    T(pwrite(fd, "0123456789", 10, 0));
    T(pread(fd, buf, 8, -1));
    T(pwrite(fd, "x", 1, -1));
    T(preadv(fd, &v, 1, -1));
    T(preadv(fd, &v, 1, -4096));
    T(pwritev(fd, &v, 1, -1));
    T(pwritev(fd, &v, 1, (off_t)1 << 63));
    T(preadv(fd, &neg, 1, 0));
    T(pwritev(fd, &neg, 1, 0));
    T(preadv2(fd, &v, 1, -2, 0));
    T(pread(fd, buf, 10, 0));
    say("content: %.10s", buf);
}

int main(void) {
    int fd = open("/tmp/negoff", O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) probe("tmpfs", fd);
    int m = memfd_create("negoff", 0);
    if (m >= 0) probe("memfd", m);
    int w = open("/work/negoff", O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (w >= 0) probe("root", w);
    unlink("/tmp/negoff");
    unlink("/work/negoff");
    say("alive");
    return 0;
}
