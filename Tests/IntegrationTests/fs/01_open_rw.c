/* open/openat/creat flags, read/write families, lseek, shared offsets. */
#include "t.h"

int main(void) {
    char buf[64];
    T(mkdir("d", 0755));
    /* O_CREAT/O_EXCL/O_TRUNC/O_APPEND */
    int fd = T(open("d/a", O_RDWR | O_CREAT | O_EXCL, 0640));
    T(open("d/a", O_RDWR | O_CREAT | O_EXCL, 0640));
    T(write(fd, "hello world\n", 12));
    T(lseek(fd, 0, SEEK_CUR));
    T(lseek(fd, 0, SEEK_SET));
    T(read(fd, buf, 5));
    T(lseek(fd, -3, SEEK_END));
    T(lseek(fd, -100, SEEK_CUR));
    T(lseek(fd, 0, 99));
    T(lseek(fd, 100, SEEK_SET));
    T(write(fd, "X", 1));
    T(lseek(fd, 0, SEEK_END));
    T(close(fd));
    stat_path("d/a");
    T(truncate("d/a", 12));
    fd = T(open("d/a", O_WRONLY | O_APPEND));
    T(lseek(fd, 0, SEEK_SET));
    T(write(fd, "more\n", 5));
    T(lseek(fd, 0, SEEK_CUR));
    T(pwrite(fd, "P", 1, 0)); /* Linux appends even with pwrite on O_APPEND */
    T(close(fd));
    cat("d/a");
    fd = T(open("d/a", O_RDWR | O_TRUNC));
    T(lseek(fd, 0, SEEK_END));
    T(close(fd));
    /* creat */
    fd = T(creat("d/c", 0600));
    T(read(fd, buf, 1));
    T(write(fd, "c", 1));
    T(close(fd));
    stat_path("d/c");
    /* error cases */
    T(open("nope/x", O_RDONLY));
    T(open("d/a/x", O_RDONLY));
    T(open("d", O_WRONLY));
    T(open("d", O_RDWR));
    T(open("d/c", O_RDONLY | O_DIRECTORY));
    T(open("d/", O_CREAT | O_RDWR, 0644));
    T(open("d/new/", O_CREAT | O_RDWR, 0644));
    T(open("", O_RDONLY));
    T(openat(12345, "x", O_RDONLY));
    T(openat(1, "x", O_RDONLY));
    T(read(12345, buf, 1));
    T(write(-1, buf, 1));
    T(close(12345));
    fd = T(open("d", O_RDONLY | O_DIRECTORY));
    T(read(fd, buf, 1));
    T(write(fd, buf, 1));
    int f2 = T(openat(fd, "c", O_RDONLY));
    T(close(f2));
    T(close(fd));
    fd = T(open("d/c", O_RDONLY));
    T(write(fd, "x", 1));
    T(close(fd));
    fd = T(open("d/c", O_WRONLY));
    T(read(fd, buf, 1));
    T(close(fd));
    char longname[300];
    memset(longname, 'n', 299); longname[299] = 0;
    T(open(longname, O_RDONLY | O_CREAT, 0644));
    char longpath[PATH_MAX + 10];
    memset(longpath, 'a', sizeof longpath - 1); longpath[sizeof longpath - 1] = 0;
    for (int i = 100; i < PATH_MAX + 5; i += 100) longpath[i] = '/';
    T(open(longpath, O_RDONLY));
    /* readv/writev/preadv/pwritev/preadv2/pwritev2 */
    fd = T(open("d/v", O_RDWR | O_CREAT, 0644));
    struct iovec iov[3] = {{"ab", 2}, {"", 0}, {"cdef", 4}};
    T(writev(fd, iov, 3));
    T(pwritev(fd, iov, 3, 10));
    T(pwritev2(fd, iov, 1, 20, 0));
    T(pwritev2(fd, iov, 1, -1, 0));
    T(lseek(fd, 0, SEEK_CUR));
    char a[3] = {0}, b[5] = {0};
    struct iovec r[2] = {{a, 2}, {b, 4}};
    T(preadv(fd, r, 2, 10));
    say("preadv got %s %s", a, b);
    T(preadv2(fd, r, 2, 0, 0));
    T(lseek(fd, 0, SEEK_SET));
    T(readv(fd, r, 2));
    T(pread(fd, buf, 10, 1000));
    T(pread(fd, buf, 4, -1));
    volatile int neg = -1;
    T(writev(fd, iov, neg));
    T(lseek(fd, 0, SEEK_END));
    T(close(fd));
    /* dup shares the offset; a second open does not */
    fd = T(open("d/v", O_RDONLY));
    int d2 = T(dup(fd));
    int o2 = T(open("d/v", O_RDONLY));
    T(read(fd, buf, 3));
    T(lseek(d2, 0, SEEK_CUR));
    T(lseek(o2, 0, SEEK_CUR));
    T(fcntl(fd, F_SETFL, O_NONBLOCK | O_APPEND));
    T(fcntl(d2, F_GETFL) & (O_NONBLOCK | O_APPEND | O_ACCMODE));
    T(fcntl(o2, F_GETFL) & (O_NONBLOCK | O_APPEND | O_ACCMODE));
    T(fcntl(d2, F_GETFD));
    int d3 = T(fcntl(fd, F_DUPFD_CLOEXEC, 50));
    T(fcntl(d3, F_GETFD));
    T(dup2(fd, fd));
    T(dup3(fd, fd, 0));
    T(dup3(fd, 60, O_CLOEXEC));
    T(fcntl(60, F_GETFD));
    T(dup2(fd, -1));
    T(close(fd)); T(close(d2)); T(close(o2)); T(close(d3)); T(close(60));
    /* O_CLOEXEC survives, and is visible */
    fd = T(open("d/v", O_RDONLY | O_CLOEXEC));
    T(fcntl(fd, F_GETFD));
    T(close(fd));
    /* a file read in a child shares the offset with the parent */
    fd = T(open("d/v", O_RDONLY));
    pid_t p = fork();
    if (p == 0) { char c[4]; if (read(fd, c, 4) < 0) _exit(1); _exit(0); }
    waitpid(p, NULL, 0);
    T(lseek(fd, 0, SEEK_CUR));
    T(close(fd));
    /* O_PATH */
    fd = T(open("d/v", O_PATH));
    T(read(fd, buf, 1));
    T(fchmod(fd, 0600));
    struct stat st;
    T(fstat(fd, &st));
    T(fstatat(fd, "", &st, AT_EMPTY_PATH));
    show_stat("O_PATH fstat", &st);
    T(close(fd));
    /* O_NOFOLLOW */
    T(symlink("v", "d/lnk"));
    T(open("d/lnk", O_RDONLY | O_NOFOLLOW));
    fd = T(open("d/lnk", O_PATH | O_NOFOLLOW));
    T(fstatat(fd, "", &st, AT_EMPTY_PATH));
    show_stat("O_PATH|O_NOFOLLOW on symlink", &st);
    T(close(fd));
    /* O_DIRECTORY|O_CREAT is EINVAL on modern kernels */
    T(open("d/dc", O_DIRECTORY | O_CREAT | O_RDWR, 0644));
    ls("d");
    return 0;
}
