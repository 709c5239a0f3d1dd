// The address helper: the one process of a sandbox that may change its
// network namespace's configuration, and only its interfaces' addresses.
//
// An application that is root in the sandbox may add or remove an address
// on an interface of the sandbox's own namespace (RTM_NEWADDR/RTM_DELADDR,
// what `ip addr add` sends). The Sentry cannot do it itself: it holds no
// capability once confined, and its seccomp filter allows no AF_NETLINK
// socket. So, before confining itself, in a namespace of its own (never
// with --network host), the Sentry forks this helper. The helper keeps
// CAP_NET_ADMIN alone, opens one NETLINK_ROUTE socket (in the namespace of
// its creator: the sandbox's), takes a host id of its own (below), and then
// allows itself only read, write, pwrite, sendto and recvfrom (any other
// call kills it). It reads fixed-size
// requests from its socketpair with the Sentry, checks them, builds the
// netlink message itself (nothing of the application's bytes is sent as
// is) and answers the kernel's error. It dies with the Sentry
// (PR_SET_PDEATHSIG) and cannot be traced (not dumpable).
//
// It also holds the namespace's net.ipv4.ip_local_port_range, opened
// before it confines itself: the range the kernel picks ephemeral ports
// from is per namespace, and a program that narrows it (to exhaust the
// ports, as test suites do) expects bind and connect to honour it.
//
// Its id: not root. It lives as long as the sandbox (an address may be
// added at any time), and nothing it does after start-up needs uid 0: the
// kernel checks CAP_NET_ADMIN, never the uid, for RTM_NEWADDR/RTM_DELADDR
// (in the sender and in the socket's opener, root when it was made) and,
// with CAP_NET_ADMIN in the namespace's owner, gives a network sysctl's
// owner permissions to any uid on each write. So, once its files are open,
// it becomes MOAT_NETCONF_ID_OFFSET + the sandbox's id, an id no host user
// and no other Moat process has (sandbox ids are the base + a pid, and pids
// stay below 2^22), keeping CAP_NET_ADMIN across the change
// (PR_SET_KEEPCAPS). As host root it owned every root-owned host file and
// could be signalled by no sandbox process; as this id it owns no file and
// still shares its uid with nothing a sandbox runs. Without a sandbox id (an
// unconfined Sentry) it keeps its creator's.
//
// `moat debug` tells it from the Sentry (both run the Sentry's binary with
// its command line) by its name, "moat-netconf".
//
// The child runs only raw system calls and touches no allocator: the
// Sentry may have other threads when it forks.
#define _GNU_SOURCE
#include "cmoat.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NETCONF_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NETCONF_ARCH AUDIT_ARCH_AARCH64
#endif

static int netconf_confine(pid_t parent, unsigned id) {
    // The bounding set first: dropping from it needs CAP_SETPCAP, and the
    // id change below needs CAP_SETUID and CAP_SETGID, none of which the
    // drop takes from the effective set.
    for (int c = 0; c <= 63; c++) {
        if (c != CAP_NET_ADMIN && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL) return -1;
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) return -1;
    if (id != 0) {
        // Leaving uid 0 empties the effective set and, without keep-caps,
        // the permitted one; capset below takes CAP_NET_ADMIN back from
        // the kept permitted set and drops the rest of it.
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return -1;
        if (syscall(SYS_setgroups, 0, NULL) != 0) return -1;
        if (syscall(SYS_setresgid, id, id, id) != 0) return -1;
        if (syscall(SYS_setresuid, id, id, id) != 0) return -1;
        if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) return -1;
        // A change of ids clears the parent-death signal: set it again,
        // and check the Sentry did not die before it was.
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != parent) return -1;
    }
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2] = { { 1u << CAP_NET_ADMIN, 1u << CAP_NET_ADMIN, 0 }, { 0, 0, 0 } };
    if (syscall(SYS_capset, &h, d) != 0) return -1;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return -1;
#ifdef NETCONF_ARCH
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NETCONF_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_read, 7, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_write, 6, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_pwrite64, 5, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_sendto, 4, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_recvfrom, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit_group, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { sizeof f / sizeof f[0], f };
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) return -1;
    return 0;
#else
    return -1;
#endif
}

// Checks one request; builds its message in buf. Returns its length or -errno.
static int netconf_message(const struct moat_netconf_req *r, char *buf, size_t cap) {
    if (r->op != RTM_NEWADDR && r->op != RTM_DELADDR) return -EOPNOTSUPP;
    if (r->flags & ~(NLM_F_CREATE | NLM_F_EXCL | NLM_F_REPLACE)) return -EINVAL;
    size_t alen = r->family == AF_INET ? 4 : r->family == AF_INET6 ? 16 : 0;
    if (alen == 0) return -EAFNOSUPPORT;
    if (r->prefix < 0 || r->prefix > (int)alen * 8) return -EINVAL;
    size_t len = NLMSG_LENGTH(sizeof(struct ifaddrmsg)) + RTA_LENGTH(alen);
    if (len > cap) return -EINVAL;
    memset(buf, 0, len);
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    h->nlmsg_len = (unsigned)len;
    h->nlmsg_type = (unsigned short)r->op;
    h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | r->flags;
    h->nlmsg_seq = 1;
    struct ifaddrmsg *ifa = NLMSG_DATA(h);
    ifa->ifa_family = r->family;
    ifa->ifa_prefixlen = r->prefix;
    ifa->ifa_index = (unsigned)r->index;
    struct rtattr *a = (struct rtattr *)(buf + NLMSG_LENGTH(sizeof(struct ifaddrmsg)));
    a->rta_type = IFA_LOCAL;
    a->rta_len = (unsigned short)RTA_LENGTH(alen);
    memcpy(RTA_DATA(a), r->addr, alen);
    return (int)len;
}

