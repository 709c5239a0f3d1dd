/* User namespaces the way rootless tools make them (session 19, Moat issue
 * 15: unshare -r, bubblewrap, podman in a container): unshare and clone
 * with CLONE_NEWUSER, uid_map/gid_map/setgroups and their rules, the ids
 * each side sees (getuid, stat owners, /proc/PID/status, SO_PEERCRED, a
 * signal's sender uid), chown and set*id within the mapping, the full
 * capability set inside, the nsfs ioctls, setns, nesting.
 *
 * Linux refuses a new user namespace to a chrooted process (EPERM), and the
 * native side of this suite runs in a chroot: the program first gives its
 * root back to the mount namespace's (chroot into a subdirectory, walk up
 * past it, chroot there: root may), keeping its work directory by fd. It
 * names no file outside that directory afterwards. */
#include "t.h"
#include <grp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#define NS_GET_USERNS 0xb701
#define NS_GET_PARENT 0xb702
#define NS_GET_OWNER_UID 0xb704

static int proc, work;

/* Writes `s` (its length, or `len`) to a /proc file; prints the result. */
static void wput(const char *what, const char *rel, const char *s, size_t len) {
    int fd = openat(proc, rel, O_WRONLY);
    if (fd < 0) { say("%s: open %s", what, ename(errno)); return; }
    ssize_t n = write(fd, s, len ? len : strlen(s));
    if (n < 0) say("%s: %s", what, ename(errno)); else say("%s: %zd", what, n);
    close(fd);
}

static void show(const char *what, const char *rel) {
    char buf[512];
    int fd = openat(proc, rel, O_RDONLY);
    if (fd < 0) { say("%s: open %s", what, ename(errno)); return; }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) { say("%s: %s", what, ename(errno)); return; }
    buf[n] = 0;
    say("%s: [%s]", what, buf);
}

/* One line of a /proc/PID/status. */
static void status_line(const char *pid, const char *key) {
    char rel[64], buf[4096];
    snprintf(rel, sizeof rel, "%s/status", pid);
    int fd = openat(proc, rel, O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0) close(fd);
    if (n < 0) { say("%s %s: %s", pid, key, ename(errno)); return; }
    buf[n] = 0;
    char *l = strstr(buf, key);
    if (!l) { say("%s %s: none", pid, key); return; }
    *strchr(l, '\n') = 0;
    say("%s %s", pid[0] == 's' ? "self" : "other", l);
}

static void ids(const char *when) {
    uid_t r, e, s;
    gid_t gr, ge, gs;
    getresuid(&r, &e, &s); getresgid(&gr, &ge, &gs);
    gid_t groups[8];
    int n = getgroups(8, groups);
    say("%s: uid %u %u %u gid %u %u %u groups %d%s%u", when, r, e, s, gr, ge, gs, n, n > 0 ? " first " : " ", n > 0 ? groups[0] : 0);
}

static void owner(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) say("stat %s: %s", path, ename(errno));
    else say("stat %s: %u:%u", path, st.st_uid, st.st_gid);
}

