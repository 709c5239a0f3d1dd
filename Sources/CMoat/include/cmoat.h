// CMoat: the few things Swift cannot call directly. Every function here is a
// thin wrapper; policy lives in Swift.
#ifndef CMOAT_H
#define CMOAT_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/auxv.h>
#include <sys/sysinfo.h>

// ---- ptrace -------------------------------------------------------------
long moat_ptrace(long request, pid_t pid, unsigned long addr, unsigned long data);
int moat_getregs(pid_t tid, struct user_regs_struct *regs);
int moat_setregs(pid_t tid, const struct user_regs_struct *regs);
int moat_getfpregs(pid_t tid, struct user_fpregs_struct *fp);
int moat_setfpregs(pid_t tid, const struct user_fpregs_struct *fp);
/* PTRACE_GETREGSET/SETREGSET NT_X86_XSTATE (the standard-format XSAVE
   area): get returns the bytes the kernel wrote or -1; set needs exactly
   the kernel's size (errno as the kernel sets it). */
long moat_getxstate(pid_t tid, void *buf, size_t len);
int moat_setxstate(pid_t tid, const void *buf, size_t len);
/// The host's XCR0 (xgetbv 0), 0 when its kernel did not enable XSAVE.
uint64_t moat_host_xcr0(void);
/// Bytes of a standard-format (non-compacted) XSAVE area holding the
/// features in `features`, from this CPU's CPUID leaf 0xD (at least 576:
/// the legacy area and the header).
uint32_t moat_xstate_size(uint64_t features);
/// The host CPU's CPUID leaf `leaf`, subleaf `sub`: EAX, EBX, ECX, EDX.
void moat_cpuid(uint32_t leaf, uint32_t sub, uint32_t out[4]);
int moat_getsiginfo(pid_t tid, siginfo_t *info);
/// Field accessors for siginfo_t (its unions do not import cleanly).
int moat_siginfo_signo(const siginfo_t *i);
int moat_siginfo_code(const siginfo_t *i);
uint64_t moat_siginfo_addr(const siginfo_t *i);

// waitpid status decoding (macros in C).
int moat_wifexited(int s);
int moat_wexitstatus(int s);
int moat_wifsignaled(int s);
int moat_wtermsig(int s);
int moat_wifstopped(int s);
int moat_wstopsig(int s);

// ---- memory of another process ------------------------------------------
ssize_t moat_read_mem(pid_t pid, uint64_t addr, void *buf, size_t len);
ssize_t moat_write_mem(pid_t pid, uint64_t addr, const void *buf, size_t len);

// ---- the stub ------------------------------------------------------------
// The stub is one page of code placed at MOAT_STUB_ADDR in every application
// address space; everything else in a fresh stub is unmapped.
#define MOAT_STUB_ADDR 0x7fffffffe000ULL   /* the last page below TASK_SIZE (0x7ffffffff000) */
#define MOAT_STUB_SIZE 0x1000ULL
#define MOAT_APP_TOP   0x7ffffffde000ULL   /* application mappings stay below this */
#define MOAT_STUB_PIDFD 1000               /* a pidfd of the Sentry in every stub */
#define MOAT_VDSO_DATA 0x7fff00000000      /* the vDSO's data page ([vvar]); its code follows */

/* vdso.c: the vDSO's code and the Sentry's side of its data page. */
const void *moat_vdso_code(size_t *len);
size_t moat_vdso_offset(int which);
unsigned long long moat_rdtsc(void);
int moat_tsc_invariant(void);
void moat_vdso_publish(void *page, unsigned long long tsc, unsigned long long mult,
                       unsigned long long mono, unsigned long long real, int enabled);
