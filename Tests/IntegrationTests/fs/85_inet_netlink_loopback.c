/* Loopback IP sockets and NETLINK_ROUTE beyond what the other programs
 * check (session 14; gVisor's socket suites found them):
 * - options Linux has and Moat refused (ENOPROTOOPT): SO_NO_CHECK,
 *   SO_TIMESTAMP, IP_PKTINFO, IP_RECVTOS, IP_RECVTTL, IP_RECVORIGDSTADDR,
 *   IPV6_RECVPKTINFO, TCP_INQ, SO_DETACH_FILTER without a filter (ENOENT),
 *   SO_ATTACH_FILTER then SO_DETACH_FILTER;
 * - ancillary data both ways on UDP: IP_TTL and IP_TOS sent per message,
 *   IP_PKTINFO / IP_TOS / IP_TTL / IP_ORIGDSTADDR received, MSG_CTRUNC when
 *   the room is short; TCP_INQ's cmsg; writev/readv move one datagram over
 *   all their iovecs; SIOCGSTAMP is ENOENT before a datagram, set after;
 * - TCP_CONGESTION set to an available algorithm by root, then read back;
 * - a failed blocking connect can be retried (ECONNREFUSED again, not
 *   ECONNABORTED); a blocked recv goes on after another thread closes its
 *   fd (ends by SO_RCVTIMEO: EAGAIN, not EBADF);
 * - socket(AF_UNIX, ..., PF_UNIX);
 * - NETLINK_ROUTE: socket types, autobind to the pid, peer 0, options;
 *   RTM_GETLINK dump and by name (loopback's index, flags, mtu), unknown
 *   names ENODEV, RTM_GETADDR dump with 127.0.0.1/8 on lo, unknown types
 *   EOPNOTSUPP, acknowledgements, MSG_TRUNC and MSG_PEEK.
 * Only loopback is looked at: natively the program runs in the host's
 * namespace, in Moat in the sandbox's. */
#include "t.h"
#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>

#ifndef TCP_INQ
#define TCP_INQ 36
#endif
#ifndef TCP_CM_INQ
#define TCP_CM_INQ TCP_INQ
#endif

static int one = 1;

static struct sockaddr_in lo4(int port) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static void options(void) {
    int u = socket(AF_INET, SOCK_DGRAM, 0), u6 = socket(AF_INET6, SOCK_DGRAM, 0), tcp = socket(AF_INET, SOCK_STREAM, 0);
    int v = -1;
    socklen_t l = sizeof v;
    T(getsockopt(u, SOL_SOCKET, SO_NO_CHECK, &v, &l)); say("SO_NO_CHECK %d", v);
    T(setsockopt(u, SOL_SOCKET, SO_NO_CHECK, &one, sizeof one));
    l = sizeof v; T(getsockopt(u, SOL_SOCKET, SO_NO_CHECK, &v, &l)); say("SO_NO_CHECK %d", v);
    l = sizeof v; T(getsockopt(u, SOL_SOCKET, SO_TIMESTAMP, &v, &l)); say("SO_TIMESTAMP %d", v);
    T(setsockopt(u, SOL_SOCKET, SO_TIMESTAMP, &one, sizeof one));
    l = sizeof v; T(getsockopt(u, SOL_SOCKET, SO_TIMESTAMP, &v, &l)); say("SO_TIMESTAMP %d", v);
    int ipopts[] = { IP_PKTINFO, IP_RECVTOS, IP_RECVTTL, IP_RECVORIGDSTADDR };
    for (int i = 0; i < 4; i++) {
        l = sizeof v; v = -1;
        T(getsockopt(u, SOL_IP, ipopts[i], &v, &l)); say("IP option %d = %d", ipopts[i], v);
        T(setsockopt(u, SOL_IP, ipopts[i], &one, sizeof one));
        l = sizeof v; T(getsockopt(u, SOL_IP, ipopts[i], &v, &l)); say("IP option %d = %d", ipopts[i], v);
    }
    l = sizeof v; T(getsockopt(u6, SOL_IPV6, IPV6_RECVPKTINFO, &v, &l)); say("IPV6_RECVPKTINFO %d", v);
    T(setsockopt(u6, SOL_IPV6, IPV6_RECVPKTINFO, &one, sizeof one));
    l = sizeof v; T(getsockopt(tcp, SOL_TCP, TCP_INQ, &v, &l)); say("TCP_INQ %d", v);
    T(setsockopt(tcp, SOL_SOCKET, SO_DETACH_FILTER, &v, sizeof v));
    struct sock_filter accept_all[] = { { 0x6, 0, 0, 0xffffffff } };   /* ret #-1 */
    struct sock_fprog prog = { .len = 1, .filter = accept_all };
    T(setsockopt(u, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog));
    T(setsockopt(u, SOL_SOCKET, SO_DETACH_FILTER, &v, sizeof v));
    T(setsockopt(u, SOL_SOCKET, SO_DETACH_FILTER, &v, sizeof v));
    char cc[16] = "cubic", got[16];
    long r = T(setsockopt(tcp, SOL_TCP, TCP_CONGESTION, cc, strlen(cc)));
    memset(got, 'x', sizeof got);
    l = sizeof got;
    T(getsockopt(tcp, SOL_TCP, TCP_CONGESTION, got, &l));
    if (r == 0) say("TCP_CONGESTION %s (len %d)", got, (int)l);
    close(u); close(u6); close(tcp);
}

