/* Edges gVisor's syscall suite (Tests/Conformance/gvisor-syscalls.sh:
 * symlink, mkdir, unlink, link, rename, sync, sync_file_range, flock,
 * sendfile, splice, pwrite64, readv, lseek, socket_unix_domain) found where
 * Moat differed from Linux:
 * - open(O_CREAT) through a dangling symlink creates the file it names;
 * - search permission on the last component's directory comes before
 *   EEXIST / ENOENT (mkdir, unlink); a non-directory's new name may not end
 *   in '/' (ENOENT); renameat2(RENAME_NOREPLACE) onto "." is EEXIST;
 * - flock and syncfs of an O_PATH descriptor are EBADF; sync_file_range
 *   exists and checks its arguments;
 * - sendfile of a file onto its own end (it ran 1 byte per step and hung
 *   gVisor's program); counts and positions past INT64_MAX are EINVAL; an
 *   iovec outside user space is EFAULT even when empty;
 * - splice from a pipe into a file at RLIMIT_FSIZE leaves the data in the
 *   pipe; a file fills a pipe by whole pages;
 * - lseek(SEEK_END) of a procfs seq file is EINVAL;
 * - SO_RCVTIMEO with negative seconds: a read does not wait (EAGAIN). */
#include "t.h"
#include <signal.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/time.h>

static void creat_through_symlink(void) {
    Q(mkdir("/tmp/p71", 0777));
    Q(symlink("target", "/tmp/p71/link"));
    int fd = T(open("/tmp/p71/link", O_CREAT | O_WRONLY, 0600));
    if (fd >= 0) close(fd);
    struct stat st;
    T(lstat("/tmp/p71/target", &st));
    say("target is regular: %d", S_ISREG(st.st_mode));
    T(open("/tmp/p71/link", O_CREAT | O_EXCL | O_WRONLY, 0600));
    Q(symlink("missing/x", "/tmp/p71/deep"));
    T(open("/tmp/p71/deep", O_CREAT | O_WRONLY, 0600));
}

static void names(void) {
    Q(close(open("/tmp/p71/f", O_CREAT | O_WRONLY, 0600)));
    T(link("/tmp/p71/f", "/tmp/p71/g/"));
    T(symlink("f", "/tmp/p71/s/"));
    T(mknod("/tmp/p71/n/", S_IFIFO | 0600, 0));
    T(mkdir("/tmp/p71/d/", 0700));
    T(syscall(SYS_renameat2, AT_FDCWD, "/tmp/p71/f", AT_FDCWD, "/tmp/p71/d/.", 1));
    T(syscall(SYS_renameat2, AT_FDCWD, "/tmp/p71/f", AT_FDCWD, "/tmp/p71/d/.", 0));
    T(rename("/tmp/p71/d/.", "/tmp/p71/e"));
}