/// CLOCK_MONOTONIC as the vDSO computes it from the data page now, in ns;
/// -1 while the vDSO takes the syscall.
long long moat_vdso_mono(const void *page);
uint64_t moat_stub_syscall_addr(void);  // "syscall; int3"
uint64_t moat_stub_clone_addr(void);    // "syscall; test rax; jz pause-loop; int3"
uint64_t moat_stub_pause_addr(void);    // "1: pause(); jmp 1b" (a parked thread)
uint64_t moat_stub_spare_clone_addr(void);  // a clone whose child parks at the spare's loop
uint64_t moat_stub_spare_pause_addr(void);  // "2: pause(); jmp 2b" (the spare: stub +0x30)
uint64_t moat_stub_cas_addr(void);      // "lock cmpxchg %esi, (%rdi); int3"
uint64_t moat_stub_futex_op_addr(void); // FUTEX_OP op esi, operand edx on (%rdi): old value in eax; int3
/// Atomic compare-and-swap on a 32-bit word of the Sentry's own mapping of
/// application memory (the KVM platform); returns the word's old value.
uint32_t moat_cas32(void *word, uint32_t expected, uint32_t desired);
// ---- the fast path (fastpath.c) ------------------------------------------
struct moat_notif { uint64_t id; int32_t pid; int32_t nr; uint64_t ip; uint64_t args[6]; };
int moat_fast_syscall_count(void);
int moat_fast_syscall(int i);
/// Where the per-thread filter's sock_fprog sits on the stub page.
uint64_t moat_fast_filter_addr(void);
/// Writes the filter into a writable copy of the stub page; insns or -1.
int moat_fast_filter_write(void *stub_page);
/// Installs the base filter of every stub process (see fastpath.c). 0 or -errno.
int moat_stub_base_filter(void);
int moat_notif_sync(int fd);
int moat_notif_recv(int fd, struct moat_notif *out);
int moat_notif_send(int fd, uint64_t id, int64_t val);
/// SIGCHLD gets a no-op handler and is blocked in the calling thread (call
/// before any thread starts); drivers unblock it only inside moat_fast_wait.
void moat_fast_signals_init(void);
/// Waits for a notification on fd with SIGCHLD unblocked (a tracee stopped),
/// or for wake_fd (an eventfd the SIGCHLD handler writes; drained here).
/// 1: a notification is ready; 2: the fd hung up; 0: woken or timed out.
int moat_fast_wait(int fd, int wake_fd, int timeout_ms);
/// A driver's sleep in a call its stub thread is held in, which another
/// thread may answer (fastpath.c): until a notification (1), a stop (2),
/// task_fd written (4), hang-up (8) or the deadline (0).
/// It also looks for a stop of `tid` every 20 ms (a SIGCHLD merged into
/// another's names only the other thread).
int moat_fast_sleep(int fd, int stop_fd, int task_fd, pid_t tid, int64_t deadline_ns);
/// Whether ptraced thread `tid` has a stop or exit its tracer has not
/// waited for (looked at with WNOWAIT: it stays there for waitpid).
int moat_stop_pending(pid_t tid);
/// Routes SIGCHLD for stub thread `tid` to the eventfd its driver polls.
void moat_fast_register(pid_t tid, int efd);
void moat_fast_unregister(pid_t tid);
/// A task's sleep (park.c): arm with Kernel.mu held, release it, wait until
/// woken or the absolute CLOCK_MONOTONIC deadline (-1: none; returns
/// ETIMEDOUT), take it back. wake may be called from any thread, any time.
void moat_park_arm(int32_t *w);
int moat_park_wait(int32_t *w, int64_t deadline_ns);
void moat_park_wake(int32_t *w);
/// The Sentry's host epoll instances (hostepoll.c): create (EPOLL_CLOEXEC),
/// ctl with op 1 add, 2 del, 3 mod (Linux's numbers), and take up to `max`
/// (at most 64) ready keys without waiting. Each returns -errno on failure.
int moat_hostep_create(void);
int moat_hostep_ctl(int ep, int op, int fd, uint32_t events, uint64_t key);
int moat_hostep_take(int ep, uint64_t *keys, int max);
/// pidfd_getfd(pidfd_open(pid), fd): a copy of another process's fd, or -errno.
int moat_pidfd_getfd(pid_t pid, int fd);
/// kcmp(pid1, pid2, KCMP_FILE, fd1, fd2): 0 when the two fds are the same
/// open file description, 1 or 2 when not (an ordering), or -errno (a
/// closed fd: -EBADF).
int moat_kcmp_file(pid_t pid1, pid_t pid2, int fd1, int fd2);

