/* Removing names, edge cases the merged rerun of gVisor's programs found
 * (session 20): rmdir of the root is EBUSY and unlink of it EISDIR; an
 * empty path is ENOENT even when dirfd is a file; and in a sticky directory
 * a rename is a removal too: another user's file may be neither renamed
 * away nor replaced, while the owner's own file may. */
#include "t.h"

int main(void) {
    T(unlinkat(AT_FDCWD, "/", AT_REMOVEDIR));
    T(unlinkat(AT_FDCWD, "//", AT_REMOVEDIR));
    T(unlinkat(AT_FDCWD, "/", 0));
    T(rmdir("/"));
    T(mkdir("/tmp/fs159", 0777));
    int fd = T(open("/tmp/fs159/file", O_CREAT | O_RDWR, 0644));
    T(unlinkat(fd, "", 0));
    int dfd = T(open("/tmp/fs159", O_DIRECTORY | O_RDONLY));
    T(unlinkat(dfd, "", AT_REMOVEDIR));
    T(close(fd));
    T(unlink("/tmp/fs159/file"));

    T(mkdir("/tmp/fs159/sticky", 0777));
    T(chmod("/tmp/fs159/sticky", 01777));
    T(mkdir("/tmp/fs159/open", 0777));
    T(chmod("/tmp/fs159/open", 0777));
    T(close(T(open("/tmp/fs159/sticky/roots", O_CREAT | O_RDWR, 0666))));
    T(close(T(open("/tmp/fs159/sticky/victim", O_CREAT | O_RDWR, 0666))));
    T(symlink("xyz", "/tmp/fs159/sticky/link"));
    T(mkdir("/tmp/fs159/sticky/dir", 0777));
    pid_t c = fork();
    if (c == 0) {
        if (syscall(SYS_setresgid, 65534, 65534, 65534) || syscall(SYS_setresuid, 65534, 65534, 65534)) _exit(9);
        T(rename("/tmp/fs159/sticky/roots", "/tmp/fs159/sticky/roots2"));
        T(rename("/tmp/fs159/sticky/roots", "/tmp/fs159/open/roots"));
        T(unlink("/tmp/fs159/sticky/roots"));
        T(unlink("/tmp/fs159/sticky/link"));
        T(rmdir("/tmp/fs159/sticky/dir"));
        T(close(T(open("/tmp/fs159/open/attacker", O_CREAT | O_RDWR, 0666))));
        T(rename("/tmp/fs159/open/attacker", "/tmp/fs159/sticky/victim"));
        T(access("/tmp/fs159/open/attacker", F_OK));
        T(close(T(open("/tmp/fs159/sticky/mine", O_CREAT | O_RDWR, 0666))));
        T(rename("/tmp/fs159/sticky/mine", "/tmp/fs159/sticky/mine2"));
        T(rename("/tmp/fs159/open/attacker", "/tmp/fs159/sticky/mine2"));
        T(renameat2(AT_FDCWD, "/tmp/fs159/sticky/mine2", AT_FDCWD, "/tmp/fs159/sticky/victim", RENAME_EXCHANGE));
        T(unlink("/tmp/fs159/sticky/mine2"));
        _exit(0);
    }
    int st;
    T(waitpid(c, &st, 0) == c);
    printf("child exit %d\n", WEXITSTATUS(st));
    T(access("/tmp/fs159/sticky/roots", F_OK));
    T(access("/tmp/fs159/sticky/victim", F_OK));
    T(unlink("/tmp/fs159/sticky/roots"));
    T(unlink("/tmp/fs159/sticky/victim"));
    T(unlink("/tmp/fs159/sticky/link"));
    T(rmdir("/tmp/fs159/sticky/dir"));
    T(rmdir("/tmp/fs159/sticky"));
    T(rmdir("/tmp/fs159/open"));
    T(rmdir("/tmp/fs159"));
    return 0;
}
