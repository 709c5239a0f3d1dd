/* Permission checks as an unprivileged user: EACCES/EPERM from open,
 * creation, removal, search, chmod/chown, utimes, the sticky bit. */
#include "t.h"
#include <grp.h>
#include <sys/sysmacros.h>

int main(void) {
    struct stat st;
    T(mkdir("p", 0755));
    T(mkdir("p/open", 0777));
    T(mkdir("p/closed", 0700));
    T(mkdir("p/noexec", 0766));
    T(mkdir("p/sticky", 01777));
    T(mkdir("p/mine", 0755));
    T(chown("p/mine", 1000, 1000));
    put("p/closed/secret", "s");
    put("p/noexec/f", "n");
    put("p/ro", "r"); T(chmod("p/ro", 0444));
    put("p/none", "x"); T(chmod("p/none", 0000));
    put("p/grp", "g"); T(chown("p/grp", 0, 1000)); T(chmod("p/grp", 0060));
    put("p/other", "o"); T(chmod("p/other", 0606));
    put("p/exe", "#!/bin/sh\n"); T(chmod("p/exe", 0744));
    put("p/sticky/rootfile", "r"); T(chmod("p/sticky/rootfile", 0666));
    T(setgroups(0, NULL));
    T(setgid(1000));
    T(setuid(1000));
    T(geteuid());
    /* open */
    T(open("p/ro", O_RDONLY) >= 0);
    T(open("p/ro", O_WRONLY));
    T(open("p/ro", O_RDWR));
    T(open("p/none", O_RDONLY));
    T(open("p/grp", O_RDWR) >= 0);
    T(open("p/other", O_RDWR));
    T(open("p/closed/secret", O_RDONLY));
    T(stat("p/closed/secret", &st));
    T(open("p/noexec/f", O_RDONLY));
    T(access("p/ro", W_OK));
    T(access("p/exe", X_OK));
    T(access("p/closed", R_OK));
    T(access("p/closed/secret", F_OK));
    T(open("p/ro", O_RDONLY | O_TRUNC));
    T(truncate("p/ro", 0));
    T(open("p/closed", O_RDONLY));
    T(opendir("p/noexec") != NULL);
    T(chdir("p/closed"));
    T(chdir("p/noexec"));
    /* creation and removal */
    T(open("p/newfile", O_CREAT | O_RDWR, 0644));
    T(mkdir("p/newdir", 0755));
    T(open("p/open/mine", O_CREAT | O_RDWR, 0644) >= 0);
    T(mkdir("p/open/d", 0755));
    T(symlink("x", "p/sl"));
    T(link("p/ro", "p/open/hl"));
    T(unlink("p/ro"));
    T(rename("p/ro", "p/open/ro"));
    T(rename("p/open/mine", "p/open/mine2"));
    T(rmdir("p/closed"));
    T(mknod("p/open/fifo", S_IFIFO | 0600, 0));
    T(mknod("p/open/chr", S_IFCHR | 0600, makedev(1, 3)));
    /* sticky directory */
    T(unlink("p/sticky/rootfile"));
    T(rename("p/sticky/rootfile", "p/sticky/x"));
    T(open("p/sticky/minefile", O_CREAT | O_RDWR, 0644) >= 0);
    T(unlink("p/sticky/minefile"));
    /* attributes */
    T(chmod("p/ro", 0777));
    T(chmod("p/mine", 0700)); stat_path("p/mine");
    T(chmod("p/mine", 02755)); stat_path("p/mine");
    T(chown("p/mine", 0, 0));
    T(chown("p/mine", 1000, 1000));
    T(chown("p/mine", -1, 0));
    T(chown("p/open/mine2", -1, 1000));
    T(utimensat(AT_FDCWD, "p/ro", NULL, 0));
    T(utimensat(AT_FDCWD, "p/other", NULL, 0));
    struct timespec ts[2] = {{1, 0}, {2, 0}};
    T(utimensat(AT_FDCWD, "p/other", ts, 0));
    T(utimensat(AT_FDCWD, "p/mine", ts, 0));
    /* a file I create in a setgid directory (created as root earlier? no: mine) */
    T(mkdir("p/mine/sub", 0777)); stat_path("p/mine/sub");
    T(umask(0));
    T(open("p/mine/f", O_CREAT | O_RDWR, 06777) >= 0); stat_path("p/mine/f");
    T(chroot("p"));
    T(mount("none", "p/mine", "tmpfs", 0, NULL));
    T(sethostname("x", 1));
    return 0;
}