/// Starts the master stub: a child process with a clean address space (only
/// the stub page), all signals default, no fds. Returns its pid, or -errno.
/// The child is not traced; it waits in pause() until a tracer seizes it.
pid_t moat_start_master_stub(void);

// ---- process creation for the launcher -----------------------------------
/// clone(flags|SIGCHLD) + in the child: setsid if asked, dup2 fds[i] -> i for
/// i < nfds, close every other fd, PR_SET_PDEATHSIG(SIGKILL), execve.
/// Returns the child's pid or -errno.
pid_t moat_spawn(const char *path, char *const argv[], char *const envp[],
                 const int *fds, int nfds, unsigned long cloneflags, int setsid_child);
/// moat_spawn in two steps: the clone (the exec's outcome pipe in *errfd),
/// then the wait for the exec, so that two children can exec at once.
pid_t moat_spawn_start(const char *path, char *const argv[], char *const envp[],
                       const int *fds, int nfds, unsigned long cloneflags, int setsid_child, int *errfd);
pid_t moat_spawn_finish(pid_t pid, int errfd);
/// fork() instead of clone+exec: in the child (return 0) the same set-up
/// as moat_spawn (fds, signal mask, PR_SET_PDEATHSIG, setsid; CLONE_NEWPID
/// and CLONE_NEWNET the only flags), `envp` as its whole environment and
/// `argv` as its /proc/PID/cmdline; the caller then runs the command's main
/// itself. In the parent the child's pid,
/// with *errfd for moat_spawn_finish. -EAGAIN when this process has more than
/// one thread (fork would be unsafe: re-execute instead).
pid_t moat_fork_start(char *const argv[], char *const envp[], const int *fds, int nfds,
                      unsigned long cloneflags, int setsid_child, int *errfd);
/// The number of threads of this process (/proc/self/status), -1 if unknown.
int moat_thread_count(void);

// ---- confinement --------------------------------------------------------
/// Empties the capability bounding, effective, permitted and inheritable
/// sets and sets no-new-privs. Returns 0 or -errno.
int moat_drop_all_caps(void);
/// The host identity a sandbox's Sentry and stubs run as once confined:
/// MOAT_SANDBOX_ID_BASE + the Sentry's host pid, as uid and gid. An id no
/// host user has, owning no host file, and different for every sandbox, so
/// one sandbox's processes cannot signal, trace or read another's.
#define MOAT_SANDBOX_ID_BASE 0x6d6f0000u
/// The network address helper's id (netconf.c): the sandbox's id + this.
/// Sandbox ids are the base + a pid (below 2^22), so no sandbox has it.
#define MOAT_NETCONF_ID_OFFSET 0x00800000u
/// Sets the id the master stub (started later) takes; 0 keeps root.
void moat_set_sandbox_id(unsigned id);
unsigned moat_sandbox_id(void);
/// At the start of the Sentry, before any thread: a private mount namespace
/// (its mounts never propagate to the host) and "/" as the working
/// directory. 0 or -errno.
int moat_sentry_private_mounts(void);
/// Replaces the root of the Sentry's mount namespace (and so of its stubs)
/// by an empty read-only tmpfs and detaches the host's tree. 0 or -errno.
int moat_sentry_empty_root(void);
/// moat_drop_all_caps, switching to uid and gid `id` first (0: stay root).
/// Keeps the parent-death signal and ptrace access by the same id. (No
/// capability may stay: a stub maps the Sentry's fds with pidfd_getfd,
/// which the host refuses when the target holds capabilities the caller
/// lacks.) 0 or -errno.
int moat_drop_privileges_as(unsigned id);
/// Installs the Sentry's seccomp allow-list on every thread. 0 or -errno.
int moat_sentry_seccomp(void);
/// Registers a KVM vCPU fd whose run/register ioctls the Sentry's filter allows.
int moat_sentry_allow_kvm_vcpu(int fd);
/// Installs the Gofer's seccomp allow-list. 0 or -errno.
int moat_gofer_seccomp(void);

