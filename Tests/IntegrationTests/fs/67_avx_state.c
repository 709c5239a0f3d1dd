/* AVX state as an application sees it: CPUID says XSAVE, OSXSAVE and AVX
 * consistently with XCR0 (xgetbv), and a YMM register (both 128-bit halves)
 * keeps its value across a syscall, across a signal whose handler clobbers
 * it (the signal frame carries the XSAVE area: UC_FP_XSTATE, the
 * FP_XSTATE_MAGIC1/2 markers, the register's upper half in the AVX
 * component; sigreturn loads it back), across a fork (the child inherits
 * it) and across thread switches between threads that hold different
 * values in the same register; an execve starts the new program with the
 * initial state (Linux clears every FPU/SSE/AVX register: the program
 * execs itself with ymm15 set, and the new one reads it first thing in
 * main; static glibc's start-up leaves ymm15 alone). Every YMM load, syscall and store sits in
 * one asm block: libc code between them could clobber the register (glibc's
 * AVX string functions end in vzeroupper). The program is compiled without
 * -mavx; the assembler takes the AVX instructions anyway. On a CPU without
 * AVX it says so and checks nothing more (the same natively and in Moat). */
#include "t.h"
#include <cpuid.h>
#include <pthread.h>
#include <signal.h>
#include <ucontext.h>

typedef struct { unsigned char b[32]; } ymm_t;

static ymm_t pattern(int seed) {
    ymm_t y;
    for (int i = 0; i < 32; i++) y.b[i] = (unsigned char)(seed * 37 + i * 11 + 1);
    return y;
}

static const char *verdict(const ymm_t *got, const ymm_t *want) {
    if (!memcmp(got, want, 32)) return "kept";
    if (!memcmp(got, want, 16)) return "upper half lost";
    return "changed";
}

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

/* What the SIGUSR1 handler saw in its frame. */
static volatile int h_ran, h_xstate_flag, h_magic1, h_magic2, h_upper_in_frame;
static ymm_t h_want;
static unsigned h_avx_offset;

static void handler(int sig, siginfo_t *si, void *ucv) {
    (void)sig; (void)si;
    ucontext_t *uc = ucv;
    unsigned char *fp = (unsigned char *)uc->uc_mcontext.fpregs;
    h_ran = 1;
    h_xstate_flag = (uc->uc_flags & 1) != 0;                /* UC_FP_XSTATE */
    uint32_t m1, size;
    memcpy(&m1, fp + 464, 4);
    memcpy(&size, fp + 480, 4);
    h_magic1 = m1 == 0x46505853;
    if (h_magic1) {
        uint32_t m2;
        memcpy(&m2, fp + size, 4);
        h_magic2 = m2 == 0x46505845;
        uint64_t bv;
        memcpy(&bv, fp + 512, 8);
        /* ymm1's upper half: the AVX component holds 16 bytes per register. */
        h_upper_in_frame = (bv & 4) && !memcmp(fp + h_avx_offset + 16, h_want.b + 16, 16);
    }
    /* Clobber ymm1 whole. */
    ymm_t junk = pattern(99);
    __asm__ volatile("vmovdqu %0, %%ymm1" : : "m"(junk) : "xmm1");
}

struct yielder { int seed; int rounds; ymm_t got; };

static void *yield_loop(void *arg) {
    struct yielder *y = arg;
    ymm_t in = pattern(y->seed);
    long n = y->rounds;
    __asm__ volatile(
        "vmovdqu %[in], %%ymm3\n\t"
        "1:\n\t"
        "mov %[nr], %%eax\n\t"
        "syscall\n\t"
        "dec %[n]\n\t"
        "jnz 1b\n\t"
        "vmovdqu %%ymm3, %[out]"
        : [out] "=m"(y->got), [n] "+r"(n)
        : [in] "m"(in), [nr] "i"(SYS_sched_yield)
        : "rax", "rcx", "r11", "xmm3", "memory");
    return NULL;
}

