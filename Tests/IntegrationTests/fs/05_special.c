/* The less common calls: sendfile, copy_file_range, splice, tee,
 * memfd_create, O_TMPFILE, openat2, inotify, xattrs, mounts and EXDEV.
 * O_TMPFILE and user.* xattrs under /work go through the Gofer to the host
 * in the write-through run; FileSystemTests.swift then checks on the host
 * that s/x keeps user.kept and that s/tt/named (an O_TMPFILE file linked
 * in) exists with its user.tmp. /work/prog carries user.moat.image, set by
 * the harness before the run (the overlay reads it from the lower layer). */
#include "t.h"
#include <linux/openat2.h>
#include <sys/inotify.h>
#include <sys/sendfile.h>
#include <sys/xattr.h>
#include <poll.h>

static long openat2_(int dfd, const char *p, int flags, unsigned long long resolve) {
    struct open_how how = {.flags = flags, .mode = 0, .resolve = resolve};
    return syscall(SYS_openat2, dfd, p, &how, sizeof how);
}

static void inotify_events(int fd) {
    char buf[4096];
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0) { say("inotify: no events"); return; }
    ssize_t n = read(fd, buf, sizeof buf);
    for (char *q = buf; q < buf + n;) {
        struct inotify_event *e = (struct inotify_event *)q;
        say("inotify: wd=%d mask=%x cookie?=%d name=%s", e->wd, e->mask, e->cookie != 0, e->len ? e->name : "");
        q += sizeof *e + e->len;
    }
}

