// ptrace(2) between two processes of the sandbox, as strace and gdb use
// it: the signal mask and siginfo of a stopped tracee (GET/SETSIGMASK,
// GET/SETSIGINFO, signal injection), syscall-entry and -exit stops under
// PTRACE_SYSCALL with PTRACE_O_TRACESYSGOOD (orig_rax, rax -ENOSYS at entry,
// the result at exit, a changed argument and a changed result), PTRACE_SYSEMU
// with the result poked into rax, SETREGS checks (a kernel-mode segment is
// EIO), PTRACE_SEIZE with PTRACE_INTERRUPT (PTRACE_EVENT_STOP), INTERRUPT on
// a tracee not seized (EIO), PTRACE_O_TRACEFORK (the child is traced and
// starts stopped, GETEVENTMSG names it) and PTRACE_O_TRACEEXEC
// (PTRACE_EVENT_EXEC). Prints wait statuses and register values Linux
// defines; never addresses or pids.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(what, cond) do { printf("%s: %s\n", what, (cond) ? "yes" : "no"); fflush(stdout); } while (0)

static const char *ename(int e) {
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

static long P(const char *what, long r) {
    if (r == -1) printf("%s = -1 %s\n", what, ename(errno));
    else printf("%s = ok\n", what);
    fflush(stdout);
    errno = 0;
    return r;
}

static void print_status(const char *what, int st) {
    if (WIFSTOPPED(st)) printf("%s: stopped sig %d event %d\n", what, WSTOPSIG(st), st >> 16);
    else if (WIFEXITED(st)) printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st)) printf("%s: killed by %d\n", what, WTERMSIG(st));
}

static void status(const char *what, pid_t pid, int flags) {
    int st = 0;
    pid_t r = waitpid(pid, &st, flags);
    if (r != pid) { printf("%s: waitpid = %d %s\n", what, r, r < 0 ? ename(errno) : ""); return; }
    print_status(what, st);
}

/* As status(), after letting the tracee past SIGCHLD stops (a child's exit
 * signals it at a moment that depends on scheduling). */
static void status_past_sigchld(const char *what, pid_t pid) {
    int st = 0;
    while (waitpid(pid, &st, 0) == pid && WIFSTOPPED(st) && WSTOPSIG(st) == SIGCHLD) ptrace(PTRACE_CONT, pid, 0, 0);
    print_status(what, st);
}

static void sigmask_and_siginfo(void) {
    pid_t c = fork();
    if (c == 0) {
        signal(SIGUSR1, SIG_IGN);
        struct sigaction sa = { .sa_handler = (void (*)(int))_exit };
        sigaction(SIGUSR2, &sa, NULL);
        sigset_t b; sigemptyset(&b); sigaddset(&b, SIGUSR1);
        sigprocmask(SIG_SETMASK, &b, NULL);
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        // The tracer unblocks SIGUSR1 and turns it into SIGUSR2: exit 12.
        raise(SIGUSR1);
        _exit(0);
    }
    status("traceme stop", c, 0);
    uint64_t m = 0;
    P("PTRACE_GETSIGMASK", ptrace(0x420a, c, 8, &m));
    printf("mask has SIGUSR1: %d\n", (int)((m >> (SIGUSR1 - 1)) & 1));
    P("PTRACE_GETSIGMASK size 4", ptrace(0x420a, c, 4, &m));
    P("PTRACE_SETSIGMASK bad address", ptrace(0x420b, c, 8, (void *)-1));
    m = ~0ull;
    P("PTRACE_SETSIGMASK all", ptrace(0x420b, c, 8, &m));
    P("PTRACE_GETSIGMASK", ptrace(0x420a, c, 8, &m));
    printf("SIGKILL blocked: %d, SIGSTOP blocked: %d\n", (int)((m >> (SIGKILL - 1)) & 1), (int)((m >> (SIGSTOP - 1)) & 1));
    m = 0;
    P("PTRACE_SETSIGMASK none", ptrace(0x420b, c, 8, &m));
    siginfo_t si;
    memset(&si, 0, sizeof si);
    P("PTRACE_GETSIGINFO", ptrace(PTRACE_GETSIGINFO, c, 0, &si));
    printf("siginfo signo %d code %d\n", si.si_signo, si.si_code);
    P("PTRACE_CONT", ptrace(PTRACE_CONT, c, 0, 0));
    status("after raise(SIGUSR1)", c, 0);
    P("PTRACE_GETSIGINFO", ptrace(PTRACE_GETSIGINFO, c, 0, &si));
    printf("siginfo signo %d code %d\n", si.si_signo, si.si_code);
    si.si_signo = SIGUSR2;
    P("PTRACE_SETSIGINFO", ptrace(PTRACE_SETSIGINFO, c, 0, &si));
    P("PTRACE_DETACH SIGUSR2", ptrace(PTRACE_DETACH, c, 0, SIGUSR2));
    status("after detach", c, 0);
}

