// The vDSO's code: clock_gettime, gettimeofday and time answered in the
// application's own address space from the TSC and a data page the Sentry
// keeps current, so the commonest syscalls of all do not trap. Written in
// assembly so that the bytes are position-independent and self-contained;
// the Sentry copies them into the vDSO image it builds (Kernel/VDSO.swift).
//
// Data page (MOAT_VDSO_DATA), written by the Sentry under a sequence count:
//   0  seq      odd while an update is in progress
//   8  tsc      TSC at the last update
//   16 mult     nanoseconds per TSC tick, << 32
//   24 mono     CLOCK_MONOTONIC at the last update, ns
//   32 real     CLOCK_REALTIME at the last update, ns
//   48 enabled  0: every call takes the syscall (no usable TSC)

#include "cmoat.h"

#define STR_(x) #x
#define STR(x) STR_(x)

__asm__(
    ".pushsection moat_vdso_text,\"ax\",@progbits\n"
    ".globl moat_vdso_text_start\n"
    "moat_vdso_text_start:\n"

    // now: %r9 = offset of the base (24 mono, 32 real) -> %rax = ns, or CF set to fall back.
    "moat_vdso_now:\n"
    "  movabsq $" STR(MOAT_VDSO_DATA) ", %r8\n"
    "  cmpq $0, 48(%r8)\n"
    "  je 3f\n"
    "1:\n"
    "  movq 0(%r8), %r10\n"
    "  testq $1, %r10\n"
    "  jnz 2f\n"
    "  lfence\n"
    "  rdtsc\n"
    "  shlq $32, %rdx\n"
    "  orq %rdx, %rax\n"
    "  subq 8(%r8), %rax\n"
    "  jns 4f\n"
    "  xorl %eax, %eax\n"            // a TSC a hair behind the base: no time passed
    "4:\n"
    "  mulq 16(%r8)\n"
    "  shrdq $32, %rdx, %rax\n"
    "  addq (%r8,%r9), %rax\n"
    "  movq 0(%r8), %r11\n"
    "  cmpq %r11, %r10\n"
    "  jne 1b\n"
    "  clc\n"
    "  ret\n"
    "2:\n"
    "  pause\n"
    "  jmp 1b\n"
    "3:\n"
    "  stc\n"
    "  ret\n"

    // int clock_gettime(clockid_t, struct timespec *)
    ".globl moat_vdso_clock_gettime\n"
    "moat_vdso_clock_gettime:\n"
    "  movl $24, %r9d\n"
    "  cmpl $1, %edi\n  je 5f\n"     // MONOTONIC
    "  cmpl $4, %edi\n  je 5f\n"     // MONOTONIC_RAW
    "  cmpl $6, %edi\n  je 5f\n"     // MONOTONIC_COARSE
    "  cmpl $7, %edi\n  je 5f\n"     // BOOTTIME
    "  movl $32, %r9d\n"
    "  testl %edi, %edi\n  je 5f\n"  // REALTIME
    "  cmpl $5, %edi\n  je 5f\n"     // REALTIME_COARSE
    "  jmp 6f\n"
    "5:\n"
    "  call moat_vdso_now\n"
    "  jc 6f\n"
    "  xorl %edx, %edx\n"
    "  movl $1000000000, %ecx\n"
    "  divq %rcx\n"
    "  movq %rax, 0(%rsi)\n"
    "  movq %rdx, 8(%rsi)\n"
    "  xorl %eax, %eax\n"
    "  ret\n"
    "6:\n"
    "  movl $228, %eax\n"            // SYS_clock_gettime
    "  syscall\n"
    "  ret\n"

    // int gettimeofday(struct timeval *, struct timezone *)
    ".globl moat_vdso_gettimeofday\n"
    "moat_vdso_gettimeofday:\n"
    "  testq %rsi, %rsi\n  jnz 8f\n" // a timezone wanted: ask the Sentry
    "  testq %rdi, %rdi\n  jz 9f\n"
    "  movl $32, %r9d\n"
    "  call moat_vdso_now\n"
    "  jc 8f\n"
    "  xorl %edx, %edx\n"
    "  movl $1000, %ecx\n"
    "  divq %rcx\n"                  // rax = us
    "  xorl %edx, %edx\n"
    "  movl $1000000, %ecx\n"
    "  divq %rcx\n"                  // rax = s, rdx = us
    "  movq %rax, 0(%rdi)\n"
    "  movq %rdx, 8(%rdi)\n"
    "9:\n"
    "  xorl %eax, %eax\n"
    "  ret\n"
    "8:\n"
    "  movl $96, %eax\n"             // SYS_gettimeofday
    "  syscall\n"
    "  ret\n"

    // time_t time(time_t *)
    ".globl moat_vdso_time\n"
    "moat_vdso_time:\n"
    "  movl $32, %r9d\n"
    "  call moat_vdso_now\n"
    "  jc 10f\n"
    "  xorl %edx, %edx\n"
    "  movl $1000000000, %ecx\n"
    "  divq %rcx\n"
    "  testq %rdi, %rdi\n  jz 11f\n"
    "  movq %rax, 0(%rdi)\n"
    "11:\n"
    "  ret\n"
    "10:\n"
    "  movl $201, %eax\n"            // SYS_time
    "  syscall\n"
    "  ret\n"

    ".globl moat_vdso_text_end\n"
    "moat_vdso_text_end:\n"
    ".popsection\n");