int main(void) {
    char buf[256];
    T(mkdir("s", 0755));
    put("s/src", "0123456789abcdefghij");
    /* sendfile */
    int in = T(open("s/src", O_RDONLY));
    int out = T(open("s/dst", O_WRONLY | O_CREAT | O_TRUNC, 0644));
    off_t off = 5;
    T(sendfile(out, in, &off, 10)); say("off=%ld", (long)off);
    T(lseek(in, 0, SEEK_CUR));
    T(sendfile(out, in, NULL, 4));
    T(lseek(in, 0, SEEK_CUR));
    T(sendfile(out, in, NULL, 100));
    T(sendfile(out, in, NULL, 100));
    T(sendfile(in, out, NULL, 1));
    T(sendfile(out, 999, NULL, 1));
    cat("s/dst");
    int pfd[2]; T(pipe(pfd));
    T(lseek(in, 0, SEEK_SET));
    T(sendfile(pfd[1], in, NULL, 6));
    T(read(pfd[0], buf, 6));
    T(close(out));
    /* copy_file_range */
    out = T(open("s/cfr", O_RDWR | O_CREAT | O_TRUNC, 0644));
    loff_t io = 2, oo = 0;
    T(copy_file_range(in, &io, out, &oo, 5, 0)); say("io=%ld oo=%ld", (long)io, (long)oo);
    T(copy_file_range(in, NULL, out, NULL, 3, 0));
    T(copy_file_range(in, NULL, out, NULL, 3, 1));
    T(copy_file_range(in, NULL, in, NULL, 3, 0) >= -1);
    T(copy_file_range(pfd[0], NULL, out, NULL, 3, 0));
    T(copy_file_range(in, NULL, out, NULL, 100, 0));
    T(close(out));
    cat("s/cfr");
    /* splice and tee */
    T(lseek(in, 0, SEEK_SET));
    loff_t so = 10;
    T(splice(in, &so, pfd[1], NULL, 4, 0)); say("so=%ld", (long)so);
    T(splice(in, NULL, pfd[1], NULL, 3, 0));
    int p2[2]; T(pipe(p2));
    T(tee(pfd[0], p2[1], 100, 0));
    T(read(p2[0], buf, sizeof buf)); buf[7] = 0; say("tee copy: %s", buf);
    out = T(open("s/spl", O_WRONLY | O_CREAT | O_TRUNC, 0644));
    T(splice(pfd[0], NULL, out, NULL, 100, 0));
    T(splice(in, NULL, out, NULL, 3, 0));
    T(tee(in, p2[1], 1, 0));
    T(tee(pfd[0], pfd[1], 1, 0));
    T(splice(pfd[0], NULL, out, NULL, 1, SPLICE_F_NONBLOCK));
    T(close(out));
    cat("s/spl");
    T(close(in));
    /* memfd_create */
    int m = T(memfd_create("thing", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    T(write(m, "memory", 6));
    T(fcntl(m, F_GETFD));
    T(fcntl(m, F_ADD_SEALS, F_SEAL_WRITE));
    T(write(m, "x", 1));
    T(fcntl(m, F_GET_SEALS));
    T(pread(m, buf, 6, 0));
    struct stat st; T(fstat(m, &st)); show_stat("memfd", &st);
    snprintf(buf, sizeof buf, "/proc/self/fd/%d", m);
    char lnk[256] = {0}; T(readlink(buf, lnk, sizeof lnk - 1)); say("memfd link: %s", lnk);
    T(memfd_create("bad", 0x100));
    int m2 = T(memfd_create("plain", 0));
    T(fcntl(m2, F_ADD_SEALS, F_SEAL_WRITE));
    T(ftruncate(m2, 8192));
    char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, m2, 0);
    T(p != MAP_FAILED);
    strcpy(p + 4096, "shared");
    T(pread(m2, buf, 7, 4096)); say("through mmap: %s", buf);
    T(close(m)); T(close(m2));
    /* O_TMPFILE (in /tmp: tmpfs in Moat, where it is supported) */
    T(mkdir("/tmp/tt", 0755));
    int tf = T(open("/tmp/tt", O_TMPFILE | O_RDWR, 0600));
    T(write(tf, "tmp", 3));
    T(fstat(tf, &st)); show_stat("tmpfile", &st);
    ls("/tmp/tt");
    snprintf(buf, sizeof buf, "/proc/self/fd/%d", tf);
    T(linkat(AT_FDCWD, buf, AT_FDCWD, "/tmp/tt/linked", AT_SYMLINK_FOLLOW));
    cat("/tmp/tt/linked");
    T(fstat(tf, &st)); show_stat("tmpfile linked", &st);
    T(close(tf));
    T(open("/tmp/tt", O_TMPFILE | O_RDONLY, 0600));
    T(open("s/src", O_TMPFILE | O_RDWR, 0600));
    tf = T(open("/tmp/tt", O_TMPFILE | O_RDWR | O_EXCL, 0600));
    T(linkat(tf, "", AT_FDCWD, "/tmp/tt/excl", AT_EMPTY_PATH));
    T(close(tf));
    /* O_TMPFILE in the root file system: the Gofer makes the file when
     * written through */
    T(mkdir("s/tt", 0755));
    tf = T(open("s/tt", O_TMPFILE | O_RDWR, 0640));
    T(write(tf, "unnamed", 7));
    T(fstat(tf, &st)); show_stat("rootfs tmpfile", &st);
    ls("s/tt");
    T(fsetxattr(tf, "user.tmp", "t", 1, 0));
    T(fgetxattr(tf, "user.tmp", buf, sizeof buf));
    T(fchmod(tf, 0604));
    T(linkat(tf, "", AT_FDCWD, "s/tt/named", AT_EMPTY_PATH));
    T(linkat(tf, "", AT_FDCWD, "s/tt/named", AT_EMPTY_PATH));
    cat("s/tt/named");
    T(fstat(tf, &st)); show_stat("rootfs tmpfile linked", &st);
    snprintf(buf, sizeof buf, "/proc/self/fd/%d", tf);
    T(linkat(AT_FDCWD, buf, AT_FDCWD, "s/tt/second", AT_SYMLINK_FOLLOW));
    stat_path("s/tt/second");
    T(getxattr("s/tt/second", "user.tmp", buf, sizeof buf));
    T(pwrite(tf, "UN", 2, 0));
    cat("s/tt/named");
    T(close(tf));
    tf = T(open("s/tt", O_TMPFILE | O_WRONLY | O_EXCL, 0600));
    T(write(tf, "excl", 4));
    T(linkat(tf, "", AT_FDCWD, "s/tt/excl", AT_EMPTY_PATH));
    snprintf(buf, sizeof buf, "/proc/self/fd/%d", tf);
    int rtf = T(open(buf, O_RDONLY));
    T(read(rtf, lnk, 4));
    T(close(rtf));
    T(linkat(AT_FDCWD, buf, AT_FDCWD, "s/tt/excl", AT_SYMLINK_FOLLOW));
    T(close(tf));
    T(open("s/tt", O_TMPFILE | O_RDONLY, 0600));
    T(open("s/tt/named", O_TMPFILE | O_RDWR, 0600));
    ls("s/tt");
    /* openat2 */
    T(mkdir("s/root", 0755));
    T(mkdir("s/root/in", 0755));
    put("s/root/in/f", "inside");
    T(symlink("/etc", "s/root/abs"));
    T(symlink("../../src", "s/root/up"));
    T(symlink("in/f", "s/root/rel"));
    int rd = T(open("s/root", O_RDONLY | O_DIRECTORY));
    int r;
    r = T(openat2_(rd, "in/f", O_RDONLY, 0)); if (r >= 0) close(r);
    T(openat2_(rd, "../src", O_RDONLY, RESOLVE_BENEATH));
    T(openat2_(rd, "/etc", O_RDONLY, RESOLVE_BENEATH));
    T(openat2_(rd, "abs", O_RDONLY, RESOLVE_BENEATH));
    T(openat2_(rd, "up", O_RDONLY, RESOLVE_BENEATH));
    r = T(openat2_(rd, "rel", O_RDONLY, RESOLVE_BENEATH)); if (r >= 0) close(r);
    r = T(openat2_(rd, "in/../in/f", O_RDONLY, RESOLVE_BENEATH)); if (r >= 0) close(r);
    T(openat2_(rd, "rel", O_RDONLY, RESOLVE_NO_SYMLINKS));
    r = T(openat2_(rd, "/in/f", O_RDONLY, RESOLVE_IN_ROOT)); if (r >= 0) close(r);
    r = T(openat2_(rd, "../../../in/f", O_RDONLY, RESOLVE_IN_ROOT)); if (r >= 0) close(r);
    T(openat2_(rd, "abs", O_RDONLY, RESOLVE_IN_ROOT));
    T(openat2_(rd, "/proc/self/exe", O_RDONLY, RESOLVE_NO_MAGICLINKS));
    T(openat2_(AT_FDCWD, "/proc/self/exe", O_RDONLY, RESOLVE_NO_MAGICLINKS));
    T(openat2_(rd, "in/f", O_RDONLY, 0x1000));
    T(openat2_(rd, "in/f", O_RDONLY | O_CREAT, 0));
    struct open_how how = {.flags = O_RDONLY, .mode = 0644, .resolve = 0};
    T(syscall(SYS_openat2, rd, "in/f", &how, sizeof how));
    T(syscall(SYS_openat2, rd, "in/f", &how, 8));
    T(close(rd));
    /* inotify */
    int in1 = T(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    T(mkdir("s/w", 0755));
    int wd = T(inotify_add_watch(in1, "s/w", IN_CREATE | IN_DELETE | IN_MODIFY | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_CLOSE_WRITE | IN_OPEN));
    T(inotify_add_watch(in1, "s/nope", IN_CREATE));
    T(inotify_add_watch(in1, "s/w", 0));
    int fw = T(open("s/w/a", O_CREAT | O_WRONLY, 0644));
    T(write(fw, "x", 1));
    T(close(fw));
    T(rename("s/w/a", "s/w/b"));
    T(chmod("s/w/b", 0600));
    T(unlink("s/w/b"));
    T(mkdir("s/w/sub", 0755));
    inotify_events(in1);
    T(read(in1, buf, sizeof buf));
    int wd2 = T(inotify_add_watch(in1, "s/src", IN_MODIFY | IN_DELETE_SELF | IN_ATTRIB));
    T(truncate("s/src", 3));
    T(unlink("s/src"));
    inotify_events(in1);
    T(inotify_rm_watch(in1, wd));
    T(inotify_rm_watch(in1, wd));
    T(inotify_rm_watch(in1, wd2));
    inotify_events(in1);
    T(close(in1));
    /* xattrs */
    put("s/x", "x");
    T(setxattr("s/x", "user.one", "1", 1, 0));
    T(setxattr("s/x", "user.one", "2", 1, XATTR_CREATE));
    T(setxattr("s/x", "user.two", "22", 2, XATTR_REPLACE));
    T(getxattr("s/x", "user.one", buf, sizeof buf));
    T(getxattr("s/x", "user.one", NULL, 0));
    T(getxattr("s/x", "user.one", buf, 0));
    T(getxattr("s/x", "user.nope", buf, sizeof buf));
    T(setxattr("s/x", "bogus.ns", "1", 1, 0));
    T(listxattr("s/x", buf, sizeof buf));
    T(removexattr("s/x", "user.one"));
    T(removexattr("s/x", "user.one"));
    T(listxattr("s/x", buf, sizeof buf));
    /* xattrs: limits and errors */
    T(setxattr("s/x", "user.kept", "host", 4, XATTR_REPLACE));
    T(setxattr("s/x", "user.kept", "host", 4, XATTR_CREATE));
    T(setxattr("s/x", "user.kept", "again", 5, XATTR_CREATE));
    T(setxattr("s/x", "user.kept", "host", 4, XATTR_CREATE | XATTR_REPLACE));
    T(getxattr("s/x", "user.kept", buf, 3));
    T(getxattr("s/x", "user.kept", buf, 4)); say("value: %.4s", buf);
    T(listxattr("s/x", buf, 3));
    T(listxattr("s/x", NULL, 0));
    T(listxattr("s/x", buf, sizeof buf)); say("list: %s", buf);
    {
        static char big[65537], name[300];
        memset(big, 'v', sizeof big);
        T(setxattr("s/x", "user.big", big, sizeof big, 0));
        T(setxattr("s/x", "user.mid", big, 3000, 0));
        T(getxattr("s/x", "user.mid", big, sizeof big));
        T(getxattr("s/x", "user.mid", big, 2999));
        T(removexattr("s/x", "user.mid"));
        memset(name, 'n', sizeof name); memcpy(name, "user.", 5); name[256] = 0;
        T(setxattr("s/x", name, "1", 1, 0));
        T(getxattr("s/x", name, buf, sizeof buf));
        name[255] = 0;
        T(setxattr("s/x", name, "1", 1, 0));
        T(getxattr("s/x", name, buf, sizeof buf));
        T(removexattr("s/x", name));
    }
    T(setxattr("s/x", "", "1", 1, 0));
    T(setxattr("s/x", "user.", "1", 1, 0));
    T(setxattr("s/x", "user.f", "1", 1, 4));
    T(getxattr("s/x", "user.", buf, sizeof buf));
    T(setxattr("s/nope", "user.a", "1", 1, 0));
    T(symlink("x", "s/xl"));
    T(lsetxattr("s/xl", "user.a", "1", 1, 0));
    T(lgetxattr("s/xl", "user.a", buf, sizeof buf));
    T(lremovexattr("s/xl", "user.a"));
    T(llistxattr("s/xl", buf, sizeof buf) >= 0);
    T(getxattr("s/xl", "user.kept", buf, sizeof buf));
    T(mkfifo("s/fifo", 0644));
    T(setxattr("s/fifo", "user.a", "1", 1, 0));
    T(getxattr("s/fifo", "user.a", buf, sizeof buf));
    T(unlink("s/fifo"));
    T(setxattr("s", "user.dir", "d", 1, 0));
    T(getxattr("s", "user.dir", buf, sizeof buf));
    T(listxattr("s", buf, sizeof buf)); say("list: %s", buf);
    T(removexattr("s", "user.dir"));
    T(listxattr("s", buf, sizeof buf));
    /* xattrs of a file of the image */
    memset(buf, 0, sizeof buf);
    T(getxattr("/work/prog", "user.moat.image", buf, sizeof buf)); say("value: %s", buf);
    T(listxattr("/work/prog", buf, sizeof buf)); say("list: %s", buf);
    T(chmod("/work/prog", 0755));   /* the overlay copies it up, xattrs too */
    memset(buf, 0, sizeof buf);
    T(getxattr("/work/prog", "user.moat.image", buf, sizeof buf)); say("value: %s", buf);
    T(setxattr("/work/prog", "user.moat.image", "changed", 7, XATTR_CREATE));
    T(setxattr("/work/prog", "user.moat.image", "changed", 7, XATTR_REPLACE));
    T(setxattr("/work/prog", "user.moat.more", "m", 1, 0));
    memset(buf, 0, sizeof buf);
    T(getxattr("/work/prog", "user.moat.image", buf, sizeof buf)); say("value: %s", buf);
    T(listxattr("/work/prog", NULL, 0));
    T(removexattr("/work/prog", "user.moat.image"));
    T(getxattr("/work/prog", "user.moat.image", buf, sizeof buf));
    T(removexattr("/work/prog", "user.moat.more"));
    T(listxattr("/work/prog", buf, sizeof buf));
    /* mounts inside: tmpfs, EXDEV, bind */
    T(mkdir("s/mnt", 0755));
    T(mount("tmpfs", "s/mnt", "tmpfs", 0, "size=1m"));
    put("s/mnt/t", "t");
    T(rename("s/mnt/t", "s/t"));
    T(link("s/mnt/t", "s/t"));
    T(rename("s/x", "s/mnt/x"));
    T(rmdir("s/mnt"));
    T(mkdir("s/b", 0755));
    T(mount("s/mnt", "s/b", NULL, MS_BIND, NULL));
    cat("s/b/t");
    T(umount("s/mnt"));
    T(umount2("s/b", 0));
    T(umount("s/mnt"));
    ls("s/mnt");
    T(umount("s/x"));
    T(mount("tmpfs", "s/nope", "tmpfs", 0, NULL));
    T(mount("x", "s/mnt", "nosuchfs", 0, NULL));
    ls("s");
    ls("/tmp/tt");
    return 0;
}
