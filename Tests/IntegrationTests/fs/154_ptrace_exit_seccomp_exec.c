// Processes under a tracer at their ends and at their filters: execve from
// a thread that is not the leader (the exec'ing thread takes the leader's
// id: gettid() == getpid() after, the old id is gone, one task left, the
// tracer sees the leader's PTRACE_EVENT_EXIT with status 0 and then
// PTRACE_EVENT_EXEC with the old thread id); PTRACE_O_TRACEEXIT (the exit
// status of exit_group and of a SIGKILL in the event message, registers
// readable in the stop, the exit reported after the tracer resumes or
// detaches it; a SIGKILL to a process already exiting does not end the
// stop, as on Linux 6, so none is tried; the tracer's death lets it go on
// exiting); SECCOMP_RET_TRACE (ENOSYS without a tracer or
// without PTRACE_O_TRACESECCOMP; with it a PTRACE_EVENT_SECCOMP stop whose
// message is the filter's data, where the tracer skips the call with its
// own result or changes it into another call). Prints statuses, errno
// names and comparisons; never pids.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PTRACE_EVENT_SECCOMP
#define PTRACE_EVENT_SECCOMP 7
#endif

static const char *ename(int e) {
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

static void print_status(const char *what, int st) {
    if (WIFSTOPPED(st)) printf("%s: stopped sig %d event %d\n", what, WSTOPSIG(st), st >> 16);
    else if (WIFEXITED(st)) printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st)) printf("%s: killed by %d\n", what, WTERMSIG(st));
    fflush(stdout);
}

static void status(const char *what, pid_t pid, int flags) {
    int st = 0;
    pid_t r = waitpid(pid, &st, flags);
    if (r != pid) { printf("%s: waitpid = %d %s\n", what, r, r < 0 ? ename(errno) : ""); fflush(stdout); return; }
    print_status(what, st);
}

static void eventmsg(const char *what, pid_t pid) {
    unsigned long m = 0;
    if (ptrace(PTRACE_GETEVENTMSG, pid, 0, &m) != 0) { printf("%s: GETEVENTMSG %s\n", what, ename(errno)); return; }
    int s = (int)m;
    if (WIFEXITED(s)) printf("%s: message exited %d\n", what, WEXITSTATUS(s));
    else if (WIFSIGNALED(s)) printf("%s: message killed by %d\n", what, WTERMSIG(s));
    else printf("%s: message 0x%x\n", what, s);
    fflush(stdout);
}

static void eventmsg_raw(const char *what, pid_t pid) {
    unsigned long m = 0;
    if (ptrace(PTRACE_GETEVENTMSG, pid, 0, &m) != 0) printf("%s: GETEVENTMSG %s\n", what, ename(errno));
    else printf("%s: message 0x%lx\n", what, m);
    fflush(stdout);
}

