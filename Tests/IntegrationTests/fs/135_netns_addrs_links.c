/* A network namespace made by the application, beyond lo's own addresses
 * (what fs/130 and fs/131 test in the sandbox's namespace, here in a fresh
 * one; Moat lacked all of it before session 21):
 * - RTM_NEWADDR / RTM_DELADDR of 10.0.0.1/24 and fd00::1/64 on lo: created,
 *   EEXIST, replaced, listed, usable (UDP to itself, TCP, the source address
 *   a wildcard socket gets; on lo the whole IPv4 subnet is local), deleted,
 *   then EADDRNOTAVAIL; the errors (ENODEV, EOPNOTSUPP, EINVAL, EPERM);
 * - its own net.ipv4.ip_local_port_range: ephemeral UDP and TCP ports from
 *   what is written, EADDRINUSE once the range is used up, the parent's
 *   value untouched;
 * - /proc/net/unix lists its socketpair ends and bound sockets, and the
 *   parent's does not;
 * - links: a veth pair in the namespace (kind in the dump, the peer's
 *   index below, an address on an end is local even while it is down,
 *   renamed, EEXIST, RTM_DELLINK takes both ends), an
 *   unknown kind EOPNOTSUPP, lo not deletable, RTNLGRP_LINK events and
 *   NETLINK_LIST_MEMBERSHIPS; a veth pair whose peer is made in another
 *   namespace (IFLA_NET_NS_PID): TCP and UDP between the two over
 *   10.2.0.0/24 with the peers' addresses, and the end left goes when the
 *   other namespace does.
 * Natively it runs as root in namespaces it makes (gone when it exits); no
 * packet leaves them. */
#include "t.h"
#include <arpa/inet.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>

static int nl;
static unsigned seq = 1;

struct req { struct nlmsghdr h; union { struct ifaddrmsg a; struct ifinfomsg i; }; char attrs[512]; };

static struct rtattr *add_attr(struct nlmsghdr *h, int type, const void *data, int len) {
    struct rtattr *rta = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));
    rta->rta_type = type;
    rta->rta_len = RTA_LENGTH(len);
    if (len) memcpy(RTA_DATA(rta), data, len);
    h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(rta->rta_len);
    return rta;
}
static void end_nest(struct nlmsghdr *h, struct rtattr *nest) { nest->rta_len = (char *)h + h->nlmsg_len - (char *)nest; }

/* Sends a request and returns the acknowledgement's error (0 or -errno). */
static int ack(struct req *r) {
    r->h.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    r->h.nlmsg_seq = ++seq;
    if (send(nl, r, r->h.nlmsg_len, 0) < 0) return -errno;
    for (;;) {
        char buf[8192];
        ssize_t n = recv(nl, buf, sizeof buf, 0);
        if (n < 0) return -errno;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n))
            if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_seq == seq) return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
    }
}

static void show(const char *what, int r) { say("%s: %s", what, r == 0 ? "0" : ename(-r)); }

static int addr_req(int type, int flags, int family, int prefix, int index, const char *text) {
    struct req r;
    memset(&r, 0, sizeof r);
    r.h.nlmsg_len = NLMSG_LENGTH(sizeof r.a);
    r.h.nlmsg_type = type;
    r.h.nlmsg_flags = flags;
    r.a.ifa_family = family;
    r.a.ifa_prefixlen = prefix;
    r.a.ifa_index = index;
    r.a.ifa_flags = family == AF_INET6 ? IFA_F_NODAD : 0;
    unsigned char a[16];
    if (text) {
        inet_pton(family, text, a);
        add_attr(&r.h, IFA_LOCAL, a, family == AF_INET ? 4 : 16);
    }
    return ack(&r);
}