static void syscall_stops(void) {
    pid_t c = fork();
    if (c == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        // dup(2) entry: the tracer changes its argument to 1 (stdout);
        // exit: the tracer sees the new fd and replaces it with 77.
        long r = syscall(SYS_dup, 2000);
        // getppid under PTRACE_SYSEMU: never runs, returns what the tracer put.
        long e = syscall(SYS_getppid);
        _exit(r == 77 && e == 4242 ? 0 : 1);
    }
    status("traceme stop", c, 0);
    P("PTRACE_SETOPTIONS TRACESYSGOOD", ptrace(PTRACE_SETOPTIONS, c, 0, PTRACE_O_TRACESYSGOOD));
    P("PTRACE_SETOPTIONS bad", ptrace(PTRACE_SETOPTIONS, c, 0, 0x80000000ul));
    P("PTRACE_SYSCALL", ptrace(PTRACE_SYSCALL, c, 0, 0));
    status("dup entry", c, 0);
    struct user_regs_struct r;
    P("PTRACE_GETREGS", ptrace(PTRACE_GETREGS, c, 0, &r));
    printf("orig_rax %lld rax %lld rdi %lld\n", (long long)r.orig_rax, (long long)r.rax, (long long)r.rdi);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    P("PTRACE_GETSIGINFO", ptrace(PTRACE_GETSIGINFO, c, 0, &si));
    printf("siginfo signo %d code %#x\n", si.si_signo, si.si_code);
    long orig = ptrace(PTRACE_PEEKUSER, c, offsetof(struct user_regs_struct, orig_rax), 0);
    printf("PEEKUSER orig_rax %ld\n", orig);
    struct user_regs_struct bad = r;
    bad.cs = 0x10;
    P("PTRACE_SETREGS kernel cs", ptrace(PTRACE_SETREGS, c, 0, &bad));
    bad = r; bad.ds = 0x12;
    P("PTRACE_SETREGS ring-2 ds", ptrace(PTRACE_SETREGS, c, 0, &bad));
    r.rdi = 1;
    P("PTRACE_SETREGS rdi=1", ptrace(PTRACE_SETREGS, c, 0, &r));
    P("PTRACE_SYSCALL", ptrace(PTRACE_SYSCALL, c, 0, 0));
    status("dup exit", c, 0);
    P("PTRACE_GETREGS", ptrace(PTRACE_GETREGS, c, 0, &r));
    printf("orig_rax %lld result is a descriptor: %d\n", (long long)r.orig_rax, (long long)r.rax > 2);
    P("POKEUSER rax=77", ptrace(PTRACE_POKEUSER, c, offsetof(struct user_regs_struct, rax), 77));
    P("PTRACE_SYSEMU", ptrace(PTRACE_SYSEMU, c, 0, 0));
    status("getppid entry", c, 0);
    P("PTRACE_GETREGS", ptrace(PTRACE_GETREGS, c, 0, &r));
    printf("orig_rax %lld rax %lld\n", (long long)r.orig_rax, (long long)r.rax);
    P("POKEUSER rax=4242", ptrace(PTRACE_POKEUSER, c, offsetof(struct user_regs_struct, rax), 4242));
    P("PTRACE_CONT", ptrace(PTRACE_CONT, c, 0, 0));
    status("end", c, 0);
}

