/* Addresses added to and removed from loopback with NETLINK_ROUTE
 * (RTM_NEWADDR, RTM_DELADDR: what `ip addr add|del` sends), by root in a
 * network namespace of its own (gVisor's NetlinkRouteTest.AddAndRemoveAddr;
 * Moat refused them with EPERM until session 18):
 * - IPv4 10.0.0.1/24 and IPv6 fd00::1/64 on lo: created, EEXIST with
 *   NLM_F_EXCL, replaced, listed by an RTM_GETADDR dump, usable (a UDP
 *   socket binds to the IPv4 one and sends itself a datagram), deleted,
 *   then EADDRNOTAVAIL for a second delete and for bind;
 * - errors: an unknown interface index (ENODEV), another family
 *   (EOPNOTSUPP), no address attribute (EINVAL), a prefix too long
 *   (EINVAL), and a process without CAP_NET_ADMIN (EPERM);
 * - SO_ATTACH_FILTER / SO_DETACH_FILTER on netlink sockets (ENOENT with
 *   none attached, EINVAL for an invalid program).
 * The host's interfaces are never touched: natively the program first moves
 * to a new network namespace; in Moat it stays in the sandbox's own, whose
 * one interface is loopback (ns.h's own_network_namespace). */
#include "t.h"
#include "ns.h"
#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>

static int nl;
static unsigned seq = 1;

/* One address request; returns 0 or -errno (the acknowledgement's). */
static int addr_req(int type, int flags, int family, int prefix, int index, const void *addr, int alen, int attr) {
    struct { struct nlmsghdr h; struct ifaddrmsg a; char attrs[64]; } req;
    memset(&req, 0, sizeof req);
    req.h.nlmsg_type = type;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    req.h.nlmsg_seq = ++seq;
    req.a.ifa_family = family;
    req.a.ifa_prefixlen = prefix;
    req.a.ifa_index = index;
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof req.a);
    if (alen > 0) {
        struct rtattr *rta = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.h.nlmsg_len));
        rta->rta_type = attr;
        rta->rta_len = RTA_LENGTH(alen);
        memcpy(RTA_DATA(rta), addr, alen);
        req.h.nlmsg_len = NLMSG_ALIGN(req.h.nlmsg_len) + RTA_LENGTH(alen);
    }
    if (send(nl, &req, req.h.nlmsg_len, 0) < 0) return -errno;
    char buf[4096];
    ssize_t n = recv(nl, buf, sizeof buf, 0);
    if (n < 0) return -errno;
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    if (h->nlmsg_type != NLMSG_ERROR || h->nlmsg_seq != seq) return -1000;
    return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
}

static void show(const char *what, int r) { say("%s: %s", what, r == 0 ? "0" : r == -1000 ? "no ack" : ename(-r)); }

/* Whether an RTM_GETADDR dump lists addr/prefix on interface index. */
static int listed(int family, int index, const void *addr, int alen, int prefix) {
    struct { struct nlmsghdr h; struct ifaddrmsg a; } req;
    memset(&req, 0, sizeof req);
    req.h.nlmsg_len = sizeof req;
    req.h.nlmsg_type = RTM_GETADDR;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.h.nlmsg_seq = ++seq;
    req.a.ifa_family = family;
    if (send(nl, &req, sizeof req, 0) < 0) return -1;
    int found = 0;
    for (;;) {
        char buf[16384];
        ssize_t n = recv(nl, buf, sizeof buf, 0);
        if (n <= 0) return -1;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_DONE) return found;
            if (h->nlmsg_type != RTM_NEWADDR) continue;
            struct ifaddrmsg *a = NLMSG_DATA(h);
            if ((int)a->ifa_index != index || a->ifa_family != family || a->ifa_prefixlen != prefix) continue;
            int len = IFA_PAYLOAD(h);
            for (struct rtattr *rta = IFA_RTA(a); RTA_OK(rta, len); rta = RTA_NEXT(rta, len))
                if (rta->rta_type == IFA_ADDRESS && RTA_PAYLOAD(rta) == (unsigned)alen && memcmp(RTA_DATA(rta), addr, alen) == 0) found = 1;
        }
    }
}

