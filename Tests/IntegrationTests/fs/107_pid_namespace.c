/* Pid namespaces made by an application (session 15, issue 15; gVisor's
 * FcntlLockTest.GetLockRespectsPIDNamespace, LTP clone301/unshare05):
 * clone(CLONE_NEWPID) makes a child that is pid 1 of a new namespace with
 * parent 0, whose children number from 2; the creator sees it by a number of
 * its own namespace (kill and wait use it); a lock owner outside reads as
 * pid 0; the init ignores SIGKILL from inside but not from the creator; when
 * the init exits the rest of its namespace is killed; unshare(CLONE_NEWPID)
 * puts the caller's next children in a new namespace. Moat nests one level
 * only, so nothing here makes a namespace inside another. */
#include "t.h"
#include <poll.h>
#include <signal.h>

static long raw_clone(unsigned long flags) { return syscall(SYS_clone, flags, NULL, NULL, NULL, 0); }

static int lockfd;

/* The init of the new namespace: its numbers, a child's, a lock's owner,
 * SIGKILL from inside, then it leaves `keeper` behind holding the pipe. */
static void init_main(int pipe_w) {
    say("init: getpid %d, getppid %d", getpid(), getppid());
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
    T(fcntl(lockfd, F_GETLK, &fl));
    say("init: F_GETLK type %s, l_pid %d (owner outside the namespace)", fl.l_type == F_RDLCK ? "F_RDLCK" : fl.l_type == F_WRLCK ? "F_WRLCK" : "F_UNLCK", fl.l_pid);
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        say("child: getpid %d, getppid %d", getpid(), getppid());
        say("child: kill(1, SIGKILL) = %d (init ignores it)", kill(1, SIGKILL));
        _exit(7);
    }
    int st = 0;
    pid_t w = waitpid(c, &st, 0);
    say("init: waitpid = %d, exit %d", (int)w, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    fflush(stdout);
    pid_t keeper = fork();
    if (keeper == 0) { for (;;) pause(); }       /* holds pipe_w until killed */
    say("init: keeper is %d", keeper);
    close(pipe_w);
    _exit(3);
}

static void newpid_clone(void) {
    int p[2];
    T(pipe(p));
    fflush(stdout);
    long pid = raw_clone(CLONE_NEWPID | SIGCHLD);
    if (pid < 0) { say("clone(CLONE_NEWPID) = -1 %s", ename(errno)); return; }
    if (pid == 0) { close(p[0]); init_main(p[1]); }
    close(p[1]);
    int other = pid != 1 && pid != getpid(), k0 = kill(pid, 0);
    int st;
    long w = waitpid(pid, &st, 0);               /* (the init's lines come first) */
    say("parent: clone returned a pid other than 1 and its own: %d", other);
    say("parent: kill(child, 0) = %d", k0);
    say("parent: waitpid returned the same pid: %d, exit %d", w == pid, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    /* The keeper dies with its init: its end of the pipe closes. */
    struct pollfd pf = { .fd = p[0], .events = POLLIN };
    int n = poll(&pf, 1, 20000);
    char b;
    say("parent: after init's exit poll %d, read %zd (the keeper is gone)", n, n > 0 ? read(p[0], &b, 1) : (ssize_t)-2);
    close(p[0]);
}

static void kill_init_from_outside(void) {
    fflush(stdout);
    long pid = raw_clone(CLONE_NEWPID | SIGCHLD);
    if (pid < 0) { say("clone(CLONE_NEWPID) = -1 %s", ename(errno)); return; }
    if (pid == 0) { for (;;) pause(); }
    say("parent: kill(init, SIGKILL) = %d", kill(pid, SIGKILL));
    int st;
    waitpid(pid, &st, 0);
    say("parent: init %s", WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL ? "killed by SIGKILL" : "not killed");
}

static void unshared(void) {
    T(unshare(CLONE_NEWPID));
    say("after unshare: getpid unchanged: %d", getpid() != 1);
    T(unshare(CLONE_NEWPID));                      /* EINVAL: the first has no process yet */
    T(raw_clone(CLONE_NEWPID | SIGCHLD));          /* EINVAL likewise */
    int q[2];
    T(pipe(q));
    fflush(stdout);
    pid_t init = fork();                           /* pid 1 of the new namespace */
    if (init == 0) {
        char b;
        close(q[1]);
        read(q[0], &b, 1);                         /* outlives the second child */
        say("first child: getpid %d, getppid %d", getpid(), getppid());
        _exit(0);
    }
    pid_t c2 = fork();
    if (c2 == 0) {
        say("second child: getpid %d, getppid %d", getpid(), getppid());
        _exit(0);
    }
    waitpid(c2, NULL, 0);
    Q(write(q[1], "x", 1));                       /* (silent: the child prints as it reads) */
    waitpid(init, NULL, 0);
    /* The init is gone: no new process in the namespace. */
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) _exit(0);
    say("fork after the init's exit: %s", c < 0 ? ename(errno) : "a child");
    if (c > 0) waitpid(c, NULL, 0);
}

int main(void) {
    lockfd = open("lockfile", O_CREAT | O_RDWR, 0644);
    struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
    T(fcntl(lockfd, F_SETLK, &fl));
    T(raw_clone(CLONE_NEWPID | CLONE_THREAD | CLONE_SIGHAND | CLONE_VM));
    newpid_clone();
    kill_init_from_outside();
    in_child("unshare", unshared);
    unlink("lockfile");
    return 0;
}
