/* A running program may not be opened for writing or truncated, and a
 * file open for writing may not be run (ETXTBSY both ways); the bar lifts
 * when the last process running it exits and when the last writer closes.
 * An execve with an empty argv gives the program one empty argv[0]. */
#include "t.h"
#include <signal.h>

static int copy(const char *from, const char *to) {
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    if (in < 0 || out < 0) return -1;
    char b[65536];
    ssize_t n;
    while ((n = read(in, b, sizeof b)) > 0) if (write(out, b, n) != n) return -1;
    close(in);
    return close(out);
}

/* Runs "./runme ARG" in a child; returns its exit status or the errno of
   its execve as 100 + errno. */
static int run(char *arg) {
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        char *argv[] = { "runme", arg, NULL }, *envp[] = { NULL };
        execve("./runme", arg ? argv : (char *[]){ NULL }, envp);
        _exit(100 + errno);
    }
    int st;
    waitpid(c, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 200 + WTERMSIG(st);
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "sleep")) {
        (void)!write(3, "r", 1);
        for (;;) pause();
    }
    if (argc == 2 && !strcmp(argv[1], "true")) return 7;
    if (argc == 1 && argv[0] && argv[0][0] == 0) return 42;
    if (argc == 0) return 43;

    T(copy("/work/prog", "runme"));
    /* a process runs it */
    int p[2];
    T(pipe(p));
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        dup2(p[1], 3);
        execl("./runme", "runme", "sleep", (char *)NULL);
        _exit(1);
    }
    char b;
    T(read(p[0], &b, 1));
    T(open("runme", O_WRONLY));
    T(open("runme", O_RDWR));
    T(open("runme", O_RDONLY | O_TRUNC));
    T(truncate("runme", 0));
    int r = T(open("runme", O_RDONLY));
    T(close(r));
    say("another run while it runs: %d", run("true"));
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    /* it no longer runs */
    int w = T(open("runme", O_WRONLY));
    say("run while open for writing: %d", run("true"));
    int w2 = T(dup(w));
    T(close(w));
    say("still open through a dup: %d", run("true"));
    T(close(w2));
    say("after the last close: %d", run("true"));
    /* an empty argv: one empty argv[0] */
    say("empty argv: %d", run(NULL));
    T(unlink("runme"));
    return 0;
}