static void seize_interrupt(void) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_t c = fork();
    if (c == 0) {
        char b;
        close(fds[1]);
        // Blocks until the tracer closes its end; the interrupt restarts it.
        long n = read(fds[0], &b, 1);
        _exit(n == 0 ? 0 : 1);
    }
    close(fds[0]);
    P("PTRACE_SEIZE", ptrace(PTRACE_SEIZE, c, 0, PTRACE_O_TRACESYSGOOD));
    P("PTRACE_SEIZE bad options", ptrace(PTRACE_SEIZE, c, 0, 0x80000000ul));
    usleep(100000);
    P("PTRACE_INTERRUPT", ptrace(PTRACE_INTERRUPT, c, 0, 0));
    status("interrupt", c, 0);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    P("PTRACE_GETSIGINFO", ptrace(PTRACE_GETSIGINFO, c, 0, &si));
    printf("siginfo signo %d code %#x\n", si.si_signo, si.si_code);
    P("PTRACE_CONT", ptrace(PTRACE_CONT, c, 0, 0));
    close(fds[1]);
    status("end", c, 0);

    c = fork();
    if (c == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        _exit(3);
    }
    status("traceme stop", c, 0);
    P("PTRACE_INTERRUPT not seized", ptrace(PTRACE_INTERRUPT, c, 0, 0));
    P("PTRACE_LISTEN not seized", ptrace(PTRACE_LISTEN, c, 0, 0));
    P("PTRACE_DETACH", ptrace(PTRACE_DETACH, c, 0, 0));
    status("end", c, 0);
}

static void fork_and_exec_events(void) {
    pid_t c = fork();
    if (c == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        pid_t g = fork();
        if (g == 0) _exit(5);
        int st;
        waitpid(g, &st, 0);
        char *argv[] = { "/bin/true", NULL };
        execv(argv[0], argv);
        _exit(WIFEXITED(st) ? 100 + WEXITSTATUS(st) : 1);
    }
    status("traceme stop", c, 0);
    P("PTRACE_SETOPTIONS TRACEFORK|TRACEEXEC", ptrace(PTRACE_SETOPTIONS, c, 0, PTRACE_O_TRACEFORK | PTRACE_O_TRACEEXEC));
    P("PTRACE_CONT", ptrace(PTRACE_CONT, c, 0, 0));
    status("fork event", c, 0);
    unsigned long msg = 0;
    P("PTRACE_GETEVENTMSG", ptrace(PTRACE_GETEVENTMSG, c, 0, &msg));
    pid_t g = (pid_t)msg;
    CHECK("event message is a new pid", g > 0 && g != c);
    status("grandchild starts stopped", g, __WALL);
    // Detached, its exit goes to its parent alone (a traced child's exit
    // would be the tracer's to collect first).
    P("PTRACE_DETACH grandchild", ptrace(PTRACE_DETACH, g, 0, 0));
    P("PTRACE_CONT", ptrace(PTRACE_CONT, c, 0, 0));
    status_past_sigchld("exec event", c);
    P("PTRACE_GETEVENTMSG", ptrace(PTRACE_GETEVENTMSG, c, 0, &msg));
    CHECK("exec event names the tracee", (pid_t)msg == c);
    P("PTRACE_CONT", ptrace(PTRACE_CONT, c, 0, 0));
    status_past_sigchld("end", c);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("-- sigmask and siginfo\n");
    sigmask_and_siginfo();
    printf("-- syscall stops\n");
    syscall_stops();
    printf("-- seize and interrupt\n");
    seize_interrupt();
    printf("-- fork and exec events\n");
    fork_and_exec_events();
    return 0;
}
