/* Edges of utimensat/futimesat, fallocate, fadvise64, preadv2/pwritev2 and
 * big memfd sizes that gVisor's syscall suite found (session 14, issue 15):
 * - utimensat with both times UTIME_OMIT succeeds even for a missing path;
 *   a null path is dirfd itself (flags: EINVAL), or EFAULT with AT_FDCWD;
 *   unknown flags; AT_EMPTY_PATH with "" on an O_PATH descriptor (fchownat
 *   too); futimesat with a null path;
 * - fallocate's order: EINVAL for the range before EBADF for a read-only
 *   descriptor, ESPIPE for a pipe, ENODEV for /dev/null, SIGXFSZ and EFBIG
 *   past RLIMIT_FSIZE (KEEP_SIZE exempt);
 * - fadvise64 on an O_PATH descriptor; RWF_APPEND with RWF_NOAPPEND;
 * - a memfd truncated to Int64.max, and pread at the end of it; punching
 *   holes in a memfd (KEEP_SIZE needed, EPERM once write-sealed); O_TRUNC
 *   of a shrink-sealed memfd; renameat2 and fchownat flags checked before
 *   the lookup; access(W_OK) of a read-only mount's directory is EROFS;
 * - close_range(CLOSE_RANGE_UNSHARE) in a CLONE_FILES child;
 * - relatime: a read, a directory listing and following a symlink move an
 *   atime that is not after mtime/ctime, not one in the future, nor does
 *   an empty read. */
#include "t.h"
#include <signal.h>
#include <sys/resource.h>
#include <time.h>
#include <linux/close_range.h>

static volatile int xfsz;
static void on_xfsz(int s) { (void)s; xfsz++; }