// ---- misc ----------------------------------------------------------------
int moat_errno(void);
long moat_syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6);
int moat_tgkill(pid_t tgid, pid_t tid, int sig);
pid_t moat_gettid(void);
int moat_sched_pin(pid_t tid, int cpu);
/* setpriority(PRIO_PROCESS, tid, nice) of one host thread: 0 or -errno. */
int moat_set_nice(pid_t tid, int nice);
/* The calling thread's host nice value (0 if it cannot be read). */
int moat_get_nice(void);
/* RLIMIT_NICE (soft and hard) at the calling process's own nice value: its
   threads may then have their nice lowered back to it, never below, without
   a capability. Needs CAP_SYS_RESOURCE to raise the hard limit. */
int moat_nice_floor_limit(void);
/* Whether RLIMIT_NICE lets this process (and the stubs, which inherit it)
   have a nice value lowered back to its own without a capability. */
int moat_nice_can_return(void);
/// The CPUs this process may run on (its cpuset/affinity), up to max.
int moat_allowed_cpus(int *out, int max);
/// CLOCK_MONOTONIC in ns, and its value when this process's constructors ran (startup.c).
uint64_t moat_monotonic_ns(void);
uint64_t moat_process_start_ns(void);



// sysinfo's struct and function share a name, which Swift cannot call.
static inline void moat_sysinfo(uint64_t *total, uint64_t *freeram, uint64_t *procs) {
    struct sysinfo si; sysinfo(&si);
    *total = (uint64_t)si.totalram * si.mem_unit; *freeram = (uint64_t)si.freeram * si.mem_unit; *procs = si.procs;
}
#endif

// Networking (net.c): calls glibc declares only under _GNU_SOURCE.
int moat_accept4(int fd, void *addr, unsigned *len, int flags);
/// The long-lived launcher of `moat run`: CAP_KILL only, no-new-privs, a seccomp allow-list (confine.c).
int moat_launcher_confine(void);
int moat_setns(int fd, int nstype);
int moat_send_fd(int sock, const void *buf, size_t len, int fd);
int moat_recv_fd(int sock, void *buf, size_t len, int *fd);
/// The address helper (netconf.c): RTM_NEWADDR or RTM_DELADDR (op) with
/// NLM_F_CREATE/EXCL/REPLACE (flags) of addr/prefix on interface index; or
/// MOAT_NETCONF_PORT_RANGE: net.ipv4.ip_local_port_range = ports[0] ports[1].
struct moat_netconf_req { int32_t op; int32_t flags; int32_t family; int32_t prefix; int32_t index; uint8_t addr[16]; int32_t ports[2]; };
#define MOAT_NETCONF_PORT_RANGE 1000
/// Forks the helper (before confinement); returns the Sentry's end of its channel or -errno.
int moat_netconf_start(void);
/// moat_netconf_start in two halves: the fork (the pending channel, or
/// -errno), and the wait for the helper to have opened its files (the
/// channel, or -errno; it closes `pending` either way), which must come
/// before the Sentry pivots into its empty root.
int moat_netconf_fork(void);
int moat_netconf_ready(int pending);
/// One request: 0 or the kernel's -errno.
int moat_netconf_call(int chan, const struct moat_netconf_req *r);
#include "cmoat_kvm.h"
// Long-lived daemons (daemon.c; policy in Sandbox/DaemonConfinement.swift).
/// Bounding, effective and permitted sets to `keep` (a bit per capability;
/// what is not permitted stays out), ambient and inheritable emptied. Only
/// the calling thread's sets change: call before any thread starts. 0 or -errno.
int moat_daemon_drop_caps(uint64_t keep);
/// PR_SET_NO_NEW_PRIVS. 0 or -errno.
int moat_daemon_no_new_privs(void);
/// A seccomp filter on every thread that fails each named call with EPERM
/// (native, i386 and x32 tables) and allows everything else. 0 or -errno
/// (-ENOENT: a name libseccomp does not know).
int moat_daemon_deny_syscalls(const char *const *names, int count);
