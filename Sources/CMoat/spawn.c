#define _GNU_SOURCE
#include "cmoat.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct spawn_args {
    const char *path; char *const *argv; char *const *envp;
    const int *fds; int nfds; int setsid_child; int err_fd;
};

static int spawn_main(void *p) {
    struct spawn_args *a = p;
    sigset_t none; sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (a->setsid_child) setsid();
    // Move the requested fds above the target range first so that a
    // permutation (e.g. 1<->2) cannot clobber a source.
    int base = 1000;
    for (int i = 0; i < a->nfds; i++) {
        if (a->fds[i] < 0) continue;
        if (dup3(a->fds[i], base + i, O_CLOEXEC) < 0) goto fail;
    }
    for (int i = 0; i < a->nfds; i++) {
        if (a->fds[i] < 0) { close(i); continue; }
        if (dup2(base + i, i) < 0) goto fail;
    }
    // Everything above the mapped range is closed, except err_fd (cloexec).
    for (int i = a->nfds; i < base + a->nfds; i++) {
        if (i == a->err_fd) continue;
        close(i);
    }
    syscall(SYS_close_range, base + a->nfds, ~0U, 0);
    execve(a->path, a->argv, a->envp);
fail:
    {
        int e = errno;
        ssize_t r = write(a->err_fd, &e, sizeof e);
        (void)r;
    }
    _exit(127);
}

pid_t moat_spawn(const char *path, char *const argv[], char *const envp[],
                 const int *fds, int nfds, unsigned long cloneflags, int setsid_child) {
    int errfd = -1;
    pid_t pid = moat_spawn_start(path, argv, envp, fds, nfds, cloneflags, setsid_child, &errfd);
    return pid < 0 ? pid : moat_spawn_finish(pid, errfd);
}

// The clone alone: the child has its own copy of everything it reads (no
// CLONE_VM), so the caller may start another process while this one execs,
// and calls moat_spawn_finish(pid, errfd) to learn whether the exec worked.
pid_t moat_spawn_start(const char *path, char *const argv[], char *const envp[],
                       const int *fds, int nfds, unsigned long cloneflags, int setsid_child, int *errfd) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return -errno;
    size_t stack_size = 256 * 1024;
    char *stack = malloc(stack_size);
    if (!stack) { close(p[0]); close(p[1]); return -ENOMEM; }
    struct spawn_args a = { path, argv, envp, fds, nfds, setsid_child, p[1] };
    pid_t pid = clone(spawn_main, stack + stack_size, (int)(cloneflags | SIGCHLD), &a);
    int err = errno;
    close(p[1]);
    free(stack);
    if (pid < 0) { close(p[0]); return -err; }
    *errfd = p[0];
    return pid;
}

// Waits until the child of moat_spawn_start has exec'd (its end of the pipe
// closes) or failed (it writes its errno and exits; it is reaped here).
pid_t moat_spawn_finish(pid_t pid, int errfd) {
    int childerr = 0;
    ssize_t n;
    do { n = read(errfd, &childerr, sizeof childerr); } while (n < 0 && errno == EINTR);
    close(errfd);
    if (n == (ssize_t)sizeof childerr) {
        int st; waitpid(pid, &st, 0);
        return -childerr;
    }
    return pid;
}
