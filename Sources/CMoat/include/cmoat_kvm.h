// C side of the KVM platform (Sources/Platform/KVM): the KVM ioctls are
// macros over struct sizes from <linux/kvm.h> and ioctl(2) is variadic, so
// Swift reaches them through these small wrappers. Each returns >= 0 on
// success or -errno; none of them keeps state.
#pragma once
#include <stdint.h>
#include <linux/kvm.h>
#include <sys/user.h>

/// Opens /dev/kvm (O_RDWR|O_CLOEXEC) and checks the stable API version (12).
int moat_kvm_open(void);
int moat_kvm_create_vm(int kvm);
/// Size of the shared kvm_run area of a vCPU fd.
int moat_kvm_run_size(int kvm);
int moat_kvm_check_extension(int fd, int cap);
int moat_kvm_set_memory(int vm, uint32_t slot, uint64_t gpa, uint64_t size, uint64_t host);
int moat_kvm_create_vcpu(int vm, int id);
/// Gives the vCPU the CPUID the host KVM supports (without it the guest sees
/// an almost empty CPUID and user code cannot find SSE2); *xcr0 receives
/// the XCR0 bits KVM supports for a guest (CPUID leaf 0xD subleaf 0 EDX:EAX).
int moat_kvm_set_supported_cpuid(int kvm, int vcpu, uint64_t *xcr0);
/// Asks the host kernel to let this process's VMs give their guests AMX
/// tile data (arch_prctl ARCH_REQ_XCOMP_GUEST_PERM): without it KVM leaves
/// the AMX bits out of the guest's XCR0. Before the first vCPU; 0 or -errno
/// (EINVAL where the CPU or kernel has no AMX).
int moat_kvm_request_amx(void);
/// The size of the buffer KVM_GET_XSAVE(2)/KVM_SET_XSAVE move: the
/// KVM_CAP_XSAVE2 size where it exceeds struct kvm_xsave (4 KiB), else
/// 4 KiB; 0 without KVM_CAP_XSAVE.
int moat_kvm_xsave_size(int kvm);
/// The vCPU's XSAVE area in the standard format (KVM_GET_XSAVE, or
/// KVM_GET_XSAVE2 when `size` exceeds 4 KiB), and loading one.
int moat_kvm_get_xsave(int vcpu, void *area, int size);
int moat_kvm_set_xsave(int vcpu, const void *area);
/// KVM_SET_XCRS with XCR0 only.
int moat_kvm_set_xcr0(int vcpu, uint64_t xcr0);
int moat_kvm_get_regs(int vcpu, struct kvm_regs *r);
int moat_kvm_set_regs(int vcpu, const struct kvm_regs *r);
int moat_kvm_get_sregs(int vcpu, struct kvm_sregs *s);
int moat_kvm_set_sregs(int vcpu, const struct kvm_sregs *s);
/// Writes n MSRs (index[i] = value[i]); returns how many were written.
int moat_kvm_set_msrs(int vcpu, const uint32_t *index, const uint64_t *value, int n);
int moat_kvm_get_msr(int vcpu, uint32_t index, uint64_t *value);
/// KVM_RUN; -EINTR when a host signal interrupted it.
int moat_kvm_run(int vcpu);

// The kvm_run area (its exit payload is a union, read through these).
uint32_t moat_kvm_exit_reason(const void *run);
uint16_t moat_kvm_exit_io_port(const void *run);
uint8_t moat_kvm_exit_io_direction(const void *run);
uint64_t moat_kvm_exit_hw_reason(const void *run);
uint64_t moat_kvm_exit_mmio_addr(const void *run);
uint8_t moat_kvm_exit_mmio_is_write(const void *run);
uint32_t moat_kvm_exit_internal_suberror(const void *run);
void moat_kvm_set_immediate_exit(void *run, uint8_t v);
// Register sync through the kvm_run area (KVM_CAP_SYNC_REGS): KVM stores the
// registers named in kvm_valid_regs there at every exit and loads those
// marked in kvm_dirty_regs at the next KVM_RUN, which saves the
// KVM_GET_REGS/KVM_SET_REGS ioctls of every trap.
void moat_kvm_sync_enable(void *run, uint64_t mask);
void moat_kvm_sync_get_regs(const void *run, struct kvm_regs *r);
void moat_kvm_sync_set_regs(void *run, const struct kvm_regs *r);
void moat_kvm_sync_get_sregs(const void *run, struct kvm_sregs *s);
/// Installs the kick handler for `sig` (process-wide, once): it sets
/// immediate_exit in the kvm_run area bound to the receiving thread.
int moat_kvm_kick_init(int sig);
/// Binds `run` to the calling thread for kicks and unblocks `sig` there.
void moat_kvm_kick_bind(void *run, int sig);

/// A memfd of `size` bytes (guest physical memory owned by the Sentry).
int moat_memfd(const char *name, uint64_t size);
/// Gives the pages [off, off+len) of a memfd back to the host (they read as zero).
int moat_punch_hole(int fd, uint64_t off, uint64_t len);
