/* Helpers of the namespace programs (fs/111, fs/112, fs/130, fs/131), after t.h. */
#include <linux/nsfs.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>

static long raw_clone(unsigned long flags) { return syscall(SYS_clone, flags, NULL, NULL, NULL, 0); }

/* struct clone_args, CLONE_ARGS_SIZE_VER0 (64 bytes). */
static long clone3_flags(unsigned long long flags) {
    unsigned long long a[8] = { flags, 0, 0, 0, SIGCHLD, 0, 0, 0 };
    return syscall(SYS_clone3, a, sizeof a);
}

/* A clone that must fail: a child, should it start, leaves at once. */
#define FAILS(expr) do { fflush(stdout); long r_ = T(expr); if (r_ == 0) _exit(0); if (r_ > 0) waitpid(r_, NULL, 0); } while (0)

static int wait_child(pid_t pid) {
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void link_of(const char *path, char *out, size_t size) {
    memset(out, 0, size);
    if (readlink(path, out, size - 1) < 0) strcpy(out, "none");
}

/* A child in a new namespace of type `flag` (`kind` in /proc/PID/ns) that
 * runs `prepare` and then waits until *go_w (the parent's end) is closed.
 * Returns an fd of its namespace (its path in `path`), or -1. */
static int ns_holder(unsigned long flag, const char *kind, void (*prepare)(void), int *go_w, pid_t *pid,
                     char *path, size_t size) {
    int go[2], ready[2];
    pipe(go); pipe(ready);
    fflush(stdout);
    pid_t holder = raw_clone(flag | SIGCHLD);
    if (holder < 0) { say("holder: %s", ename(errno)); return -1; }
    if (holder == 0) {
        close(go[1]);
        prepare();
        write(ready[1], "x", 1);
        char c;
        read(go[0], &c, 1);
        _exit(0);
    }
    close(go[0]);
    char c;
    read(ready[0], &c, 1);
    *go_w = go[1];
    *pid = holder;
    snprintf(path, size, "/proc/%d/ns/%s", holder, kind);
    int fd = open(path, O_RDONLY);
    say("open holder's ns/%s: %d", kind, fd >= 0);
    return fd;
}

/* The nsfs answers on `fd`, a namespace of type `type` with no hierarchy,
 * and its inode against ours (/proc/self/ns/`kind`). Returns an fd of ours. */
static int ns_fd_checks(int fd, int type, const char *kind) {
    T(ioctl(fd, NS_GET_NSTYPE) == type);
    T(ioctl(fd, NS_GET_PARENT));
    uid_t uid;
    T(ioctl(fd, NS_GET_OWNER_UID, &uid));
    int u = ioctl(fd, NS_GET_USERNS);
    say("NS_GET_USERNS gives a user namespace: %d", u >= 0 && ioctl(u, NS_GET_NSTYPE) == CLONE_NEWUSER);
    if (u >= 0) close(u);
    struct statfs sf;
    T(fstatfs(fd, &sf));
    say("nsfs magic %d", sf.f_type == 0x6e736673);
    char self[64];
    snprintf(self, sizeof self, "/proc/self/ns/%s", kind);
    int selffd = open(self, O_RDONLY);
    struct stat s1, s2, s3;
    T(fstat(fd, &s1));
    say("regular file: %d", S_ISREG(s1.st_mode));
    fstat(selffd, &s2); stat(self, &s3);
    say("holder's inode differs: %d, ours twice the same: %d", s1.st_ino != s2.st_ino, s2.st_ino == s3.st_ino);
    return selffd;
}

/* A network namespace of the program's own before it changes one: the
 * current one if loopback is its one interface (the sandbox's own, in Moat:
 * what these programs test), else a new one (natively: the host's
 * interfaces are never touched). 0, or 1 after saying why nothing may be
 * done. Moat's namespaces made inside a sandbox are fs/156's and 157's. */
static int own_network_namespace(void) {
    struct if_nameindex *ifs = if_nameindex();
    const char *other = NULL;
    for (struct if_nameindex *i = ifs; i && i->if_index; i++)
        if (strcmp(i->if_name, "lo") != 0) { other = i->if_name; break; }
    if (!other) return 0;
    if (unshare(CLONE_NEWNET) == 0) return 0;
    say("not in a namespace of its own (%s): nothing done", other);
    return 1;
}