static void ancillary(void) {
    int rx = socket(AF_INET, SOCK_DGRAM, 0), tx = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = lo4(0);
    socklen_t al = sizeof a;
    Q(bind(rx, (void *)&a, sizeof a));
    Q(getsockname(rx, (void *)&a, &al));
    Q(connect(tx, (void *)&a, sizeof a));
    struct timeval tmo = { .tv_sec = 2 };   /* a Moat that loses the datagram fails, never hangs */
    Q(setsockopt(rx, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof tmo));
    Q(setsockopt(rx, SOL_IP, IP_PKTINFO, &one, sizeof one));
    Q(setsockopt(rx, SOL_IP, IP_RECVTOS, &one, sizeof one));
    Q(setsockopt(rx, SOL_IP, IP_RECVTTL, &one, sizeof one));
    Q(setsockopt(rx, SOL_IP, IP_RECVORIGDSTADDR, &one, sizeof one));
    /* IP_TTL and IP_TOS for this message only. */
    char cbuf[CMSG_SPACE(sizeof(int)) * 2] = { 0 };
    struct iovec iov = { .iov_base = "ping", .iov_len = 4 };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_IP; c->cmsg_type = IP_TTL; c->cmsg_len = CMSG_LEN(sizeof(int));
    *(int *)CMSG_DATA(c) = 7;
    c = CMSG_NXTHDR(&m, c);
    c->cmsg_level = SOL_IP; c->cmsg_type = IP_TOS; c->cmsg_len = CMSG_LEN(sizeof(int));
    *(int *)CMSG_DATA(c) = IPTOS_LOWDELAY;
    T(sendmsg(tx, &m, 0));
    char data[16], ctl[512];
    struct iovec riov = { .iov_base = data, .iov_len = sizeof data };
    struct msghdr rm = { .msg_iov = &riov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl };
    T(recvmsg(rx, &rm, 0));
    say("flags %#x", rm.msg_flags);
    for (c = CMSG_FIRSTHDR(&rm); c; c = CMSG_NXTHDR(&rm, c)) {
        if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo *p = (void *)CMSG_DATA(c);
            say("IP_PKTINFO lo %d dst %s", p->ipi_ifindex == (int)if_nametoindex("lo"), inet_ntoa(p->ipi_addr));
        } else if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_TOS) {
            say("IP_TOS %#x", *(unsigned char *)CMSG_DATA(c));
        } else if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_TTL) {
            say("IP_TTL %d", *(int *)CMSG_DATA(c));
        } else if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_ORIGDSTADDR) {
            struct sockaddr_in *o = (void *)CMSG_DATA(c);
            say("IP_ORIGDSTADDR %s same port %d", inet_ntoa(o->sin_addr), o->sin_port == a.sin_port);
        } else {
            say("cmsg %d/%d len %d", c->cmsg_level, c->cmsg_type, (int)c->cmsg_len);
        }
    }
    /* Room for less than all of it: MSG_CTRUNC. */
    T(send(tx, "pong", 4, 0));
    rm.msg_controllen = CMSG_SPACE(sizeof(struct in_pktinfo));
    T(recvmsg(rx, &rm, 0));
    say("short room: flags %#x", rm.msg_flags);
    /* writev and readv move one datagram over all their iovecs. */
    struct timeval stamp;
    T(ioctl(tx, SIOCGSTAMP, &stamp));
    struct iovec wv[2] = { { "abc", 3 }, { "def", 3 } };
    T(writev(tx, wv, 2));
    char r1[2], r2[2], r3[4];
    struct iovec rv[3] = { { r1, 2 }, { r2, 2 }, { r3, 4 } };
    T(readv(rx, rv, 3));
    say("readv: %.2s %.2s %.2s", r1, r2, r3);
    T(ioctl(rx, SIOCGSTAMP, &stamp));
    say("stamp set %d", stamp.tv_sec > 0);
    /* A message level the host refuses. */
    c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_IP; c->cmsg_type = 12345;
    T(sendmsg(tx, &m, 0));
    close(rx); close(tx);

    /* TCP_INQ: the bytes left, as a cmsg. */
    int l = socket(AF_INET, SOCK_STREAM, 0), cl = socket(AF_INET, SOCK_STREAM, 0);
    a = lo4(0); al = sizeof a;
    Q(bind(l, (void *)&a, sizeof a)); Q(getsockname(l, (void *)&a, &al)); Q(listen(l, 1));
    Q(connect(cl, (void *)&a, sizeof a));
    int s = accept(l, NULL, NULL);
    Q(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof tmo));
    T(setsockopt(s, SOL_TCP, TCP_INQ, &one, sizeof one));
    T(send(cl, "0123456789", 10, 0));
    usleep(100000);
    char b4[4];
    struct iovec tiov = { .iov_base = b4, .iov_len = 4 };
    struct msghdr tm = { .msg_iov = &tiov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl };
    T(recvmsg(s, &tm, 0));
    c = CMSG_FIRSTHDR(&tm);
    if (c && c->cmsg_level == SOL_TCP && c->cmsg_type == TCP_CM_INQ) say("TCP_CM_INQ %d", *(int *)CMSG_DATA(c));
    else say("no TCP_CM_INQ");
    close(s); close(cl); close(l);
}

