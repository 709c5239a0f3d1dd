// The stub: the only code of Moat's that runs inside an application's
// address space. It is position-dependent data copied to MOAT_STUB_ADDR.
//
//   +0x000  syscall; int3                 injected syscall (PTRACE_CONT, then SIGTRAP)
//   +0x010  syscall; test rax; jz 1f; int3 injected clone: the parent traps,
//           1: pause(); jmp 1b              the child waits to be seized
//   +0x028  the same clone, whose child parks in a loop of its own at +0x030:
//           the spare thread new stubs are cloned from (Sentry's FastPath.swift),
//           told from a parked thread by its address alone (host tools and
//           ThreadLeakTests see pc +0x037 in /proc/TID/syscall)
//   +0x040  init: munmap everything but this page, write(r12, 1 byte),
//           close(r12), then the pause loop
//   after   lock cmpxchg %esi, (%rdi); int3  compare-and-swap on application
//           memory (futex words the application changes with its own
//           atomics at the same moment; see moat_stub_cas_addr), then
//           FUTEX_WAKE_OP's operation as one loop (moat_stub_futex_op_addr)
#define _GNU_SOURCE
#include "cmoat.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/rseq.h>

__asm__(
    ".pushsection .text.moat_stub,\"ax\",@progbits\n"
    ".balign 4096\n"
    ".globl moat_stub_begin\n"
    "moat_stub_begin:\n"
    "  syscall\n"
    "  int3\n"
    ".balign 16\n"
    "moat_stub_clone_entry:\n"
    "  syscall\n"
    "  test %rax, %rax\n"
    "  jz 1f\n"
    "  int3\n"
    ".globl moat_stub_pause_entry\n"
    "moat_stub_pause_entry:\n"
    "1:\n"
    "  mov $34, %eax\n"          /* pause */
    "  syscall\n"
    "  jmp 1b\n"
    ".balign 8\n"
    "moat_stub_spare_clone_entry:\n"
    "  syscall\n"
    "  test %rax, %rax\n"
    "  jz 2f\n"
    "  int3\n"
    ".org 0x30, 0xcc\n"         /* ThreadLeakTests looks for the spare here (an error if it moved up) */
    "moat_stub_spare_pause_entry:\n"
    "2:\n"
    "  mov $34, %eax\n"          /* pause */
    "  syscall\n"
    "  jmp 2b\n"
    ".balign 64\n"
    "moat_stub_init_entry:\n"
    "  mov $11, %eax\n"          /* munmap(0, STUB_ADDR) */
    "  xor %edi, %edi\n"
    "  movabs $0x7fffffffe000, %rsi\n"
    "  syscall\n"
    "  mov $11, %eax\n"          /* munmap(STUB_ADDR+4096, ...) -- nothing above, kept for clarity */
    "  movabs $0x7ffffffff000, %rdi\n"
    "  mov $0x1000, %esi\n"
    "  syscall\n"
    "  mov $1, %eax\n"           /* write(r12, STUB_ADDR, 1) */
    "  mov %r12, %rdi\n"
    "  movabs $0x7fffffffe000, %rsi\n"
    "  mov $1, %edx\n"
    "  syscall\n"
    "  mov $3, %eax\n"           /* close(r12) */
    "  mov %r12, %rdi\n"
    "  syscall\n"
    "  jmp 1b\n"
    ".balign 16\n"
    "moat_stub_cas_entry:\n"
    "  lock cmpxchg %esi, (%rdi)\n" /* eax: expected in, the word's old value out */
    "  int3\n"
    ".balign 16\n"
    /* FUTEX_WAKE_OP's operation on the word at rdi: esi the operation
       (0 SET, 1 ADD, 2 OR, 3 ANDN, 4 XOR), edx the operand; eax the old
       value. A compare-and-swap loop run here, at the application's own
       speed, as the kernel runs it: retried from the Sentry, each try a
       stub round trip, it lost to a thread changing the word in a loop. */
    "moat_stub_futex_op_entry:\n"
    "  mov (%rdi), %eax\n"
    "40:\n"
    "  mov %eax, %ecx\n"
    "  cmp $1, %esi\n"
    "  je 41f\n"
    "  cmp $2, %esi\n"
    "  je 42f\n"
    "  cmp $3, %esi\n"
    "  je 43f\n"
    "  cmp $4, %esi\n"
    "  je 44f\n"
    "  mov %edx, %ecx\n"           /* SET */
    "  jmp 45f\n"
    "41:\n"
    "  add %edx, %ecx\n"           /* ADD */
    "  jmp 45f\n"
    "42:\n"
    "  or %edx, %ecx\n"            /* OR */
    "  jmp 45f\n"
    "43:\n"
    "  mov %edx, %r8d\n"           /* ANDN */
    "  not %r8d\n"
    "  and %r8d, %ecx\n"
    "  jmp 45f\n"
    "44:\n"
    "  xor %edx, %ecx\n"           /* XOR */
    "45:\n"
    "  lock cmpxchg %ecx, (%rdi)\n" /* changed meanwhile: eax holds the new value, go again */
    "  jnz 40b\n"
    "  int3\n"
    ".balign 4096\n"
    ".globl moat_stub_end\n"
    "moat_stub_end:\n"
    ".popsection\n");

