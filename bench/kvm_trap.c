// bench/kvm_trap.c: where the time of one KVM-platform syscall trap goes on
// this host, measured on a minimal guest laid out like Moat's
// (Sources/Platform/KVM/KVMMachine.swift), without the Sentry.
//
//   kvm_trap MODE N    prints  mode=... ns_wall=... ns_cpu=... run_cpu=... ioctl_cpu=...
//
// Modes (each loops N times after a warm-up):
//   exit      ring-0 `out` loop: the bare exit, no user code, no register
//             ioctl (the "~6 us" figure).
//   iretq     Moat's old path: the host writes an iretq frame and sets the
//             registers (KVM_SET_REGS), ring 0 returns to user, user does
//             SYSCALL, LSTAR (a supervisor page) faults, #PF goes through the
//             IDT to a stub that exits with `out`; the host reads the
//             registers (KVM_GET_REGS) and CR2 (KVM_GET_SREGS).
//   doorbell  Moat's path since 2026-12-06: LSTAR is a user page holding one
//             store to a page mapped outside guest RAM (an MMIO exit);
//             registers go through the kvm_run area (KVM_CAP_SYNC_REGS);
//             the vCPU is resumed where the exit left it.
// ns_cpu is the driver thread's CPU time per trap (CLOCK_THREAD_CPUTIME_ID),
// which on a machine shared by many builders says what the trap costs;
// ns_wall adds the time the thread waited for a CPU.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define KBASE 0xffffff8000000000ull
#define KVA(page, off) (KBASE + (uint64_t)(page) * 4096 + (off))
#define NX (1ull << 63)
#define MEM (8u << 20)
#define MMIO_GPA 0x40000000ull

static uint8_t *mem;
static int vcpu;
static struct kvm_run *run;

