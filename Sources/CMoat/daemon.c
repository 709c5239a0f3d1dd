// Least privilege for Moat's long-lived daemons: the supervisor of
// `moat run -d` and `moat cri`. Unlike the launcher of `moat run`
// (moat_launcher_confine), they keep starting sandboxes for as long as they
// live (restarts, new pods), so they keep the capabilities that start needs;
// what they can drop is everything no sandbox start, Gofer, Sentry or CNI
// plugin ever uses, and the host syscalls none of them ever makes. Policy
// (which capabilities, which deny-list) lives in Sandbox/DaemonConfinement.swift.
#define _GNU_SOURCE
#include "cmoat.h"
#include <errno.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int moat_daemon_drop_caps(uint64_t keep) {
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) != 0) return -errno;
    uint64_t permitted = (uint64_t)d[0].permitted | ((uint64_t)d[1].permitted << 32);
    // The bounding set first (dropping needs CAP_SETPCAP, which the capset
    // below may take away). It bounds what every child exec regains: a
    // root process's exec gets its permitted set from the bounding set.
    // Without CAP_SETPCAP (not root) there is nothing worth bounding.
    if (permitted & (1ULL << CAP_SETPCAP)) {
        for (int c = 0; c <= 63; c++) {
            if (keep & (1ULL << c)) continue;
            if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0) {
                if (errno == EINVAL) break;   // past the kernel's last capability
                return -errno;
            }
        }
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) return -errno;
    uint64_t set = keep & permitted;   // capset cannot add what is not permitted
    d[0].effective = d[0].permitted = (uint32_t)set;
    d[1].effective = d[1].permitted = (uint32_t)(set >> 32);
    d[0].inheritable = d[1].inheritable = 0;
    if (syscall(SYS_capset, &h, d) != 0) return -errno;
    return 0;
}

int moat_daemon_deny_syscalls(const char *const *names, int count) {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx) return -ENOMEM;
    int r = 0;
    // Any threads already running are covered too.
    if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) != 0) goto out;
    // The same names for 32-bit (int 0x80) and x32 calls: a deny-list that
    // covered only the native table could be walked around through them.
    if ((r = seccomp_arch_add(ctx, SCMP_ARCH_X86)) != 0 && r != -EEXIST) goto out;
    if ((r = seccomp_arch_add(ctx, SCMP_ARCH_X32)) != 0 && r != -EEXIST) goto out;
    for (int i = 0; i < count; i++) {
        // A name this libseccomp does not know is a call it cannot filter:
        // refuse rather than load a list with a hole in it.
        int nr = seccomp_syscall_resolve_name(names[i]);
        if (nr == __NR_SCMP_ERROR) { r = -ENOENT; goto out; }
        if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0)) != 0) goto out;
    }
    r = seccomp_load(ctx);
out:
    seccomp_release(ctx);
    return r;
}

int moat_daemon_no_new_privs(void) {
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 ? 0 : -errno;
}
