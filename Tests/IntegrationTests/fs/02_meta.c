/* stat family, statx, access, chmod/chown families, utimensat, truncate,
 * fallocate, statfs. */
#include "t.h"
#include <sys/statfs.h>
#include <sys/time.h>

static void times_of(const char *p, int follow) {
    struct stat st;
    if (fstatat(AT_FDCWD, p, &st, follow ? 0 : AT_SYMLINK_NOFOLLOW) != 0) { say("times %s: %s", p, ename(errno)); return; }
    say("times %s: atime=%lld.%09ld mtime=%lld.%09ld", p, (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
        (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

int main(void) {
    struct stat st;
    T(mkdir("m", 0750));
    put("m/f", "0123456789");
    T(symlink("f", "m/l"));
    T(symlink("nowhere", "m/dangling"));
    T(stat("m/f", &st)); show_stat("stat m/f", &st);
    T(lstat("m/l", &st)); show_stat("lstat m/l", &st);
    T(stat("m/l", &st)); show_stat("stat m/l", &st);
    T(stat("m/dangling", &st));
    T(lstat("m/dangling", &st)); show_stat("lstat m/dangling", &st);
    T(stat("m", &st)); show_stat("stat m", &st);
    T(stat("m/f/", &st));
    T(stat("m/l/", &st));
    T(stat("m/", &st));
    T(stat("", &st));
    T(fstatat(AT_FDCWD, "", &st, 0));
    T(fstatat(AT_FDCWD, "", &st, AT_EMPTY_PATH)); show_stat("cwd", &st);
    T(fstatat(AT_FDCWD, "m/l", &st, AT_SYMLINK_NOFOLLOW)); show_stat("fstatat nofollow", &st);
    T(fstatat(AT_FDCWD, "m/l", &st, 0x4000));
    int fd = T(open("m", O_RDONLY));
    T(fstatat(fd, "f", &st, 0)); show_stat("fstatat dirfd", &st);
    T(fstatat(fd, "/work/m/f", &st, 0));
    int ffd = T(open("m/f", O_RDONLY));
    T(fstatat(ffd, "x", &st, 0));
    T(close(ffd));
    /* statx */
    struct statx sx;
    T(statx(AT_FDCWD, "m/f", 0, STATX_BASIC_STATS, &sx));
    say("statx: mask&basic=%x mode=%o nlink=%u size=%llu blksize_ok=%d", sx.stx_mask & STATX_BASIC_STATS, sx.stx_mode,
        sx.stx_nlink, (unsigned long long)sx.stx_size, sx.stx_blksize > 0);
    T(statx(AT_FDCWD, "m/l", AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx));
    say("statx link: mode=%o size=%llu", sx.stx_mode, (unsigned long long)sx.stx_size);
    T(statx(fd, "", AT_EMPTY_PATH, STATX_TYPE, &sx));
    say("statx dir: type=%o", sx.stx_mode & S_IFMT);
    T(statx(AT_FDCWD, "m/f", 0x12345678, STATX_BASIC_STATS, &sx));
    T(statx(AT_FDCWD, "m/f", 0, 0x80000000u, &sx));
    T(statx(AT_FDCWD, "nope", 0, STATX_BASIC_STATS, &sx));
    /* access */
    T(access("m/f", F_OK));
    T(access("m/f", R_OK | W_OK));
    T(access("m/f", X_OK));
    T(access("m", X_OK));
    T(access("nope", F_OK));
    T(access("m/f", 0x100));
    T(faccessat(fd, "f", R_OK, 0));
    T(faccessat(AT_FDCWD, "m/dangling", F_OK, AT_SYMLINK_NOFOLLOW));
    T(syscall(SYS_faccessat2, AT_FDCWD, "m/dangling", F_OK, AT_SYMLINK_NOFOLLOW));
    T(syscall(SYS_faccessat2, AT_FDCWD, "m/f", X_OK, AT_EACCESS));
    T(syscall(SYS_faccessat2, AT_FDCWD, "m/f", F_OK, 0x40000));
    /* chmod family */
    T(chmod("m/f", 04755)); stat_path("m/f");
    T(chmod("m/l", 0600)); stat_path("m/f"); stat_path("m/l");
    T(fchmodat(AT_FDCWD, "m/l", 0644, AT_SYMLINK_NOFOLLOW));
    T(fchmodat(fd, "f", 0640, 0)); stat_path("m/f");
    T(chmod("nope", 0644));
    ffd = T(open("m/f", O_RDONLY));
    T(fchmod(ffd, 01777)); stat_path("m/f");
    T(fchmod(ffd, 0644));
    T(close(ffd));
    /* chown family (as root) */
    T(chown("m/f", 1000, 1000)); stat_path("m/f");
    T(chown("m/f", -1, 2000)); stat_path("m/f");
    T(lchown("m/l", 3000, 3000)); stat_path("m/l"); stat_path("m/f");
    T(fchownat(fd, "f", 0, -1, 0)); stat_path("m/f");
    T(fchownat(AT_FDCWD, "m/l", 5, 5, AT_SYMLINK_NOFOLLOW)); stat_path("m/l");
    T(chmod("m/f", 06755)); T(chown("m/f", 7, 7)); stat_path("m/f");
    T(chown("m/f", 0, 0));
    /* utimensat */
    struct timespec ts[2] = {{1000000000, 123456789}, {1100000000, 987654321}};
    T(utimensat(AT_FDCWD, "m/f", ts, 0)); times_of("m/f", 1);
    struct timespec om[2] = {{0, UTIME_OMIT}, {1200000000, 5}};
    T(utimensat(AT_FDCWD, "m/f", om, 0)); times_of("m/f", 1);
    T(utimensat(AT_FDCWD, "m/l", ts, AT_SYMLINK_NOFOLLOW)); times_of("m/l", 0);
    struct timespec bad[2] = {{0, 1000000000}, {0, 0}};
    T(utimensat(AT_FDCWD, "m/f", bad, 0));
    T(utimensat(AT_FDCWD, "nope", ts, 0));
    struct timeval tv[2] = {{1300000000, 1}, {1300000001, 2}};
    T(utimes("m/f", tv)); times_of("m/f", 1);
    T(syscall(SYS_futimesat, fd, "f", tv)); times_of("m/f", 1);
    ffd = T(open("m/f", O_RDWR));
    T(futimens(ffd, ts)); times_of("m/f", 1);
    /* truncate / ftruncate / fallocate */
    T(ftruncate(ffd, 3)); stat_path("m/f"); cat("m/f");
    T(ftruncate(ffd, 20000)); stat_path("m/f");
    T(ftruncate(ffd, -1));
    T(truncate("m", 0));
    T(truncate("nope", 0));
    T(truncate("m/f", 5)); stat_path("m/f");
    T(fallocate(ffd, 0, 0, 8192)); stat_path("m/f");
    T(fallocate(ffd, FALLOC_FL_KEEP_SIZE, 8192, 8192)); stat_path("m/f");
    T(fallocate(ffd, 0, -1, 10));
    T(fallocate(ffd, 0, 0, 0));
    T(posix_fallocate(ffd, 0, 9000)); stat_path("m/f");
    T(close(ffd));
    ffd = T(open("m/f", O_RDONLY));
    T(ftruncate(ffd, 0));
    T(fallocate(ffd, 0, 0, 10));
    T(close(ffd));
    T(fsync(fd));
    T(fdatasync(fd));
    T(syncfs(fd));
    T(fsync(999));
    /* statfs: only what is the same on any file system */
    struct statfs sf;
    T(statfs("m", &sf));
    say("statfs: bsize>0=%d namelen=%ld", sf.f_bsize > 0, (long)sf.f_namelen);
    T(fstatfs(fd, &sf));
    T(statfs("nope", &sf));
    T(close(fd));
    /* mknod: fifos, and regular files */
    T(mknod("m/fifo", S_IFIFO | 0644, 0)); stat_path("m/fifo");
    T(mknodat(AT_FDCWD, "m/reg", S_IFREG | 0600, 0)); stat_path("m/reg");
    T(mknod("m/fifo", S_IFIFO | 0644, 0));
    T(mkfifo("m/f/x", 0644));
    T(mknod("m/bad", 0170000 | 0644, 0));
    umask(027);
    T(mkdir("m/um", 0777)); stat_path("m/um");
    T(mkfifo("m/umf", 0666)); stat_path("m/umf");
    put("m/umr", ""); stat_path("m/umr");
    return 0;
}
