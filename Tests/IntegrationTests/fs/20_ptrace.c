/* ptrace between the sandbox's own processes (emulated in the Sentry):
 * TRACEME and signal-delivery stops reported to wait, PEEK/POKEDATA,
 * CONT with and without a signal, KILL, ATTACH/DETACH of a non-traced
 * child, EPERM for an unprivileged tracer, and the SIGTRAP stop after a
 * traced execve. The LTP ptrace tests cover more (Tests/Conformance/LTP.md). */
#include "t.h"
#include <signal.h>
#include <sys/ptrace.h>

static volatile long value = 1234;

static void status(const char *what, int st) {
    if (WIFSTOPPED(st)) say("%s: stopped by %d", what, WSTOPSIG(st));
    else if (WIFSIGNALED(st)) say("%s: killed by %d", what, WTERMSIG(st));
    else if (WIFEXITED(st)) say("%s: exited %d", what, WEXITSTATUS(st));
}

static pid_t traced_child(int sig) {
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        if (ptrace(PTRACE_TRACEME, 0, 0, 0)) _exit(90);
        kill(getpid(), sig);
        _exit((int)(value & 0x7f));
    }
    return p;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "exec-child")) return 7;
    int st;
    signal(SIGUSR2, SIG_IGN);

    /* A signal stops the tracee; the tracer reads and writes its memory,
     * then resumes it without the signal. */
    pid_t p = traced_child(SIGUSR1);
    T(waitpid(p, &st, 0) == p);
    status("TRACEME + SIGUSR1", st);
    long w = 0;
    errno = 0;
    w = ptrace(PTRACE_PEEKDATA, p, (void *)&value, 0);
    say("peek: %ld errno %s", w, errno ? ename(errno) : "0");
    T(ptrace(PTRACE_POKEDATA, p, (void *)&value, (void *)42));
    T(ptrace(PTRACE_PEEKDATA, p, (void *)8, 0));          /* unmapped: EIO */
    T(ptrace(PTRACE_POKEDATA, p, (void *)8, 0));
    T(ptrace(PTRACE_CONT, p, 0, 0));
    T(waitpid(p, &st, 0) == p);
    status("after CONT 0", st);

    /* An ignored signal still stops a tracee; CONT with a signal delivers it. */
    p = traced_child(SIGUSR2);
    T(waitpid(p, &st, 0) == p);
    status("ignored SIGUSR2", st);
    T(ptrace(PTRACE_CONT, p, 0, (void *)SIGTERM));
    T(waitpid(p, &st, 0) == p);
    status("after CONT SIGTERM", st);

    /* KILL; requests on a running tracee or a non-tracee are ESRCH. */
    p = traced_child(SIGSTOP);
    T(waitpid(p, &st, 0) == p);
    status("SIGSTOP", st);
    T(ptrace(PTRACE_CONT, p, 0, (void *)65));               /* EIO */
    T(ptrace(PTRACE_KILL, p, 0, 0));
    T(waitpid(p, &st, 0) == p);
    status("after KILL", st);
    T(ptrace(PTRACE_CONT, getppid(), 0, 0));
    fflush(stdout);
    if ((p = fork()) == 0) {
        T(ptrace(PTRACE_TRACEME, 0, 0, 0));
        T(ptrace(PTRACE_TRACEME, 0, 0, 0));                /* twice: EPERM */
        fflush(stdout);
        _exit(0);
    }
    T(waitpid(p, &st, 0) == p);

    /* ATTACH stops a sleeping child with SIGSTOP; DETACH lets it go on. */
    fflush(stdout);
    pid_t sleeper = fork();
    if (sleeper == 0) { pause(); _exit(0); }
    fflush(stdout);
    pid_t other = fork();
    if (other == 0) {
        T(setuid(65534));
        T(ptrace(PTRACE_ATTACH, sleeper, 0, 0));           /* EPERM */
        _exit(0);
    }
    T(waitpid(other, &st, 0) == other);
    T(ptrace(PTRACE_ATTACH, sleeper, 0, 0));
    T(ptrace(PTRACE_ATTACH, sleeper, 0, 0));               /* already traced */
    T(waitpid(sleeper, &st, 0) == sleeper);
    status("ATTACH", st);
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/%d/status", sleeper);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "State:", 6)) say("%.*s", (int)strcspn(line, "\n"), line);
        else if (!strncmp(line, "TracerPid:", 10)) say("TracerPid is us: %d", atoi(line + 10) == getpid());
    if (f) fclose(f);
    T(ptrace(PTRACE_DETACH, sleeper, 0, 0));
    T(kill(sleeper, SIGTERM));
    T(waitpid(sleeper, &st, 0) == sleeper);
    status("sleeper after DETACH", st);

    /* A traced execve stops with SIGTRAP before the new program runs. */
    fflush(stdout);
    p = fork();
    if (p == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        execl("/work/prog", "prog", "exec-child", (char *)0);
        _exit(91);
    }
    T(waitpid(p, &st, 0) == p);
    status("execve", st);
    T(ptrace(PTRACE_CONT, p, 0, 0));
    T(waitpid(p, &st, 0) == p);
    status("exec child", st);
    return 0;
}
