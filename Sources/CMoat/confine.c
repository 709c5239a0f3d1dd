// Least privilege for the Sentry and the stubs: capabilities, no-new-privs
// and the Sentry's seccomp allow-list (libseccomp).
#define _GNU_SOURCE
#include "cmoat.h"
#include <errno.h>
#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <linux/sockios.h>
#include <linux/kvm.h>
#include <unistd.h>

static int drop_bounding_set(void) {
    for (int c = 0; c <= 63; c++) {
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL) return -errno;
    }
    return 0;
}

static int clear_caps_no_new_privs(void);

int moat_drop_all_caps(void) {
    int r = drop_bounding_set();
    return r != 0 ? r : clear_caps_no_new_privs();
}

static int clear_caps_no_new_privs(void) {
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2] = { { 0, 0, 0 }, { 0, 0, 0 } };
    if (syscall(SYS_capset, &h, d) != 0) return -errno;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -errno;
    return 0;
}

// Identity. A process whose uid or gid changes loses its parent-death
// signal and becomes non-dumpable (so even its own tracer, by then the same
// uid without capabilities, could not read its memory); both are restored.
static int become(unsigned id) {
    if (id == 0) return 0;
    int pdeath = 0;
    if (prctl(PR_GET_PDEATHSIG, &pdeath, 0, 0, 0) != 0) return -errno;
    if (syscall(SYS_setgroups, 0, NULL) != 0) return -errno;
    if (syscall(SYS_setresgid, id, id, id) != 0) return -errno;
    if (syscall(SYS_setresuid, id, id, id) != 0) return -errno;
    if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0) return -errno;
    if (pdeath && prctl(PR_SET_PDEATHSIG, pdeath, 0, 0, 0) != 0) return -errno;
    return 0;
}

static unsigned sandbox_id;
void moat_set_sandbox_id(unsigned id) { sandbox_id = id; }
unsigned moat_sandbox_id(void) { return sandbox_id; }

int moat_drop_privileges_as(unsigned id) {
    // The bounding set first: dropping it needs CAP_SETPCAP, which the uid
    // change takes away.
    int r = drop_bounding_set();
    if (r == 0) r = become(id);
    return r != 0 ? r : clear_caps_no_new_privs();
}

int moat_sentry_private_mounts(void) {
    if (unshare(CLONE_NEWNS) != 0) return -errno;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return -errno;
    if (chdir("/") != 0) return -errno;
    return 0;
}

int moat_sentry_empty_root(void) {
    // Any directory of the (private) tree will do as the mount point: the
    // tree is detached right after.
    const char *dirs[] = { "/tmp", "/run", "/mnt", "/dev" };
    const char *at = NULL;
    for (unsigned i = 0; i < sizeof dirs / sizeof dirs[0] && !at; i++) {
        if (mount("moat-empty", dirs[i], "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,nr_inodes=2,mode=0555") == 0) at = dirs[i];
    }
    if (!at) return -errno;
    if (chdir(at) != 0) return -errno;
    // pivot_root(".", "."): the old root ends up stacked on the new one, at
    // "/", and is detached at once; every thread and stub of the Sentry,
    // rooted at the old root, is moved to the new one.
    if (syscall(SYS_pivot_root, ".", ".") != 0) return -errno;
    if (umount2(".", MNT_DETACH) != 0) return -errno;
    if (chdir("/") != 0) return -errno;
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) return -errno;
    return 0;
}

/// Loads the filter (or not, after a failed rule) and frees it.
static int load_and_release(scmp_filter_ctx ctx, int ok) {
    int r = ok && seccomp_load(ctx) == 0 ? 0 : -EINVAL;
    seccomp_release(ctx);
    return r;
}

