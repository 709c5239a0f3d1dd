/* More of application network namespaces (fs/156 has the basics):
 * clone(CLONE_NEWNET) gives the child its own; lo brought up through
 * netlink (RTM_NEWLINK, as `ip link set lo up`) and its link dump; a
 * namespace outliving its last process while an fd holds it (its lo stays
 * up); setns through a pidfd; a refused non-blocking connect (EINPROGRESS,
 * SO_ERROR, then ECONNABORTED); a connected UDP socket learning its peer's
 * port is closed (ECONNREFUSED); epoll on a listener; SO_REUSEADDR on UDP;
 * the socket's SO_TYPE/SO_DOMAIN/SO_PROTOCOL; /proc/net/tcp and
 * /proc/net/unix of the namespace. Natively as root: real namespaces. */
#include "t.h"
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>

/* F(call): like T, for calls that return a descriptor (whose number the
 * runner's inherited descriptors may shift). */
#define F(expr) ({ long f_r_ = (long)(expr); \
    if (f_r_ < 0) printf("%s = -1 %s\n", #expr, ename(errno)); else printf("%s = fd\n", #expr); errno = 0; f_r_; })

static struct sockaddr_in lo4(int port) {
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET; a.sin_port = htons(port); a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

/* RTM_NEWLINK on index 1 with IFF_UP set or cleared; returns the ack's error. */
static int link_up(int up) {
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    struct { struct nlmsghdr h; struct ifinfomsg i; } req = {0};
    req.h.nlmsg_len = sizeof req; req.h.nlmsg_type = RTM_NEWLINK;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK; req.h.nlmsg_seq = 1;
    req.i.ifi_family = AF_UNSPEC; req.i.ifi_index = 1;
    req.i.ifi_flags = up ? IFF_UP : 0; req.i.ifi_change = IFF_UP;
    send(s, &req, sizeof req, 0);
    char buf[4096];
    int n = recv(s, buf, sizeof buf, 0);
    int e = -999;
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    if (n > 0 && h->nlmsg_type == NLMSG_ERROR) e = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
    close(s);
    return e;
}

/* The links a RTM_GETLINK dump lists: "name:UP" for each. */
static void dump_links(const char *when) {
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    struct { struct nlmsghdr h; struct ifinfomsg i; } req = {0};
    req.h.nlmsg_len = sizeof req; req.h.nlmsg_type = RTM_GETLINK;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP; req.h.nlmsg_seq = 2;
    send(s, &req, sizeof req, 0);
    printf("%s links:", when);
    for (int done = 0; !done;) {
        char buf[16384];
        int n = recv(s, buf, sizeof buf, 0);
        if (n <= 0) break;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) { done = 1; break; }
            struct ifinfomsg *i = NLMSG_DATA(h);
            int alen = IFLA_PAYLOAD(h);
            for (struct rtattr *a = IFLA_RTA(i); RTA_OK(a, alen); a = RTA_NEXT(a, alen))
                if (a->rta_type == IFLA_IFNAME) printf(" %s:%d", (char *)RTA_DATA(a), !!(i->ifi_flags & IFF_UP));
        }
    }
    printf("\n");
    close(s);
}

static int count_lines(const char *path, const char *needle) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[512]; int n = 0;
    while (fgets(line, sizeof line, f)) if (strstr(line, needle)) n++;
    fclose(f);
    return n;
}

