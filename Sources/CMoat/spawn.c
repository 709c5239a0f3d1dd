#define _GNU_SOURCE
#include "cmoat.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/prctl.h>
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
    // permutation (e.g. 1<->2) cannot clobber a source; the error pipe goes
    // just below them, out of the target range too.
    int base = 1000;
    if (dup3(a->err_fd, base - 1, O_CLOEXEC) < 0) goto fail;
    a->err_fd = base - 1;
    for (int i = 0; i < a->nfds; i++) {
        if (a->fds[i] < 0) continue;
        if (dup3(a->fds[i], base + i, O_CLOEXEC) < 0) goto fail;
    }
    for (int i = 0; i < a->nfds; i++) {
        if (a->fds[i] < 0) { close(i); continue; }
        if (dup2(base + i, i) < 0) goto fail;
    }
    // Everything above the mapped range is closed, except err_fd (cloexec),
    // in two close_range calls: one close per number was a thousand host
    // calls on the Sentry's way to its exec, on every start's critical path.
    if (a->nfds < base - 1) syscall(SYS_close_range, a->nfds, base - 2, 0);
    syscall(SYS_close_range, base, ~0U, 0);
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

// ---- fork without exec ---------------------------------------------------
// The Gofer of `moat run` is this binary; re-executing it costs it the
// dynamic loading, the relocation of its ~1.5 MB of
// .data.rel.ro and GOT (private dirty pages in every process of a PIE) and
// the Swift runtime's start. A fork shares all of that, copy-on-write, with
// the launcher, which stays alive as long as they do; the layout is still
// randomized per `moat run` (the launcher's exec), never fixed.
//
// Safe only in a process with one thread: after fork the child has only the
// forking thread, and a lock another thread held (malloc, the Swift runtime's
// metadata caches, stdio) would stay locked forever. moat_fork_start checks
// the thread count itself and returns -EAGAIN when there is more than one;
// the caller then re-executes as before. With one thread the count cannot
// change before the fork (only this thread could start another), no lock is
// held by anyone else, and glibc's fork runs its atfork handlers (malloc,
// stdio) as usual. The child then:
//  - keeps only the fds it is given, as after the exec (everything else,
//    O_CLOEXEC or not, is closed: the launcher's log, the publisher's
//    sockets, the other child's socket end);
//  - gets the exec's environment, and the launcher's is wiped, not just
//    dropped: the user's environment may hold secrets that a process
//    facing hostile input must not hold. The rest of the launcher's memory
//    is its parsed command line (which the child is given anyway); `moat
//    run` reads no credentials (only `moat pull` does);
//  - shares the launcher's layout: that is the price of the sharing (the
//    same pages cannot be shared at different addresses). Whoever controls
//    a forked process knows the addresses in the launcher and in its other
//    forked children. That is why only the Gofer is forked: the Sentry, the
//    process the application attacks first, is re-executed, so that taking
//    it over tells nothing of the Gofer's or the launcher's layout. Every
//    `moat run` still has a layout of its own: nothing is fixed, nothing is
//    common to two sandboxes, nothing is known from outside one;
//  - confines itself afterwards exactly as a re-executed one: ids,
//    namespaces, capabilities and seccomp come from the same code
//    (ConfinementTests compares both ways with `moat debug`).

static int thread_count(void) {
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    char *p = strstr(buf, "\nThreads:");
    return p ? atoi(p + 9) : -1;
}

int moat_thread_count(void) { return thread_count(); }