// vCPU fds of the KVM platform (Platform/KVM), registered before the filter
// loads: the Sentry keeps driving them once confined.
static int kvm_vcpus[64];
static int kvm_vcpu_count;
int moat_sentry_allow_kvm_vcpu(int fd) {
    if (fd < 0 || kvm_vcpu_count >= 64) return -EINVAL;
    kvm_vcpus[kvm_vcpu_count++] = fd;
    return 0;
}

#define ALLOW(name) do { if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(name), 0) != 0) goto fail; } while (0)

// The host syscalls the Sentry makes once the application runs. Everything
// else fails with EPERM: the Sentry opens no file, makes no socket but the
// inet ones it serves (below), execs nothing. Threads are synchronized (TSYNC), so the stub factory's thread
// is covered too; the stubs themselves are separate processes whose
// application syscalls never reach the host (PTRACE_SYSEMU).
int moat_sentry_seccomp(void) {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (!ctx) return -ENOMEM;
    if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1) != 0) goto fail;
    // Driving stubs.
    ALLOW(ptrace); ALLOW(wait4); ALLOW(waitid); ALLOW(process_vm_readv); ALLOW(process_vm_writev);
    ALLOW(kill); ALLOW(tgkill); ALLOW(sched_setaffinity); ALLOW(sched_getaffinity); ALLOW(sched_yield);
    /* A task's nice value on its stub thread (Kernel/HostScheduling.swift): one thread at a time. */
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(setpriority), 1, SCMP_A0(SCMP_CMP_EQ, PRIO_PROCESS)) != 0) goto fail;
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(getpriority), 1, SCMP_A0(SCMP_CMP_EQ, PRIO_PROCESS)) != 0) goto fail;
    // The fast path (fastpath.c): a stub thread's seccomp listener is taken
    // with pidfd_getfd (the Sentry traces every stub, which the host checks)
    // and served with the notification ioctls.
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, 434 /* pidfd_open */, 0) != 0) goto fail;
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, 438 /* pidfd_getfd */, 0) != 0) goto fail;
    // kcmp(KCMP_FILE) only: whether the fd a stub keeps for big writes is
    // still the very file the Sentry's fd is (Kernel/StubFD.swift). It
    // answers "same or not" about two fds and changes nothing.
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kcmp), 1, SCMP_A2(SCMP_CMP_EQ, 0 /* KCMP_FILE */)) != 0) goto fail;
    {
        // SECCOMP_IOCTL_NOTIF_RECV, _SEND and _SET_FLAGS.
        unsigned long notif[] = { 0xc0502100UL, 0xc0182101UL, 0x40082104UL };
        for (unsigned i = 0; i < 3; i++) {
            if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, notif[i])) != 0) goto fail;
        }
    }
    // I/O on fds the Sentry was given (Gofer-donated files, stdio, the log).
    ALLOW(read); ALLOW(write); ALLOW(pread64); ALLOW(pwrite64); ALLOW(readv); ALLOW(writev);
    ALLOW(lseek); ALLOW(close); ALLOW(fstat); ALLOW(newfstatat); ALLOW(statx); ALLOW(ftruncate); ALLOW(fsync);
    ALLOW(fdatasync); ALLOW(poll); ALLOW(ppoll); ALLOW(dup); ALLOW(dup3); ALLOW(fcntl); ALLOW(eventfd2);
    // A host epoll instance per application epoll instance that watches
    // host-backed files (Syscalls/Epoll.swift): it holds only fds the
    // Sentry already has, and waits on them.
    ALLOW(epoll_create1); ALLOW(epoll_ctl); ALLOW(epoll_wait); ALLOW(epoll_pwait);
    // The Gofer channel.
    ALLOW(sendmsg); ALLOW(recvmsg); ALLOW(sendto); ALLOW(recvfrom);
    // The OCI control channel (moat exec): connections on a listening
    // socket the launcher created before confinement; no new socket or
    // name can be made with accept4 alone.
    ALLOW(accept4);
    // Inet sockets the Sentry makes and serves for the application
    // (FSImpl/InetSocket.swift), in the sandbox's own network namespace
    // unless --network host. socket() is allowed for exactly the triples
    // the Sentry creates: AF_INET/AF_INET6, SOCK_STREAM or SOCK_DGRAM with
    // SOCK_NONBLOCK|SOCK_CLOEXEC always set, and TCP, UDP, UDP-Lite or ICMP echo.
    // Never AF_UNIX (the sandbox's unix sockets are emulated, and a host one
    // could reach the host's abstract names or the Gofer's kind of channel),
    // AF_NETLINK (namespace configuration) or AF_PACKET/SOCK_RAW (raw frames).
    // The calls on existing sockets cannot tell an inet socket from the
    // Gofer's socketpair by argument, but none of them can create a socket
    // or reach a new peer other than through an inet address.
    {
        const int nb = SOCK_NONBLOCK | SOCK_CLOEXEC;
        const struct { int family, type, proto; } sockets[] = {
            { AF_INET, SOCK_STREAM, IPPROTO_TCP }, { AF_INET6, SOCK_STREAM, IPPROTO_TCP },
            { AF_INET, SOCK_DGRAM, IPPROTO_UDP }, { AF_INET6, SOCK_DGRAM, IPPROTO_UDP },
            { AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE }, { AF_INET6, SOCK_DGRAM, IPPROTO_UDPLITE },
            { AF_INET, SOCK_DGRAM, IPPROTO_ICMP }, { AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6 },
        };
        for (unsigned i = 0; i < sizeof sockets / sizeof sockets[0]; i++) {
            if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 3,
                                 SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)sockets[i].family),
                                 SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)(sockets[i].type | nb)),
                                 SCMP_A2(SCMP_CMP_EQ, (scmp_datum_t)sockets[i].proto)) != 0) goto fail;
        }
        ALLOW(bind); ALLOW(listen); ALLOW(connect); ALLOW(getsockname); ALLOW(getpeername);
        ALLOW(setsockopt); ALLOW(getsockopt); ALLOW(shutdown);
        // Read-only interface queries (SIOCGIFCONF and struct ifreq
        // getters) and socket queue sizes.
        unsigned long netioctls[] = { SIOCGIFCONF, SIOCGIFNAME, SIOCGIFFLAGS, SIOCGIFADDR, SIOCGIFDSTADDR,
                                      SIOCGIFBRDADDR, SIOCGIFNETMASK, SIOCGIFMTU, SIOCGIFHWADDR, SIOCGIFINDEX,
                                      SIOCGIFTXQLEN, SIOCATMARK, TIOCOUTQ };
        for (unsigned i = 0; i < sizeof netioctls / sizeof netioctls[0]; i++) {
            if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, netioctls[i])) != 0) goto fail;
        }
    }
    // Memory and threads of the Sentry itself.
    ALLOW(mmap); ALLOW(munmap); ALLOW(mprotect); ALLOW(mremap); ALLOW(madvise); ALLOW(brk);
    ALLOW(futex); ALLOW(set_robust_list); ALLOW(rseq); ALLOW(exit); ALLOW(exit_group);
    ALLOW(rt_sigaction); ALLOW(rt_sigprocmask); ALLOW(rt_sigreturn); ALLOW(sigaltstack); ALLOW(restart_syscall);
    ALLOW(rt_sigtimedwait); ALLOW(memfd_create);
    ALLOW(getpid); ALLOW(gettid); ALLOW(getppid); ALLOW(getuid); ALLOW(geteuid); ALLOW(getgid); ALLOW(getegid);
    ALLOW(clock_gettime); ALLOW(clock_nanosleep); ALLOW(nanosleep); ALLOW(gettimeofday); ALLOW(getrandom);
    ALLOW(sysinfo); ALLOW(prlimit64); ALLOW(getrlimit); ALLOW(uname); ALLOW(getcpu); ALLOW(lgetxattr);
    // New Sentry threads only (pthread_create); clone3's flags cannot be
    // inspected, so it fails with ENOSYS and glibc falls back to clone.
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                         SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)) != 0) goto fail;
    if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0) != 0) goto fail;
    // The KVM platform: only the ioctls that run a vCPU made before
    // confinement and move its state, each allowed on exactly the vCPU fds
    // registered (argument 0) and by request (argument 1). No KVM_CREATE_*
    // (no new VM, vCPU or device once the application runs), no
    // KVM_SET_USER_MEMORY_REGION (guest memory cannot grow to reach more
    // Sentry memory: shared mappings go into the range the second slot
    // reserved before confinement, Platform/KVM/KVMMachine.swift), no
    // KVM_SET_CPUID2, no ioctl on /dev/kvm or the VM fd.
    // (The registers and XSAVE ioctls are what KVMThread uses to enter and
    // leave the guest and to move a context's FPU state; MSRs carry the
    // FS/GS bases. KVM_SET_XCRS is not among them: XCR0 is set once, when
    // the vCPU is made.)
    {
        const unsigned long kvmioctls[] = { KVM_RUN, KVM_GET_REGS, KVM_SET_REGS, KVM_GET_SREGS, KVM_SET_SREGS,
                                            KVM_GET_MSRS, KVM_SET_MSRS, KVM_GET_XSAVE, KVM_GET_XSAVE2, KVM_SET_XSAVE };
        for (int v = 0; v < kvm_vcpu_count; v++) {
            for (unsigned i = 0; i < sizeof kvmioctls / sizeof kvmioctls[0]; i++) {
                if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 2,
                                     SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)kvm_vcpus[v]),
                                     SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)kvmioctls[i])) != 0) goto fail;
            }
        }
    }
    // Terminal ioctls on the sandbox's stdio (see ttyIoctl in the Sentry).
    unsigned long ioctls[] = { TCGETS, TCSETS, TCSETSW, TCSETSF, TIOCGWINSZ, TIOCSWINSZ, FIONREAD };
    for (unsigned i = 0; i < sizeof ioctls / sizeof ioctls[0]; i++) {
        if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, ioctls[i])) != 0) goto fail;
    }
    return load_and_release(ctx, 1);
