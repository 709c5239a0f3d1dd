/* The nsfs ioctls on pid namespace fds and the NS* lines of /proc/PID/status
 * (session 16, issue 15; LTP ioctl_ns01..07): NS_GET_NSTYPE; NS_GET_PARENT
 * (EPERM for the caller's own namespace, whose parent is outside it; the
 * caller's for a namespace one below); NS_GET_USERNS (the caller's own user
 * namespace, a close-on-exec fd: its type, owner uid 0, no parent, not
 * joinable); NS_GET_OWNER_UID only on a user namespace (EINVAL); ENOTTY for
 * an unknown request. NStgid/NSpid/NSpgid/NSsid: one number for a process of
 * the reader's namespace, two for one of a namespace below, whose group and
 * session (inherited from outside) are 0 there. Only what the host's
 * <linux/nsfs.h> defines is used (no NS_GET_PID_FROM_PIDNS). */
#include "t.h"
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>

static long raw_clone(unsigned long flags) { return syscall(SYS_clone, flags, NULL, NULL, NULL, 0); }

/* The fields of a status line: how many, and the last one. */
static void ns_line(const char *label, pid_t pid, const char *key, long want) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    int fd = open(path, O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0) close(fd);
    if (n < 0) { say("%s %s: cannot read", label, key); return; }
    buf[n] = 0;
    size_t kl = strlen(key);
    for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, key, kl) || l[kl] != ':') continue;
        int fields = 0;
        long last = -1, first = -1;
        char *p = l + kl + 1;
        while (*p == '\t') {
            char *e;
            last = strtol(p + 1, &e, 10);
            if (!fields) first = last;
            fields++;
            p = e;
        }
        say("%s %s: %d field(s), first as we know it: %d, last %s", label, key, fields,
            first == want, fields > 1 ? (last == 0 ? "0" : last == 1 ? "1" : "other") : "-");
        return;
    }
    say("%s %s: no line", label, key);
}

static void user_ns(int pidns) {
    int u = ioctl(pidns, NS_GET_USERNS);
    say("NS_GET_USERNS gives an fd: %d", u >= 0);
    if (u < 0) return;
    say("user ns fd close-on-exec: %d", fcntl(u, F_GETFD) == FD_CLOEXEC);
    char l[64] = "", p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", u);
    readlink(p, l, sizeof l - 1);
    say("user ns link starts with user:[ : %d", strncmp(l, "user:[", 6) == 0);
    T(ioctl(u, NS_GET_NSTYPE) == CLONE_NEWUSER);
    uid_t owner = 77;
    T(ioctl(u, NS_GET_OWNER_UID, &owner));
    say("owner uid %u", owner);
    T(ioctl(u, NS_GET_OWNER_UID, (void *)8));
    T(ioctl(u, NS_GET_PARENT));
    T(ioctl(u, NS_GET_USERNS));
    T(setns(u, 0));
    T(setns(u, CLONE_NEWUSER));
    close(u);
}

int main(void) {
    int self = open("/proc/self/ns/pid", O_RDONLY);
    T(ioctl(self, NS_GET_NSTYPE) == CLONE_NEWPID);
    T(ioctl(self, NS_GET_PARENT));
    uid_t uid;
    T(ioctl(self, NS_GET_OWNER_UID, &uid));
    T(ioctl(self, _IO(NSIO, 0x7f)));
    uid = 5;
    T(ioctl(self, FIONREAD, &uid));
    say("FIONREAD: %u", uid);
    struct statfs sf;
    T(fstatfs(self, &sf));
    say("fstatfs: nsfs magic %d", sf.f_type == 0x6e736673);
    struct stat st, st2;
    T(fstat(self, &st));
    say("fstat: regular %d, mode %o", S_ISREG(st.st_mode), st.st_mode & 07777);
    user_ns(self);
    ns_line("self", getpid(), "NStgid", getpid());
    ns_line("self", getpid(), "NSpid", getpid());
    ns_line("self", getpid(), "NSpgid", getpgrp());
    ns_line("self", getpid(), "NSsid", getsid(0));

    int go[2], ready[2];
    T(pipe(go));
    T(pipe(ready));
    fflush(stdout);
    long init = raw_clone(CLONE_NEWPID | SIGCHLD);
    if (init == 0) {
        int own = open("/proc/self/ns/pid", O_RDONLY);
        say("init: getpid %d", getpid());
        T(ioctl(own, NS_GET_PARENT));                /* its parent is outside */
        T(ioctl(self, NS_GET_PARENT));               /* the root's: none */
        close(ready[1]);
        char b;
        close(go[1]);
        read(go[0], &b, 1);
        _exit(0);
    }
    close(go[0]);
    close(ready[1]);
    char b;
    read(ready[0], &b, 1);                            /* the init has printed */
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/ns/pid", init);
    int c = open(path, O_RDONLY);
    T(ioctl(c, NS_GET_NSTYPE) == CLONE_NEWPID);
    int parent = ioctl(c, NS_GET_PARENT);
    say("NS_GET_PARENT of the child namespace gives an fd: %d", parent >= 0);
    if (parent >= 0) {
        fstat(parent, &st2);
        say("parent is our namespace: %d, close-on-exec %d", st2.st_ino == st.st_ino && st2.st_dev == st.st_dev,
            fcntl(parent, F_GETFD) == FD_CLOEXEC);
        T(ioctl(parent, NS_GET_PARENT));
    }
    T(ioctl(c, NS_GET_USERNS) >= 0);
    ns_line("init", init, "NStgid", init);
    ns_line("init", init, "NSpid", init);
    ns_line("init", init, "NSpgid", getpgrp());
    ns_line("init", init, "NSsid", getsid(0));
    close(go[1]);
    waitpid(init, NULL, 0);
    return 0;
}
