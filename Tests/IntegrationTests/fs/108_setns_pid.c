/* setns(2) into pid namespaces (session 16, issue 15; LTP setns01/setns02):
 * an fd of /proc/PID/ns/pid or a pidfd names the namespace; joining changes
 * only pid_for_children (the caller's pid stays), so the next fork is a
 * process of the joined namespace with the next number there and parent 0.
 * Errors as Linux's: EBADF (also for an O_PATH fd), EINVAL for a wrong nstype, a non-namespace fd,
 * a pidfd with nstype 0 or a non-namespace bit, a namespace not below the
 * caller's; EPERM without CAP_SYS_ADMIN; ESRCH for the pidfd of an exited process. A
 * namespace whose init is gone can still be joined, but fork fails there
 * (ENOMEM), and it stays that dead namespace while an fd names it, never
 * one made after it. Only CLONE_NEWPID is used with a pidfd: Moat joins no other
 * type (EINVAL), where Linux would join the target's (here the same) one. */
#include "t.h"
#include <signal.h>

static long raw_clone(unsigned long flags) { return syscall(SYS_clone, flags, NULL, NULL, NULL, 0); }
static long pidfd_open(pid_t p) { return syscall(SYS_pidfd_open, p, 0); }

/* Whether two /proc links name the same namespace. */
static int same_link(const char *a, const char *b) {
    char x[64] = "", y[64] = "";
    if (readlink(a, x, sizeof x - 1) < 0 || readlink(b, y, sizeof y - 1) < 0) return -1;
    return strcmp(x, y) == 0;
}

/* Forks a child that prints its numbers as the namespace it lands in gives them. */
static void fork_and_show(const char *label, int home) {
    fflush(stdout);
    pid_t me = getpid();
    pid_t c = fork();
    if (c < 0) { say("%s: fork = -1 %s", label, ename(errno)); return; }
    if (c == 0 && home) { say("%s: child's parent is the caller: %d", label, getppid() == me); _exit(0); }
    if (c == 0) { say("%s: child getpid %d, getppid %d", label, getpid(), getppid()); _exit(0); }
    int st;
    waitpid(c, &st, 0);
    say("%s: parent waited: %d", label, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static int self_fd, child_ns_fd;

/* A process of the child namespace: it cannot join its parent's (not below
 * its own), but may join its own. */
static void from_inside(void) {
    say("inside: getpid %d", getpid());
    T(setns(self_fd, CLONE_NEWPID));
    T(setns(child_ns_fd, CLONE_NEWPID));
}

static void unprivileged(void) {
    Q(setuid(65534));
    T(setns(self_fd, CLONE_NEWPID));
    T(setns(child_ns_fd, 0));
}

int main(void) {
    T(setns(-1, 0));
    T(setns(999, CLONE_NEWPID));
    int dir = open("/", O_RDONLY | O_DIRECTORY);
    T(setns(dir, 0));
    T(setns(dir, CLONE_NEWPID));
    int opath = open("/proc/self/ns/pid", O_PATH);
    T(setns(opath, CLONE_NEWPID));                              /* EBADF: not opened for I/O */
    close(opath);
    self_fd = open("/proc/self/ns/pid", O_RDONLY);
    T(setns(self_fd, CLONE_NEWNET));
    T(setns(self_fd, CLONE_NEWPID | CLONE_NEWNET));
    T(setns(self_fd, CLONE_NEWPID));
    T(setns(self_fd, 0));

    int go[2];
    T(pipe(go));
    fflush(stdout);
    long init = raw_clone(CLONE_NEWPID | SIGCHLD);
    if (init == 0) { char b; close(go[1]); read(go[0], &b, 1); _exit(0); }
    close(go[0]);
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/ns/pid", init);
    child_ns_fd = open(path, O_RDONLY);
    say("pid_for_children is our own: %d", same_link("/proc/self/ns/pid_for_children", "/proc/self/ns/pid"));
    pid_t me = getpid();
    char own[64] = "";
    readlink("/proc/self/ns/pid", own, sizeof own - 1);
    T(setns(child_ns_fd, CLONE_NEWPID));
    say("after setns: pid_for_children is the child's: %d, getpid unchanged: %d",
        same_link("/proc/self/ns/pid_for_children", path), getpid() == me);
    char now[64] = "";
    readlink("/proc/self/ns/pid", now, sizeof now - 1);
    say("pid is still our own: %d", strcmp(own, now) == 0);
    fork_and_show("joined by fd", 0);
    T(unshare(CLONE_NEWPID));                                   /* EINVAL: pid_for_children is not ours */
    T(raw_clone(CLONE_THREAD | CLONE_SIGHAND | CLONE_VM));      /* EINVAL likewise */
    T(setns(self_fd, 0));
    say("back: pid_for_children is our own: %d", same_link("/proc/self/ns/pid_for_children", "/proc/self/ns/pid"));

    int pfd = pidfd_open(init);
    T(setns(pfd, 0));
    T(setns(pfd, CLONE_NEWPID | 1));
    T(setns(pfd, CLONE_NEWPID));
    fork_and_show("joined by pidfd", 0);
    T(setns(self_fd, CLONE_NEWPID));

    /* Inside the child namespace (joined, then forked). */
    T(setns(child_ns_fd, 0));
    in_child("inside", from_inside);
    T(setns(self_fd, 0));
    in_child("unprivileged", unprivileged);

    /* The init exits: the namespace can be joined, nothing can be born in it. */
    close(go[1]);
    siginfo_t si;
    Q(waitid(P_PID, init, &si, WEXITED | WNOWAIT));
    T(setns(pfd, CLONE_NEWPID));                                /* a zombie */
    T(setns(self_fd, 0));
    int st;
    waitpid(init, &st, 0);
    T(setns(pfd, CLONE_NEWPID));                                /* ESRCH: reaped */
    T(setns(child_ns_fd, CLONE_NEWPID));
    fork_and_show("dead namespace", 0);
    T(setns(self_fd, 0));
    fork_and_show("back home", 1);

    /* The dead namespace lives on while child_ns_fd names it: a new one is
     * another namespace, and the old fd still joins the dead one. */
    fflush(stdout);
    long init2 = raw_clone(CLONE_NEWPID | SIGCHLD);
    if (init2 == 0) { pause(); _exit(0); }
    snprintf(path, sizeof path, "/proc/%ld/ns/pid", init2);
    struct stat a, b;
    int fd2 = open(path, O_RDONLY);
    fstat(fd2, &a);
    fstat(child_ns_fd, &b);
    say("a new namespace is not the held dead one: %d", a.st_ino != b.st_ino);
    T(setns(child_ns_fd, 0));
    fork_and_show("held dead namespace", 0);
    T(setns(fd2, 0));
    fork_and_show("new namespace", 0);
    T(setns(self_fd, 0));
    kill(init2, SIGKILL);
    waitpid(init2, NULL, 0);
    return 0;
}
