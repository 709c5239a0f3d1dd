/* ptrace's FPU register sets between the sandbox's own processes:
 * PTRACE_GETREGSET/SETREGSET of NT_X86_XSTATE (the XSAVE area) and
 * NT_PRFPREG (its FXSAVE part), and PTRACE_GETFPREGS/SETFPREGS, on a
 * tracee stopped by a signal. The tracer reads the tracee's xmm0 (a value
 * the tracee loaded before it stopped), writes a new one that the tracee
 * then finds in its register, and gets Linux's errors for what the kernel
 * refuses: an XSAVE header in the compacted format or with reserved bits
 * (LTP ptrace07, CVE-2017-15537), MXCSR reserved bits, a partial area, a
 * length that is no multiple of 8, an unknown regset. Sizes that depend on
 * the CPU are compared with CPUID's, not printed. */
#include "t.h"
#include <cpuid.h>
#include <elf.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/user.h>

static void status(const char *what, int st) {
    if (WIFSTOPPED(st)) say("%s: stopped by %d", what, WSTOPSIG(st));
    else if (WIFSIGNALED(st)) say("%s: killed by %d", what, WTERMSIG(st));
    else if (WIFEXITED(st)) say("%s: exited %d", what, WEXITSTATUS(st));
}

/* The tracee: xmm0 = 0x11.. bytes, stop, then report whether xmm0 holds
 * what the tracer wrote (0x5a.. bytes) by its exit code. */
static void tracee(void) {
    if (ptrace(PTRACE_TRACEME, 0, 0, 0)) _exit(90);
    unsigned char in[16], out[16];
    memset(in, 0x11, 16);
    __asm__ volatile("movdqu %0, %%xmm0" : : "m"(in) : "xmm0");
    /* No libc call between loading xmm0 and the stop may touch it: raise
     * the signal with the raw syscall. */
    long pid, r;
    __asm__ volatile("syscall" : "=a"(pid) : "a"(SYS_getpid) : "rcx", "r11", "memory");
    __asm__ volatile("syscall" : "=a"(r) : "a"(SYS_kill), "D"(pid), "S"(SIGSTOP) : "rcx", "r11", "memory");
    __asm__ volatile("movdqu %%xmm0, %0" : "=m"(out));
    unsigned char want[16];
    memset(want, 0x5a, 16);
    _exit(!memcmp(out, want, 16) ? 0 : !memcmp(out, in, 16) ? 1 : 2);
}

static long regset(int req, pid_t p, long type, void *buf, size_t *len) {
    struct iovec iov = { buf, *len };
    long r = ptrace(req, p, (void *)type, &iov);
    *len = iov.iov_len;
    return r;
}