/* The addresses an RTM_GETADDR dump lists on `index`, as text. */
static void list_addrs(const char *when, int family, int index) {
    struct { struct nlmsghdr h; struct ifaddrmsg a; } q;
    memset(&q, 0, sizeof q);
    q.h.nlmsg_len = sizeof q; q.h.nlmsg_type = RTM_GETADDR; q.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP; q.h.nlmsg_seq = ++seq;
    q.a.ifa_family = family;
    send(nl, &q, sizeof q, 0);
    printf("%s:", when);
    for (int done = 0; !done;) {
        char buf[16384];
        ssize_t n = recv(nl, buf, sizeof buf, 0);
        if (n <= 0) break;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_DONE) { done = 1; break; }
            if (h->nlmsg_type != RTM_NEWADDR) continue;
            struct ifaddrmsg *a = NLMSG_DATA(h);
            if ((int)a->ifa_index != index) continue;
            int len = IFA_PAYLOAD(h);
            for (struct rtattr *rta = IFA_RTA(a); RTA_OK(rta, len); rta = RTA_NEXT(rta, len))
                if (rta->rta_type == IFA_ADDRESS) {
                    char t[64];
                    inet_ntop(a->ifa_family, RTA_DATA(rta), t, sizeof t);
                    printf(" %s/%d scope %d", t, a->ifa_prefixlen, a->ifa_scope);
                }
        }
    }
    printf("\n");
}

/* A link dump: each link's name and, if it has one, its kind. */
static void list_links(const char *when) {
    struct { struct nlmsghdr h; struct ifinfomsg i; } q;
    memset(&q, 0, sizeof q);
    q.h.nlmsg_len = sizeof q; q.h.nlmsg_type = RTM_GETLINK; q.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP; q.h.nlmsg_seq = ++seq;
    send(nl, &q, sizeof q, 0);
    printf("%s:", when);
    for (int done = 0; !done;) {
        char buf[32768];
        ssize_t n = recv(nl, buf, sizeof buf, 0);
        if (n <= 0) break;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_DONE) { done = 1; break; }
            if (h->nlmsg_type != RTM_NEWLINK) continue;
            struct ifinfomsg *i = NLMSG_DATA(h);
            int len = IFLA_PAYLOAD(h);
            const char *name = "?", *kind = "-";
            for (struct rtattr *rta = IFLA_RTA(i); RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
                if (rta->rta_type == IFLA_IFNAME) name = RTA_DATA(rta);
                if (rta->rta_type == IFLA_LINKINFO) {
                    int l2 = RTA_PAYLOAD(rta);
                    for (struct rtattr *k = RTA_DATA(rta); RTA_OK(k, l2); k = RTA_NEXT(k, l2))
                        if (k->rta_type == IFLA_INFO_KIND) kind = RTA_DATA(k);
                }
            }
            printf(" %s(%s)", name, kind);
        }
    }
    printf("\n");
}

/* RTM_NEWLINK making a link of `kind` named `name` (a veth's peer `peer`, in the namespace of `peer_pid` if not 0). */
static int new_link(const char *name, const char *kind, const char *peer, int peer_pid) {
    struct req r;
    memset(&r, 0, sizeof r);
    r.h.nlmsg_len = NLMSG_LENGTH(sizeof r.i);
    r.h.nlmsg_type = RTM_NEWLINK;
    r.h.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
    add_attr(&r.h, IFLA_IFNAME, name, strlen(name) + 1);
    struct rtattr *info = add_attr(&r.h, IFLA_LINKINFO, NULL, 0);
    add_attr(&r.h, IFLA_INFO_KIND, kind, strlen(kind));
    if (peer) {
        struct rtattr *data = add_attr(&r.h, IFLA_INFO_DATA, NULL, 0);
        struct ifinfomsg pi = {0};
        struct rtattr *p = add_attr(&r.h, VETH_INFO_PEER, &pi, sizeof pi);
        add_attr(&r.h, IFLA_IFNAME, peer, strlen(peer) + 1);
        if (peer_pid) add_attr(&r.h, IFLA_NET_NS_PID, &peer_pid, 4);
        end_nest(&r.h, p);
        end_nest(&r.h, data);
    }
    end_nest(&r.h, info);
    return ack(&r);
}

