/* NETLINK_ROUTE multicast groups and a datagram socketpair's closed peer
 * (gVisor's socket_netlink_route ListMemberships*, LinkUp,
 * LinkMulticastGroupNoop, LinkMulticastGroupCapNetAdmin,
 * LinkMulticastGroupNoSelfBroadcast and socket_unix_dgram_non_blocking
 * ReadOneSideClosed, which pass natively and failed in Moat before session 21):
 * - NETLINK_LIST_MEMBERSHIPS: no length before a group is joined; the
 *   route protocol's 8 bytes after, as many 32-bit words as fit, the length
 *   always the whole map's; group 0 is EINVAL;
 * - a message sent to a group (nl_pid 0, nl_groups set) reaches the other
 *   members with the sender's port and credentials, not the sender, and
 *   the kernel answers the request as usual; without CAP_NET_ADMIN such a
 *   send is EPERM;
 * - RTM_NEWLINK bringing lo up and RTM_SETLINK naming lo "lo" succeed;
 * - a datagram socketpair end whose peer closed: a non-blocking read is
 *   EAGAIN (a seqpacket one reads end of file).
 * The links are the namespace's: natively the program first moves to a new
 * network namespace; in Moat it stays in the sandbox's own, whose one
 * interface is loopback (ns.h's own_network_namespace). */
#include "t.h"
#include "ns.h"
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

static int bound_socket(unsigned groups) {
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    struct sockaddr_nl a = { .nl_family = AF_NETLINK, .nl_groups = groups };
    Q(bind(s, (struct sockaddr *)&a, sizeof a));
    return s;
}

static unsigned port_of(int s) {
    struct sockaddr_nl a; socklen_t l = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &l);
    return a.nl_pid;
}

static void memberships(const char *when, int s, socklen_t len) {
    unsigned char b[16];
    memset(b, 0xee, sizeof b);
    socklen_t l = len;
    if (getsockopt(s, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, len ? b : NULL, &l) != 0) { say("%s: %s", when, ename(errno)); return; }
    printf("%s: length %d, bytes", when, (int)l);
    for (unsigned i = 0; i < len && i < sizeof b; i++) printf(" %02x", b[i]);
    printf("\n");
}

/* Sends `req` to the kernel and to group RTMGRP_LINK; 0 or -errno. */
static int send_to_group(int s, void *req, size_t len) {
    struct sockaddr_nl to = { .nl_family = AF_NETLINK, .nl_pid = 0, .nl_groups = RTMGRP_LINK };
    struct iovec iov = { req, len };
    struct msghdr m = { .msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &iov, .msg_iovlen = 1 };
    return sendmsg(s, &m, 0) < 0 ? -errno : 0;
}

/* What `s` has queued: which message types, from which port, with whose pid. */
static void drain(const char *who, int s, unsigned sender) {
    int getlink = 0, newlink = 0, done = 0, from_sender = 0, cred_pid_ok = 0;
    for (;;) {
        char buf[32768], ctl[CMSG_SPACE(sizeof(struct ucred))];
        struct sockaddr_nl from = {0};
        struct iovec iov = { buf, sizeof buf };
        struct msghdr m = { .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl };
        ssize_t n = recvmsg(s, &m, MSG_DONTWAIT);
        if (n <= 0) break;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == RTM_GETLINK) {
                getlink++;
                from_sender = from.nl_pid == sender;
                struct cmsghdr *c = CMSG_FIRSTHDR(&m);
                if (c && c->cmsg_type == SCM_CREDENTIALS) cred_pid_ok = ((struct ucred *)CMSG_DATA(c))->pid == getpid();
            }
            if (h->nlmsg_type == RTM_NEWLINK) newlink = 1;
            if (h->nlmsg_type == NLMSG_DONE) done++;
        }
    }
    say("%s: RTM_GETLINK copies %d (from the sender's port %d, its pid %d), RTM_NEWLINK answers %d, NLMSG_DONE %d",
        who, getlink, from_sender, cred_pid_ok, newlink, done);
}

struct linkreq { struct nlmsghdr h; struct ifinfomsg i; char attrs[64]; };

