/* umount2 of a mount still in use: a process's cwd on it, an open file of
 * it, a mount below it: EBUSY, unless MNT_DETACH, which takes the mounts
 * below along; MNT_EXPIRE's two steps; the flag and path errors. The escape
 * suite's random calls once unmounted /tmp under its own processes' feet
 * (Linux refuses that without MNT_DETACH). */
#include "t.h"
#include <signal.h>

static void exists(const char *p) {
    struct stat st;
    say("%s: %s", p, stat(p, &st) == 0 ? "exists" : ename(errno));
}

int main(void) {
    T(mkdir("m", 0755));
    T(mount("tmpfs", "m", "tmpfs", 0, NULL));
    put("m/f", "f");

    /* the caller's own cwd on it */
    T(chdir("m"));
    T(umount2("../m", 0));
    T(chdir(".."));

    /* an open file of it */
    int fd = T(open("m/f", O_RDONLY));
    T(umount("m"));
    T(close(fd));

    /* another process's cwd on it */
    int go[2];
    T(pipe(go));
    pid_t c = fork();
    if (c == 0) {
        if (chdir("m") != 0) _exit(1);
        (void)!write(go[1], "x", 1);
        for (;;) pause();
    }
    char b;
    T(read(go[0], &b, 1));
    T(umount("m"));
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);

    /* a mount below it; MNT_DETACH takes both */
    T(mkdir("m/n", 0755));
    T(mount("tmpfs", "m/n", "tmpfs", 0, NULL));
    put("m/n/g", "g");
    T(umount("m"));
    exists("m/n/g");
    T(umount2("m", MNT_DETACH));
    exists("m/f");
    exists("m/n");

    /* MNT_EXPIRE: marked by the first call, unmounted by the second */
    T(mount("tmpfs", "m", "tmpfs", 0, NULL));
    T(umount2("m", MNT_EXPIRE | MNT_DETACH));
    T(umount2("m", MNT_EXPIRE | MNT_FORCE));
    T(umount2("m", MNT_EXPIRE));
    T(umount2("m", MNT_EXPIRE));
    exists("m/f");

    /* errors: flags, a directory that is no mount, a missing path, a
       symlink with UMOUNT_NOFOLLOW */
    T(mount("tmpfs", "m", "tmpfs", 0, NULL));
    T(umount2("m", 0x10));
    T(umount2("/work", 0));
    T(umount2("nope", 0));
    T(symlink("m", "l"));
    T(umount2("l", UMOUNT_NOFOLLOW));
    T(umount2("l", 0));
    exists("m/f");
    T(unlink("l"));
    T(rmdir("m"));
    return 0;
}