// "LO HI\n" into buf (no stdio in the child). Returns its length.
static int netconf_range_text(char *buf, int lo, int hi) {
    int n = 0, v[2] = { lo, hi };
    for (int i = 0; i < 2; i++) {
        char d[12]; int k = 0;
        do { d[k++] = (char)('0' + v[i] % 10); v[i] /= 10; } while (v[i] > 0);
        while (k > 0) buf[n++] = d[--k];
        buf[n++] = i == 0 ? ' ' : '\n';
    }
    return n;
}

static void netconf_serve(int chan, int nl, int range) {
    struct moat_netconf_req r;
    char msg[128], reply[512];
    for (;;) {
        if (syscall(SYS_read, chan, &r, sizeof r) != (long)sizeof r) syscall(SYS_exit_group, 0);
        int32_t result;
        int len = r.op == MOAT_NETCONF_PORT_RANGE ? 0 : netconf_message(&r, msg, sizeof msg);
        if (r.op == MOAT_NETCONF_PORT_RANGE) {
            // The kernel checks the range itself (EINVAL).
            char text[32];
            if (range < 0 || r.ports[0] < 0 || r.ports[0] > 65535 || r.ports[1] < 0 || r.ports[1] > 65535) {
                result = range < 0 ? -EPERM : -EINVAL;
            } else {
                long n = syscall(SYS_pwrite64, range, text, netconf_range_text(text, r.ports[0], r.ports[1]), 0);
                result = n < 0 ? (int32_t)n : 0;
            }
        } else if (len < 0) {
            result = len;
        } else if (syscall(SYS_sendto, nl, msg, len, 0, NULL, 0) != len) {
            result = -EIO;
        } else {
            // The acknowledgement: NLMSG_ERROR, its error 0 or -errno.
            long n = syscall(SYS_recvfrom, nl, reply, sizeof reply, 0, NULL, NULL);
            struct nlmsghdr *h = (struct nlmsghdr *)reply;
            if (n >= (long)NLMSG_LENGTH(sizeof(struct nlmsgerr)) && h->nlmsg_type == NLMSG_ERROR)
                result = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
            else
                result = -EIO;
        }
        if (syscall(SYS_write, chan, &result, sizeof result) != (long)sizeof result) syscall(SYS_exit_group, 0);
    }
}

int moat_netconf_start(void) {
    int pending = moat_netconf_fork();
    return pending < 0 ? pending : moat_netconf_ready(pending);
}

int moat_netconf_fork(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return -errno;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) { int e = errno; close(sv[0]); close(sv[1]); return -e; }
    if (pid == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != parent) _exit(1);
        // Only the channel stays open (and the netlink socket and the port
        // range made next): not the Sentry's stdio either, which are still
        // the application's (a terminal, the launcher's pipes) when it forks.
        if (dup2(sv[1], 3) != 3) _exit(1);
        syscall(SYS_close_range, 4, ~0U, 0);
        syscall(SYS_close_range, 0, 2, 0);
        int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        int range = open("/proc/sys/net/ipv4/ip_local_port_range", O_WRONLY | O_CLOEXEC);
        // Its name, which `moat debug` labels it by (comm: 15 bytes at most).
        prctl(PR_SET_NAME, "moat-netconf", 0, 0, 0);
        unsigned sid = moat_sandbox_id();
        if (nl < 0 || netconf_confine(parent, sid == 0 ? 0 : sid + MOAT_NETCONF_ID_OFFSET) != 0) _exit(1);
        // Ready: the files are open. The Sentry waits for this before it
        // goes on to pivot into its empty root, which moves the root of
        // every process of its mount namespace, this one's too: an open
        // after the pivot found no /proc (1 start in 3 under load).
        int32_t ready = 0;
        if (syscall(SYS_write, 3, &ready, sizeof ready) != (long)sizeof ready) syscall(SYS_exit_group, 0);
        netconf_serve(3, nl, range);
    }
    close(sv[1]);
    return sv[0];
}

int moat_netconf_ready(int pending) {
    int32_t ready = -1;
    ssize_t got;
    do { got = recv(pending, &ready, sizeof ready, 0); } while (got < 0 && errno == EINTR);
    if (got != (ssize_t)sizeof ready || ready != 0) { close(pending); return -ECHILD; }
    // Above the standard fds: the Sentry later points 1 and 2 at its log
    // (detachStdio), which would close a channel that got either number.
    int chan = fcntl(pending, F_DUPFD_CLOEXEC, 10);
    close(pending);
    return chan < 0 ? -EMFILE : chan;
}

int moat_netconf_call(int chan, const struct moat_netconf_req *r) {
    if (send(chan, r, sizeof *r, MSG_NOSIGNAL) != (ssize_t)sizeof *r) return -EPERM;
    int32_t result;
    ssize_t n;
    do { n = recv(chan, &result, sizeof result, 0); } while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof result ? result : -EPERM;
}