fail:
    return load_and_release(ctx, 0);
}

// The Gofer's host syscalls once it serves: file operations relative to
// held directory fds (*at calls), the socket to its Sentry, and what the
// Swift runtime needs. No open by absolute path can leave the pivot_root
// anyway; no socket, exec, mount, ptrace or namespace call is allowed.
int moat_gofer_seccomp(void) {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (!ctx) return -ENOMEM;
    ALLOW(read); ALLOW(write); ALLOW(pread64); ALLOW(pwrite64); ALLOW(close); ALLOW(lseek); ALLOW(fcntl);
    ALLOW(openat); ALLOW(newfstatat); ALLOW(fstat); ALLOW(statx); ALLOW(getdents64); ALLOW(readlinkat);
    ALLOW(mkdirat); ALLOW(mknodat); ALLOW(symlinkat); ALLOW(linkat); ALLOW(unlinkat); ALLOW(renameat);
    ALLOW(renameat2); ALLOW(fchownat); ALLOW(fchown); ALLOW(fchmodat); ALLOW(fchmod); ALLOW(utimensat);
    ALLOW(ftruncate); ALLOW(fstatfs); ALLOW(fsync); ALLOW(fdatasync);
    // Extended attributes, only on fds the Gofer opened itself (never by
    // path): the user.* namespace of regular files and directories.
    ALLOW(fgetxattr); ALLOW(fsetxattr); ALLOW(flistxattr); ALLOW(fremovexattr);
    ALLOW(sendmsg); ALLOW(recvmsg);
    ALLOW(mmap); ALLOW(munmap); ALLOW(mprotect); ALLOW(mremap); ALLOW(madvise); ALLOW(brk);
    ALLOW(futex); ALLOW(set_robust_list); ALLOW(rseq); ALLOW(exit); ALLOW(exit_group);
    ALLOW(rt_sigaction); ALLOW(rt_sigprocmask); ALLOW(rt_sigreturn); ALLOW(sigaltstack);
    ALLOW(getpid); ALLOW(gettid); ALLOW(clock_gettime); ALLOW(getrandom);
    // fchmodat2 (452) is newer than this libseccomp's name table.
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, 452, 0) != 0) goto fail;
    return load_and_release(ctx, 1);