static int link_req(int type, int index, const char *name, unsigned flags, unsigned change) {
    struct req r;
    memset(&r, 0, sizeof r);
    r.h.nlmsg_len = NLMSG_LENGTH(sizeof r.i);
    r.h.nlmsg_type = type;
    r.i.ifi_index = index;
    r.i.ifi_flags = flags;
    r.i.ifi_change = change;
    if (name) add_attr(&r.h, IFLA_IFNAME, name, strlen(name) + 1);
    return ack(&r);
}

static int set_up(const char *name) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, name);
    int r = ioctl(s, SIOCGIFFLAGS, &ifr);
    ifr.ifr_flags |= IFF_UP;
    if (r == 0) r = ioctl(s, SIOCSIFFLAGS, &ifr);
    close(s);
    return r == 0 ? 0 : -errno;
}

static socklen_t sa(int family, const char *ip, int port, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof *ss);
    if (family == AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)ss;
        s->sin_family = AF_INET; s->sin_port = htons(port); inet_pton(AF_INET, ip, &s->sin_addr);
        return sizeof *s;
    }
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
    s->sin6_family = AF_INET6; s->sin6_port = htons(port); inet_pton(AF_INET6, ip, &s->sin6_addr);
    return sizeof *s;
}

static const char *ntop(struct sockaddr_storage *ss, char *buf) {
    void *a = ss->ss_family == AF_INET ? (void *)&((struct sockaddr_in *)ss)->sin_addr : (void *)&((struct sockaddr_in6 *)ss)->sin6_addr;
    inet_ntop(ss->ss_family, a, buf, 64);
    return buf;
}

/* A UDP socket bound to ip sends itself a datagram. */
static void udp_self(int family, const char *ip) {
    struct sockaddr_storage ss;
    socklen_t len = sa(family, ip, 0, &ss);
    int u = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (bind(u, (struct sockaddr *)&ss, len) != 0) { say("  udp bind %s: %s", ip, ename(errno)); close(u); return; }
    getsockname(u, (struct sockaddr *)&ss, &len);
    char got[8] = "";
    if (sendto(u, "hello", 5, 0, (struct sockaddr *)&ss, len) == 5 && recv(u, got, sizeof got - 1, MSG_DONTWAIT) == 5)
        say("  udp bound to %s sent to itself: %s", ip, got);
    else
        say("  udp %s send/recv: %s", ip, ename(errno));
    close(u);
}

/* An unbound UDP socket sends to a socket bound to `to`: the source address it arrives from. */
static void udp_source(int family, const char *bindto, const char *to) {
    struct sockaddr_storage ss, from;
    socklen_t len = sa(family, bindto, 0, &ss), fl = sizeof from;
    int r = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0), s = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (bind(r, (struct sockaddr *)&ss, len) != 0) { say("  bind %s: %s", bindto, ename(errno)); close(r); close(s); return; }
    getsockname(r, (struct sockaddr *)&ss, &len);
    int port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port);
    len = sa(family, to, port, &ss);
    char buf[8], t[64];
    if (sendto(s, "x", 1, 0, (struct sockaddr *)&ss, len) != 1) say("  sendto %s: %s", to, ename(errno));
    else if (recvfrom(r, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from, &fl) != 1) say("  recvfrom: %s", ename(errno));
    else say("  to %s (bound %s): from %s", to, bindto, ntop(&from, t));
    close(r); close(s);
}