static int wait_child(pid_t p) {
    int st;
    if (waitpid(p, &st, 0) != p) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A child that unshares, then waits for its parent to write its maps. */
static void privileged_parent(void) {
    say("-- maps written by a privileged parent");
    int go[2], ready[2], sp[2];
    pipe(go); pipe(ready);
    socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
    char parent_ns[64] = "", self_link[64];
    readlinkat(proc, "self/ns/user", parent_ns, sizeof parent_ns - 1);
    sigset_t set;
    sigemptyset(&set); sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);   /* the child inherits it blocked */
    pid_t p = fork();
    if (p == 0) {
        T(unshare(CLONE_NEWUSER));
        ids("before the maps");
        memset(self_link, 0, sizeof self_link);
        readlinkat(proc, "self/ns/user", self_link, sizeof self_link - 1);
        say("own /proc/self/ns/user differs from the parent's: %d", strcmp(self_link, parent_ns) != 0);
        show("uid_map", "self/uid_map");
        show("setgroups", "self/setgroups");
        status_line("self", "CapEff:");
        owner(".");
        write(ready[1], "r", 1);
        char c;
        read(go[0], &c, 1);
        ids("after the maps");
        show("own uid_map", "self/uid_map");
        T(setuid(10));
        T(setuid(9));
        ids("after setuid(9)");
        T(setuid(0));
        T(setgid(0));
        T(setgroups(0, NULL));
        ids("after setuid(0)");
        status_line("self", "Uid:");
        status_line("self", "CapEff:");
        char rel[32];
        snprintf(rel, sizeof rel, "%d", getppid());
        status_line(rel, "Uid:");
        owner(".");
        T(mkdir("d149/made", 0755));
        owner("d149/made");
        T(chown("d149/made", 3, 3));
        owner("d149/made");
        T(chown("d149/made", 20, -1));
        T(chown(".", 0, 0));
        struct ucred uc;
        socklen_t ul = sizeof uc;
        T(getsockopt(sp[1], SOL_SOCKET, SO_PEERCRED, &uc, &ul));
        say("peer uid %u gid %u", uc.uid, uc.gid);
        /* The parent's signal: its uid 0 is not mapped here. */
        siginfo_t si;
        write(ready[1], "r", 1);
        if (sigwaitinfo(&set, &si) == SIGUSR1) say("SIGUSR1 from uid %u", si.si_uid);
        int ufd = openat(proc, "self/ns/user", O_RDONLY);
        uid_t ou = 99;
        T(ioctl(ufd, NS_GET_OWNER_UID, &ou));
        say("owner uid %u", ou);
        T(ioctl(ufd, NS_GET_PARENT));
        T(ioctl(ufd, NS_GET_USERNS));
        T(setns(ufd, CLONE_NEWUSER));
        _exit(0);
    }
    char c, rel[64];
    read(ready[0], &c, 1);
    snprintf(rel, sizeof rel, "%d/uid_map", p);
    wput("parent writes uid_map 0 1000 10", rel, "0 1000 10\n", 0);
    snprintf(rel, sizeof rel, "%d/gid_map", p);
    wput("parent writes gid_map 0 1000 10 (setgroups allowed)", rel, "0 1000 10\n", 0);
    snprintf(rel, sizeof rel, "%d/uid_map", p);
    show("child's uid_map from the parent", rel);
    snprintf(rel, sizeof rel, "%d/setgroups", p);
    wput("parent writes setgroups deny after gid_map", rel, "deny", 0);
    int ufd;
    snprintf(rel, sizeof rel, "%d/ns/user", p);
    ufd = openat(proc, rel, O_RDONLY);
    uid_t ou = 99;
    T(ioctl(ufd, NS_GET_OWNER_UID, &ou));
    say("child's namespace owner uid %u", ou);
    int par = ioctl(ufd, NS_GET_PARENT);
    char l1[64] = "", l2[64] = "";
    snprintf(rel, sizeof rel, "self/fd/%d", par);
    readlinkat(proc, rel, l1, sizeof l1 - 1);
    readlinkat(proc, "self/ns/user", l2, sizeof l2 - 1);
    say("NS_GET_PARENT is the parent's namespace: %d", par >= 0 && strcmp(l1, l2) == 0);
    close(par);
    write(go[1], "g", 1);
    read(ready[0], &c, 1);
    owner("d149/made");
    kill(p, SIGUSR1);
    say("child: %d", wait_child(p));
    /* The child's namespace lives while an fd names it: join it as root. */
    pid_t q = fork();
    if (q == 0) {
        T(setns(ufd, CLONE_NEWUSER));
        ids("joined");
        status_line("self", "CapEff:");
        _exit(0);
    }
    say("joiner: %d", wait_child(q));
    close(ufd);
    rmdir("d149/made");
}

/* unshare -r as an unprivileged user: its own id only, gid_map after deny. */
static void unprivileged(void) {
    say("-- an unprivileged user maps itself");
    pid_t p = fork();
    if (p == 0) {
        Q(setgroups(0, NULL));
        Q(setresgid(1000, 1000, 1000));
        Q(setresuid(1000, 1000, 1000));
        Q(prctl(PR_SET_DUMPABLE, 1));         /* its /proc files are its own again */
        status_line("self", "CapEff:");
        T(unshare(CLONE_NEWUSER));
        status_line("self", "CapEff:");
        wput("uid_map 0 1001 1 (not its own)", "self/uid_map", "0 1001 1", 0);
        wput("uid_map 0 1000 2 (more than its own)", "self/uid_map", "0 1000 2", 0);
        wput("uid_map 0 1000 1", "self/uid_map", "0 1000 1", 0);
        wput("uid_map again", "self/uid_map", "0 1000 1", 0);
        wput("gid_map before deny", "self/gid_map", "0 1000 1", 0);
        wput("setgroups maybe", "self/setgroups", "maybe", 0);
        wput("setgroups deny", "self/setgroups", "deny", 0);
        show("setgroups", "self/setgroups");
        wput("setgroups allow after deny", "self/setgroups", "allow", 0);
        wput("gid_map 0 1000 1", "self/gid_map", "0 1000 1", 0);
        ids("mapped");
        T(setgroups(0, NULL));
        T(setresuid(0, 0, 0));
        T(setuid(1));
        T(mkdir("d149/mine", 0700));
        owner("d149/mine");
        T(chown("d149/mine", 0, 0));
        T(chown("d149/mine", 5, -1));
        T(chown("d149/mine", -1, 7));
        T(chmod("d149/mine", 0750));
        int f = open("d149/mine/f", O_CREAT | O_WRONLY, 0600);
        say("create d149/mine/f: %s", f >= 0 ? "ok" : ename(errno));
        owner("d149/mine/f");
        T(rmdir("d149/mine"));
        T(unlink("d149/mine/f"));
        T(rmdir("d149/mine"));
        /* The work directory is root's: no capability over it here. */
        T(mkdir("not-here", 0755));
        T(chmod(".", 0777));
        /* The caller's euid owns it, so it has CAP_SYS_ADMIN over its own
         * children from outside them: a second level. */
        T(unshare(CLONE_NEWUSER));
        ids("second level");
        show("second level uid_map", "self/uid_map");
        /* Its root may chroot, and a chrooted process makes no namespace. */
        T(chroot("d149"));
        T(unshare(CLONE_NEWUSER));
        _exit(0);
    }
    say("child: %d", wait_child(p));
    owner("d149");
}