fail:
    return load_and_release(ctx, 0);
}

// The launcher of `moat run` once its sandbox runs (Sandbox.run). What it
// still does: wait for the Sentry and pass its status on, forward
// termination signals to it, kill and reap the Gofer at the end, relay
// published ports (accept on host sockets bound before, sockets into the
// sandbox's namespace made by a thread that joined it before this call) and
// broker egress connections (a socket in the host's namespace tied to the
// default route's device, connected, passed to the Sentry). So:
//  - capabilities: CAP_KILL only (the Sentry and the Gofer run under other
//    ids; signalling them is the one privilege left). Bounding set,
//    ambient and inheritable sets emptied; no-new-privs; not dumpable (the
//    Sentry, also allowed ptrace, must not attach to its launcher).
//  - seccomp: the calls below; everything else fails with EPERM. No open,
//    exec, mount, setns, ptrace or bpf: a bug in the code that reads the
//    Sentry's egress requests finds no file and no namespace to reach.
int moat_launcher_confine(void) {
    for (int c = 0; c <= 63; c++) {
        if (c != CAP_KILL && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL) return -errno;
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) return -errno;
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2] = { { 1u << CAP_KILL, 1u << CAP_KILL, 0 }, { 0, 0, 0 } };
    if (syscall(SYS_capset, &h, d) != 0) return -errno;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -errno;
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return -errno;

    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (!ctx) return -ENOMEM;
    // The relay and broker threads run already: the filter covers them too.
    if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1) != 0) goto fail;
    // Children: the Sentry and the Gofer.
    ALLOW(wait4); ALLOW(waitid); ALLOW(kill); ALLOW(tgkill);
    // Relaying bytes and passing sockets.
    ALLOW(read); ALLOW(write); ALLOW(pread64); ALLOW(close); ALLOW(poll); ALLOW(ppoll); ALLOW(fcntl);
    ALLOW(accept4); ALLOW(accept); ALLOW(connect); ALLOW(shutdown); ALLOW(setsockopt); ALLOW(getsockopt);
    ALLOW(getsockname); ALLOW(getpeername); ALLOW(sendto); ALLOW(recvfrom); ALLOW(sendmsg); ALLOW(recvmsg);
    // New sockets: IPv4 and IPv6 only (published ports, egress).
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_INET)) != 0) goto fail;
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_INET6)) != 0) goto fail;
    // Memory, threads (one per relayed connection) and the Swift runtime.
    ALLOW(mmap); ALLOW(munmap); ALLOW(mprotect); ALLOW(mremap); ALLOW(madvise); ALLOW(brk);
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                         SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)) != 0) goto fail;
    if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0) != 0) goto fail;
    ALLOW(futex); ALLOW(set_robust_list); ALLOW(rseq); ALLOW(exit); ALLOW(exit_group);
    ALLOW(rt_sigaction); ALLOW(rt_sigprocmask); ALLOW(rt_sigreturn); ALLOW(sigaltstack); ALLOW(restart_syscall);
    ALLOW(getpid); ALLOW(gettid); ALLOW(clock_gettime); ALLOW(clock_nanosleep); ALLOW(nanosleep);
    ALLOW(getrandom); ALLOW(sched_yield); ALLOW(sched_getaffinity);
    return load_and_release(ctx, 1);
fail:
    return load_and_release(ctx, 0);
}
