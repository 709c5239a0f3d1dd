// The fast syscall path: seccomp user notification.
//
// Under PTRACE_SYSEMU every application syscall is a ptrace stop: the stub
// thread stops, its tracer wakes from waitpid, reads and writes the
// registers with two more host calls and resumes it. A thread that runs
// under PTRACE_CONT instead meets this per-thread filter, installed by the
// Sentry (an injected seccomp() in the stub) before the thread first runs:
//
//   - calls from the stub page (injections, which the tracer lets through at
//     a PTRACE_EVENT_SECCOMP stop) are traced, except the parked threads'
//     pause(), which is allowed; an application that jumps into the stub page
//     gets a traced stop too, and the tracer skips the call (orig_rax = -1);
//   - calls in the fast set (below) are SECCOMP_RET_USER_NOTIF: the thread
//     sleeps in the host kernel while its driver receives the number and
//     arguments on the listener fd, emulates the call and sends back the
//     return value: no ptrace stop, no register traffic;
//   - every other call is SECCOMP_RET_TRAP: a forced SIGSYS that the tracer
//     sees as a signal-delivery stop, with the host call not executed.
//
// Nothing in the filter ever allows an application syscall to run on the
// host: the worst outcome of a tracer bug is a trap, not a host call.
// The fast set holds the calls whose emulation needs only the number and
// arguments and returns only a value (Sentry/Kernel/FastPath.swift keeps the
// rest on the ptrace path).
#define _GNU_SOURCE
#include "cmoat.h"
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1
#endif

static const uint16_t fast_set[] = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 13, 14, 16, 17, 18, 19, 20, 21, 22, 23, 24, 32, 33, 35,
    39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 61, 62, 63,
    72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91,
    92, 93, 94, 95, 96, 97, 98, 99, 100, 102, 104, 107, 108, 110, 111, 115, 121, 124,
    127, 137, 138, 140, 188, 189, 190, 191, 192, 193, 194, 195, 196, 197, 198, 199,
    201, 202, 204, 217, 218, 221, 228, 229, 230, 232, 233, 234, 235, 247, 253, 254,
    255, 257, 258, 260, 262, 263, 264, 265, 266, 267, 268, 269, 270, 271, 273, 275,
    276, 280, 281, 288, 290, 291, 292, 293, 294, 295, 296, 299, 302, 307, 309, 316,
    318, 319, 326, 327, 328, 332, 436, 439, 441,
};

int moat_fast_syscall_count(void) { return (int)(sizeof fast_set / sizeof fast_set[0]); }
int moat_fast_syscall(int i) { return fast_set[i]; }

#define FILTER_OFF 0x800   /* where the filter lives on the stub page */

uint64_t moat_fast_filter_addr(void) { return MOAT_STUB_ADDR + FILTER_OFF; }

// The start both filters share: instructions 0-7 kill any call that is not
// x86-64 and fall through to 8 for a call from the stub page (ip is just past
// the instruction). The three branches for a call from anywhere else are
// aimed at the filter's application part by stub_page_check_else.
static size_t stub_page_check(struct sock_filter *f) {
    const uint32_t ip_lo = offsetof(struct seccomp_data, instruction_pointer);
    const uint32_t stub_lo = (uint32_t)MOAT_STUB_ADDR, stub_hi = (uint32_t)(MOAT_STUB_ADDR >> 32);
    const uint32_t end_lo = (uint32_t)(MOAT_STUB_ADDR + MOAT_STUB_SIZE);
    size_t i = 0;
    f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
    f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ip_lo + 4);
    f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, stub_hi, 0, 0);  /* 4, jf: app */
    f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ip_lo);
    f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, stub_lo, 0, 0);  /* 6, jf: app */
    f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, end_lo, 0, 0);   /* 7, jt: app */
    return i;
}
static void stub_page_check_else(struct sock_filter *f, size_t appAt) {
    f[4].jf = (uint8_t)(appAt - 5);
    f[6].jf = (uint8_t)(appAt - 7);
    f[7].jt = (uint8_t)(appAt - 8);
}