static void unprivileged(void) {
    pid_t p = fork();
    if (p == 0) {
        if (setgid(65534) || setuid(65534)) _exit(3);
        Q(mkdir("/tmp/p71/u/s", 0755));
        Q(mkdir("/tmp/p71/u/s/x", 0755));
        int modes[] = {0000, 0100, 0200, 0300, 0500};
        for (int i = 0; i < 5; i++) {
            Q(chmod("/tmp/p71/u/s", modes[i]));
            say("mode 0%o:", modes[i]);
            T(mkdir("/tmp/p71/u/s/x", 0755));
            T(unlink("/tmp/p71/u/s/none"));
            T(symlink("/dangling", "/tmp/p71/u/s/x"));
        }
        Q(chmod("/tmp/p71/u/s", 0755));
        _exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    say("unprivileged child: %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static void syncs(void) {
    int fd = T(open("/tmp/p71/f2", O_CREAT | O_RDWR, 0600));
    Q(write(fd, "data", 4));
    T(sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE));
    T(sync_file_range(fd, 0, 0, 0));
    T(sync_file_range(fd, -1, 0, 0));
    T(sync_file_range(fd, 0, -1, 0));
    T(sync_file_range(fd, 8912, INT64_MAX - 4096, 0));
    T(sync_file_range(fd, 0, 0, 8));
    close(fd);
    int pfd = T(open("/tmp/p71/f2", O_PATH));
    T(syncfs(pfd));
    T(flock(pfd, LOCK_EX | LOCK_NB));
    close(pfd);
    int pp[2];
    Q(pipe(pp));
    T(sync_file_range(pp[0], 0, 0, 0));
    close(pp[0]); close(pp[1]);
}

static void copies(void) {
    int fd = T(memfd_create("self", 0));
    char c = 1;
    Q(write(fd, &c, 1));
    off_t off = 0;
    T(sendfile(fd, fd, &off, 1 << 20));
    say("offset after = %ld", (long)off);
    struct stat st;
    Q(fstat(fd, &st));
    say("size = %ld", (long)st.st_size);
    long sum = 0;
    char buf[4096];
    ssize_t n;
    Q(lseek(fd, 0, SEEK_SET));
    while ((n = read(fd, buf, sizeof buf)) > 0) for (ssize_t i = 0; i < n; i++) sum += buf[i];
    say("sum = %ld", sum);
    int in = T(open("/tmp/p71/f2", O_RDONLY));
    T(sendfile(fd, in, NULL, (size_t)-1));
    off = 0x7ffffffffffffffeLL;
    T(sendfile(fd, in, &off, 3));
    T(pwrite(fd, "abc", 3, 0x7ffffffffffffffeLL));
    T(pread(fd, buf, 3, 0x7ffffffffffffffeLL));
    struct iovec iov[2] = {{(void *)~0UL, 0}, {buf, 4}};
    Q(lseek(in, 0, SEEK_SET));
    T(readv(in, iov, 2));
    close(in);
    close(fd);
}

static void splices(void) {
    pid_t p = fork();
    if (p == 0) {
        signal(SIGXFSZ, SIG_IGN);
        int pp[2];
        Q(pipe(pp));
        char page[4096];
        memset(page, 7, sizeof page);
        Q(write(pp[1], page, sizeof page));
        int fd = T(open("/tmp/p71/big", O_CREAT | O_RDWR, 0600));
        Q(ftruncate(fd, 8192));
        Q(lseek(fd, 0, SEEK_END));
        struct rlimit rl = {8192, 8192};
        Q(setrlimit(RLIMIT_FSIZE, &rl));
        T(splice(pp[0], NULL, fd, NULL, 3 * 4096, 0));
        Q(fcntl(pp[0], F_SETFL, O_NONBLOCK));
        T(read(pp[0], page, sizeof page));
        /* A pipe of one page, all but 128 bytes full: a file cannot fill it. */
        int q[2];
        Q(pipe(q));
        T(fcntl(q[1], F_SETPIPE_SZ, 4096));
        Q(write(q[1], page, 4096 - 128));
        Q(lseek(fd, 0, SEEK_SET));
        T(splice(fd, NULL, q[1], NULL, 4096, SPLICE_F_NONBLOCK));
        T(splice(pp[0], NULL, fd, (loff_t[]){0x7ffffffffffffffeLL}, 3, 0));
        _exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    say("splice child: %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static void seeks(void) {
    int fd = T(open("/proc/self/stat", O_RDONLY));
    T(lseek(fd, 0, SEEK_CUR));
    T(lseek(fd, 0, SEEK_END));
    T(lseek(fd, 10, SEEK_CUR));
    close(fd);
}

static void timeouts(void) {
    int sv[2];
    Q(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    struct timeval tv = {-1, 0};
    T(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    char b[8];
    T(read(sv[0], b, sizeof b));
    socklen_t l = sizeof tv;
    T(getsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, &l));
    say("SO_RCVTIMEO = %ld.%06ld", (long)tv.tv_sec, (long)tv.tv_usec);
    close(sv[0]); close(sv[1]);
}

int main(void) {
    creat_through_symlink();
    names();
    Q(mkdir("/tmp/p71/u", 0777));
    Q(chmod("/tmp/p71/u", 0777));
    unprivileged();
    syncs();
    copies();
    splices();
    seeks();
    timeouts();
    return 0;
}
