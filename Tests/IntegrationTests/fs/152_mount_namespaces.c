/* Mount namespaces with a tree of their own (session 20, Moat issue 15):
 * unshare(CLONE_NEWNS) and clone(CLONE_NEWNS) copy the caller's mounts, a
 * mount or unmount in one namespace is invisible in the other unless it
 * propagates (a copy of a shared mount is its peer), files stay one set
 * (an unlink in one shows in the other), /proc/PID/ns/mnt and setns into
 * another's namespace, recursive bind mounts, and what unshare -rm does: a
 * user namespace's root mounts tmpfs in its own mount namespace, while
 * the mounts it copied are locked (no unmount alone, no clearing their
 * flags) and sysfs/proc stay refused.
 *
 * Like fs/149 the program first gives its chroot back (a new user
 * namespace is refused to a chrooted process), keeping its work directory
 * by fd; it names nothing outside that directory afterwards. Mountinfo
 * lines are shown only for mounts under its own directory, sorted, with
 * propagation shown as a kind (no group numbers, no ids). */
#include "t.h"
#include <signal.h>

static int proc, work;
static char cwd[4096];

static int wait_child(pid_t p) {
    int st;
    if (waitpid(p, &st, 0) != p) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Whether `p` is the root of a mount (its device differs from its parent's). */
static void mounted(const char *who, const char *p) {
    char up[512];
    struct stat a, b;
    snprintf(up, sizeof up, "%s/..", p);
    if (stat(p, &a) != 0) { say("%s: %s: %s", who, p, ename(errno)); return; }
    if (stat(up, &b) != 0) { say("%s: %s/..: %s", who, p, ename(errno)); return; }
    say("%s: %s %s", who, p, a.st_dev != b.st_dev ? "mounted" : "not mounted");
}

static void exists(const char *who, const char *p) {
    say("%s: %s %s", who, p, access(p, F_OK) == 0 ? "exists" : ename(errno));
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The mountinfo lines of mounts at or below m152: place, type, options,
 * propagation kind. */
static void show_mounts(const char *who) {
    static char buf[1 << 16];
    int fd = openat(proc, "self/mountinfo", O_RDONLY);
    size_t n = 0;
    ssize_t r;
    while (fd >= 0 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0) n += r;
    if (fd >= 0) close(fd);
    buf[n] = 0;
    char *lines[128];
    int count = 0;
    for (char *l = strtok(buf, "\n"); l && count < 128; l = strtok(NULL, "\n")) {
        char *f[7] = {0};
        char *s = l;
        for (int i = 0; i < 6; i++) { f[i] = s; s = strchr(s, ' '); if (!s) break; *s++ = 0; }
        if (!s) continue;
        char *at = strstr(f[4], "/m152");
        if (!at || (at[5] != 0 && at[5] != '/')) continue;
        /* The optional fields end at " - " (right away when there are none). */
        char *dash = strncmp(s, "- ", 2) == 0 ? s - 1 : strstr(s, " - ");
        if (!dash) continue;
        if (dash >= s) *dash = 0; else s = "";
        const char *kind = strstr(s, "shared:") ? (strstr(s, "master:") ? "shared+slave" : "shared")
                         : strstr(s, "master:") ? "slave" : strstr(s, "unbindable") ? "unbindable" : "private";
        char *type = dash + 3, *sp = strchr(type, ' ');
        if (sp) *sp = 0;
        char *line = malloc(512);
        snprintf(line, 512, "%s %s %s %s", at + 1, type, f[5], kind);
        lines[count++] = line;
    }
    qsort(lines, count, sizeof lines[0], cmp);
    say("%s: %d mounts", who, count);
    for (int i = 0; i < count; i++) { say("  %s", lines[i]); free(lines[i]); }
}

static void nslink(char *out, size_t len, const char *rel) {
    ssize_t n = readlinkat(proc, rel, out, len - 1);
    out[n < 0 ? 0 : n] = 0;
}

static void step(int fd) { char c = 1; if (write(fd, &c, 1) != 1) say("step: write failed"); }
static void await(int fd) { char c; if (read(fd, &c, 1) != 1) say("await: read failed"); }

/* A child in a new mount namespace beside its parent. */
static void unshared_child(void) {
    say("-- unshare(CLONE_NEWNS)");
    char mine[128], theirs[128];
    nslink(mine, sizeof mine, "self/ns/mnt");
    int go[2], back[2];
    if (pipe(go) || pipe(back)) return;
    pid_t p = fork();
    if (p == 0) {
        T(unshare(CLONE_NEWNS));
        nslink(theirs, sizeof theirs, "self/ns/mnt");
        say("child: ns/mnt %s", strcmp(mine, theirs) ? "differs" : "same");
        say("child: ns/mnt is mnt:[...]: %s", strncmp(theirs, "mnt:[", 5) == 0 ? "yes" : theirs);
        mounted("child", "m152/s");
        T(mount("none", "m152/a", "tmpfs", 0, NULL));            /* private parent: stays here */
        put("m152/a/childfile", "c\n");
        T(mount("none", "m152/s/y", "tmpfs", 0, NULL));          /* shared: the parent gets it */
        T(unlink("m152/gone"));                                   /* one set of files */
        T(umount("m152/s/w"));                                    /* the parent keeps its own */
        show_mounts("child");
        step(back[1]);
        await(go[0]);
        mounted("child", "m152/s/x");                             /* the parent's, propagated */
        exists("child", "m152/s/x/parentfile");
        T(mount(NULL, "m152/s", NULL, MS_PRIVATE, NULL));
        step(back[1]);
        await(go[0]);
        mounted("child", "m152/s/z");                             /* after MS_PRIVATE: not */
        step(back[1]);
        await(go[0]);                                              /* the setns test ran */
        _exit(0);
    }
    await(back[0]);
    mounted("parent", "m152/a");
    exists("parent", "m152/a/childfile");
    mounted("parent", "m152/s/y");
    exists("parent", "m152/gone");
    mounted("parent", "m152/s/w");
    T(mount("none", "m152/s/x", "tmpfs", 0, NULL));
    put("m152/s/x/parentfile", "p\n");
    step(go[1]);
    await(back[0]);
    T(mount("none", "m152/s/z", "tmpfs", 0, NULL));
    step(go[1]);
    await(back[0]);
    /* setns into the child's namespace: root and cwd at its root. */
    char rel[64];
    snprintf(rel, sizeof rel, "%d/ns/mnt", p);
    int nsfd = openat(proc, rel, O_RDONLY);
    say("open %s: %s", "child's ns/mnt", nsfd >= 0 ? "ok" : ename(errno));
    pid_t g = fork();
    if (g == 0) {
        T(setns(nsfd, CLONE_NEWNS));
        char now[4096];
        say("after setns cwd is /: %s", getcwd(now, sizeof now) && strcmp(now, "/") == 0 ? "yes" : now);
        T(chdir(cwd));
        mounted("joined", "m152/a");
        exists("joined", "m152/a/childfile");
        mounted("joined", "m152/s/w");
        _exit(0);
    }
    say("setns child: %d", wait_child(g));
    T(setns(nsfd, CLONE_NEWIPC));                                 /* wrong type */
    close(nsfd);
    step(go[1]);
    say("child: %d", wait_child(p));
    show_mounts("parent");
}

/* clone(CLONE_NEWNS) and CLONE_NEWNS|CLONE_FS. */
static void cloned_child(void) {
    say("-- clone(CLONE_NEWNS)");
    long r = syscall(SYS_clone, CLONE_NEWNS | CLONE_FS | SIGCHLD, 0, 0, 0, 0);
    say("clone(CLONE_NEWNS|CLONE_FS) = %ld %s", r, r < 0 ? ename(errno) : "");
    pid_t p = syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);
    if (p == 0) {
        T(mount("none", "m152/b", "tmpfs", 0, NULL));
        mounted("clone child", "m152/b");
        mounted("clone child", "m152/s/x");
        _exit(0);
    }
    say("clone child: %d", wait_child(p));
    mounted("parent", "m152/b");
}

/* MS_BIND with and without MS_REC. */
static void recursive_bind(void) {
    say("-- bind mounts");
    T(mount("m152/s", "m152/a", NULL, MS_BIND | MS_REC, NULL));
    mounted("rec bind", "m152/a/x");
    mounted("rec bind", "m152/a/y");
    exists("rec bind", "m152/a/x/parentfile");
    T(mount("m152/s", "m152/b", NULL, MS_BIND, NULL));
    mounted("bind", "m152/b/x");
    show_mounts("binds");
    T(umount2("m152/a", MNT_DETACH));
    T(umount("m152/b"));
}

/* unshare -rm: a user namespace's root in a mount namespace of its own. */
static void user_namespace_root(void) {
    say("-- unshare(CLONE_NEWUSER|CLONE_NEWNS)");
    pid_t p = fork();
    if (p == 0) {
        T(unshare(CLONE_NEWUSER | CLONE_NEWNS));
        int fd = openat(proc, "self/uid_map", O_WRONLY);
        say("uid_map: %s", fd >= 0 && write(fd, "0 0 1", 5) == 5 ? "written" : ename(errno));
        close(fd);
        fd = openat(proc, "self/setgroups", O_WRONLY);
        say("setgroups: %s", fd >= 0 && write(fd, "deny", 4) == 4 ? "written" : ename(errno));
        close(fd);
        fd = openat(proc, "self/gid_map", O_WRONLY);
        say("gid_map: %s", fd >= 0 && write(fd, "0 0 1", 5) == 5 ? "written" : ename(errno));
        close(fd);
        T(mount("none", "m152/b", "tmpfs", 0, "mode=700"));
        T(mkdir("m152/b/dir", 0755));
        put("m152/b/dir/file", "x\n");
        exists("userns", "m152/b/dir/file");
        T(mount("m152/b/dir", "m152/a", NULL, MS_BIND, NULL));
        exists("userns", "m152/a/file");
        T(umount("m152/s"));                                       /* locked */
        T(umount2("m152/s", MNT_DETACH));
        T(mount(NULL, "m152/s", NULL, MS_REMOUNT | MS_BIND, NULL));      /* clears nosuid */
        T(mount(NULL, "m152/s", NULL, MS_REMOUNT | MS_BIND | MS_NOSUID, NULL));
        T(mount(NULL, "m152/s", NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_RDONLY, NULL));
        T(mount(NULL, "m152/s", NULL, MS_REMOUNT | MS_BIND | MS_NOSUID, NULL));
        T(mount("m152/s", "m152/s/z", NULL, MS_MOVE, NULL));
        T(mount("none", "m152/c", "sysfs", 0, NULL));
        T(mount("none", "m152/c", "proc", 0, NULL));
        T(mount(NULL, "m152/b", NULL, MS_PRIVATE, NULL));
        show_mounts("userns");
        T(umount("m152/a"));
        T(umount("m152/b"));
        _exit(0);
    }
    say("userns child: %d", wait_child(p));
    mounted("parent", "m152/b");
    /* Without a mount namespace of its own, a user namespace's root may not mount. */
    p = fork();
    if (p == 0) {
        T(unshare(CLONE_NEWUSER));
        T(mount("none", "m152/b", "tmpfs", 0, NULL));
        T(umount("m152/s"));
        _exit(0);
    }
    say("userns without mntns child: %d", wait_child(p));
}

int main(void) {
    proc = open("/proc", O_RDONLY | O_DIRECTORY);
    work = open(".", O_RDONLY | O_DIRECTORY);
    mkdir("jail152", 0755);
    if (chroot("jail152") != 0) { say("chroot: %s", ename(errno)); return 1; }
    for (int i = 0; i < 64; i++) chdir("..");
    chroot(".");
    fchdir(work);
    rmdir("jail152");
    if (!getcwd(cwd, sizeof cwd)) return 1;
    mkdir("m152", 0755);
    T(mount("none", "m152", "tmpfs", 0, "mode=755"));
    T(mount(NULL, "m152", NULL, MS_PRIVATE, NULL));
    for (const char *d = "abcs"; *d; d++) { char p[16]; snprintf(p, sizeof p, "m152/%c", *d); mkdir(p, 0755); }
    put("m152/gone", "g\n");
    T(mount("none", "m152/s", "tmpfs", MS_NOSUID, NULL));
    T(mount(NULL, "m152/s", NULL, MS_SHARED, NULL));
    for (const char *d = "wxyz"; *d; d++) { char p[16]; snprintf(p, sizeof p, "m152/s/%c", *d); mkdir(p, 0755); }
    T(mount("none", "m152/s/w", "tmpfs", 0, NULL));
    show_mounts("start");
    unshared_child();
    cloned_child();
    recursive_bind();
    user_namespace_root();
    T(umount2("m152", MNT_DETACH));
    rmdir("m152");
    return 0;
}