// Writes the sock_fprog and its program into the (still writable) stub page.
int moat_fast_filter_write(void *stub_page) {
    struct sock_fprog *prog = (struct sock_fprog *)((char *)stub_page + FILTER_OFF);
    struct sock_filter *f = (struct sock_filter *)((char *)prog + 16);
    size_t cap = (MOAT_STUB_SIZE - FILTER_OFF - 16) / sizeof *f;
    size_t n = sizeof fast_set / sizeof fast_set[0];
    if (n + 16 > cap || n > 250) return -1;
    size_t i = stub_page_check(f);
    // From the stub: pause() runs (parked threads), everything else is traced.
    f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pause, 0, 1);
    f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE);
    // Not from the stub: the fast set notifies, the rest traps.
    size_t appAt = i;
    f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (size_t k = 0; k < n; k++) {
        // jt: over the remaining compares and the trap, to the notify return.
        f[i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, fast_set[k], (uint8_t)(n - k), 0);
        i++;
    }
    f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
    f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);
    stub_page_check_else(f, appAt);
    prog->len = (unsigned short)i;
    prog->filter = (struct sock_filter *)(uintptr_t)(moat_fast_filter_addr() + 16);
    return (int)i;
}

// The base filter every stub process carries (installed by the master
// stub just before it enters the stub page; clones inherit it). It is the
// floor under everything above:
//   - calls from the stub page may only be the ones the Sentry injects (and
//     the parked threads' pause(), and the master's start-up write/close);
//     clone may not make namespaces; anything else kills the stub process;
//   - calls from anywhere else are RET_TRACE: under PTRACE_SYSEMU seccomp is
//     never consulted for them, a thread's own fast-path layer answers with
//     a notification or a trap (both take precedence over TRACE), and a
//     traced stop is one the tracer emulates and skips. Without a tracer the
//     host returns ENOSYS. So an application call can never run on the host
//     even if the Sentry resumed a thread the wrong way;
//   - except a call "from" the kernel half (ip 0xffffffff........): the
//     host's emulation of a call into the legacy vsyscall page, which runs
//     the filters itself even under PTRACE_SYSEMU. It traps (SIGSYS beats
//     any layer's notification, so a layer inherited from the parent, whose
//     listener nobody serves for this thread, never holds it), and the
//     tracer hands it to the Sentry as the fault it is on Linux without the
//     host's help (PtraceThread.classify).
int moat_stub_base_filter(void) {
    static const uint16_t injected[] = {
        SYS_write, SYS_close, SYS_mmap, SYS_mprotect, SYS_munmap, SYS_mremap, SYS_madvise,
        SYS_pause, SYS_clone, SYS_exit, SYS_seccomp, SYS_membarrier, 438 /* pidfd_getfd */,
        SYS_getrusage,   /* the stub process's peak RSS (Syscalls/Time.swift, sampleMaxRSS) */
        SYS_pwrite64,    /* big file writes straight from application memory (Task.stubPwrite) */
        SYS_pread64,     /* big file reads straight into application memory (Task.stubPread) */
        SYS_mincore,     /* which pages a userfaultfd registration finds present (MM/Userfault.swift) */
    };
    const size_t n = sizeof injected / sizeof injected[0];
    struct sock_filter f[64];
    const uint32_t ns_flags = CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS |
                              CLONE_NEWIPC | CLONE_NEWCGROUP;
    size_t i = stub_page_check(f);
    /* 8 */ f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    /* 9 */ f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 3);
    /* 10 */ f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
    /* 11 */ f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, ns_flags, 0, 0); /* jt: kill, jf: allow */
    /* 12 */ f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    size_t chain = i;   /* 13: nr compares (nr still in A when coming from 9's jf) */
    for (size_t k = 0; k < n; k++) {
        f[i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, injected[k], 0, 0);
        i++;
    }
    f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    size_t allowAt = i;
    f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    size_t appAt = i;
    f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, instruction_pointer) + 4);
    f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xffffffffu, 0, 1);
    f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
    f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE);
    stub_page_check_else(f, appAt);
    f[11].jf = (uint8_t)(allowAt - 12);   /* a plain clone: allowed (jt 0: the kill at 12) */
    for (size_t k = 0; k < n; k++) f[chain + k].jt = (uint8_t)(allowAt - (chain + k) - 1);
    struct sock_fprog prog = { .len = (unsigned short)i, .filter = f };
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0 ? 0 : -errno;
}

