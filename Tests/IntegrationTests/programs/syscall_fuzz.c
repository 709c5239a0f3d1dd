/*
 * syscall_fuzz: call (almost) every x86-64 syscall number 0..450 with a few
 * garbage argument patterns and make sure the process survives.
 *
 * MEANT TO RUN INSIDE THE SANDBOX ONLY. Run as root on a bare host it would
 * try things like sethostname(NULL, 0), acct(), swapon() and adjtimex() for
 * real. SyscallFuzzTests.swift runs it under `moat run` and then checks that
 * the host was not affected.
 *
 * Skipped because they legitimately end, replace, duplicate or suspend the
 * caller: exit, exit_group, rt_sigreturn, fork, vfork, clone, clone3, execve,
 * execveat, pause, rt_sigsuspend, kill, tkill, tgkill. A few (nr, pattern)
 * pairs that would sabotage the fuzzer itself are skipped as well: seccomp
 * with all-zero args (SECCOMP_SET_MODE_STRICT), ptrace with all-zero args
 * (PTRACE_TRACEME) and set*id calls with anything but 0 / -1 (dropping root
 * early would turn every later privileged call into a trivial EPERM).
 * reboot is called on purpose: the sandbox must refuse it (the magic numbers
 * never match anyway).
 *
 * Robustness measures:
 *  - every catchable signal has a handler (counting); SIGSEGV/SIGBUS/SIGILL/
 *    SIGFPE/SIGTRAP jump back to the loop with siglongjmp;
 *  - a 200 ms ITIMER_REAL watchdog is armed around each call; SIGALRM is
 *    handled without SA_RESTART so blocking calls (select(0,0,0,0,NULL),
 *    ppoll(NULL,0,NULL,...), reads of FIFOs, ...) return EINTR;
 *  - the signal mask is reset after each call and handlers are reinstalled
 *    after rt_sigaction, personality() is reset after personality;
 *  - stdout/stderr are duplicated to fds 1000/1001 first (small-int
 *    patterns close fd 1 and dup2 over fd 2);
 *  - the pointer buffer is static, in .bss below the heap, and deliberately
 *    not page aligned, so munmap/mprotect/madvise/brk on it fail with EINVAL;
 *    it is refilled before each call. Its first 16 bytes read as a timespec
 *    with an invalid tv_nsec, so nanosleep-like calls fail instead of
 *    sleeping for years. Paths in it are relative, so anything created ends
 *    up in the current directory.
 *  - alarms are off at start and at the end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_NR 450
#define OUT_FD 1000
#define ERR_FD 1001

static unsigned char arena[1 << 16] __attribute__((aligned(4096)));
#define BUF ((unsigned char *)arena + 16) /* not page aligned on purpose */

static sigjmp_buf recover;
static volatile sig_atomic_t in_call;
static volatile sig_atomic_t fault_sig;
static volatile sig_atomic_t signal_count[65];

/* Counters live outside main() so siglongjmp cannot clobber them. */
static long calls, ok, failed, enosys, eintr, faults, skipped;

static const char NAME1[] = "fuzz-file-name-xx"; /* bytes 8..15 = "e-name-x": tv_nsec invalid */
static const char NAME2[] = "fuzz-other-name-yy";

static void refill(void)
{
    memset(arena, 0, 4096);
    memcpy(BUF, NAME1, sizeof NAME1);
    memcpy(BUF + 256, NAME2, sizeof NAME2);
}

static void on_signal(int sig, siginfo_t *info, void *uc)
{
    (void)info;
    (void)uc;
    if (sig > 0 && sig < 65)
        signal_count[sig]++;
    if (in_call && (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGTRAP)) {
        in_call = 0;
        fault_sig = sig;
        siglongjmp(recover, 1);
    }
}

static void install_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO; /* no SA_RESTART: the watchdog must interrupt */
    sigemptyset(&sa.sa_mask);
    for (int sig = 1; sig < 65; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        sigaction(sig, &sa, NULL); /* glibc-reserved signals just fail */
    }
}

static void watchdog(long usec)
{
    struct itimerval it;
    memset(&it, 0, sizeof it);
    it.it_value.tv_sec = usec / 1000000;
    it.it_value.tv_usec = usec % 1000000;
    setitimer(ITIMER_REAL, &it, NULL);
}

static int skipped_always(long nr)
{
    switch (nr) {
    case SYS_exit:
    case SYS_exit_group:
    case SYS_rt_sigreturn:
    case SYS_fork:
    case SYS_vfork:
    case SYS_clone:
#ifdef SYS_clone3
    case SYS_clone3:
#endif
    case SYS_execve:
    case SYS_execveat:
    case SYS_pause:
    case SYS_rt_sigsuspend:
    case SYS_kill:
    case SYS_tkill:
    case SYS_tgkill:
        return 1;
    }
    return 0;
}