extern const char moat_stub_begin[];
extern const char moat_stub_clone_entry[];
extern const char moat_stub_init_entry[];
extern const char moat_stub_pause_entry[];
extern const char moat_stub_cas_entry[];
uint64_t moat_stub_cas_addr(void) {
    return MOAT_STUB_ADDR + (uint64_t)(moat_stub_cas_entry - moat_stub_begin);
}
extern const char moat_stub_futex_op_entry[];
uint64_t moat_stub_futex_op_addr(void) {
    return MOAT_STUB_ADDR + (uint64_t)(moat_stub_futex_op_entry - moat_stub_begin);
}
extern const char moat_stub_spare_clone_entry[];
extern const char moat_stub_spare_pause_entry[];
uint64_t moat_stub_spare_clone_addr(void) {
    return MOAT_STUB_ADDR + (uint64_t)(moat_stub_spare_clone_entry - moat_stub_begin);
}
uint64_t moat_stub_spare_pause_addr(void) {
    return MOAT_STUB_ADDR + (uint64_t)(moat_stub_spare_pause_entry - moat_stub_begin);
}
uint64_t moat_stub_pause_addr(void) {
    return MOAT_STUB_ADDR + (uint64_t)(moat_stub_pause_entry - moat_stub_begin);
}

uint64_t moat_stub_syscall_addr(void) { return MOAT_STUB_ADDR; }
uint64_t moat_stub_clone_addr(void) {
    return MOAT_STUB_ADDR + (uint64_t)(moat_stub_clone_entry - moat_stub_begin);
}

struct master_args { int ready_fd; };

// Runs in a fresh copy-on-write copy of the Sentry (no CLONE_VM): only raw
// syscalls, no locks, no allocation.
static int master_main(void *p) {
    struct master_args *a = p;
    int fd = a->ready_fd;
    syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    // glibc registered an rseq area for the cloning thread, and the
    // registration is inherited: the kernel would fault writing to it once
    // the address space is emptied. Unregister it.
    if (__rseq_size > 0) {
        void *area = (char *)__builtin_thread_pointer() + __rseq_offset;
        syscall(SYS_rseq, area, __rseq_size < 32 ? 32 : __rseq_size, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
    }
    struct sigaction dfl; memset(&dfl, 0, sizeof dfl); dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < 65; s++) {
        if (s == SIGKILL || s == SIGSTOP) continue;
        sigaction(s, &dfl, NULL);
    }
    sigset_t none; sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    // Stubs hold no privilege: the sandbox's own unprivileged id (see
    // moat_set_sandbox_id), no capabilities, no way to gain any. (This also
    // lets a Sentry that dropped its own capabilities, as the same id, trace
    // them.)
    if (moat_drop_privileges_as(moat_sandbox_id()) != 0) _exit(122);
    // A pidfd of the Sentry at MOAT_STUB_PIDFD: the Sentry hands a host fd
    // to an address space (for a file mapping) by injecting
    // pidfd_getfd(MOAT_STUB_PIDFD, fd) into the stub. Only injected calls can
    // use it: application syscalls never reach the host.
    int pfd = (int)syscall(SYS_pidfd_open, getppid(), 0);
    if (pfd < 0 || fd == MOAT_STUB_PIDFD) _exit(123);
    if (dup2(pfd, MOAT_STUB_PIDFD) != MOAT_STUB_PIDFD) _exit(124);
    // Keep only the readiness fd and the pidfd.
    int lo = fd < MOAT_STUB_PIDFD ? fd : MOAT_STUB_PIDFD, hi = fd < MOAT_STUB_PIDFD ? MOAT_STUB_PIDFD : fd;
    if (lo > 0) syscall(SYS_close_range, 0, lo - 1, 0);
    if (hi > lo + 1) syscall(SYS_close_range, lo + 1, hi - 1, 0);
    syscall(SYS_close_range, hi + 1, ~0U, 0);
    void *page = (void *)(uintptr_t)MOAT_STUB_ADDR;
    void *m = mmap(page, MOAT_STUB_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (m != page) _exit(120);
    memcpy(page, moat_stub_begin, MOAT_STUB_SIZE);
    // The per-thread fast-path filter (fastpath.c), data on the same page.
    if (moat_fast_filter_write(page) < 0) _exit(125);
    if (mprotect(page, MOAT_STUB_SIZE, PROT_READ | PROT_EXEC) != 0) _exit(121);
    // The last host call from outside the stub page: from here on this
    // process and its clones may only make the calls the Sentry injects.
    if (moat_stub_base_filter() != 0) _exit(126);
    uint64_t entry = MOAT_STUB_ADDR + (uint64_t)(moat_stub_init_entry - moat_stub_begin);
    __asm__ volatile("mov %0, %%r12\n jmp *%1\n" : : "r"((long)fd), "r"(entry) : "r12", "memory");
    __builtin_unreachable();
}

pid_t moat_start_master_stub(void) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return -errno;
    size_t stack_size = 64 * 1024;
    char *stack = malloc(stack_size);
    if (!stack) { close(p[0]); close(p[1]); return -ENOMEM; }
    struct master_args a = { .ready_fd = p[1] };
    // Exit signal 0: the Sentry reaps stubs with __WALL.
    pid_t pid = clone(master_main, stack + stack_size, 0, &a);
    int err = errno;
    close(p[1]);
    if (pid < 0) { free(stack); close(p[0]); return -err; }
    char c;
    ssize_t n;
    do { n = read(p[0], &c, 1); } while (n < 0 && errno == EINTR);
    // And wait for end-of-file: the master closes its end right after the
    // byte, and must have done so before it is seized and cloned, or every
    // address space inherits that fd.
    if (n == 1) {
        ssize_t e;
        do { e = read(p[0], &c, 1); } while (e < 0 && errno == EINTR);
        if (e != 0) n = -1;
    }
    close(p[0]);
    free(stack);
    if (n != 1) return -ECHILD;
    return pid;
}