int moat_notif_sync(int fd) {
    return ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, (unsigned long long)SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) == 0 ? 0 : -errno;
}

int moat_notif_recv(int fd, struct moat_notif *out) {
    struct seccomp_notif n;
    memset(&n, 0, sizeof n);
    if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &n) != 0) return -errno;
    out->id = n.id;
    out->pid = (int32_t)n.pid;
    out->nr = n.data.nr;
    out->ip = n.data.instruction_pointer;
    for (int i = 0; i < 6; i++) out->args[i] = n.data.args[i];
    return 0;
}

int moat_notif_send(int fd, uint64_t id, int64_t val) {
    struct seccomp_notif_resp r;
    memset(&r, 0, sizeof r);
    r.id = id;
    r.val = val;
    return ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &r) == 0 ? 0 : -errno;
}

// Which driver waits for which stub thread: SIGCHLD carries the tid of the
// thread that stopped, and the driver thread that takes the signal is not
// always that thread's tracer (it may not be inside ppoll at that instant).
// The handler then wakes the right driver through its eventfd. Open
// addressing on the tid; written by drivers, read by the handler, both with
// atomics (async-signal-safe).
#define WAITERS 4096
static struct { int tid; int efd; } waiters[WAITERS];

#define TOMB (-1)

void moat_fast_register(pid_t tid, int efd) {
    for (unsigned i = 0; i < WAITERS; i++) {
        unsigned k = ((unsigned)tid + i) % WAITERS;
        int cur = __atomic_load_n(&waiters[k].tid, __ATOMIC_ACQUIRE);
        if (cur == tid) { __atomic_store_n(&waiters[k].efd, efd, __ATOMIC_RELEASE); return; }
        if (cur == 0) break;
    }
    for (unsigned i = 0; i < WAITERS; i++) {
        unsigned k = ((unsigned)tid + i) % WAITERS;
        int cur = __atomic_load_n(&waiters[k].tid, __ATOMIC_ACQUIRE);
        if ((cur == 0 || cur == TOMB) &&
            __atomic_compare_exchange_n(&waiters[k].tid, &cur, tid, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            __atomic_store_n(&waiters[k].efd, efd, __ATOMIC_RELEASE);
            return;
        }
    }
    // Full: this thread's stops are found by the wait's timeout instead.
}

void moat_fast_unregister(pid_t tid) {
    for (unsigned i = 0; i < WAITERS; i++) {
        unsigned k = ((unsigned)tid + i) % WAITERS;
        int cur = __atomic_load_n(&waiters[k].tid, __ATOMIC_ACQUIRE);
        if (cur == tid) {
            __atomic_store_n(&waiters[k].efd, -1, __ATOMIC_RELEASE);
            __atomic_store_n(&waiters[k].tid, TOMB, __ATOMIC_RELEASE);
            return;
        }
        if (cur == 0) return;
    }
}

static void on_sigchld(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    int tid = si->si_pid;
    for (unsigned i = 0; i < WAITERS; i++) {
        unsigned k = ((unsigned)tid + i) % WAITERS;
        int cur = __atomic_load_n(&waiters[k].tid, __ATOMIC_ACQUIRE);
        if (cur == 0) return;
        if (cur == tid) {
            int efd = __atomic_load_n(&waiters[k].efd, __ATOMIC_ACQUIRE);
            if (efd >= 0) {
                int saved = errno;
                uint64_t one = 1;
                ssize_t w = write(efd, &one, sizeof one);
                (void)w;
                errno = saved;
            }
            return;
        }
    }
}

void moat_fast_signals_init(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigchld;   // no SA_RESTART: it interrupts a driver's ppoll
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
}

// The driver's own mask without SIGCHLD, for its waits (a driver thread's
// mask does not change while it drives).
static const sigset_t *driver_wait_mask(void) {
    static __thread sigset_t during;
    static __thread int have;
    if (!have) {
        pthread_sigmask(SIG_BLOCK, NULL, &during);
        sigdelset(&during, SIGCHLD);
        have = 1;
    }
    return &during;
}

int moat_fast_wait(int fd, int wake_fd, int timeout_ms) {
    struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = wake_fd, .events = POLLIN } };
    struct timespec ts = { .tv_sec = timeout_ms / 1000, .tv_nsec = (long)(timeout_ms % 1000) * 1000000L };
    int r = ppoll(p, 2, &ts, driver_wait_mask());
    if (r <= 0) return 0;
    if (p[1].revents & POLLIN) {
        uint64_t v;
        ssize_t n = read(wake_fd, &v, sizeof v);
        (void)n;
    }
    if (p[0].revents & POLLIN) return 1;
    if (p[0].revents) return 2;
    return 0;
}