static char stack[65536];
static int up[2], down[2];   /* child -> parent, parent -> child */
static int child_fn(void *arg) {
    (void)arg;
    printf("child: link_up = %d\n", link_up(1));
    dump_links("child");
    char c;
    write(up[1], "r", 1);
    read(down[0], &c, 1);   /* wait until the parent opened our namespace */
    return 0;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    struct stat st0, st1;
    T(stat("/proc/self/ns/net", &st0));
    int self = F(open("/proc/self/ns/net", O_RDONLY));

    /* A child in a namespace of its own; we keep it after the child exits. */
    T(pipe(up));
    T(pipe(down));
    pid_t pid = clone(child_fn, stack + sizeof stack, CLONE_NEWNET | SIGCHLD, NULL);
    char c;
    T(read(up[0], &c, 1));
    printf("clone ok: %d\n", pid > 0);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/net", pid);
    int held = F(open(path, O_RDONLY));
    T(fstat(held, &st1));
    printf("child's namespace differs: %d\n", st1.st_ino != st0.st_ino);
    int pfd = F(syscall(SYS_pidfd_open, pid, 0));
    T(setns(pfd, CLONE_NEWNET));
    struct stat st2;
    T(stat("/proc/self/ns/net", &st2));
    printf("joined by pidfd: %d\n", st2.st_ino == st1.st_ino);
    T(setns(self, CLONE_NEWNET));
    T(write(down[1], "g", 1));
    int status;
    T(waitpid(pid, &status, 0) == pid);
    close(pfd);

    /* The namespace outlives its process while `held` refers to it. */
    T(setns(held, CLONE_NEWNET));
    dump_links("held");
    close(held);

    /* A refused non-blocking connect. */
    struct sockaddr_in a = lo4(1);
    int s = F(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    int r = connect(s, (struct sockaddr *)&a, sizeof a);
    printf("refused nonblocking connect: %s\n", r == 0 ? "0" : ename(errno));
    struct pollfd p = {s, POLLOUT, 0};
    T(poll(&p, 1, 1000));
    printf("revents OUT %d ERR %d\n", !!(p.revents & POLLOUT), !!(p.revents & POLLERR));
    int err = 0; socklen_t el = sizeof err;
    T(getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el));
    printf("SO_ERROR %s\n", ename(err));
    T(connect(s, (struct sockaddr *)&a, sizeof a));
    int v; socklen_t vl = sizeof v;
    T(getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &vl)); printf("SO_TYPE %d\n", v);
    T(getsockopt(s, SOL_SOCKET, SO_DOMAIN, &v, &vl)); printf("SO_DOMAIN %d\n", v);
    T(getsockopt(s, SOL_SOCKET, SO_PROTOCOL, &v, &vl)); printf("SO_PROTOCOL %d\n", v);
    close(s);

    /* A connected UDP socket whose peer's port has nobody. */
    int u = F(socket(AF_INET, SOCK_DGRAM, 0));
    struct sockaddr_in ua = lo4(9);
    T(connect(u, (struct sockaddr *)&ua, sizeof ua));
    T(send(u, "x", 1, 0));
    usleep(10000);
    T(send(u, "x", 1, 0));
    T(send(u, "x", 1, 0));
    close(u);

    /* SO_REUSEADDR lets two UDP sockets share a port; TCP without it may not. */
    int one = 1;
    int u1 = F(socket(AF_INET, SOCK_DGRAM, 0)), u2 = F(socket(AF_INET, SOCK_DGRAM, 0));
    T(setsockopt(u1, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
    T(setsockopt(u2, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
    struct sockaddr_in ra = lo4(4242);
    T(bind(u1, (struct sockaddr *)&ra, sizeof ra));
    T(bind(u2, (struct sockaddr *)&ra, sizeof ra));
    close(u1); close(u2);

    /* epoll on a listener. */
    int l = F(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in la = lo4(4243);
    T(bind(l, (struct sockaddr *)&la, sizeof la));
    int l2 = F(socket(AF_INET, SOCK_STREAM, 0));
    T(bind(l2, (struct sockaddr *)&la, sizeof la));
    close(l2);
    T(listen(l, 8));
    int ep = F(epoll_create1(0));
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 7}, out;
    T(epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev));
    T(epoll_wait(ep, &out, 1, 0));
    int cl = F(socket(AF_INET, SOCK_STREAM, 0));
    T(connect(cl, (struct sockaddr *)&la, sizeof la));
    T(epoll_wait(ep, &out, 1, 1000));
    printf("epoll data %u\n", out.data.u32);
    printf("/proc/net/tcp: listeners %d, established %d\n", count_lines("/proc/net/tcp", " 0A "), count_lines("/proc/net/tcp", " 01 "));
    int as = accept(l, NULL, NULL);
    printf("accepted: %d\n", as >= 0);
    printf("/proc/net/tcp after accept: established %d\n", count_lines("/proc/net/tcp", " 01 "));

    /* /proc/net/unix lists this namespace's abstract names only. */
    int un = F(socket(AF_UNIX, SOCK_DGRAM, 0));
    struct sockaddr_un na = {.sun_family = AF_UNIX};
    memcpy(na.sun_path, "\0moat-157", 9);
    T(bind(un, (struct sockaddr *)&na, offsetof(struct sockaddr_un, sun_path) + 9));
    printf("unix here: %d\n", count_lines("/proc/net/unix", "@moat-157"));
    T(setns(self, CLONE_NEWNET));
    printf("unix in the first: %d\n", count_lines("/proc/net/unix", "@moat-157"));
    return 0;
}
