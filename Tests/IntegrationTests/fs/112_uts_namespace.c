/* UTS namespaces (session 16, issue 15): clone and clone3 with
 * CLONE_NEWUTS give the child a copy of the caller's names, changed apart
 * from then on (uname, gethostname, /proc/sys/kernel/hostname); without
 * it the names are shared; CAP_SYS_ADMIN is needed (EPERM); the
 * /proc/PID/ns/uts link, its nsfs ioctls (NS_GET_PARENT EINVAL: no
 * hierarchy) and setns by ns fd or pidfd (EINVAL for another type, EPERM
 * without the capability). The program first unshares a UTS namespace of
 * its own, so that natively the host's names never change. */
#include "t.h"
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/utsname.h>

static long raw_clone(unsigned long flags) { return syscall(SYS_clone, flags, NULL, NULL, NULL, 0); }

/* struct clone_args, CLONE_ARGS_SIZE_VER0 (64 bytes). */
static long clone3_flags(unsigned long long flags) {
    unsigned long long a[8] = { flags, 0, 0, 0, SIGCHLD, 0, 0, 0 };
    return syscall(SYS_clone3, a, sizeof a);
}

/* A clone that must fail: a child, should it start, leaves at once. */
#define FAILS(expr) do { fflush(stdout); long r_ = T(expr); if (r_ == 0) _exit(0); if (r_ > 0) waitpid(r_, NULL, 0); } while (0)

static void names(const char *label) {
    struct utsname u;
    char host[128] = "", dom[128] = "", proc[128] = "";
    uname(&u);
    gethostname(host, sizeof host);
    getdomainname(dom, sizeof dom);
    int fd = open("/proc/sys/kernel/hostname", O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, proc, sizeof proc - 1);
    if (fd >= 0) close(fd);
    if (n > 0 && proc[n - 1] == '\n') proc[n - 1] = 0;
    say("%s: uname %s/%s, gethostname %s, proc %s", label, u.nodename, u.domainname, host, proc);
    (void)dom;
}

static void set_names(const char *host, const char *dom) {
    Q(sethostname(host, strlen(host)));
    Q(setdomainname(dom, strlen(dom)));
}

static int wait_child(pid_t pid) {
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void link_of(const char *path, char *out, size_t size) {
    memset(out, 0, size);
    if (readlink(path, out, size - 1) < 0) strcpy(out, "none");
}

int main(void) {
    T(unshare(CLONE_NEWUTS));
    set_names("outer", "outerdom");
    names("start");
    char own[64], other[64], path[64];
    link_of("/proc/self/ns/uts", own, sizeof own);
    say("uts link starts with uts:[ : %d", strncmp(own, "uts:[", 5) == 0);

    /* clone(CLONE_NEWUTS): a copy, changed apart. */
    fflush(stdout);
    pid_t p = raw_clone(CLONE_NEWUTS | SIGCHLD);
    if (p == 0) {
        names("clone child, copied");
        link_of("/proc/self/ns/uts", other, sizeof other);
        say("clone child: link differs: %d", strcmp(own, other) != 0);
        set_names("inner", "innerdom");
        names("clone child, changed");
        int fd = open("/proc/sys/kernel/hostname", O_WRONLY);
        T(write(fd, "viaproc\n", 8));
        close(fd);
        names("clone child, by /proc");
        _exit(0);
    }
    say("clone child exit %d", wait_child(p));
    names("after clone child");

    fflush(stdout);
    p = clone3_flags(CLONE_NEWUTS);
    if (p == 0) { set_names("three", "threedom"); names("clone3 child"); _exit(0); }
    say("clone3 child exit %d", wait_child(p));
    names("after clone3 child");

    /* Without CLONE_NEWUTS the namespace is shared. */
    fflush(stdout);
    p = fork();
    if (p == 0) { set_names("shared", "shareddom"); _exit(0); }
    say("fork child exit %d", wait_child(p));
    names("after fork child");

    /* Unprivileged: no new namespace, no names. */
    fflush(stdout);
    p = fork();
    if (p == 0) {
        if (setuid(65534) != 0) _exit(1);
        FAILS(raw_clone(CLONE_NEWUTS | SIGCHLD));
        FAILS(clone3_flags(CLONE_NEWUTS));
        T(unshare(CLONE_NEWUTS));
        T(sethostname("x", 1));
        _exit(0);
    }
    say("unprivileged child exit %d", wait_child(p));

    /* A holder in a namespace of its own, joined by fd and by pidfd. */
    int go[2], ready[2];
    pipe(go); pipe(ready);
    fflush(stdout);
    pid_t holder = raw_clone(CLONE_NEWUTS | SIGCHLD);
    if (holder < 0) { say("holder: %s", ename(errno)); return 1; }
    if (holder == 0) {
        close(go[1]);
        set_names("holder", "holderdom");
        write(ready[1], "x", 1);
        char c;
        read(go[0], &c, 1);
        _exit(0);
    }
    char c;
    read(ready[0], &c, 1);
    snprintf(path, sizeof path, "/proc/%d/ns/uts", holder);
    int nsfd = open(path, O_RDONLY);
    say("open holder's ns/uts: %d", nsfd >= 0);
    T(ioctl(nsfd, NS_GET_NSTYPE) == CLONE_NEWUTS);
    T(ioctl(nsfd, NS_GET_PARENT));
    uid_t uid;
    T(ioctl(nsfd, NS_GET_OWNER_UID, &uid));
    int u = ioctl(nsfd, NS_GET_USERNS);
    say("NS_GET_USERNS gives a user namespace: %d", u >= 0 && ioctl(u, NS_GET_NSTYPE) == CLONE_NEWUSER);
    int selffd = open("/proc/self/ns/uts", O_RDONLY);
    struct stat s1, s2, s3;
    fstat(nsfd, &s1); fstat(selffd, &s2); stat("/proc/self/ns/uts", &s3);
    say("holder's inode differs: %d, ours twice the same: %d", s1.st_ino != s2.st_ino, s2.st_ino == s3.st_ino);

    fflush(stdout);
    p = fork();
    if (p == 0) {
        T(setns(nsfd, CLONE_NEWIPC));
        T(setns(nsfd, CLONE_NEWUTS));
        names("joined by fd");
        char h[64];
        link_of("/proc/self/ns/uts", other, sizeof other);
        link_of(path, h, sizeof h);
        say("joined by fd: link is the holder's: %d", strcmp(h, other) == 0);
        set_names("changed", "changeddom");
        T(setns(selffd, 0));
        names("back");
        int pfd = syscall(SYS_pidfd_open, holder, 0);
        T(setns(pfd, CLONE_NEWUTS | 1));
        T(setns(pfd, 0));
        T(setns(pfd, CLONE_NEWUTS));
        names("joined by pidfd");
        if (setuid(65534) == 0) { T(setns(selffd, CLONE_NEWUTS)); T(setns(pfd, CLONE_NEWUTS)); }
        _exit(0);
    }
    say("joining child exit %d", wait_child(p));
    names("ours after the joins");
    close(go[1]);
    say("holder exit %d", wait_child(holder));

    /* The holder is gone; its namespace lives while the fd names it. */
    fflush(stdout);
    p = fork();
    if (p == 0) { T(setns(nsfd, 0)); names("held namespace"); _exit(0); }
    say("held namespace child exit %d", wait_child(p));
    return 0;
}