static int count_tasks(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* After a non-leader execve: who am I now. */
static int after_exec(const char *oldtid) {
    pid_t old = atoi(oldtid);
    printf("after exec: tid == pid: %s\n", syscall(SYS_gettid) == getpid() ? "yes" : "no");
    printf("after exec: old tid differs: %s\n", old != getpid() ? "yes" : "no");
    errno = 0;
    long r = syscall(SYS_tgkill, getpid(), old, 0);
    printf("after exec: tgkill(old tid) = %ld %s\n", r, r < 0 ? ename(errno) : "");
    printf("after exec: tasks: %d\n", count_tasks());
    fflush(stdout);
    return 0;
}

static char self[64];
static char tidbuf[16];

static void *exec_thread(void *arg) {
    (void)arg;
    snprintf(tidbuf, sizeof tidbuf, "%ld", syscall(SYS_gettid));
    char *argv[] = {self, (char *)"after", tidbuf, NULL};
    execv(self, argv);
    printf("thread execv: %s\n", ename(errno));
    _exit(1);
}

static void nonleader_exec_untraced(void) {
    pid_t c = fork();
    if (c == 0) {
        pthread_t th;
        pthread_create(&th, NULL, exec_thread, NULL);
        pthread_join(th, NULL);
        _exit(2);
    }
    status("untraced non-leader exec", c, 0);
}

static void *idle_exec_thread(void *arg) {
    (void)arg;
    char *argv[] = {self, (char *)"idle", NULL};
    execv(self, argv);
    _exit(1);
}

static void nonleader_exec_traced(int traceexec) {
    printf("-- traced non-leader exec, TRACEEXEC %d\n", traceexec);
    pid_t c = fork();
    if (c == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        pthread_t th;
        pthread_create(&th, NULL, idle_exec_thread, NULL);
        pthread_join(th, NULL);
        _exit(2);
    }
    status("first stop", c, 0);
    long opts = PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXIT | (traceexec ? PTRACE_O_TRACEEXEC : 0);
    ptrace(PTRACE_SETOPTIONS, c, 0, opts);
    ptrace(PTRACE_CONT, c, 0, 0);
    status("clone event", c, 0);
    unsigned long m = 0;
    ptrace(PTRACE_GETEVENTMSG, c, 0, &m);
    pid_t thread = (pid_t)m;
    status("new thread", thread, __WALL);
    ptrace(PTRACE_CONT, c, 0, 0);
    ptrace(PTRACE_CONT, thread, 0, 0);
    status("leader", c, 0);
    eventmsg("leader exit stop", c);
    int st = 0;
    printf("exec'ing thread still waits: %s\n", waitpid(thread, &st, __WALL | WNOHANG) == 0 ? "yes" : "no");
    ptrace(PTRACE_CONT, c, 0, 0);
    status("after exec", c, 0);
    if (traceexec) {
        ptrace(PTRACE_GETEVENTMSG, c, 0, &m);
        printf("exec message is the old tid: %s\n", (pid_t)m == thread ? "yes" : "no");
    }
    errno = 0;
    long cs = ptrace(PTRACE_PEEKUSER, c, offsetof(struct user_regs_struct, cs), 0);
    printf("cs = 0x%lx\n", cs);
    kill(c, SIGKILL);
    status("after SIGKILL", c, 0);
    eventmsg("exit stop", c);
    ptrace(PTRACE_CONT, c, 0, 0);
    status("end", c, 0);
    errno = 0;
    printf("old thread id gone: %s\n", waitpid(thread, &st, __WALL | WNOHANG) < 0 ? ename(errno) : "no");
    fflush(stdout);
}

static void exit_stops(void) {
    printf("-- PTRACE_O_TRACEEXIT\n");
    pid_t c = fork();
    if (c == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        syscall(SYS_exit_group, 3);
        _exit(9);
    }
    status("first stop", c, 0);
    ptrace(PTRACE_SETOPTIONS, c, 0, PTRACE_O_TRACEEXIT);
    ptrace(PTRACE_CONT, c, 0, 0);
    status("exit_group(3)", c, 0);
    eventmsg("exit_group(3)", c);
    struct user_regs_struct r;
    printf("GETREGS in the exit stop: %s\n", ptrace(PTRACE_GETREGS, c, 0, &r) == 0 ? "ok" : ename(errno));
    printf("orig_rax is exit_group: %s\n", r.orig_rax == SYS_exit_group ? "yes" : "no");
    int st = 0;
    printf("still stopped: %s\n", waitpid(c, &st, WNOHANG) == 0 ? "yes" : "no");
    ptrace(PTRACE_CONT, c, 0, 0);
    status("resumed", c, 0);

    // The tracer's detach lets it go on exiting.
    c = fork();
    if (c == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        _exit(6);
    }
    status("second child", c, 0);
    ptrace(PTRACE_SETOPTIONS, c, 0, PTRACE_O_TRACEEXIT);
    ptrace(PTRACE_CONT, c, 0, 0);
    status("_exit(6)", c, 0);
    eventmsg("_exit(6)", c);
    ptrace(PTRACE_DETACH, c, 0, 0);
    status("detached", c, 0);

    // The tracer dies while its tracee is in the exit stop: the tracee goes
    // on exiting, and (reparented to this subreaper) is waited for here.
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    int ready[2];
    if (pipe(ready) != 0) return;
    pid_t tracer = fork();
    if (tracer == 0) {
        close(ready[0]);
        pid_t t = fork();
        if (t == 0) {
            ptrace(PTRACE_TRACEME, 0, 0, 0);
            raise(SIGSTOP);
            _exit(7);
        }
        int st = 0;
        waitpid(t, &st, 0);
        ptrace(PTRACE_SETOPTIONS, t, 0, PTRACE_O_TRACEEXIT);
        ptrace(PTRACE_CONT, t, 0, 0);
        waitpid(t, &st, 0);
        printf("tracer: tracee in its exit stop: %s\n", WIFSTOPPED(st) && st >> 16 == PTRACE_EVENT_EXIT ? "yes" : "no");
        fflush(stdout);
        if (write(ready[1], &t, sizeof t) != sizeof t) _exit(2);
        _exit(0);                                                   // without resuming it
    }
    close(ready[1]);
    pid_t orphan = 0;
    if (read(ready[0], &orphan, sizeof orphan) != sizeof orphan) { printf("no tracee\n"); return; }
    close(ready[0]);
    status("tracer", tracer, 0);
    status("tracee after its tracer's death", orphan, 0);
    prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
}

/* A filter: RET_TRACE with `data` for `nr`, allow the rest. */
static void trace_filter(int nr, int data) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE | data),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog p = {.len = 4, .filter = f};
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p) != 0) { printf("filter: %s\n", ename(errno)); _exit(1); }
}

