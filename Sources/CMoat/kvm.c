// KVM ioctl wrappers for Sources/Platform/KVM (see include/cmoat_kvm.h).
#define _GNU_SOURCE
#include "cmoat_kvm.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int ret(int r) { return r < 0 ? -errno : r; }

/* A vCPU register/state ioctl (not KVM_RUN, whose EINTR is the kick and is
 * the caller's to handle). Each of them is idempotent: it either moved the
 * whole state or changed nothing. So a transient failure is retried here
 * instead of reaching the Sentry, which can only kill the application's
 * process for it (Task.swift, .gone): EINTR (a signal while the ioctl waits
 * for the vCPU's mutex), EAGAIN, and ENOMEM (its kernel buffer, e.g.
 * KVM_SET_XSAVE's copy of the area, under host memory pressure; retried
 * with a 1 ms pause, up to about a second, which a loaded host survives and
 * a host truly out of memory does not hide). */
static int vcpu_ioctl(int v, unsigned long req, const void *arg) {
    for (int tries = 0;; tries++) {
        int r = ioctl(v, req, arg);
        if (r >= 0) return r;
        int e = errno;
        if ((e == EINTR || e == EAGAIN) && tries < 1000) continue;
        if (e == ENOMEM && tries < 1000) {
            struct timespec ts = { 0, 1000000 };
            nanosleep(&ts, NULL);
            continue;
        }
        return -e;
    }
}

int moat_kvm_open(void) {
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) return -errno;
    if (ioctl(fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) { close(fd); return -ENOTSUP; }
    return fd;
}
int moat_kvm_create_vm(int kvm) { return ret(ioctl(kvm, KVM_CREATE_VM, 0)); }
int moat_kvm_run_size(int kvm) { return ret(ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0)); }
int moat_kvm_check_extension(int fd, int cap) { return ret(ioctl(fd, KVM_CHECK_EXTENSION, cap)); }

int moat_kvm_set_memory(int vm, uint32_t slot, uint64_t gpa, uint64_t size, uint64_t host) {
    struct kvm_userspace_memory_region r = {
        .slot = slot, .flags = 0, .guest_phys_addr = gpa, .memory_size = size, .userspace_addr = host,
    };
    return ret(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r));
}
int moat_kvm_create_vcpu(int vm, int id) { return ret(ioctl(vm, KVM_CREATE_VCPU, id)); }

int moat_kvm_set_supported_cpuid(int kvm, int vcpu, uint64_t *xcr0) {
    int n = 256;
    for (;;) {
        struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));
        if (!c) return -ENOMEM;
        c->nent = n;
        if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, c) < 0) {
            int e = errno;
            free(c);
            if (e == E2BIG && n < 4096) { n *= 2; continue; }
            return -e;
        }
        *xcr0 = 0;
        for (uint32_t i = 0; i < c->nent; i++) {
            struct kvm_cpuid_entry2 *e = &c->entries[i];
            if (e->function == 0xd && e->index == 0) *xcr0 = (uint64_t)e->edx << 32 | e->eax;
        }
        int r = ret(ioctl(vcpu, KVM_SET_CPUID2, c));
        free(c);
        return r;
    }
}

int moat_kvm_request_amx(void) {
    /* ARCH_REQ_XCOMP_GUEST_PERM (0x1025) for XFEATURE_XTILE_DATA (18). */
    return ret((int)syscall(SYS_arch_prctl, 0x1025, 18));
}

int moat_kvm_xsave_size(int kvm) {
    int n = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
    if (n > (int)sizeof(struct kvm_xsave)) return n;
    return ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0 ? (int)sizeof(struct kvm_xsave) : 0;
}
int moat_kvm_get_xsave(int v, void *area, int size) {
    if (size > (int)sizeof(struct kvm_xsave)) return vcpu_ioctl(v, KVM_GET_XSAVE2, area);
    return vcpu_ioctl(v, KVM_GET_XSAVE, area);
}
int moat_kvm_set_xsave(int v, const void *area) { return vcpu_ioctl(v, KVM_SET_XSAVE, area); }
int moat_kvm_set_xcr0(int v, uint64_t xcr0) {
    struct kvm_xcrs x;
    memset(&x, 0, sizeof x);
    x.nr_xcrs = 1;
    x.xcrs[0].xcr = 0;
    x.xcrs[0].value = xcr0;
    return vcpu_ioctl(v, KVM_SET_XCRS, &x);
}

int moat_kvm_get_regs(int v, struct kvm_regs *r) { return vcpu_ioctl(v, KVM_GET_REGS, r); }
int moat_kvm_set_regs(int v, const struct kvm_regs *r) { return vcpu_ioctl(v, KVM_SET_REGS, r); }
int moat_kvm_get_sregs(int v, struct kvm_sregs *s) { return vcpu_ioctl(v, KVM_GET_SREGS, s); }
int moat_kvm_set_sregs(int v, const struct kvm_sregs *s) { return vcpu_ioctl(v, KVM_SET_SREGS, s); }