/* TCP: a listener on `ip`, an unbound client connects; both ends' addresses. */
static void tcp_pair(int family, const char *ip) {
    struct sockaddr_storage ss;
    socklen_t len = sa(family, ip, 0, &ss);
    int l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (bind(l, (struct sockaddr *)&ss, len) != 0 || listen(l, 2) != 0) { say("  tcp listen %s: %s", ip, ename(errno)); close(l); return; }
    getsockname(l, (struct sockaddr *)&ss, &len);
    int c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(c, (struct sockaddr *)&ss, len) != 0) { say("  tcp connect %s: %s", ip, ename(errno)); close(c); close(l); return; }
    struct sockaddr_storage peer, me;
    socklen_t pl = sizeof peer, ml = sizeof me;
    int a = accept(l, (struct sockaddr *)&peer, &pl);
    getsockname(c, (struct sockaddr *)&me, &ml);
    char t1[64], t2[64], buf[8] = "";
    write(c, "ping", 4);
    read(a, buf, 4);
    say("  tcp to %s: accepted peer %s, client's own %s, server got %s", ip, ntop(&peer, t1), ntop(&me, t2), buf);
    close(a); close(c); close(l);
}

/* Linux routes a new IPv6 address a moment after adding it (its work
 * queue): wait until a datagram socket can be connected to it. */
/* A new IPv6 address is tentative until the kernel's address work has run
 * (asynchronously, even on lo), and its local route comes with it: wait
 * until a datagram to itself arrives, so what follows does not depend on
 * how fast that work ran. Moat's namespaces have the address at once. */
static void settle(int family, const char *ip) {
    struct sockaddr_storage ss;
    for (int i = 0; i < 300; i++) {
        socklen_t len = sa(family, ip, 0, &ss);
        int u = socket(family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        int ok = bind(u, (struct sockaddr *)&ss, len) == 0 && getsockname(u, (struct sockaddr *)&ss, &len) == 0 &&
                 sendto(u, "x", 1, 0, (struct sockaddr *)&ss, len) == 1;
        if (ok) {
            struct pollfd p = { .fd = u, .events = POLLIN };
            ok = poll(&p, 1, 10) == 1;
        }
        close(u);
        if (ok) return;
        usleep(10000);
    }
}

static void one_family(int family, const char *ip, int prefix, const char *other) {
    int lo = if_nametoindex("lo");
    say("%s/%d on lo", ip, prefix);
    show("  add", addr_req(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, family, prefix, lo, ip));
    show("  add again, exclusive", addr_req(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, family, prefix, lo, ip));
    show("  add again, no flags", addr_req(RTM_NEWADDR, 0, family, prefix, lo, ip));
    show("  replace", addr_req(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, family, prefix, lo, ip));
    list_addrs("  listed", family, lo);
    settle(family, ip);
    udp_self(family, ip);
    tcp_pair(family, ip);
    udp_source(family, family == AF_INET ? "0.0.0.0" : "::", ip);
    if (other) { udp_self(family, other); udp_source(family, "0.0.0.0", other); }
    show("  delete", addr_req(RTM_DELADDR, 0, family, prefix, lo, ip));
    show("  delete again", addr_req(RTM_DELADDR, 0, family, prefix, lo, ip));
    list_addrs("  listed", family, lo);
    udp_self(family, ip);
}

static unsigned long ino_of(int fd) { struct stat st; fstat(fd, &st); return st.st_ino; }

static void unix_listed(const char *what, unsigned long ino) {
    FILE *f = fopen("/proc/net/unix", "r");
    char line[512];
    int found = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long i; char path[256] = "";
        if (sscanf(line, "%*s %*x %*x %*x %*x %*x %lu %255s", &i, path) >= 1 && i == ino) { found = 1; say("  %s: listed, path '%s'", what, path); }
    }
    if (f) fclose(f);
    if (!found) say("  %s: not listed", what);
}

static void read_range(const char *when) {
    char b[64] = "";
    int fd = open("/proc/sys/net/ipv4/ip_local_port_range", O_RDONLY);
    ssize_t n = read(fd, b, sizeof b - 1);
    close(fd);
    if (n > 0 && b[n - 1] == '\n') b[n - 1] = 0;
    for (char *p = b; *p; p++) if (*p == '\t') *p = ' ';
    say("%s ip_local_port_range: %s", when, b);
}