// A driver blocked in a call its stub thread is held in (Task.block with an
// answer): the call may be answered by the waker (Task.wakeAnswering), and
// the stub then runs on with its driver still asleep. So the driver sleeps
// until the stub needs it again (its next notification on fd, or a stop,
// which the SIGCHLD handler reports on stop_fd), until its task is woken
// (task_fd, written by Task.wakeNow), or until the absolute CLOCK_MONOTONIC
// deadline (-1: none). Returns a mask: 1 a notification is ready (left for
// moat_notif_recv), 2 a stop was reported (stop_fd drained: the caller's
// next wait must look with waitpid first), 4 the task was woken (task_fd
// drained), 8 the fd hung up; 0 timed out or interrupted.
//
// SIGCHLD is not a queued signal: a stop whose SIGCHLD arrives while
// another stub's is still pending for the Sentry is merged into it, and
// the handler only learns of the other tid. moat_fast_wait copes with a
// 20 ms timeout and a waitpid; this sleep has no other way to learn of
// its stub's stop (nothing else wakes a driver whose task is no longer on
// any wait queue), so it too looks every STOP_CHECK_NS: with waitid's
// WNOWAIT, which leaves the stop for the driver's next wait (moat_stop_pending).
#define STOP_CHECK_NS 20000000LL
int moat_stop_pending(pid_t tid) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)tid, &si, WSTOPPED | WEXITED | WNOHANG | WNOWAIT | __WALL) != 0)
        return errno == ECHILD;     // gone and reaped: nothing left to wait for
    return si.si_pid != 0;
}

int moat_fast_sleep(int fd, int stop_fd, int task_fd, pid_t tid, int64_t deadline_ns) {
    struct pollfd p[3] = {
        { .fd = fd, .events = POLLIN }, { .fd = stop_fd, .events = POLLIN }, { .fd = task_fd, .events = POLLIN },
    };
    while (1) {
        int64_t now = (int64_t)moat_monotonic_ns(), until = now + STOP_CHECK_NS;
        if (deadline_ns >= 0 && deadline_ns < until) until = deadline_ns;
        int64_t left = until > now ? until - now : 0;
        struct timespec ts = { .tv_sec = left / 1000000000, .tv_nsec = left % 1000000000 };
        int r = ppoll(p, 3, &ts, driver_wait_mask());
        if (r < 0) return 0;
        if (r > 0) {
            int out = 0;
            uint64_t v;
            if (p[0].revents & POLLIN) out |= 1; else if (p[0].revents) out |= 8;
            if (p[1].revents & POLLIN) { ssize_t n = read(stop_fd, &v, sizeof v); (void)n; out |= 2; }
            if (p[2].revents & POLLIN) { ssize_t n = read(task_fd, &v, sizeof v); (void)n; out |= 4; }
            return out;
        }
        if (deadline_ns >= 0 && (int64_t)moat_monotonic_ns() >= deadline_ns) return 0;
        if (moat_stop_pending(tid)) return 2;
    }
}

int moat_pidfd_getfd(pid_t pid, int fd) {
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0) return -errno;
    int r = (int)syscall(SYS_pidfd_getfd, pfd, fd, 0);
    int e = errno;
    close(pfd);
    return r < 0 ? -e : r;
}

int moat_kcmp_file(pid_t pid1, pid_t pid2, int fd1, int fd2) {
    long r = syscall(SYS_kcmp, pid1, pid2, 0 /* KCMP_FILE */, (unsigned long)fd1, (unsigned long)fd2);
    return r < 0 ? -errno : (int)r;
}