static int closing_fd;
static void *close_later(void *arg) {
    (void)arg;
    usleep(200000);
    close(closing_fd);
    return NULL;
}

static void connections(void) {
    /* A port bound but not listening: refused, and refused again. */
    int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = lo4(0);
    socklen_t al = sizeof a;
    Q(bind(l, (void *)&a, sizeof a)); Q(getsockname(l, (void *)&a, &al));
    T(connect(c, (void *)&a, sizeof a));
    T(connect(c, (void *)&a, sizeof a));
    T(listen(l, 1));
    T(connect(c, (void *)&a, sizeof a));
    close(c); close(l);

    /* A recv blocked with a timeout while another thread closes the fd. */
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in b = lo4(0);
    Q(bind(u, (void *)&b, sizeof b));
    struct timeval tv = { .tv_sec = 1 };
    Q(setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    closing_fd = u;
    pthread_t th;
    pthread_create(&th, NULL, close_later, NULL);
    char x;
    T(recv(u, &x, 1, 0));
    pthread_join(th, NULL);

    int s = socket(AF_UNIX, SOCK_STREAM, PF_UNIX);
    say("AF_UNIX with PF_UNIX: %s", s >= 0 ? "ok" : ename(errno));
    if (s >= 0) close(s);
    int sv[2];
    T(socketpair(AF_UNIX, SOCK_DGRAM, PF_UNIX, sv));
}

struct nlreq { struct nlmsghdr h; struct ifinfomsg i; struct rtattr a; char name[IFNAMSIZ]; };

/* Receives one datagram; calls fn on each message. Returns its type of the last. */
static int nl_recv(int fd, char *buf, int len, void (*fn)(struct nlmsghdr *)) {
    int n = recv(fd, buf, len, 0), last = -1;
    if (n < 0) { say("recv %s", ename(errno)); return -1; }
    for (struct nlmsghdr *h = (void *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
        last = h->nlmsg_type;
        if (fn) fn(h);
    }
    return last;
}

static int lo_index = -1, lo_mtu = -1, lo_flags_ok = -1, seen_lo_addr = 0;
static unsigned port;

static void on_link(struct nlmsghdr *h) {
    if (h->nlmsg_type != RTM_NEWLINK) return;
    if (h->nlmsg_seq != 7 || h->nlmsg_pid != port) say("bad seq/pid");
    struct ifinfomsg *i = NLMSG_DATA(h);
    int len = IFLA_PAYLOAD(h);
    const char *name = "";
    int mtu = -1;
    for (struct rtattr *a = IFLA_RTA(i); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == IFLA_IFNAME) name = RTA_DATA(a);
        if (a->rta_type == IFLA_MTU) mtu = *(int *)RTA_DATA(a);
    }
    if (strcmp(name, "lo") == 0) {
        lo_index = i->ifi_index; lo_mtu = mtu;
        lo_flags_ok = i->ifi_type == ARPHRD_LOOPBACK && (i->ifi_flags & (IFF_UP | IFF_LOOPBACK)) == (IFF_UP | IFF_LOOPBACK);
    }
}

static void on_addr(struct nlmsghdr *h) {
    if (h->nlmsg_type != RTM_NEWADDR) return;
    struct ifaddrmsg *i = NLMSG_DATA(h);
    int len = IFA_PAYLOAD(h);
    if (i->ifa_family != AF_INET) return;
    for (struct rtattr *a = IFA_RTA(i); RTA_OK(a, len); a = RTA_NEXT(a, len))
        if (a->rta_type == IFA_LOCAL && *(uint32_t *)RTA_DATA(a) == htonl(INADDR_LOOPBACK))
            say("127.0.0.1/%d scope %d on lo %d", i->ifa_prefixlen, i->ifa_scope, (int)i->ifa_index == lo_index), seen_lo_addr = 1;
}

static void on_error(struct nlmsghdr *h) {
    if (h->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *e = NLMSG_DATA(h);
        say("NLMSG_ERROR %s (echoed type %d) len %d", e->error ? ename(-e->error) : "0", e->msg.nlmsg_type, (int)h->nlmsg_len);
    } else {
        say("message type %d", h->nlmsg_type);
    }
}

static void netlink(void) {
    T(socket(AF_NETLINK, SOCK_STREAM, NETLINK_ROUTE));
    T(socket(AF_NETLINK, SOCK_SEQPACKET, NETLINK_ROUTE));
    int d = T(socket(AF_NETLINK, SOCK_DGRAM, NETLINK_ROUTE) >= 0);
    (void)d;
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    struct timeval tmo = { .tv_sec = 2 };
    Q(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof tmo));
    struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
    socklen_t sl = sizeof sa;
    T(getpeername(fd, (void *)&sa, &sl));
    say("peer pid %u len %d", sa.nl_pid, (int)sl);
    T(bind(fd, (void *)&sa, sizeof sa));
    sl = sizeof sa;
    T(getsockname(fd, (void *)&sa, &sl));
    port = sa.nl_pid;
    say("port is pid: %d", port == (unsigned)getpid());
    int v = -1;
    socklen_t l = sizeof v;
    T(getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l)); say("SO_TYPE %d", v);
    T(getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &l)); say("SO_PROTOCOL %d", v);
    T(getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &l)); say("SO_DOMAIN %d", v);
    T(listen(fd, 1));

    char buf[32768];
    struct nlreq r = { 0 };
    r.h.nlmsg_len = NLMSG_LENGTH(sizeof r.i);
    r.h.nlmsg_type = RTM_GETLINK;
    r.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    r.h.nlmsg_seq = 7;
    T(send(fd, &r, r.h.nlmsg_len, 0) > 0);
    int last;
    while ((last = nl_recv(fd, buf, sizeof buf, on_link)) != NLMSG_DONE && last != -1) {}
    say("lo found %d mtu %d flags ok %d", lo_index > 0, lo_mtu, lo_flags_ok);
    int dumped = lo_index;

    /* By name, then an unknown name and index. */
    lo_index = -1;
    r.h.nlmsg_flags = NLM_F_REQUEST;
    r.a.rta_type = IFLA_IFNAME;
    r.a.rta_len = RTA_LENGTH(3);
    strcpy(r.name, "lo");
    r.h.nlmsg_len = NLMSG_LENGTH(sizeof r.i) + RTA_ALIGN(r.a.rta_len);
    T(send(fd, &r, r.h.nlmsg_len, 0) > 0);
    nl_recv(fd, buf, sizeof buf, on_link);
    say("by name: same index %d", lo_index == dumped);
    strcpy(r.name, "nodev0");
    r.a.rta_len = RTA_LENGTH(7);
    r.h.nlmsg_len = NLMSG_LENGTH(sizeof r.i) + RTA_ALIGN(r.a.rta_len);
    T(send(fd, &r, r.h.nlmsg_len, 0) > 0);
    nl_recv(fd, buf, sizeof buf, on_error);
    r.h.nlmsg_len = NLMSG_LENGTH(sizeof r.i);
    r.i.ifi_index = 1234567;
    T(send(fd, &r, r.h.nlmsg_len, 0) > 0);
    nl_recv(fd, buf, sizeof buf, on_error);
    /* An acknowledgement asked for; a type beyond RTM_MAX. */
    r.i.ifi_index = dumped;
    r.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    T(send(fd, &r, r.h.nlmsg_len, 0) > 0);
    nl_recv(fd, buf, sizeof buf, on_error);
    nl_recv(fd, buf, sizeof buf, on_error);
    r.h.nlmsg_type = 1022;
    r.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    T(send(fd, &r, r.h.nlmsg_len, 0) > 0);
    nl_recv(fd, buf, sizeof buf, on_error);

    /* RTM_GETADDR, first with a 10-byte buffer (MSG_TRUNC), a peek. */
    lo_index = dumped;
    struct { struct nlmsghdr h; struct rtgenmsg g; } ar = { { NLMSG_LENGTH(sizeof(struct rtgenmsg)), RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 8, 0 }, { AF_INET } };
    T(send(fd, &ar, sizeof ar, 0));
    long full = recv(fd, buf, 10, MSG_PEEK | MSG_TRUNC);
    say("peeked a datagram longer than 10: %d", full > 10);
    struct iovec iov = { .iov_base = buf, .iov_len = 10 };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
    T(recvmsg(fd, &m, 0));
    say("MSG_TRUNC %d", (m.msg_flags & MSG_TRUNC) != 0);
    while ((last = nl_recv(fd, buf, sizeof buf, NULL)) != NLMSG_DONE && last != -1) {}
    T(send(fd, &ar, sizeof ar, 0));
    while ((last = nl_recv(fd, buf, sizeof buf, on_addr)) != NLMSG_DONE && last != -1) {}
    say("lo address seen %d", seen_lo_addr);
    T(recv(fd, buf, sizeof buf, MSG_DONTWAIT));
    close(fd);
}

int main(void) {
    options();
    ancillary();
    connections();
    netlink();
    return 0;
}