int main(int argc, char **argv) {
    unsigned a, b, c, d;
    if (argc > 1 && !strcmp(argv[1], "exec-child")) {
        ymm_t got, old = pattern(5), zero;
        memset(&zero, 0, sizeof zero);
        __asm__ volatile("vmovdqu %%ymm15, %0" : "=m"(got));
        say("after execve, ymm15 is %s", !memcmp(&got, &zero, 32) ? "zero"
            : !memcmp(&got, &old, 32) ? "the old program's value"
            : !memcmp(&got, &old, 16) ? "the old program's lower half" : "something else");
        return 0;
    }
    __cpuid(1, a, b, c, d);
    int xsave = (c >> 26) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    say("CPUID.1: XSAVE %d OSXSAVE %d AVX %d", xsave, osxsave, avx);
    if (!(xsave && osxsave && avx)) { say("no AVX for applications on this CPU"); return 0; }
    uint64_t xcr0 = xgetbv0();
    say("XCR0 has x87, SSE and AVX: %d", (xcr0 & 7) == 7);
    __cpuid_count(7, 0, a, b, c, d);
    int avx512f = (b >> 16) & 1;
    say("CPUID.7 AVX2: %d", (b >> 5) & 1);
    say("AVX-512F in CPUID agrees with XCR0's opmask/ZMM bits: %d", avx512f == ((xcr0 & 0xe0) == 0xe0));
    /* (Not "XCR0 within 0xD.0's bits": under kvm_pvm a guest's XGETBV
     * reads the host's XCR0, AMX bits included, which KVM does not offer
     * the guest; Platform/KVM/KVMThread.swift, enableXSave.) */
    __cpuid_count(0xd, 0, a, b, c, d);
    say("CPUID.0xD.0: lists x87, SSE and AVX %d, area size covers AVX %d", (a & 7) == 7, b >= 576 + 256);
    __cpuid_count(0xd, 2, a, b, c, d);
    say("CPUID.0xD.2 (AVX): size %u offset %u", a, b);
    h_avx_offset = b;

    /* A syscall. */
    ymm_t in = pattern(1), out;
    long r;
    __asm__ volatile("vmovdqu %[in], %%ymm1\n\tsyscall\n\tvmovdqu %%ymm1, %[out]"
                     : [out] "=m"(out), "=a"(r) : [in] "m"(in), "a"(SYS_getppid)
                     : "rcx", "r11", "xmm1", "memory");
    say("ymm1 across getppid: %s", verdict(&out, &in));

    /* A signal whose handler clobbers it. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    T(sigaction(SIGUSR1, &sa, NULL));
    in = pattern(2);
    h_want = in;
    long pid = getpid();
    __asm__ volatile("vmovdqu %[in], %%ymm1\n\tsyscall\n\tvmovdqu %%ymm1, %[out]"
                     : [out] "=m"(out), "=a"(r) : [in] "m"(in), "a"(SYS_kill), "D"(pid), "S"(SIGUSR1)
                     : "rcx", "r11", "xmm1", "memory");
    say("handler ran %d; frame: UC_FP_XSTATE %d, magic1 %d, magic2 %d, ymm1 upper half %d",
        h_ran, h_xstate_flag, h_magic1, h_magic2, h_upper_in_frame);
    say("ymm1 after the handler clobbered it and returned: %s", verdict(&out, &in));

    /* A fork: the child has its parent's value. */
    in = pattern(3);
    fflush(stdout);
    __asm__ volatile("vmovdqu %[in], %%ymm4\n\tsyscall\n\tvmovdqu %%ymm4, %[out]"
                     : [out] "=m"(out), "=a"(r) : [in] "m"(in), "a"(SYS_fork)
                     : "rcx", "r11", "xmm4", "memory");
    if (r == 0) _exit(memcmp(&out, &in, 32) ? memcmp(&out, &in, 16) ? 2 : 1 : 0);
    int st;
    T(waitpid(r, &st, 0) == r);
    say("fork: parent's ymm4 %s; child's exit %d (0 kept, 1 upper half lost, 2 changed)",
        verdict(&out, &in), WIFEXITED(st) ? WEXITSTATUS(st) : -1);

    /* Threads switching: three threads, three values in ymm3. */
    struct yielder y[3] = { { 10, 3000 }, { 20, 3000 }, { 30, 3000 } };
    pthread_t th[2];
    for (int i = 0; i < 2; i++) T(pthread_create(&th[i], NULL, yield_loop, &y[i]));
    yield_loop(&y[2]);
    for (int i = 0; i < 2; i++) T(pthread_join(th[i], NULL));
    for (int i = 0; i < 3; i++) {
        ymm_t want = pattern(y[i].seed);
        say("thread %d: ymm3 after 3000 sched_yield: %s", i, verdict(&y[i].got, &want));
    }

    /* An execve with ymm15 set: the new program must not see it. */
    in = pattern(5);
    char *args[] = { argv[0], "exec-child", NULL };
    char *env[] = { NULL };
    fflush(stdout);
    __asm__ volatile("vmovdqu %[in], %%ymm15\n\tsyscall"
                     : "=a"(r) : [in] "m"(in), "a"(SYS_execve), "D"(argv[0]), "S"(args), "d"(env)
                     : "rcx", "r11", "xmm15", "memory");
    say("execve failed: %ld", r);
    return 1;
}