static int ack(int s, struct linkreq *r) {
    r->h.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    r->h.nlmsg_seq = 77;
    if (send(s, r, r->h.nlmsg_len, 0) < 0) return -errno;
    char buf[8192];
    for (;;) {
        ssize_t n = recv(s, buf, sizeof buf, 0);
        if (n < 0) return -errno;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n))
            if (h->nlmsg_type == NLMSG_ERROR) return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (own_network_namespace() != 0) return 1;
    int lo = if_nametoindex("lo");
    int is = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(is, SIOCGIFFLAGS, &ifr) == 0 && !(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        Q(ioctl(is, SIOCSIFFLAGS, &ifr));
    }
    close(is);

    /* Memberships. */
    int s = bound_socket(0);
    memberships("unbound to any group", s, 0);
    unsigned g = 0;
    T(setsockopt(s, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g, sizeof g));
    g = RTNLGRP_LINK;
    T(setsockopt(s, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g, sizeof g));
    memberships("RTNLGRP_LINK, no buffer", s, 0);
    memberships("RTNLGRP_LINK, 4 bytes", s, 4);
    memberships("RTNLGRP_LINK, 6 bytes", s, 6);
    memberships("RTNLGRP_LINK, 12 bytes", s, 12);
    g = 33;
    T(setsockopt(s, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g, sizeof g));
    memberships("and group 33", s, 12);
    g = RTNLGRP_LINK;
    T(setsockopt(s, SOL_NETLINK, NETLINK_DROP_MEMBERSHIP, &g, sizeof g));
    memberships("RTNLGRP_LINK dropped", s, 8);
    close(s);
    int b = bound_socket(RTMGRP_LINK | RTMGRP_IPV4_IFADDR);
    memberships("bound to RTMGRP_LINK|RTMGRP_IPV4_IFADDR", b, 8);
    close(b);

    /* lo up, lo named lo: nothing changes, both succeed, no event. */
    int ev = bound_socket(RTMGRP_LINK);
    int ctl = bound_socket(0);
    struct linkreq r;
    memset(&r, 0, sizeof r);
    r.h.nlmsg_len = NLMSG_LENGTH(sizeof r.i); r.h.nlmsg_type = RTM_NEWLINK;
    r.i.ifi_index = lo; r.i.ifi_flags = IFF_UP; r.i.ifi_change = IFF_UP;
    int e = ack(ctl, &r);
    say("RTM_NEWLINK lo up: %s", e ? ename(-e) : "0");
    drain("events after lo up", ev, 0);
    memset(&r, 0, sizeof r);
    r.h.nlmsg_len = NLMSG_LENGTH(sizeof r.i); r.h.nlmsg_type = RTM_SETLINK;
    r.i.ifi_index = lo;
    struct rtattr *a = (struct rtattr *)((char *)&r + NLMSG_ALIGN(r.h.nlmsg_len));
    a->rta_type = IFLA_IFNAME; a->rta_len = RTA_LENGTH(3); memcpy(RTA_DATA(a), "lo", 3);
    r.h.nlmsg_len = NLMSG_ALIGN(r.h.nlmsg_len) + RTA_ALIGN(a->rta_len);
    e = ack(ctl, &r);
    say("RTM_SETLINK lo named lo: %s", e ? ename(-e) : "0");
    drain("events after the name", ev, 0);
    close(ctl);

    /* A request sent to the kernel and to the group too. */
    int sender = bound_socket(RTMGRP_LINK), rcv = ev, one = 1;
    T(setsockopt(rcv, SOL_SOCKET, SO_PASSCRED, &one, sizeof one));
    struct { struct nlmsghdr h; struct ifinfomsg i; } q;
    memset(&q, 0, sizeof q);
    q.h.nlmsg_len = sizeof q; q.h.nlmsg_type = RTM_GETLINK; q.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP; q.h.nlmsg_seq = 5;
    e = send_to_group(sender, &q, sizeof q);
    say("send to the kernel and RTMGRP_LINK: %s", e ? ename(-e) : "0");
    drain("sender", sender, port_of(sender));
    drain("member", rcv, port_of(sender));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (setresuid(1000, 1000, 1000) != 0) _exit(2);
        int x = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        e = send_to_group(x, &q, sizeof q);
        say("without CAP_NET_ADMIN: %s", e ? ename(-e) : "0");
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    drain("member after that", rcv, 0);
    close(sender); close(rcv);

    /* A datagram socketpair end, its peer closed. */
    int types[2] = { SOCK_DGRAM, SOCK_SEQPACKET };
    for (int i = 0; i < 2; i++) {
        int sv[2];
        T(socketpair(AF_UNIX, types[i] | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
        T(close(sv[0]));
        char buf[10];
        say("%s, peer closed:", i ? "seqpacket" : "datagram");
        T(read(sv[1], buf, sizeof buf));
        T(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT));
        close(sv[1]);
    }
    return 0;
}