static int write_range(const char *v) {
    int fd = open("/proc/sys/net/ipv4/ip_local_port_range", O_WRONLY);
    long r = write(fd, v, strlen(v));
    int e = errno;
    close(fd);
    return r < 0 ? -e : 0;
}

static int local_port(int fd) {
    struct sockaddr_in a; socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    return ntohs(a.sin_port);
}

/* The peer end of the veth pair: a child in a namespace of its own. */
static int to_child[2], from_child[2];
static void child_side(void) {
    char c;
    close(to_child[1]); close(from_child[0]);
    alarm(20);
    read(to_child[0], &c, 1);                         /* the veth end is here now */
    nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    int vb = if_nametoindex("vb");
    say("child: vb present: %d", vb != 0);
    show("child: add 10.2.0.2/24 on vb", addr_req(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, AF_INET, 24, vb, "10.2.0.2"));
    show("child: vb up", set_up("vb"));
    struct sockaddr_storage ss;
    socklen_t len = sa(AF_INET, "10.2.0.2", 7000, &ss);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    Q(bind(l, (struct sockaddr *)&ss, len));
    Q(listen(l, 2));
    len = sa(AF_INET, "10.2.0.2", 7001, &ss);
    int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    Q(bind(u, (struct sockaddr *)&ss, len));
    struct timeval tv = { 5, 0 };
    setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    write(from_child[1], "r", 1);
    struct sockaddr_storage peer;
    socklen_t pl = sizeof peer;
    char t[64], buf[16] = "";
    int a = accept(l, (struct sockaddr *)&peer, &pl);
    if (a < 0) { say("child: accept: %s", ename(errno)); _exit(1); }
    read(a, buf, 4);
    say("child: tcp from %s: %s", ntop(&peer, t), buf);
    write(a, "pong", 4);
    close(a);
    memset(buf, 0, sizeof buf);
    pl = sizeof peer;
    if (recvfrom(u, buf, sizeof buf, 0, (struct sockaddr *)&peer, &pl) < 0) say("child: udp: %s", ename(errno));
    else say("child: udp from %s: %s", ntop(&peer, t), buf);
    _exit(0);
}

