/* Who may reach another process (Linux's ptrace_may_access): one that is
 * not dumpable is out of reach without CAP_SYS_PTRACE in every mode (setns
 * by its pidfd, process_vm_readv). (That a process which made itself a user
 * namespace reaches nothing outside it, gVisor's pidfd_test
 * GetfdFailsWhenUnprivileged checks: a chroot may not make one natively.)
 * And an abstract AF_UNIX name belongs to the network namespace its socket
 * was made in, not the one its process is in when it binds or connects.
 * And a tracer's wait cancels the signal of the stop it reports, and a
 * PIDFD_THREAD pidfd follows its own thread. */
#include "t.h"
#include <sched.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

static int sibling_tid, sibling_stop;
static void *sibling(void *arg) {
    (void)arg;
    __atomic_store_n(&sibling_tid, (int)syscall(SYS_gettid), __ATOMIC_SEQ_CST);
    while (!__atomic_load_n(&sibling_stop, __ATOMIC_SEQ_CST)) usleep(1000);
    return NULL;
}

static int pidfd_open(pid_t p) { return syscall(SYS_pidfd_open, p, 0); }

int main(void) {
    int pidfd = T(pidfd_open(getpid()));
    static char secret[16] = "secret";
    pid_t c;
    int st;
    /* Not dumpable: a child without CAP_SYS_PTRACE cannot join by pidfd. */
    T(prctl(PR_SET_DUMPABLE, 0));
    c = fork();
    if (c == 0) {
        struct __user_cap_header_struct { uint32_t version; int pid; } h = { 0x20080522, 0 };
        struct { uint32_t eff, prm, inh; } d[2];
        T(syscall(SYS_capget, &h, d));
        d[0].eff &= ~(1u << 19);                                  /* CAP_SYS_PTRACE out of the effective set */
        T(syscall(SYS_capset, &h, d));
        T(unshare(CLONE_NEWNET));
        T(setns(pidfd, CLONE_NEWNET));
        char buf[16];
        struct iovec l = { buf, sizeof buf }, r = { secret, sizeof secret };
        T(process_vm_readv(getppid(), &l, 1, &r, 1, 0));
        _exit(0);
    }
    T(waitpid(c, &st, 0) == c);
    printf("child exit %d\n", WEXITSTATUS(st));
    T(prctl(PR_SET_DUMPABLE, 1));

    /* A tracer's wait takes the signal of a signal-delivery stop: a tracer
     * that then exits without resuming leaves its tracee no signal (here a
     * SIGUSR1 that would have killed it). */
    int sp[2];
    T(pipe(sp));
    pid_t tracee = fork();
    if (tracee == 0) {
        char ch;
        if (read(sp[0], &ch, 1) != 1) _exit(7);
        raise(SIGUSR1);
        _exit(5);
    }
    c = fork();
    if (c == 0) {
        T(ptrace(PTRACE_SEIZE, tracee, 0, 0));
        T(write(sp[1], "x", 1));
        int ts;
        T(waitpid(tracee, &ts, 0) == tracee);
        printf("tracee stopped by %s\n", WIFSTOPPED(ts) && WSTOPSIG(ts) == SIGUSR1 ? "SIGUSR1" : "?");
        fflush(stdout);
        _exit(0);                                                 /* no PTRACE_CONT */
    }
    T(waitpid(c, &st, 0) == c);
    T(waitpid(tracee, &st, 0) == tracee);
    printf("tracee: exited %d code %d, signaled %d\n", WIFEXITED(st), WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st));

    /* A PIDFD_THREAD pidfd of a thread that is not the leader: not readable
     * while the thread runs, readable once it has exited; signals to it
     * reach that thread. */
    {
        pthread_t th;
        T(pthread_create(&th, NULL, sibling, NULL) == 0);
        while (__atomic_load_n(&sibling_tid, __ATOMIC_SEQ_CST) == 0) sched_yield();
        int tfd = T(syscall(SYS_pidfd_open, sibling_tid, O_EXCL));
        struct pollfd pf = { tfd, POLLIN, 0 };
        T(poll(&pf, 1, 0));
        T(syscall(SYS_pidfd_send_signal, tfd, 0, NULL, 0));
        __atomic_store_n(&sibling_stop, 1, __ATOMIC_SEQ_CST);
        T(pthread_join(th, NULL) == 0);
        pf.revents = 0;
        T(poll(&pf, 1, 1000));
        printf("revents %#x\n", pf.revents);
        T(close(tfd));
    }

    /* Abstract names follow the socket's namespace. */
    c = fork();
    if (c == 0) {
        T(unshare(CLONE_NEWNET));
        int a = T(socket(AF_UNIX, SOCK_STREAM, 0)), b = T(socket(AF_UNIX, SOCK_STREAM, 0));
        T(unshare(CLONE_NEWNET));                                 /* the process moves on; a and b stay */
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        T(bind(a, (struct sockaddr *)&addr, sizeof(sa_family_t)));    /* autobind */
        socklen_t len = sizeof addr;
        T(getsockname(a, (struct sockaddr *)&addr, &len));
        T(listen(a, 1));
        T(connect(b, (struct sockaddr *)&addr, len));             /* both in the first namespace */
        int x = T(socket(AF_UNIX, SOCK_STREAM, 0));               /* made in the second */
        T(connect(x, (struct sockaddr *)&addr, len));
        T(bind(x, (struct sockaddr *)&addr, len));                /* the name is free here */
        _exit(0);
    }
    T(waitpid(c, &st, 0) == c);
    printf("child exit %d\n", WEXITSTATUS(st));
    return 0;
}