static int is_setid(long nr)
{
    switch (nr) {
    case SYS_setuid:
    case SYS_setgid:
    case SYS_setreuid:
    case SYS_setregid:
    case SYS_setresuid:
    case SYS_setresgid:
    case SYS_setfsuid:
    case SYS_setfsgid:
        return 1;
    }
    return 0;
}

enum { P_ZERO, P_ONES, P_SMALL, P_PTR, P_ATFD, NPATTERNS };
static const char *pattern_name[NPATTERNS] = { "zeros", "ones", "small", "pointers", "at-fdcwd" };

static void pattern_args(int p, uintptr_t a[6])
{
    switch (p) {
    case P_ZERO:
        for (int i = 0; i < 6; i++) a[i] = 0;
        break;
    case P_ONES:
        for (int i = 0; i < 6; i++) a[i] = ~(uintptr_t)0;
        break;
    case P_SMALL:
        for (int i = 0; i < 6; i++) a[i] = (uintptr_t)(i + 1);
        break;
    case P_PTR:
        a[0] = (uintptr_t)BUF;
        a[1] = (uintptr_t)(BUF + 256);
        a[2] = 64;
        a[3] = (uintptr_t)(BUF + 512);
        a[4] = 0;
        a[5] = 0;
        break;
    case P_ATFD:
        a[0] = (uintptr_t)(intptr_t)AT_FDCWD;
        a[1] = (uintptr_t)BUF;
        a[2] = (uintptr_t)(BUF + 256);
        a[3] = 0x1ff;
        a[4] = 0;
        a[5] = 0;
        break;
    }
}

static int skipped_pattern(long nr, int p)
{
    if (is_setid(nr))
        return !(p == P_ZERO || p == P_ONES);
    if (nr == SYS_seccomp && p == P_ZERO)
        return 1; /* SECCOMP_SET_MODE_STRICT would end the test */
    if (nr == SYS_ptrace && p == P_ZERO)
        return 1; /* PTRACE_TRACEME: every later signal would stop us */
    return 0;
}

int main(void)
{
    int out = dup2(STDOUT_FILENO, OUT_FD);
    if (out < 0)
        out = fcntl(STDOUT_FILENO, F_DUPFD, 100); /* RLIMIT_NOFILE below 1001 */
    if (out < 0)
        out = STDOUT_FILENO;
    int err = dup2(STDERR_FILENO, ERR_FD);
    if (err < 0)
        err = fcntl(STDERR_FILENO, F_DUPFD, 100);
    if (err < 0)
        err = STDERR_FILENO;

    alarm(0);
    watchdog(0);
    install_handlers();
    sigset_t empty;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, NULL);

    for (long nr = 0; nr <= MAX_NR; nr++) {
        if (skipped_always(nr)) {
            skipped += NPATTERNS;
            continue;
        }
        for (int p = 0; p < NPATTERNS; p++) {
            if (skipped_pattern(nr, p)) {
                skipped++;
                continue;
            }
            uintptr_t a[6];
            pattern_args(p, a);
            refill();
            calls++;
            if (sigsetjmp(recover, 1) == 0) {
                in_call = 1;
                watchdog(200000);
                errno = 0;
                long r = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
                int e = errno;
                in_call = 0;
                watchdog(0);
                if (r == -1) {
                    failed++;
                    if (e == ENOSYS)
                        enosys++;
                    if (e == EINTR)
                        eintr++;
                } else {
                    ok++;
                }
            } else {
                watchdog(0);
                faults++;
                dprintf(err, "signal %d during nr %ld (%s) recovered\n", (int)fault_sig, nr, pattern_name[p]);
            }
            /* Undo what the call may have changed about our own signal setup. */
            sigprocmask(SIG_SETMASK, &empty, NULL);
            if (nr == SYS_rt_sigaction)
                install_handlers();
            if (nr == SYS_personality)
                personality(PER_LINUX);
        }
    }

    watchdog(0);
    alarm(0);
    long sigs = 0;
    for (int s = 1; s < 65; s++)
        sigs += signal_count[s];
    dprintf(err,
            "calls=%ld ok=%ld failed=%ld enosys=%ld eintr=%ld faults=%ld skipped=%ld signals=%ld\n",
            calls, ok, failed, enosys, eintr, faults, skipped, sigs);
    if (dprintf(out, "survived %ld calls\n", calls) < 0) {
        dprintf(STDOUT_FILENO, "survived %ld calls\n", calls);
        dprintf(STDERR_FILENO, "survived %ld calls\n", calls);
    }
    return 0;
}