static void die(const char *what) { perror(what); exit(1); }
static void st(uint64_t gpa, uint64_t v) { memcpy(mem + gpa, &v, 8); }
static uint64_t ld(uint64_t gpa) { uint64_t v; memcpy(&v, mem + gpa, 8); return v; }
static void put(uint64_t gpa, const void *b, size_t n) { memcpy(mem + gpa, b, n); }
static double clk(clockid_t c) { struct timespec t; clock_gettime(c, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
static double cpu(void) { return clk(CLOCK_THREAD_CPUTIME_ID); }
static double acc_ioctl;
static void io(unsigned long req, void *arg, const char *what) {
    double t = cpu();
    if (ioctl(vcpu, req, arg) < 0) die(what);
    acc_ioctl += cpu() - t;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s exit|iretq|doorbell N\n", argv[0]); return 2; }
    const char *mode = argv[1];
    long n = atol(argv[2]);
    int m_exit = !strcmp(mode, "exit"), m_iret = !strcmp(mode, "iretq"), m_door = !strcmp(mode, "doorbell");
    if (!(m_exit || m_iret || m_door)) { fprintf(stderr, "unknown mode %s\n", mode); return 2; }

    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) die("/dev/kvm");
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) die("KVM_CREATE_VM");
    mem = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    struct kvm_userspace_memory_region r = { .slot = 0, .memory_size = MEM, .userspace_addr = (uint64_t)mem };
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) < 0) die("KVM_SET_USER_MEMORY_REGION");
    vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0) die("KVM_CREATE_VCPU");
    run = mmap(NULL, ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0), PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    struct kvm_cpuid2 *cp = calloc(1, sizeof *cp + 256 * sizeof(struct kvm_cpuid_entry2));
    cp->nent = 256;
    if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cp) < 0 || ioctl(vcpu, KVM_SET_CPUID2, cp) < 0) die("CPUID");
    if (m_door && (ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS) & 3) != 3) { fprintf(stderr, "no KVM_CAP_SYNC_REGS\n"); return 1; }

    // Kernel half (guest physical page N at slot N): 1 GDT+TSS, 2 IDT,
    // 3 code, 5-6 stack, 8-10 PDPT/PD/PT, 12 the syscall page (user); slot
    // 13 maps the doorbell (MMIO_GPA). PML4 at page 11; the user half's
    // tables are pages 20-22, its code (VA 0x1000) page 16, stack page 17.
    st(0x1008, 0x00af9b000000ffffull); st(0x1010, 0x00cf93000000ffffull);
    st(0x1028, 0x00cff3000000ffffull); st(0x1030, 0x00affb000000ffffull);
    uint64_t tss = KVA(1, 0x800), top = KVA(7, 0);
    st(0x1038, 103 | ((tss & 0xffffff) << 16) | (0x8bull << 40) | (((tss >> 24) & 0xff) << 56)); st(0x1040, tss >> 32);
    put(0x1800 + 4, &top, 8); put(0x1800 + 36, &top, 8);
    uint16_t iomap = 104; put(0x1800 + 102, &iomap, 2);
    memset(mem + 0x3000, 0xf4, 4096);
    for (int v = 0; v < 32; v++) {  // stubs: [push 0]; push v; jmp common
        uint64_t off = 0x40 + v * 16; uint8_t b[16]; int k = 0;
        int err = v == 8 || v == 10 || v == 11 || v == 12 || v == 13 || v == 14 || v == 17 || v == 21 || v == 29 || v == 30;
        if (!err) { b[k++] = 0x6a; b[k++] = 0; }
        b[k++] = 0x6a; b[k++] = v;
        int32_t rel = (int32_t)(0x240 - off - k - 5); b[k++] = 0xe9; memcpy(b + k, &rel, 4); k += 4;
        put(0x3000 + off, b, k);
        uint64_t t = KVA(3, off), dpl = (v == 3 || v == 4) ? 3 : 0;
        st(0x2000 + v * 16, (t & 0xffff) | (8ull << 16) | (1ull << 32) | ((0x8e | (dpl << 5)) << 40) | (((t >> 16) & 0xffff) << 48));
        st(0x2000 + v * 16 + 8, t >> 32);
    }
    put(0x3000 + 0x240, "\xe6\x52", 2);              // common: out 0x52, al
    put(0x3000 + 0x260, "\x48\xcf", 2);              // iretq
    put(0x3000 + 0x300, "\xe6\x53\xeb\xfc", 4);      // exit loop: out 0x53, al; jmp
    uint8_t door[11] = { 0xa2 }; uint64_t dva = KVA(13, 0); memcpy(door + 1, &dva, 8); door[9] = 0x0f; door[10] = 0x0b;
    put(0xc000, door, sizeof door);                  // syscall page: movabs [doorbell], al; ud2
    uint64_t up = m_door ? 4 : 0;                    // user bit on the kernel half's upper levels
    st(0x8000, 0x9000 | 3 | up); st(0x9000, 0xa000 | 3 | up);
    int sup[] = { 1, 2, 5, 6 };
    for (int i = 0; i < 4; i++) st(0xa000 + sup[i] * 8, sup[i] * 4096ull | 3 | 0x100 | NX);
    st(0xa000 + 3 * 8, 0x3000 | 1 | 0x100);
    st(0xa000 + 12 * 8, 0xc000 | 5 | 0x100);
    st(0xa000 + 13 * 8, MMIO_GPA | 7 | 0x100 | NX);
    st(0xb000 + 511 * 8, 0x8000 | 3 | up);
    st(0xb000, 0x14000 | 7); st(0x14000, 0x15000 | 7); st(0x15000, 0x16000 | 7);
    st(0x16000 + 8, 0x10000 | 5); st(0x16000 + 16, 0x11000 | 7 | NX);
    put(0x10000, "\xb8\x6e\x00\x00\x00\x0f\x05\xeb\xf7", 9);  // mov eax, 110; syscall; jmp

    struct kvm_sregs s;
    io(KVM_GET_SREGS, &s, "KVM_GET_SREGS");
    struct kvm_segment cs = { .limit = 0xffffffff, .selector = 8, .type = 11, .present = 1, .s = 1, .l = 1, .g = 1 };
    struct kvm_segment ss = { .limit = 0xffffffff, .selector = 0x10, .type = 3, .present = 1, .db = 1, .s = 1, .g = 1 };
    struct kvm_segment ud = ss; ud.selector = 0x2b; ud.dpl = 3;
    s.cs = cs; s.ss = ss; s.ds = s.es = s.fs = s.gs = ud;
    struct kvm_segment tr = { .base = tss, .limit = 103, .selector = 0x38, .type = 11, .present = 1 };
    s.tr = tr; memset(&s.ldt, 0, sizeof s.ldt); s.ldt.unusable = 1;
    s.gdt.base = KVA(1, 0); s.gdt.limit = 0x47; s.idt.base = KVA(2, 0); s.idt.limit = 511;
    s.cr0 = 0x80010033; s.cr4 = 0x6a0; s.cr3 = 0xb000; s.efer = 0xd01;
    io(KVM_SET_SREGS, &s, "KVM_SET_SREGS");
    struct { struct kvm_msrs h; struct kvm_msr_entry e[4]; } msr = { .h.nmsrs = 4 };
    msr.e[0].index = 0xc0000081; msr.e[0].data = (8ull << 32) | ((0x33ull - 16) << 48);
    msr.e[1].index = 0xc0000082; msr.e[1].data = m_door ? KVA(12, 0) : KVA(3, 0);
    msr.e[2].index = 0xc0000083; msr.e[2].data = msr.e[1].data;
    msr.e[3].index = 0xc0000084; msr.e[3].data = 0x47700;
    if (ioctl(vcpu, KVM_SET_MSRS, &msr) != 4) die("KVM_SET_MSRS");
    if (m_door) run->kvm_valid_regs = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS;

    struct kvm_regs k = { .rflags = 2 };
    uint64_t urip = 0x1000, ursp = 0x3000, urfl = 0x202;
    int user = 0;  // doorbell: the vCPU stopped in user mode
    if (m_exit) { k.rip = KVA(3, 0x300); k.rsp = top; io(KVM_SET_REGS, &k, "KVM_SET_REGS"); }
    long warm = 200;
    double w0 = 0, c0 = 0, runt = 0;
    for (long i = 0; i < n + warm; i++) {
        if (i == warm) { w0 = clk(CLOCK_MONOTONIC); c0 = cpu(); acc_ioctl = 0; runt = 0; }
        if (!m_exit) {
            if (user) {
                k.rip = urip; k.rsp = ursp; k.rflags = urfl;
            } else {
                uint64_t frame[5] = { urip, 0x33, urfl, ursp, 0x2b };
                put(0x7000 - 40, frame, 40);
                k.rip = KVA(3, 0x260); k.rsp = top - 40; k.rflags = 2;
            }
            if (m_door) { run->s.regs.regs = k; run->kvm_dirty_regs = KVM_SYNC_X86_REGS; }
            else io(KVM_SET_REGS, &k, "KVM_SET_REGS");
        }
        double t = cpu();
        if (ioctl(vcpu, KVM_RUN, 0) < 0) die("KVM_RUN");
        runt += cpu() - t;
        if (m_exit) {
            if (run->exit_reason != KVM_EXIT_IO) { fprintf(stderr, "exit %u\n", run->exit_reason); return 1; }
            continue;
        }
        if (m_door) {
            if (run->exit_reason != KVM_EXIT_MMIO || run->mmio.phys_addr != MMIO_GPA) { fprintf(stderr, "exit %u\n", run->exit_reason); return 1; }
            k = run->s.regs.regs;
            user = run->s.regs.sregs.cs.dpl == 3;
        } else {
            if (run->exit_reason != KVM_EXIT_IO || run->io.port != 0x52) { fprintf(stderr, "exit %u\n", run->exit_reason); return 1; }
            io(KVM_GET_REGS, &k, "KVM_GET_REGS");
            uint64_t f = 0x7000 - (top - k.rsp);   // vector, error, rip, cs, rflags, rsp, ss
            struct kvm_sregs s2;
            io(KVM_GET_SREGS, &s2, "KVM_GET_SREGS");
            if (ld(f) != 14 || s2.cr2 != KVA(3, 0)) { fprintf(stderr, "vector %llu cr2 %llx\n", (unsigned long long)ld(f), (unsigned long long)s2.cr2); return 1; }
        }
        if (k.rax != 110) { fprintf(stderr, "rax %llx\n", (unsigned long long)k.rax); return 1; }
        urip = k.rcx; urfl = k.r11 | 0x202; ursp = k.rsp; k.rax = 4242;
    }
    double wall = clk(CLOCK_MONOTONIC) - w0, c = cpu() - c0;
    printf("mode=%s ns_wall=%.0f ns_cpu=%.0f run_cpu=%.0f ioctl_cpu=%.0f\n", mode, wall / n, c / n, runt / n, acc_ioctl / n);
    return 0;
}
