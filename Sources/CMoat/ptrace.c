#define _GNU_SOURCE
#include "cmoat.h"
#include <errno.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sched.h>
#include <sys/resource.h>

long moat_ptrace(long request, pid_t pid, unsigned long addr, unsigned long data) {
    return ptrace((enum __ptrace_request)request, pid, (void *)addr, (void *)data);
}
int moat_getregs(pid_t tid, struct user_regs_struct *regs) {
    return (int)ptrace(PTRACE_GETREGS, tid, 0, regs);
}
int moat_setregs(pid_t tid, const struct user_regs_struct *regs) {
    return (int)ptrace(PTRACE_SETREGS, tid, 0, (void *)regs);
}
int moat_getfpregs(pid_t tid, struct user_fpregs_struct *fp) {
    return (int)ptrace(PTRACE_GETFPREGS, tid, 0, fp);
}
int moat_setfpregs(pid_t tid, const struct user_fpregs_struct *fp) {
    return (int)ptrace(PTRACE_SETFPREGS, tid, 0, (void *)fp);
}
long moat_getxstate(pid_t tid, void *buf, size_t len) {
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    if (ptrace(PTRACE_GETREGSET, tid, (void *)0x202 /* NT_X86_XSTATE */, &iov) != 0) return -1;
    return (long)iov.iov_len;
}
int moat_setxstate(pid_t tid, const void *buf, size_t len) {
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    return (int)ptrace(PTRACE_SETREGSET, tid, (void *)0x202 /* NT_X86_XSTATE */, &iov);
}
int moat_getsiginfo(pid_t tid, siginfo_t *info) {
    return (int)ptrace(PTRACE_GETSIGINFO, tid, 0, info);
}
int moat_siginfo_signo(const siginfo_t *i) { return i->si_signo; }
int moat_siginfo_code(const siginfo_t *i) { return i->si_code; }
uint64_t moat_siginfo_addr(const siginfo_t *i) { return (uint64_t)(uintptr_t)i->si_addr; }

int moat_wifexited(int s) { return WIFEXITED(s); }
int moat_wexitstatus(int s) { return WEXITSTATUS(s); }
int moat_wifsignaled(int s) { return WIFSIGNALED(s); }
int moat_wtermsig(int s) { return WTERMSIG(s); }
int moat_wifstopped(int s) { return WIFSTOPPED(s); }
int moat_wstopsig(int s) { return WSTOPSIG(s); }

ssize_t moat_read_mem(pid_t pid, uint64_t addr, void *buf, size_t len) {
    struct iovec local = { buf, len };
    struct iovec remote = { (void *)(uintptr_t)addr, len };
    return process_vm_readv(pid, &local, 1, &remote, 1, 0);
}
ssize_t moat_write_mem(pid_t pid, uint64_t addr, const void *buf, size_t len) {
    struct iovec local = { (void *)buf, len };
    struct iovec remote = { (void *)(uintptr_t)addr, len };
    return process_vm_writev(pid, &local, 1, &remote, 1, 0);
}

int moat_errno(void) { return errno; }
long moat_syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6) {
    return syscall(nr, a1, a2, a3, a4, a5, a6);
}
int moat_tgkill(pid_t tgid, pid_t tid, int sig) { return (int)syscall(SYS_tgkill, tgid, tid, sig); }
pid_t moat_gettid(void) { return (pid_t)syscall(SYS_gettid); }
int moat_allowed_cpus(int *out, int max) {
    cpu_set_t set; CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return 0;
    int n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < max; c++) if (CPU_ISSET(c, &set)) out[n++] = c;
    return n;
}
int moat_sched_pin(pid_t tid, int cpu) {
    cpu_set_t set; CPU_ZERO(&set); CPU_SET(cpu, &set);
    return sched_setaffinity(tid, sizeof(set), &set);
}
int moat_set_nice(pid_t tid, int nice) {
    return setpriority(PRIO_PROCESS, (id_t)tid, nice) == 0 ? 0 : -errno;
}
int moat_get_nice(void) {
    errno = 0;
    int n = getpriority(PRIO_PROCESS, 0);
    return errno != 0 ? 0 : n;
}
int moat_nice_can_return(void) {
    struct rlimit r;
    if (getrlimit(RLIMIT_NICE, &r) != 0) return 0;
    return r.rlim_cur != RLIM_INFINITY && r.rlim_cur < (rlim_t)(20 - moat_get_nice()) ? 0 : 1;
}
int moat_nice_floor_limit(void) {
    rlim_t lim = (rlim_t)(20 - moat_get_nice());
    struct rlimit r = { lim, lim };
    return setrlimit(RLIMIT_NICE, &r) == 0 ? 0 : -errno;
}

uint64_t moat_host_xcr0(void) {
    uint32_t a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1u), "c"(0u));
    if (!(c & (1u << 27))) return 0;  /* OSXSAVE: the host kernel enabled XSAVE */
    __asm__ volatile("xgetbv" : "=a"(a), "=d"(d) : "c"(0u));
    return (uint64_t)d << 32 | a;
}

void moat_cpuid(uint32_t leaf, uint32_t sub, uint32_t out[4]) {
    __asm__ volatile("cpuid" : "=a"(out[0]), "=b"(out[1]), "=c"(out[2]), "=d"(out[3]) : "a"(leaf), "c"(sub));
}

uint32_t moat_xstate_size(uint64_t features) {
    uint32_t size = 576;  /* legacy area and header */
    for (int i = 2; i < 63; i++) {
        if (!(features & (1ull << i))) continue;
        uint32_t a, b, c, d;
        __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0xdu), "c"((uint32_t)i));
        if (a && b + a > size) size = b + a;  /* EAX size, EBX standard-format offset */
    }
    return size;
}