extern const char moat_vdso_text_start[], moat_vdso_text_end[];
extern const char moat_vdso_clock_gettime[], moat_vdso_gettimeofday[], moat_vdso_time[];

const void *moat_vdso_code(size_t *len) {
    *len = (size_t)(moat_vdso_text_end - moat_vdso_text_start);
    return moat_vdso_text_start;
}

size_t moat_vdso_offset(int which) {
    const char *f = which == 0 ? moat_vdso_clock_gettime : which == 1 ? moat_vdso_gettimeofday : moat_vdso_time;
    return (size_t)(f - moat_vdso_text_start);
}

unsigned long long moat_rdtsc(void) {
    unsigned int lo, hi;
    __asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi));
    return ((unsigned long long)hi << 32) | lo;
}

int moat_tsc_invariant(void) {
    unsigned int a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000000u), "c"(0));
    if (a < 0x80000007u) return 0;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000007u), "c"(0));
    return (d >> 8) & 1;
}

void moat_vdso_publish(void *page, unsigned long long tsc, unsigned long long mult,
                       unsigned long long mono, unsigned long long real, int enabled) {
    unsigned long long *p = page;
    unsigned long long seq = __atomic_load_n(&p[0], __ATOMIC_RELAXED);
    __atomic_store_n(&p[0], seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&p[1], tsc, __ATOMIC_RELAXED);
    __atomic_store_n(&p[2], mult, __ATOMIC_RELAXED);
    __atomic_store_n(&p[3], mono, __ATOMIC_RELAXED);
    __atomic_store_n(&p[4], real, __ATOMIC_RELAXED);
    __atomic_store_n(&p[6], (unsigned long long)enabled, __ATOMIC_RELAXED);
    __atomic_store_n(&p[0], seq + 2, __ATOMIC_RELEASE);
}

long long moat_vdso_mono(const void *page) {
    const unsigned long long *p = page;
    for (;;) {
        unsigned long long seq = __atomic_load_n(&p[0], __ATOMIC_ACQUIRE);
        if (seq & 1) { __builtin_ia32_pause(); continue; }
        unsigned long long enabled = __atomic_load_n(&p[6], __ATOMIC_RELAXED);
        unsigned long long tsc = __atomic_load_n(&p[1], __ATOMIC_RELAXED);
        unsigned long long mult = __atomic_load_n(&p[2], __ATOMIC_RELAXED);
        unsigned long long mono = __atomic_load_n(&p[3], __ATOMIC_RELAXED);
        __builtin_ia32_lfence();
        unsigned long long now = __builtin_ia32_rdtsc();
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&p[0], __ATOMIC_RELAXED) != seq) continue;
        if (!enabled) return -1;
        unsigned long long d = now > tsc ? now - tsc : 0;
        return (long long)(mono + (unsigned long long)(((unsigned __int128)d * mult) >> 32));
    }
}