static void show_times(const char *p) {
    struct stat st;
    if (stat(p, &st) != 0) { say("stat %s: %s", p, ename(errno)); return; }
    say("%s: atime=%lld.%09ld mtime=%lld.%09ld", p, (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
        (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

/* Whether p's atime (set to `at` before) moved, following links or not. */
static void moved(const char *what, const char *p, time_t at, int nofollow) {
    struct stat st;
    if (fstatat(AT_FDCWD, p, &st, nofollow ? AT_SYMLINK_NOFOLLOW : 0) != 0) { say("%s: %s", what, ename(errno)); return; }
    say("%s: atime %s", what, st.st_atim.tv_sec == at ? "kept" : "moved");
}

static void atimes(void) {
    char b[4];
    time_t future = time(NULL) + 100000;
    struct timespec old[2] = {{10, 0}, {20, 0}}, ahead[2] = {{future, 0}, {20, 0}};
    put("r", "data");
    T(utimensat(AT_FDCWD, "r", old, 0));
    /* (O_NOATIME is left out: host-backed files are read through a host
     * descriptor the Gofer opened without it.) */
    int fd = open("r", O_RDONLY);
    T(read(fd, b, 0)); moved("empty read", "r", 10, 0);
    T(read(fd, b, 4)); moved("read", "r", 10, 0);
    T(utimensat(AT_FDCWD, "r", ahead, 0));
    T(pread(fd, b, 4, 0)); close(fd); moved("read, atime ahead", "r", future, 0);
    mkdir("d", 0755); put("d/x", "");
    T(utimensat(AT_FDCWD, "d", old, 0));
    ls("d"); moved("listing", "d", 10, 0);
    T(symlink("r", "l"));
    T(utimensat(AT_FDCWD, "l", old, AT_SYMLINK_NOFOLLOW));
    fd = open("l", O_RDONLY); close(fd); moved("symlink followed", "l", 10, 1);
}

/* Flag and read-only checks that come before the path is looked up or the
 * caller's permission weighed. */
static void early_checks(void) {
    T(syscall(SYS_renameat2, AT_FDCWD, "missing", AT_FDCWD, "other", RENAME_EXCHANGE | RENAME_WHITEOUT));
    T(syscall(SYS_renameat2, AT_FDCWD, "missing", AT_FDCWD, "other", RENAME_EXCHANGE | RENAME_NOREPLACE));
    T(fchownat(AT_FDCWD, "missing", 65534, 0, 9999));
    mkdir("ro", 0755);
    if (mount("tmpfs", "ro", "tmpfs", MS_RDONLY, NULL) != 0) { say("mount ro: %s", ename(errno)); return; }
    T(access("ro", W_OK));
    T(access("ro", R_OK | X_OK));
    T(umount("ro"));
}

/* close_range(CLOSE_RANGE_UNSHARE) in a child sharing the table (CLONE_FILES)
 * closes its own copy only; without the flag the parent loses it too. */
static void close_range_unshare(void) {
    for (int unshare = 1; unshare >= 0; unshare--) {
        int fd = open("/", O_PATH);
        fflush(stdout);
        long pid = syscall(SYS_clone, CLONE_FILES | SIGCHLD, 0, 0, 0, 0);
        if (pid == 0) {
            long r = syscall(SYS_close_range, fd, fd, unshare ? CLOSE_RANGE_UNSHARE : 0);
            say("child close_range%s = %ld, then F_GETFD %s", unshare ? "(UNSHARE)" : "", r,
                fcntl(fd, F_GETFD) < 0 ? ename(errno) : "open");
            _exit(0);
        }
        int st; waitpid((pid_t)pid, &st, 0);
        say("parent after it: F_GETFD %s", fcntl(fd, F_GETFD) < 0 ? ename(errno) : "open");
        close(fd);
    }
}

int main(void) {
    close_range_unshare();
    early_checks();
    atimes();
    put("f", "hello");
    struct timespec omit[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
    struct timespec ts[2] = {{10, 5}, {20, 6}};
    struct timespec bad[2] = {{0, UTIME_OMIT}, {0, 1000000000}};
    struct timeval tv[2] = {{30, 7}, {40, 8}};
    T(utimensat(AT_FDCWD, "missing", omit, 0));
    T(utimensat(AT_FDCWD, "missing", omit, 0x4000));
    T(utimensat(AT_FDCWD, "missing", ts, 0));
    T(utimensat(AT_FDCWD, "f", bad, 0));
    T(syscall(SYS_utimensat, AT_FDCWD, NULL, ts, 0));
    int fd = open("f", O_RDWR);
    T(syscall(SYS_utimensat, fd, NULL, ts, 0)); show_times("f");
    T(syscall(SYS_utimensat, fd, NULL, ts, AT_SYMLINK_NOFOLLOW));
    T(utimensat(AT_FDCWD, "f", ts, 0x4000));
    int op = open("f", O_PATH);
    struct timespec ts2[2] = {{11, 0}, {21, 0}};
    T(syscall(SYS_utimensat, op, NULL, ts2, 0));
    T(utimensat(op, "", ts2, 0));
    T(utimensat(op, "", ts2, AT_EMPTY_PATH)); show_times("f");
    T(fchownat(op, "", 0, 0, AT_EMPTY_PATH));
    T(syscall(SYS_futimesat, AT_FDCWD, NULL, tv));
    T(syscall(SYS_futimesat, fd, NULL, tv)); show_times("f");
    T(syscall(SYS_futimesat, op, NULL, tv));

    /* fallocate */
    int ro = open("f", O_RDONLY);
    T(fallocate(ro, 0, 0, 0));
    T(fallocate(ro, 0, -1, 10));
    T(fallocate(ro, 0, 0, 10));
    int p[2];
    T(pipe(p));
    T(fallocate(p[1], 0, 0, 10));
    T(fallocate(p[0], 0, 0, 10));
    int dn = open("/dev/null", O_RDWR);
    T(fallocate(dn, 0, 0, 10));
    T(fallocate(fd, 0, 0, 4096));
    signal(SIGXFSZ, on_xfsz);
    struct rlimit rl = {8192, RLIM_INFINITY};
    T(setrlimit(RLIMIT_FSIZE, &rl));
    T(fallocate(fd, 0, 0, 8192));
    T(fallocate(fd, 0, 4096, 8192)); say("SIGXFSZ %d", xfsz);
    T(fallocate(fd, FALLOC_FL_KEEP_SIZE, 4096, 8192)); say("SIGXFSZ %d", xfsz);
    rl.rlim_cur = RLIM_INFINITY;
    T(setrlimit(RLIMIT_FSIZE, &rl));
    struct stat st; fstat(fd, &st); say("size %lld", (long long)st.st_size);
    /* Punching a hole (tmpfs and memfd files; a host file may not support it,
     * so only a memfd here): zeros, same size; EINVAL without KEEP_SIZE;
     * EPERM once write-sealed. */
    int pm = memfd_create("punch", MFD_ALLOW_SEALING);
    T(write(pm, "abcdefgh", 8));
    T(fallocate(pm, FALLOC_FL_PUNCH_HOLE, 2, 3));
    T(fallocate(pm, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2, 3));
    char pb[9] = {0};
    T(pread(pm, pb, 8, 0)); say("after the hole: %c%c %d %d %d %c%c%c", pb[0], pb[1], pb[2], pb[3], pb[4], pb[5], pb[6], pb[7]);
    fstat(pm, &st); say("size %lld", (long long)st.st_size);
    T(ftruncate(pm, 2 << 20)); T(pwrite(pm, "z", 1, 1 << 20));
    T(fallocate(pm, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1 << 20, 4096));
    T(pread(pm, pb, 1, 1 << 20)); say("byte at 1 MiB: %d", pb[0]);
    T(fcntl(pm, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK));
    T(fallocate(pm, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096));
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", pm);
    T(open(self, O_RDWR | O_TRUNC));           /* truncating shrinks: F_SEAL_SHRINK */
    close(pm);

    /* fadvise64, preadv2/pwritev2 flags */
    T(syscall(SYS_fadvise64, op, 0, 10, 0));
    T(syscall(SYS_fadvise64, fd, 0, 10, 0));
    char b[8] = "abcdefgh";
    struct iovec iov = {b, sizeof b};
    T(preadv2(fd, &iov, 1, 0, RWF_APPEND | RWF_NOAPPEND));
    T(pwritev2(fd, &iov, 1, 0, RWF_APPEND | RWF_NOAPPEND));
    T(preadv2(fd, &iov, 1, 0, 0x100000));
    T(pwritev2(fd, &iov, 1, 0, 0x100000));

    /* memfd sizes */
    int mf = memfd_create("big", 0);
    T(ftruncate(mf, 0x7fffffffffffffffLL));
    fstat(mf, &st); say("memfd size %llx", (long long)st.st_size);
    T(pread(mf, b, sizeof b, 0x7fffffffffffffffLL));
    T(pread(mf, b, sizeof b, 0x7ffffffffffffff0LL));
    T(pread(mf, b, sizeof b, 1 << 20));
    T(pwrite(mf, "x", 1, 5)); T(pread(mf, b, 2, 4)); say("bytes %d %d", b[0], b[1]);
    T(ftruncate(mf, 3));
    fstat(mf, &st); say("memfd size %lld", (long long)st.st_size);
    return 0;
}
