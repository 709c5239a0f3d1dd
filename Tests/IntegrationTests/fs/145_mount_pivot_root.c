/* mount(2), umount2(2) and pivot_root(2) on the sandbox's own mount tree:
 * the topmost mount at a path ("." in a directory with mounts stacked on it),
 * noexec (mmap, mprotect, execve), tmpfs's mode option, propagation types
 * and their events between peers, a bind mount's root, MS_MOVE, and
 * pivot_root's checks, its move of the old root and the "." "." form. */
#include "t.h"

static int tmpfs(const char *dir, unsigned long flags, const char *data) {
    return mount("", dir, "tmpfs", flags, data);
}

/* The optional fields of the mountinfo lines for `mp` ("shared" when the
 * line has a shared:N field, "master" for master:N), one word per line. */
static void optionals(const char *label, const char *mp) {
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char line[1024];
    printf("%s:", label);
    while (f && fgets(line, sizeof line, f)) {
        char point[512];
        if (sscanf(line, "%*d %*d %*s %*s %511s", point) != 1 || strcmp(point, mp) != 0) continue;
        printf(" [%s%s%s]", strstr(line, " shared:") ? "shared" : "", strstr(line, " master:") ? " master" : "",
               strstr(line, " unbindable") ? " unbindable" : "");
    }
    printf("\n");
    if (f) fclose(f);
}

/* The mountinfo root field of the last mount on `mp`. */
static void rootfield(const char *mp) {
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char line[1024], root[512] = "?", point[512];
    while (f && fgets(line, sizeof line, f)) {
        char r[512];
        if (sscanf(line, "%*d %*d %*s %511s %511s", r, point) == 2 && strcmp(point, mp) == 0) strcpy(root, r);
    }
    printf("root of %s: %s\n", mp, root);
    if (f) fclose(f);
}

static void stacked(void) {
    struct stat before, after;
    T(mkdir("/m/s", 0755));
    T(chdir("/m/s"));
    stat(".", &before);
    T(tmpfs("/m/s", 0, "mode=0700"));
    T(tmpfs("/m/s", 0, "mode=0700"));
    T(umount2(".", MNT_DETACH));
    T(umount2(".", MNT_DETACH));
    stat(".", &after);
    printf("back on the directory: %d\n", before.st_dev == after.st_dev && before.st_ino == after.st_ino);
    T(umount2(".", MNT_DETACH));
    T(chdir("/"));
}

static void noexec(void) {
    T(mkdir("/m/nx", 0755));
    T(tmpfs("/m/nx", MS_NOEXEC, "mode=0777"));
    struct stat st;
    stat("/m/nx", &st);
    printf("mode=0777 root: %o\n", st.st_mode);
    int fd = open("/m/nx/f", O_RDWR | O_CREAT, 0755);
    T(write(fd, "#!/bin/sh\nexit 3\n", 17));
    void *p = mmap(0, 4096, PROT_EXEC, MAP_PRIVATE, fd, 0);
    printf("mmap PROT_EXEC: %s\n", p == MAP_FAILED ? ename(errno) : "mapped");
    p = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    printf("mmap PROT_READ|PROT_WRITE: %s\n", p == MAP_FAILED ? ename(errno) : "mapped");
    T(mprotect(p, 4096, PROT_READ | PROT_EXEC));
    T(munmap(p, 4096));
    close(fd);
    pid_t c = fork();
    if (c == 0) {
        char *argv[] = {"/m/nx/f", NULL};
        execv(argv[0], argv);
        printf("execve on noexec: %s\n", ename(errno));
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    FILE *f = fopen("/proc/self/mounts", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, " /m/nx ")) printf("mounts: noexec %d mode=777 %d\n", strstr(line, "noexec") != NULL, strstr(line, "mode=777") != NULL);
    if (f) fclose(f);
    T(umount("/m/nx"));
}