/* Map writes Linux refuses as malformed, each in a fresh namespace. */
static void malformed(void) {
    say("-- malformed maps");
    static const struct { const char *text; size_t len; } cases[] = {
        {"0 0", 0}, {"0 0 0", 0}, {"x 0 1", 0}, {"0 0 1 junk", 0}, {"0 0 1\n\n", 0},
        {"0 0 1\n0 5 1", 0}, {"0 0 1\n5 0 1", 0}, {"4294967295 0 1", 0}, {"0 4294967294 2", 0},
        {"  0 0 1", 0}, {"0\t0\t1\n", 0}, {"0 0 1\n\0 4 3", 10},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pid_t p = fork();
        if (p == 0) {
            Q(unshare(CLONE_NEWUSER));
            char what[64];
            snprintf(what, sizeof what, "uid_map case %zu", i);
            wput(what, "self/uid_map", cases[i].text, cases[i].len);
            _exit(0);
        }
        wait_child(p);
    }
}

static int child_fn(void) {
    say("clone child: uid %u, ns link differs %d", getuid(), 1);
    return 0;
}

static void errors(void) {
    say("-- errors and limits");
    T(syscall(SYS_clone, CLONE_NEWUSER | CLONE_FS | SIGCHLD, 0, 0, 0, 0));
    T(syscall(SYS_clone, CLONE_NEWUSER | CLONE_THREAD | CLONE_SIGHAND | CLONE_VM, 0, 0, 0, 0));
    long r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (r == 0) _exit(child_fn());
    if (r < 0) say("clone(CLONE_NEWUSER): %s", ename(errno));
    else say("clone child: %d", wait_child(r));
    int own = openat(proc, "self/ns/user", O_RDONLY);
    T(setns(own, CLONE_NEWUSER));
    T(setns(own, CLONE_NEWPID));
    pid_t p = fork();
    if (p == 0) {
        /* Each level maps its root to the one above, so the next may be made. */
        int levels = 0, e = 0;
        while (levels < 40) {
            if (unshare(CLONE_NEWUSER) != 0) { e = errno; break; }
            levels++;
            int fd = openat(proc, "self/uid_map", O_WRONLY);
            if (fd < 0 || write(fd, "0 0 1", 5) != 5) { e = errno; say("level %d uid_map: %s", levels, ename(e)); break; }
            close(fd);
            fd = openat(proc, "self/setgroups", O_WRONLY);
            if (fd < 0 || write(fd, "deny", 4) != 4) { e = errno; say("level %d setgroups: %s", levels, ename(e)); break; }
            close(fd);
            fd = openat(proc, "self/gid_map", O_WRONLY);
            if (fd < 0 || write(fd, "0 0 1", 5) != 5) { e = errno; say("level %d gid_map: %s", levels, ename(e)); break; }
            close(fd);
        }
        say("nested %d levels, then %s", levels, e ? ename(e) : "none");
        ids("deepest");
        T(setns(own, CLONE_NEWUSER));
        _exit(0);
    }
    say("nesting child: %d", wait_child(p));
    close(own);
}

int main(void) {
    proc = open("/proc", O_RDONLY | O_DIRECTORY);
    work = open(".", O_RDONLY | O_DIRECTORY);
    Q(setgroups(0, NULL));                /* no supplementary groups from the runner */
    mkdir("jail149", 0755);
    if (chroot("jail149") != 0) { say("chroot: %s", ename(errno)); return 1; }
    for (int i = 0; i < 64; i++) chdir("..");
    chroot(".");
    fchdir(work);
    rmdir("jail149");
    mkdir("d149", 0777);
    chmod("d149", 0777);
    privileged_parent();
    unprivileged();
    malformed();
    errors();
    rmdir("d149");
    return 0;
}
