/* Device nodes on a tmpfs (LTP mknod01, setxattr02) and what a fresh tmpfs
 * reports to statfs (LTP sendfile09 asks for 5 GB free in /tmp). As root:
 * mknod makes character and block nodes with the device number asked for;
 * a character node with the number of mem's null or zero opens that
 * device; an unknown character number and a block node open nothing
 * (ENXIO); user.* attributes stay off special files (EPERM); without
 * CAP_MKNOD (a child that became nobody) a device node is EPERM while a
 * FIFO is still made. statfs of a tmpfs mounted without size=: half the
 * RAM (as sysinfo reports it), all free. */
#include "t.h"
#include <sys/statfs.h>
#include <sys/sysinfo.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

static void nobody(void) {
    if (setgid(65534) || setuid(65534)) { say("setuid nobody failed"); return; }
    T(mknod("d/chr-nobody", S_IFCHR | 0600, makedev(1, 3)));
    T(mknod("d/blk-nobody", S_IFBLK | 0600, makedev(240, 7)));
    T(mknod("d/fifo-nobody", S_IFIFO | 0600, 0));
}

static void node(const char *p) {
    struct stat st;
    if (lstat(p, &st) != 0) { say("lstat(%s) = -1 %s", p, ename(errno)); return; }
    show_stat(p, &st);
    say("%s: rdev %u:%u", p, major(st.st_rdev), minor(st.st_rdev));
}

int main(void) {
    umask(0);
    T(mkdir("d", 0777));
    T(mount("tmpfs", "d", "tmpfs", 0, NULL));

    struct statfs sf;
    struct sysinfo si;
    T(statfs("d", &sf));
    T(sysinfo(&si));
    unsigned long long half = (unsigned long long)si.totalram * si.mem_unit / 2 / 4096;
    say("tmpfs statfs: magic %lx, bsize %ld, blocks = half the RAM %d, free = blocks %d, avail = blocks %d",
        (unsigned long)sf.f_type, (long)sf.f_bsize, (unsigned long long)sf.f_blocks == half,
        sf.f_bfree == sf.f_blocks, sf.f_bavail == sf.f_blocks);

    T(mknod("d/reg", S_IFREG | 0777, 0));
    T(mknod("d/fifo", S_IFIFO | 0777, 0));
    T(mknod("d/null", S_IFCHR | 0666, makedev(1, 3)));
    T(mknod("d/zero", S_IFCHR | 0666, makedev(1, 5)));
    T(mknod("d/nodev", S_IFCHR | 0666, makedev(240, 300)));
    T(mknod("d/blk", S_IFBLK | 0660, makedev(240, 7)));
    T(mknod("d/blk0", S_IFBLK | 0660, 0));
    T(mknod("d/null", S_IFCHR | 0666, makedev(1, 3)));
    T(mknod("d/suid", S_IFREG | 06700, 0));
    node("d/null"); node("d/zero"); node("d/nodev"); node("d/blk"); node("d/blk0"); node("d/suid");
    ls("d");

    char buf[8] = "xxxxxxx";
    int fd = T(open("d/null", O_RDWR));
    T(read(fd, buf, sizeof buf));
    T(write(fd, "abc", 3));
    T(close(fd));
    fd = T(open("d/zero", O_RDONLY));
    T(read(fd, buf, sizeof buf));
    say("zero read: %d %d", buf[0], buf[7]);
    T(close(fd));
    T(open("d/nodev", O_RDONLY));
    T(open("d/blk", O_RDONLY));
    T(open("d/blk0", O_RDWR));
    fd = T(open("d/nodev", O_PATH));
    T(close(fd));

    T(setxattr("d/reg", "user.k", "v", 1, XATTR_CREATE));
    T(setxattr("d/fifo", "user.k", "v", 1, XATTR_CREATE));
    T(setxattr("d/null", "user.k", "v", 1, XATTR_CREATE));
    T(setxattr("d/blk", "user.k", "v", 1, XATTR_CREATE));
    T(getxattr("d/null", "user.k", buf, sizeof buf));

    T(chmod("d/nodev", 0600));
    T(rename("d/nodev", "d/renamed"));
    node("d/renamed");
    T(link("d/null", "d/null2"));
    node("d/null2");

    in_child("nobody", nobody);
    ls("d");
    T(mknod("d/bad", S_IFMT, 0));
    T(mknod("d/nonexistent/x", S_IFCHR | 0600, makedev(1, 3)));

    T(umount("d"));
    T(rmdir("d"));
    return 0;
}