int moat_kvm_set_msrs(int v, const uint32_t *index, const uint64_t *value, int n) {
    if (n < 0 || n > 64) return -EINVAL;
    struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(struct kvm_msr_entry));
    if (!m) return -ENOMEM;
    m->nmsrs = n;
    for (int i = 0; i < n; i++) { m->entries[i].index = index[i]; m->entries[i].data = value[i]; }
    int r = vcpu_ioctl(v, KVM_SET_MSRS, m);
    free(m);
    return r;
}
int moat_kvm_get_msr(int v, uint32_t index, uint64_t *value) {
    struct { struct kvm_msrs h; struct kvm_msr_entry e; } m;
    memset(&m, 0, sizeof m);
    m.h.nmsrs = 1;
    m.e.index = index;
    int r = vcpu_ioctl(v, KVM_GET_MSRS, &m);
    if (r == 1) *value = m.e.data;
    return r;
}
int moat_kvm_run(int v) { return ret(ioctl(v, KVM_RUN, 0)); }

uint32_t moat_kvm_exit_reason(const void *run) { return ((const struct kvm_run *)run)->exit_reason; }
uint16_t moat_kvm_exit_io_port(const void *run) { return ((const struct kvm_run *)run)->io.port; }
uint8_t moat_kvm_exit_io_direction(const void *run) { return ((const struct kvm_run *)run)->io.direction; }
uint64_t moat_kvm_exit_hw_reason(const void *run) {
    const struct kvm_run *r = run;
    return r->exit_reason == KVM_EXIT_FAIL_ENTRY ? r->fail_entry.hardware_entry_failure_reason
                                                 : r->hw.hardware_exit_reason;
}
uint64_t moat_kvm_exit_mmio_addr(const void *run) { return ((const struct kvm_run *)run)->mmio.phys_addr; }
uint8_t moat_kvm_exit_mmio_is_write(const void *run) { return ((const struct kvm_run *)run)->mmio.is_write; }
uint32_t moat_kvm_exit_internal_suberror(const void *run) { return ((const struct kvm_run *)run)->internal.suberror; }
void moat_kvm_set_immediate_exit(void *run, uint8_t v) { ((struct kvm_run *)run)->immediate_exit = v; }
void moat_kvm_sync_enable(void *run, uint64_t mask) { ((struct kvm_run *)run)->kvm_valid_regs = mask; }
void moat_kvm_sync_get_regs(const void *run, struct kvm_regs *r) { *r = ((const struct kvm_run *)run)->s.regs.regs; }
void moat_kvm_sync_set_regs(void *run, const struct kvm_regs *r) {
    struct kvm_run *k = run;
    k->s.regs.regs = *r;
    k->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
}
void moat_kvm_sync_get_sregs(const void *run, struct kvm_sregs *s) { *s = ((const struct kvm_run *)run)->s.regs.sregs; }

// Kicking a vCPU out of the guest. The Sentry sends the kick signal to the
// driver thread that is inside KVM_RUN; KVM returns -EINTR as soon as a
// signal is pending. A signal that lands just before KVM_RUN (between the
// Sentry's decision to run and the ioctl) would be lost that way, so the
// handler also sets immediate_exit in the thread's kvm_run area: the next
// KVM_RUN then returns -EINTR at once (the race-free scheme of the KVM API
// documentation, section "immediate_exit"). The area is per thread (TLS,
// local-exec in the executable, so reading it in a handler is safe).
static __thread struct kvm_run *kick_run;
static void on_kick(int sig) {
    (void)sig;
    struct kvm_run *r = kick_run;
    if (r) r->immediate_exit = 1;
}
int moat_kvm_kick_init(int sig) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_kick;
    sa.sa_flags = SA_RESTART;   // a kick must not fail the Sentry's own host calls
    sigemptyset(&sa.sa_mask);
    return sigaction(sig, &sa, NULL) == 0 ? 0 : -errno;
}
void moat_kvm_kick_bind(void *run, int sig) {
    if (kick_run == run) return;
    kick_run = run;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
}

int moat_memfd(const char *name, uint64_t size) {
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) return -errno;
    if (ftruncate(fd, (off_t)size) < 0) { int e = errno; close(fd); return -e; }
    return fd;
}
int moat_punch_hole(int fd, uint64_t off, uint64_t len) {
    return ret(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len));
}

uint32_t moat_cas32(void *word, uint32_t expected, uint32_t desired) {
    // A guest vCPU's lock cmpxchg on the same physical page is coherent with
    // this one: both are locked operations on the same host memory.
    __atomic_compare_exchange_n((uint32_t *)word, &expected, desired, 0,
                                __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return expected;
}