static void propagation(void) {
    T(mkdir("/m/a", 0755));
    T(mkdir("/m/b", 0755));
    T(tmpfs("/m/a", 0, ""));
    T(mkdir("/m/a/child", 0755));
    T(mount("", "/m/a", "", MS_SHARED | MS_PRIVATE, 0));
    T(mount("", "/m/a/child", "", MS_SHARED, 0));
    T(mount("", "/m/a", "", MS_SHARED, 0));
    T(mount("/m/a", "/m/b", "", MS_BIND, 0));
    optionals("a", "/m/a");
    optionals("b", "/m/b");
    /* A mount under a shared mount appears under its peer too. */
    T(tmpfs("/m/a/child", 0, ""));
    optionals("a/child", "/m/a/child");
    optionals("b/child", "/m/b/child");
    T(mount("", "/m/b/child", "", MS_PRIVATE, 0));
    optionals("b/child private", "/m/b/child");
    T(umount2("/m/b/child", MNT_DETACH));
    optionals("a/child after", "/m/a/child");
    T(umount2("/m/a/child", MNT_DETACH));
    T(mount("", "/m/b", "", MS_SLAVE, 0));
    optionals("b slave", "/m/b");
    T(mount("", "/m/b", "", MS_UNBINDABLE, 0));
    optionals("b unbindable", "/m/b");
    T(mount("/m/b", "/m/a/child", "", MS_BIND, 0));
    T(umount2("/m/b", MNT_DETACH));
    /* A bind mount's root is the directory it shows. */
    T(mkdir("/m/a/sub", 0755));
    T(mount("/m/a/sub", "/m/a/sub", "", MS_BIND, 0));
    rootfield("/m/a/sub");
    T(umount2("/m/a/sub", MNT_DETACH));
    /* MS_MOVE: a mount's root moves with what is in it. */
    T(mkdir("/m/c", 0755));
    T(tmpfs("/m/c", 0, ""));
    T(close(open("/m/c/foo", O_CREAT | O_RDWR, 0644)));
    T(mkdir("/m/d", 0755));
    T(mount("/m/c", "/m/d", "", MS_MOVE, 0));
    T(access("/m/c/foo", F_OK));
    T(access("/m/d/foo", F_OK));
    T(mount("/m/d/nothere", "/m/c", "", MS_MOVE, 0));
    T(mount("/m/c", "/m/d", "", MS_MOVE, 0));
    T(umount("/m/d"));
    T(umount2("/m/a", MNT_DETACH));
}

static void pivot(void) {
    T(mkdir("/m/root", 0755));
    T(tmpfs("/m/root", 0, "mode=0700"));
    T(mkdir("/m/root/new", 0755));
    T(tmpfs("/m/root/new", 0, "mode=0700"));
    T(mkdir("/m/root/new/old", 0755));
    T(close(open("/m/root/new/file", O_CREAT | O_RDWR, 0644)));
    T(mkdir("/m/root/plain", 0755));
    T(mkdir("/m/root/plain/old", 0755));
    T(syscall(SYS_pivot_root, "/m/root/nothere", "/m/root/new/old"));
    T(syscall(SYS_pivot_root, "/m/root/new/file", "/m/root/new/old"));
    pid_t c = fork();
    if (c == 0) {
        T(chroot("/m/root"));
        T(syscall(SYS_pivot_root, "/plain", "/plain/old"));       /* on the root mount: EBUSY */
        T(syscall(SYS_pivot_root, "/new", "/plain/old"));         /* put_old not under new_root */
        T(syscall(SYS_pivot_root, "/new", "/new/old"));
        T(chdir("/"));
        T(access("/file", F_OK));
        T(access("/new", F_OK));
        T(access("/old/plain", F_OK));
        char buf[256];
        printf("getcwd: %s\n", getcwd(buf, sizeof buf));
        struct stat a, b;
        stat("/", &a); stat("/..", &b);
        printf("/ and /.. alike: %d\n", a.st_ino == b.st_ino && a.st_dev == b.st_dev);
        T(umount2("/old", MNT_DETACH));
        T(access("/old/plain", F_OK));
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    /* The "." "." form: the old root stacks on the new one. */
    T(mkdir("/m/r2", 0755));
    T(tmpfs("/m/r2", 0, ""));
    T(mkdir("/m/r2/new", 0755));
    T(tmpfs("/m/r2/new", 0, ""));
    T(close(open("/m/r2/new/here", O_CREAT | O_RDWR, 0644)));
    c = fork();
    if (c == 0) {
        T(chroot("/m/r2"));
        T(chdir("/new"));
        T(syscall(SYS_pivot_root, ".", "."));
        T(umount2(".", MNT_DETACH));
        T(access("here", F_OK));
        T(access("/here", F_OK));
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, NULL, 0);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    T(mkdir("/m", 0755));
    T(tmpfs("/m", 0, ""));
    stacked();
    noexec();
    propagation();
    pivot();
    T(umount2("/m", MNT_DETACH));
    return 0;
}