/* Binds a UDP socket to the address and sends itself one datagram. */
static void use(int family, const void *addr) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)&ss;
        s->sin_family = AF_INET; memcpy(&s->sin_addr, addr, 4); len = sizeof *s;
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
        s->sin6_family = AF_INET6; memcpy(&s->sin6_addr, addr, 16); len = sizeof *s;
    }
    int u = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (bind(u, (struct sockaddr *)&ss, len) != 0) { say("  bind: %s", ename(errno)); close(u); return; }
    say("  bind: 0");
    getsockname(u, (struct sockaddr *)&ss, &len);
    char got[8] = "";
    if (sendto(u, "hello", 5, 0, (struct sockaddr *)&ss, len) == 5 && recv(u, got, sizeof got - 1, MSG_DONTWAIT) == 5)
        say("  sent to itself: %s", got);
    else
        say("  send/recv: %s", ename(errno));
    close(u);
}

static void one_family(const char *name, int family, const char *text, int prefix, int lo) {
    unsigned char a[16];
    int alen = family == AF_INET ? 4 : 16;
    inet_pton(family, text, a);
    say("%s %s/%d", name, text, prefix);
    show("  add", addr_req(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, family, prefix, lo, a, alen, IFA_LOCAL));
    show("  add again, exclusive", addr_req(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, family, prefix, lo, a, alen, IFA_LOCAL));
    show("  replace", addr_req(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, family, prefix, lo, a, alen, IFA_LOCAL));
    say("  listed: %d", listed(family, lo, a, alen, prefix));
    if (family == AF_INET) use(family, a);   /* IPv6: tentative until its duplicate detection ends */
    show("  delete", addr_req(RTM_DELADDR, 0, family, prefix, lo, a, alen, IFA_LOCAL));
    show("  delete again", addr_req(RTM_DELADDR, 0, family, prefix, lo, a, alen, IFA_LOCAL));
    say("  listed: %d", listed(family, lo, a, alen, prefix));
    use(family, a);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (own_network_namespace() != 0) return 1;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0 && !(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        Q(ioctl(s, SIOCSIFFLAGS, &ifr));
    }
    close(s);
    int lo = if_nametoindex("lo");
    nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (nl < 0) { say("netlink: %s", ename(errno)); return 1; }

    one_family("IPv4", AF_INET, "10.0.0.1", 24, lo);
    one_family("IPv6", AF_INET6, "fd00::1", 64, lo);

    /* A socket filter on netlink sockets: SO_DETACH_FILTER without one is
     * ENOENT; a valid program attaches and detaches; an invalid one is EINVAL. */
    int ue = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
    int zero = 0;
    struct sock_filter accept_all[] = { BPF_STMT(BPF_RET | BPF_K, 0xffff) };
    struct sock_filter bad[] = { BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0) };   /* no return */
    struct sock_fprog fp = { 1, accept_all }, fbad = { 1, bad };
    for (int i = 0; i < 2; i++) {
        int fd = i == 0 ? ue : nl;
        say("%s", i == 0 ? "NETLINK_KOBJECT_UEVENT" : "NETLINK_ROUTE");
        show("  detach without a filter", setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, &zero, sizeof zero) ? -errno : 0);
        show("  attach", setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof fp) ? -errno : 0);
        show("  attach an invalid program", setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fbad, sizeof fbad) ? -errno : 0);
        show("  detach", setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, &zero, sizeof zero) ? -errno : 0);
    }
    close(ue);

    unsigned char a4[4] = { 10, 0, 0, 2 };
    show("unknown index", addr_req(RTM_NEWADDR, NLM_F_CREATE, AF_INET, 24, 9999, a4, 4, IFA_LOCAL));
    show("family AF_PACKET", addr_req(RTM_NEWADDR, NLM_F_CREATE, AF_PACKET, 24, lo, a4, 4, IFA_LOCAL));
    show("no address", addr_req(RTM_NEWADDR, NLM_F_CREATE, AF_INET, 24, lo, NULL, 0, 0));
    show("prefix 33", addr_req(RTM_NEWADDR, NLM_F_CREATE, AF_INET, 33, lo, a4, 4, IFA_LOCAL));
    say("listed after the errors: %d", listed(AF_INET, lo, a4, 4, 24));

    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        /* Without CAP_NET_ADMIN. */
        if (setresuid(1000, 1000, 1000) != 0) _exit(2);
        show("add without CAP_NET_ADMIN", addr_req(RTM_NEWADDR, NLM_F_CREATE, AF_INET, 24, lo, a4, 4, IFA_LOCAL));
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    say("child: %d", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    say("listed after the child: %d", listed(AF_INET, lo, a4, 4, 24));
    return 0;
}