static int drain_events(int s, int type, int index) {
    int seen = 0;
    char buf[16384];
    ssize_t n;
    while ((n = recv(s, buf, sizeof buf, MSG_DONTWAIT)) > 0)
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
            struct ifinfomsg *i = NLMSG_DATA(h);
            if (h->nlmsg_type == type && i->ifi_index == index && h->nlmsg_pid == 0) seen = 1;
        }
    return seen;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    alarm(30);                                        /* a failure must not hang */
    int parent_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    read_range("parent's");
    if (unshare(CLONE_NEWNET) != 0) { say("unshare: %s", ename(errno)); return 1; }
    int own_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    show("lo up", set_up("lo"));
    nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);

    /* Addresses on lo. */
    one_family(AF_INET, "10.0.0.1", 24, "10.0.0.77");
    one_family(AF_INET6, "fd00::1", 64, NULL);
    int lo = if_nametoindex("lo");
    udp_source(AF_INET, "0.0.0.0", "127.0.0.9");
    udp_self(AF_INET, "10.0.1.1");
    struct sockaddr_storage ss;
    socklen_t len = sa(AF_INET, "10.0.1.1", 9, &ss);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    T(connect(c, (struct sockaddr *)&ss, len));
    close(c);
    show("unknown index", addr_req(RTM_NEWADDR, NLM_F_CREATE, AF_INET, 24, 9999, "10.0.0.2"));
    show("family AF_PACKET", addr_req(RTM_NEWADDR, NLM_F_CREATE, AF_PACKET, 24, lo, "10.0.0.2"));
    show("no address", addr_req(RTM_NEWADDR, NLM_F_CREATE, AF_INET, 24, lo, NULL));
    show("prefix 33", addr_req(RTM_NEWADDR, NLM_F_CREATE, AF_INET, 33, lo, "10.0.0.2"));
    show("IPv6 prefix 129", addr_req(RTM_NEWADDR, NLM_F_CREATE, AF_INET6, 129, lo, "fd00::2"));
    show("delete, unknown index", addr_req(RTM_DELADDR, 0, AF_INET, 24, 9999, "10.0.0.2"));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (setresuid(1000, 1000, 1000) != 0) _exit(2);
        show("add without CAP_NET_ADMIN", addr_req(RTM_NEWADDR, NLM_F_CREATE, AF_INET, 24, lo, "10.0.0.2"));
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    list_addrs("IPv4 at the end", AF_INET, lo);

    /* The namespace's own ip_local_port_range. */
    read_range("fresh namespace's");
    show("range 40000 40000", write_range("40000 40000"));
    read_range("now");
    int e1 = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), e2 = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    len = sa(AF_INET, "127.0.0.1", 0, &ss);
    T(bind(e1, (struct sockaddr *)&ss, len));
    say("ephemeral UDP port: %d", local_port(e1));
    T(bind(e2, (struct sockaddr *)&ss, len));
    close(e1); close(e2);
    show("range 41000 41000", write_range("41000 41000"));
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    len = sa(AF_INET, "127.0.0.1", 7100, &ss);
    T(bind(l, (struct sockaddr *)&ss, len));
    T(listen(l, 2));
    c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    T(connect(c, (struct sockaddr *)&ss, len));
    say("ephemeral TCP port: %d", local_port(c));
    close(c); close(l);
    show("range 5 2", write_range("5 2"));
    show("range back to 32768 60999", write_range("32768 60999"));
    T(setns(parent_ns, CLONE_NEWNET));
    read_range("parent's again");
    T(setns(own_ns, CLONE_NEWNET));

    /* /proc/net/unix is the namespace's. */
    int sv[2];
    T(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    int ub = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    strcpy(un.sun_path + 1, "moat-135");
    T(bind(ub, (struct sockaddr *)&un, offsetof(struct sockaddr_un, sun_path) + 1 + strlen("moat-135")));
    int fb = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un fu = { .sun_family = AF_UNIX };
    strcpy(fu.sun_path, "/tmp/moat-135.sock");
    unlink(fu.sun_path);
    T(bind(fb, (struct sockaddr *)&fu, sizeof fu));
    T(listen(fb, 1));
    say("in the namespace:");
    unix_listed("socketpair end 0", ino_of(sv[0]));
    unix_listed("socketpair end 1", ino_of(sv[1]));
    unix_listed("abstract-bound", ino_of(ub));
    unix_listed("file-bound listener", ino_of(fb));
    T(setns(parent_ns, CLONE_NEWNET));
    say("in the parent:");
    unix_listed("socketpair end 0", ino_of(sv[0]));
    unix_listed("abstract-bound", ino_of(ub));
    unix_listed("file-bound listener", ino_of(fb));
    T(setns(own_ns, CLONE_NEWNET));
    close(sv[0]); close(sv[1]); close(ub); close(fb);
    unlink(fu.sun_path);

    /* Links. */
    int ev = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    struct sockaddr_nl na = { .nl_family = AF_NETLINK };
    T(bind(ev, (struct sockaddr *)&na, sizeof na));
    unsigned grp = RTNLGRP_LINK;
    T(setsockopt(ev, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &grp, sizeof grp));
    unsigned long long groups = 0;
    socklen_t gl = sizeof groups;
    T(getsockopt(ev, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, &groups, &gl));
    say("memberships: %llx, length %d", groups, (int)gl);
    show("veth v0, peer v1", new_link("v0", "veth", "v1", 0));
    show("v0 again", new_link("v0", "veth", "v2", 0));
    show("kind nosuchkind", new_link("nk0", "nosuchkind", NULL, 0));
    int d0 = if_nametoindex("v0"), d1 = if_nametoindex("v1");
    say("v0 and v1 exist: %d, the peer has the lower index: %d", d0 > 0 && d1 > 0, d1 < d0);
    say("NEWLINK event for v0: %d", drain_events(ev, RTM_NEWLINK, d0));
    list_links("links");
    show("add 10.1.0.1/24 on v0 (down)", addr_req(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, AF_INET, 24, d0, "10.1.0.1"));
    udp_self(AF_INET, "10.1.0.1");
    show("v0 up", link_req(RTM_NEWLINK, d0, NULL, IFF_UP, IFF_UP));
    say("NEWLINK event for v0 up: %d", drain_events(ev, RTM_NEWLINK, d0));
    list_addrs("v0's addresses", AF_INET, d0);
    tcp_pair(AF_INET, "10.1.0.1");
    udp_source(AF_INET, "0.0.0.0", "10.1.0.1");
    show("rename v0 to v8 while up", link_req(RTM_SETLINK, d0, "v8", 0, 0));
    show("v8 down", link_req(RTM_NEWLINK, d0, NULL, 0, IFF_UP));
    show("rename v8 to v9", link_req(RTM_SETLINK, d0, "v9", 0, 0));
    say("v9 has v0's index: %d", (int)if_nametoindex("v9") == d0);
    show("rename v9 to lo", link_req(RTM_SETLINK, d0, "lo", 0, 0));
    show("delete lo", link_req(RTM_DELLINK, lo, NULL, 0, 0));
    show("delete v9", link_req(RTM_DELLINK, d0, NULL, 0, 0));
    say("v1 went with it: %d", if_nametoindex("v1") == 0);
    show("delete it again", link_req(RTM_DELLINK, d0, NULL, 0, 0));
    say("DELLINK event for v9: %d", drain_events(ev, RTM_DELLINK, d0));
    show("delete nosuch by name", link_req(RTM_DELLINK, 0, "nosuch", 0, 0));
    list_links("links");

    /* A veth pair whose peer is in a child's namespace. */
    pipe(to_child); pipe(from_child);
    fflush(stdout);
    pid_t child = syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, NULL, NULL, NULL, 0);
    if (child == 0) child_side();
    close(to_child[0]); close(from_child[1]);
    show("veth va, peer vb in the child's namespace", new_link("va", "veth", "vb", child));
    say("vb here: %d", if_nametoindex("vb") != 0);
    int va = if_nametoindex("va");
    list_links("links");
    show("add 10.2.0.1/24 on va", addr_req(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, AF_INET, 24, va, "10.2.0.1"));
    show("va up", set_up("va"));
    write(to_child[1], "g", 1);
    char ch;
    read(from_child[0], &ch, 1);
    /* What this side sees is said once the child (which prints too) is done. */
    char seen[512] = "";
    len = sa(AF_INET, "10.2.0.2", 7000, &ss);
    c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(c, (struct sockaddr *)&ss, len) == 0) {
        struct sockaddr_storage me; socklen_t ml = sizeof me; char t[64], buf[8] = "";
        getsockname(c, (struct sockaddr *)&me, &ml);
        write(c, "ping", 4);
        read(c, buf, 4);
        snprintf(seen, sizeof seen, "tcp to 10.2.0.2 from %s, reply %s", ntop(&me, t), buf);
    } else snprintf(seen, sizeof seen, "tcp connect 10.2.0.2: %s", ename(errno));
    close(c);
    int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    len = sa(AF_INET, "10.2.0.2", 7001, &ss);
    long sent = sendto(u, "over", 4, 0, (struct sockaddr *)&ss, len);
    waitpid(child, &st, 0);
    say("%s", seen);
    say("udp sent: %ld", sent);
    say("child: %d", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    close(u);
    /* The namespace goes when its last process does (natively a little later). */
    int gone = 0;
    for (int i = 0; i < 300 && !(gone = if_nametoindex("va") == 0); i++) usleep(10000);
    say("va is gone with the child's namespace: %d", gone);
    return 0;
}