static void seccomp_trace(void) {
    printf("-- SECCOMP_RET_TRACE\n");
    // No tracer: ENOSYS.
    pid_t c = fork();
    if (c == 0) {
        trace_filter(SYS_getppid, 5);
        errno = 0;
        long r = syscall(SYS_getppid);
        printf("untraced getppid = %ld %s\n", r, r < 0 ? ename(errno) : "");
        fflush(stdout);
        _exit(0);
    }
    status("untraced", c, 0);

    // A tracer without PTRACE_O_TRACESECCOMP: ENOSYS too.
    c = fork();
    if (c == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        trace_filter(SYS_getppid, 5);
        errno = 0;
        long r = syscall(SYS_getppid);
        printf("traced without the option: getppid = %ld %s\n", r, r < 0 ? ename(errno) : "");
        fflush(stdout);
        _exit(0);
    }
    status("no option", c, 0);
    ptrace(PTRACE_CONT, c, 0, 0);
    status("no option end", c, 0);

    // With it: stop, skip with a result, then change the call.
    c = fork();
    if (c == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        trace_filter(SYS_getppid, 0x123);
        errno = 0;
        long r = syscall(SYS_getppid);
        printf("skipped getppid = %ld %s\n", r, r < 0 ? ename(errno) : "");
        r = syscall(SYS_getppid);
        printf("getppid made getuid: %s\n", r == (long)getuid() ? "yes" : "no");
        r = syscall(SYS_getppid);
        printf("getppid let through: %s\n", r > 0 ? "yes" : "no");
        fflush(stdout);
        _exit(0);
    }
    status("seccomp child", c, 0);
    ptrace(PTRACE_SETOPTIONS, c, 0, PTRACE_O_TRACESECCOMP);
    ptrace(PTRACE_CONT, c, 0, 0);
    for (int i = 0; i < 3; i++) {
        int st = 0;
        if (waitpid(c, &st, 0) != c) break;
        print_status("seccomp stop", st);
        if (!WIFSTOPPED(st) || st >> 16 != PTRACE_EVENT_SECCOMP) break;
        eventmsg_raw("seccomp stop", c);
        struct user_regs_struct r;
        ptrace(PTRACE_GETREGS, c, 0, &r);
        printf("orig_rax getppid: %s, rax -ENOSYS: %s\n", r.orig_rax == SYS_getppid ? "yes" : "no",
               (long)r.rax == -ENOSYS ? "yes" : "no");
        if (i == 0) { r.orig_rax = -1; r.rax = 4242; }
        if (i == 1) r.orig_rax = SYS_getuid;
        ptrace(PTRACE_SETREGS, c, 0, &r);
        ptrace(PTRACE_CONT, c, 0, 0);
    }
    status("seccomp child end", c, 0);
}

int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[1], "after") == 0) return after_exec(argv[2]);
    if (argc > 1 && strcmp(argv[1], "idle") == 0) { for (;;) pause(); }
    snprintf(self, sizeof self, "%s", argv[0]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    nonleader_exec_untraced();
    nonleader_exec_traced(1);
    nonleader_exec_traced(0);
    exit_stops();
    seccomp_trace();
    return 0;
}