// What /proc/PID/cmdline and environ show of a forked child: `argv` and
// `envp` as an exec would have laid them out (ps, `moat debug` and the tests
// tell the Gofer and the Sentry by their argv[1]), in a page of its own.
// PR_SET_MM_MAP replaces the whole table at once and, unlike the single
// PR_SET_MM fields, needs no CAP_SYS_RESOURCE; the other fields are the
// current ones (/proc/self/stat, the break). If it fails, the child keeps
// showing the launcher's command line, which is all that is lost.
static void set_command_line(char *const argv[], char *const envp[]) {
    size_t alen = 0, elen = 0;
    for (char *const *q = argv; q && *q; q++) alen += strlen(*q) + 1;
    for (char *const *q = envp; q && *q; q++) elen += strlen(*q) + 1;
    if (alen == 0) return;
    char *buf = mmap(NULL, alen + elen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) return;
    char *w = buf;
    for (char *const *q = argv; q && *q; q++) { size_t n = strlen(*q) + 1; memcpy(w, *q, n); w += n; }
    for (char *const *q = envp; q && *q; q++) { size_t n = strlen(*q) + 1; memcpy(w, *q, n); w += n; }
    char st[2048];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, st, sizeof st - 1);
    if (fd >= 0) close(fd);
    char *p = n > 0 ? (st[n] = 0, strrchr(st, ')')) : NULL;
    if (!p || strlen(p) < 4) { munmap(buf, alen + elen); return; }
    // Field 4 on, after ") S ": stat(5)'s numbering.
    unsigned long long f[53] = {0};
    p += 4;
    for (int i = 4; i < 53 && *p; i++) { f[i] = strtoull(p, &p, 10); while (*p == ' ') p++; }
    unsigned long a = (unsigned long)buf;
    struct prctl_mm_map m = {
        .start_code = f[26], .end_code = f[27], .start_stack = f[28],
        .start_data = f[45], .end_data = f[46], .start_brk = f[47], .brk = (unsigned long)sbrk(0),
        .arg_start = a, .arg_end = a + alen, .env_start = a + alen, .env_end = a + alen + elen,
        .auxv = NULL, .auxv_size = 0, .exe_fd = (unsigned)-1,
    };
    if (prctl(PR_SET_MM, PR_SET_MM_MAP, &m, sizeof m, 0) != 0) { munmap(buf, alen + elen); return; }
    // The name an exec of /proc/self/exe gives (ps -o comm, pgrep -x).
    prctl(PR_SET_NAME, "exe", 0, 0, 0);
}

pid_t moat_fork_start(char *const argv[], char *const envp[], const int *fds, int nfds,
                      unsigned long cloneflags, int setsid_child, int *errfd) {
    if (thread_count() != 1) return -EAGAIN;
    if (cloneflags & ~(unsigned long)(CLONE_NEWPID | CLONE_NEWNET)) return -EINVAL;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return -errno;
    // A new pid namespace is for the next child only: the launcher enters it
    // for its children, forks, and goes back to its own (its active
    // namespace, which setns allows).
    int ownpid = -1;
    if (cloneflags & CLONE_NEWPID) {
        ownpid = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
        if (ownpid < 0 || unshare(CLONE_NEWPID) != 0) {
            int e = errno; if (ownpid >= 0) close(ownpid); close(p[0]); close(p[1]); return -e;
        }
    }
    // Nothing buffered in stdio may be written twice, by the child too.
    fflush(NULL);
    pid_t pid = fork();
    int err = errno;
    if (pid == 0) {
        // The child: one thread, its own copy of the launcher's memory.
        int e = 0;
        sigset_t none; sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) { e = errno; goto fail; }
        if (setsid_child) setsid();
        if ((cloneflags & CLONE_NEWNET) && unshare(CLONE_NEWNET) != 0) { e = errno; goto fail; }
        int base = 1000;
        if (dup3(p[1], base - 1, O_CLOEXEC) < 0) { e = errno; goto fail; }
        p[1] = base - 1;
        for (int i = 0; i < nfds; i++) {
            if (fds[i] < 0) continue;
            if (dup3(fds[i], base + i, O_CLOEXEC) < 0) { e = errno; goto fail; }
        }
        for (int i = 0; i < nfds; i++) {
            if (fds[i] < 0) { close(i); continue; }
            if (dup2(base + i, i) < 0) { e = errno; goto fail; }   // fd i without O_CLOEXEC, as after exec
        }
        // Every other fd goes, as the exec path closes them: the child
        // inherits none of the launcher's (its log, the port publisher's
        // sockets, the other child's socket end).
        if (nfds < base - 1) syscall(SYS_close_range, nfds, base - 2, 0);
        syscall(SYS_close_range, base, ~0U, 0);
        // The environment an exec would have given: the launcher's own
        // (which may hold a user's secrets) is wiped, not just dropped, so
        // that /proc/PID/environ and the memory hold none of it.
        if (environ) for (char **e2 = environ; *e2; e2++) memset(*e2, 0, strlen(*e2));
        clearenv();
        for (char *const *q = envp; q && *q; q++) putenv(strdup(*q));
        set_command_line(argv, envp);
        close(p[1]);    // success: the parent's read sees end of file
        return 0;
    fail:
        { ssize_t r = write(p[1], &e, sizeof e); (void)r; }
        _exit(127);
    }
    if (ownpid >= 0) {
        // Back to the launcher's own pid namespace for any later child. If
        // that failed, every later fork would land in the new namespace:
        // give up on this child and report the error.
        if (setns(ownpid, CLONE_NEWPID) != 0) {
            int e = errno;
            close(ownpid); close(p[0]); close(p[1]);
            if (pid > 0) { kill(pid, SIGKILL); waitpid(pid, NULL, 0); }
            return -e;
        }
        close(ownpid);
    }
    close(p[1]);
    if (pid < 0) { close(p[0]); return -err; }
    *errfd = p[0];
    return pid;
}