int main(void) {
    unsigned eax, ebx, ecx, edx;
    __cpuid_count(0xd, 0, eax, ebx, ecx, edx);
    size_t xsize = ebx; /* bytes the features enabled in XCR0 need */
    int st;
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) tracee();
    T(waitpid(p, &st, 0) == p);
    status("tracee", st);

    unsigned char *x = aligned_alloc(64, 65536);
    memset(x, 0, 65536);
    size_t len = 65536;
    T(regset(PTRACE_GETREGSET, p, NT_X86_XSTATE, x, &len));
    say("XSTATE length is CPUID's size: %d", len == xsize);
    unsigned char v[16];
    memset(v, 0x11, 16);
    say("XSTATE xmm0 is the tracee's: %d", !memcmp(x + 160, v, 16));
    say("XSTATE header in standard format: xcomp_bv %llu", (unsigned long long)*(uint64_t *)(x + 520));
    say("XSTATE XCR0 (at 464) has x87 and SSE: %d", (int)(*(uint64_t *)(x + 464) & 3));

    /* A short buffer gets the first bytes; the length says how many. */
    unsigned char small[64];
    len = 64;
    T(regset(PTRACE_GETREGSET, p, NT_X86_XSTATE, small, &len));
    say("short GETREGSET: length %zu, same bytes %d", len, !memcmp(small, x, 64));
    len = 12;
    T(regset(PTRACE_GETREGSET, p, NT_X86_XSTATE, small, &len));
    len = 64;
    T(regset(PTRACE_GETREGSET, p, 0x7777, small, &len));

    /* Refused writes change nothing. */
    unsigned char *bad = aligned_alloc(64, 65536);
    memcpy(bad, x, xsize);
    *(uint64_t *)(bad + 520) = ~0ULL;               /* xcomp_bv: compacted, reserved bits */
    len = xsize;
    T(regset(PTRACE_SETREGSET, p, NT_X86_XSTATE, bad, &len));
    memcpy(bad, x, xsize);
    bad[512 + 20] = 1;                              /* a reserved header byte */
    T(regset(PTRACE_SETREGSET, p, NT_X86_XSTATE, bad, &len));
    memcpy(bad, x, xsize);
    *(uint64_t *)(bad + 512) |= 1ULL << 63;         /* xstate_bv: a feature no CPU has */
    T(regset(PTRACE_SETREGSET, p, NT_X86_XSTATE, bad, &len));
    memcpy(bad, x, xsize);
    *(uint32_t *)(bad + 24) |= 0xffff0000;          /* MXCSR reserved bits */
    T(regset(PTRACE_SETREGSET, p, NT_X86_XSTATE, bad, &len));
    memcpy(bad, x, xsize);
    len = 576;
    T(regset(PTRACE_SETREGSET, p, NT_X86_XSTATE, bad, &len));
    len = 0;
    T(regset(PTRACE_GETREGSET, p, NT_X86_XSTATE, bad, &len));
    say("GETREGSET of 0 bytes: length %zu", len);

    /* NT_PRFPREG and GETFPREGS: the same legacy area. */
    struct user_fpregs_struct fp, fp2;
    len = sizeof fp;
    T(regset(PTRACE_GETREGSET, p, NT_PRFPREG, &fp, &len));
    say("PRFPREG length %zu, same xmm0 %d", len, !memcmp((char *)&fp + 160, x + 160, 16));
    T(ptrace(PTRACE_GETFPREGS, p, 0, &fp2));
    say("GETFPREGS matches PRFPREG: %d", !memcmp(&fp, &fp2, 160 + 256));
    fp2.mxcsr |= 0xffff0000;
    T(ptrace(PTRACE_SETFPREGS, p, 0, &fp2));        /* MXCSR reserved bits: EINVAL? */
    len = 256;
    T(regset(PTRACE_SETREGSET, p, NT_PRFPREG, &fp, &len));

    /* A good write through XSTATE: the tracee finds the new xmm0. */
    memset(x + 160, 0x5a, 16);
    len = xsize;
    T(regset(PTRACE_SETREGSET, p, NT_X86_XSTATE, x, &len));
    say("SETREGSET length %d", len == xsize);
    memset(small, 0, sizeof small);
    len = sizeof fp;
    T(regset(PTRACE_GETREGSET, p, NT_PRFPREG, &fp, &len));
    memset(v, 0x5a, 16);
    say("read back through PRFPREG: %d", !memcmp((char *)&fp + 160, v, 16));
    T(ptrace(PTRACE_CONT, p, 0, 0));
    T(waitpid(p, &st, 0) == p);
    status("tracee after SETREGSET", st);

    /* Through SETFPREGS, on a second tracee. */
    fflush(stdout);
    p = fork();
    if (p == 0) tracee();
    T(waitpid(p, &st, 0) == p);
    T(ptrace(PTRACE_GETFPREGS, p, 0, &fp));
    memset((char *)&fp + 160, 0x5a, 16);
    T(ptrace(PTRACE_SETFPREGS, p, 0, &fp));
    T(ptrace(PTRACE_CONT, p, 0, 0));
    T(waitpid(p, &st, 0) == p);
    status("tracee after SETFPREGS", st);

    /* Not stopped (running or gone): ESRCH. */
    T(ptrace(PTRACE_GETFPREGS, p, 0, &fp));
    return 0;
}
