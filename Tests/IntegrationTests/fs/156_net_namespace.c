/* Network namespaces made by the application (unshare -n and friends):
 * a fresh namespace has only lo, DOWN (bind and connect to loopback fail),
 * SIOCSIFFLAGS brings it up, then TCP and UDP over 127.0.0.1 and ::1 work
 * in it; a port bound in the parent namespace is free in the child; an
 * abstract Unix name is per namespace, a socket file is not; if_nameindex
 * and getifaddrs (netlink) show lo only; /proc/self/net follows; the
 * namespace's inode differs and setns back to the first one works; a socket
 * keeps the namespace it was made in. Natively it runs as root (a real
 * network namespace, gone when the process exits). */
#include "t.h"
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>

static struct sockaddr_in v4(const char *ip, int port) {
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET; a.sin_port = htons(port); inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}
static struct sockaddr_in6 v6(const char *ip, int port) {
    struct sockaddr_in6 a = {0};
    a.sin6_family = AF_INET6; a.sin6_port = htons(port); inet_pton(AF_INET6, ip, &a.sin6_addr);
    return a;
}

static void show_ifaces(const char *when) {
    struct if_nameindex *ni = if_nameindex();
    printf("%s if_nameindex:", when);
    for (struct if_nameindex *p = ni; p && p->if_index; p++) printf(" %u:%s", p->if_index, p->if_name);
    printf("\n");
    if (ni) if_freenameindex(ni);
    struct ifaddrs *ia;
    if (getifaddrs(&ia) != 0) { printf("%s getifaddrs = -1 %s\n", when, ename(errno)); return; }
    for (struct ifaddrs *p = ia; p; p = p->ifa_next) {
        char buf[64] = "-";
        int fam = p->ifa_addr ? p->ifa_addr->sa_family : -1;
        if (fam == AF_INET) inet_ntop(AF_INET, &((struct sockaddr_in *)p->ifa_addr)->sin_addr, buf, sizeof buf);
        else if (fam == AF_INET6) inet_ntop(AF_INET6, &((struct sockaddr_in6 *)p->ifa_addr)->sin6_addr, buf, sizeof buf);
        else if (fam == AF_PACKET) strcpy(buf, "packet");
        printf("%s ifaddr %s %s up=%d\n", when, p->ifa_name, buf, !!(p->ifa_flags & IFF_UP));
    }
    freeifaddrs(ia);
}

static int lo_flags(int s) {
    struct ifreq r = {0};
    strcpy(r.ifr_name, "lo");
    if (ioctl(s, SIOCGIFFLAGS, &r) != 0) return -errno;
    return r.ifr_flags & (IFF_UP | IFF_LOOPBACK | IFF_RUNNING);
}

static int proc_lines(const char *path, const char *needle) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[512]; int n = 0;
    while (fgets(line, sizeof line, f)) if (!needle || strstr(line, needle)) n++;
    fclose(f);
    return n;
}

static void tcp_echo(int family) {
    const char *lo = family == AF_INET ? "127.0.0.1" : "::1";
    int l = T(socket(family, SOCK_STREAM, 0));
    int one = 1;
    T(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
    struct sockaddr_in a4 = v4(lo, 0); struct sockaddr_in6 a6 = v6(lo, 0);
    struct sockaddr *a = family == AF_INET ? (struct sockaddr *)&a4 : (struct sockaddr *)&a6;
    socklen_t al = family == AF_INET ? sizeof a4 : sizeof a6;
    T(bind(l, a, al));
    T(listen(l, 4));
    socklen_t gl = al;
    T(getsockname(l, a, &gl));
    printf("listener port nonzero: %d\n", (family == AF_INET ? a4.sin_port : a6.sin6_port) != 0);
    int c = T(socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0));
    int r = connect(c, a, al);
    printf("nonblocking connect: %s\n", r == 0 ? "0" : ename(errno));
    struct pollfd p = {c, POLLOUT, 0};
    T(poll(&p, 1, 5000));
    printf("poll revents POLLOUT: %d\n", !!(p.revents & POLLOUT));
    int err = -1; socklen_t el = sizeof err;
    T(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &el));
    printf("SO_ERROR = %d\n", err);
    T(connect(c, a, al));
    struct pollfd pl = {l, POLLIN, 0};
    T(poll(&pl, 1, 5000));
    struct sockaddr_storage from; socklen_t fl = sizeof from;
    int s = accept(l, (struct sockaddr *)&from, &fl);
    printf("accept ok: %d\n", s >= 0);
    printf("accept family ok: %d, peer len %d\n", from.ss_family == family, (int)fl);
    T(setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    int v = 0; socklen_t vl = sizeof v;
    T(getsockopt(s, IPPROTO_TCP, TCP_NODELAY, &v, &vl));
    printf("TCP_NODELAY = %d\n", v);
    T(write(c, "ping", 4));
    char buf[16] = {0};
    T(read(s, buf, sizeof buf));
    printf("server got %s\n", buf);
    T(send(s, "pong", 4, 0));
    memset(buf, 0, sizeof buf);
    struct pollfd pc = {c, POLLIN, 0};
    T(poll(&pc, 1, 5000));
    T(recv(c, buf, sizeof buf, 0));
    printf("client got %s\n", buf);
    T(shutdown(c, SHUT_WR));
    T(read(s, buf, sizeof buf));
    struct sockaddr_storage pn; socklen_t pnl = sizeof pn;
    T(getpeername(s, (struct sockaddr *)&pn, &pnl));
    char ip[64]; inet_ntop(family, family == AF_INET ? (void *)&((struct sockaddr_in *)&pn)->sin_addr : (void *)&((struct sockaddr_in6 *)&pn)->sin6_addr, ip, sizeof ip);
    printf("server's peer %s\n", ip);
    close(s); close(c);
    /* Nobody listens any more: refused. */
    close(l);
    int c2 = T(socket(family, SOCK_STREAM, 0));
    T(connect(c2, a, al));
    close(c2);
}

static void udp(void) {
    int a = T(socket(AF_INET, SOCK_DGRAM, 0));
    int b = T(socket(AF_INET, SOCK_DGRAM, 0));
    struct sockaddr_in sa = v4("127.0.0.1", 0);
    T(bind(a, (struct sockaddr *)&sa, sizeof sa));
    socklen_t l = sizeof sa;
    T(getsockname(a, (struct sockaddr *)&sa, &l));
    T(sendto(b, "datagram", 8, 0, (struct sockaddr *)&sa, sizeof sa));
    char buf[32] = {0};
    struct sockaddr_in from; socklen_t fl = sizeof from;
    T(recvfrom(a, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl));
    char ip[32]; inet_ntop(AF_INET, &from.sin_addr, ip, sizeof ip);
    printf("udp got %s from %s (len %d)\n", buf, ip, (int)fl);
    struct sockaddr_in bn; socklen_t bl = sizeof bn;
    T(getsockname(b, (struct sockaddr *)&bn, &bl));
    printf("sender autobound: %d\n", bn.sin_port == from.sin_port && bn.sin_port != 0);
    T(recv(a, buf, sizeof buf, MSG_DONTWAIT));
    T(sendto(b, "x", 1, 0, (struct sockaddr *)&(struct sockaddr_in){ .sin_family = AF_INET, .sin_port = 0 }, sizeof sa));
    close(a); close(b);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    char before[64] = {0}, after[64] = {0};
    struct stat st0, st1;
    T(stat("/proc/self/ns/net", &st0));
    int nsfd = T(open("/proc/self/ns/net", O_RDONLY));

    /* A port and an abstract name held in the parent namespace. */
    int held = T(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in hp = v4("127.0.0.1", 0);
    T(bind(held, (struct sockaddr *)&hp, sizeof hp));
    socklen_t hl = sizeof hp;
    T(getsockname(held, (struct sockaddr *)&hp, &hl));
    T(listen(held, 1));
    int un = T(socket(AF_UNIX, SOCK_STREAM, 0));
    struct sockaddr_un ua = {.sun_family = AF_UNIX};
    memcpy(ua.sun_path, "\0moat-netns-156", 15);
    socklen_t ual = offsetof(struct sockaddr_un, sun_path) + 15;
    T(bind(un, (struct sockaddr *)&ua, ual));
    T(listen(un, 1));
    unlink("/tmp/netns156.sock");
    int pf = T(socket(AF_UNIX, SOCK_STREAM, 0));
    struct sockaddr_un pa = {.sun_family = AF_UNIX, .sun_path = "/tmp/netns156.sock"};
    T(bind(pf, (struct sockaddr *)&pa, sizeof pa));
    T(listen(pf, 1));

    T(unshare(CLONE_NEWNET));
    T(stat("/proc/self/ns/net", &st1));
    printf("namespace inode differs: %d\n", st0.st_ino != st1.st_ino);
    readlink("/proc/self/ns/net", before, sizeof before - 1);
    printf("link starts net:[ %d\n", strncmp(before, "net:[", 5) == 0);

    int s = T(socket(AF_INET, SOCK_DGRAM, 0));
    printf("lo flags (down): %#x\n", lo_flags(s));
    show_ifaces("down");
    printf("/proc/net/dev lines: %d\n", proc_lines("/proc/self/net/dev", ":"));
    struct sockaddr_in a = v4("127.0.0.1", 5000);
    int t = T(socket(AF_INET, SOCK_STREAM, 0));
    T(bind(t, (struct sockaddr *)&a, sizeof a));
    T(connect(t, (struct sockaddr *)&a, sizeof a));
    close(t);
    struct sockaddr_in6 a6 = v6("::1", 5000);
    int t6 = T(socket(AF_INET6, SOCK_STREAM, 0));
    T(bind(t6, (struct sockaddr *)&a6, sizeof a6));
    close(t6);
    struct sockaddr_in any = v4("0.0.0.0", 0);
    int t2 = T(socket(AF_INET, SOCK_DGRAM, 0));
    T(bind(t2, (struct sockaddr *)&any, sizeof any));
    close(t2);

    /* Bring lo up, as `ip link set lo up` does. */
    struct ifreq r = {0};
    strcpy(r.ifr_name, "lo");
    T(ioctl(s, SIOCGIFFLAGS, &r));
    r.ifr_flags |= IFF_UP;
    T(ioctl(s, SIOCSIFFLAGS, &r));
    printf("lo flags (up): %#x\n", lo_flags(s));
    struct ifreq ri = {0};
    strcpy(ri.ifr_name, "lo");
    T(ioctl(s, SIOCGIFINDEX, &ri));
    printf("lo index %d\n", ri.ifr_ifindex);
    strcpy(ri.ifr_name, "eth0");
    T(ioctl(s, SIOCGIFINDEX, &ri));
    show_ifaces("up");

    /* Elsewhere than loopback: unreachable, and no such address here. */
    struct sockaddr_in far = v4("10.1.2.3", 80);
    int f = T(socket(AF_INET, SOCK_STREAM, 0));
    T(connect(f, (struct sockaddr *)&far, sizeof far));
    T(bind(f, (struct sockaddr *)&far, sizeof far));
    close(f);

    /* The port the parent holds is free here. */
    int p = T(socket(AF_INET, SOCK_STREAM, 0));
    T(bind(p, (struct sockaddr *)&hp, sizeof hp));
    T(listen(p, 1));
    int p2 = T(socket(AF_INET, SOCK_STREAM, 0));
    T(bind(p2, (struct sockaddr *)&hp, sizeof hp));
    close(p2);
    printf("/proc/net/tcp listeners: %d\n", proc_lines("/proc/net/tcp", " 0A "));
    close(p);

    tcp_echo(AF_INET);
    tcp_echo(AF_INET6);
    udp();

    /* Abstract names are the namespace's; socket files are everyone's. */
    int u2 = T(socket(AF_UNIX, SOCK_STREAM, 0));
    T(connect(u2, (struct sockaddr *)&ua, ual));
    close(u2);
    int u3 = T(socket(AF_UNIX, SOCK_STREAM, 0));
    T(bind(u3, (struct sockaddr *)&ua, ual));
    close(u3);
    int u4 = T(socket(AF_UNIX, SOCK_STREAM, 0));
    T(connect(u4, (struct sockaddr *)&pa, sizeof pa));
    close(u4);

    /* A socket made here stays here after setns back. */
    int mine = T(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in ml = v4("127.0.0.1", 0);
    T(bind(mine, (struct sockaddr *)&ml, sizeof ml));
    T(listen(mine, 1));
    socklen_t mll = sizeof ml;
    T(getsockname(mine, (struct sockaddr *)&ml, &mll));

    T(setns(nsfd, CLONE_NEWNET));
    T(stat("/proc/self/ns/net", &st1));
    printf("back in the first namespace: %d\n", st0.st_ino == st1.st_ino);
    readlink("/proc/self/ns/net", after, sizeof after - 1);
    printf("links differ: %d\n", strcmp(before, after) != 0);
    int u5 = T(socket(AF_UNIX, SOCK_STREAM, 0));
    T(connect(u5, (struct sockaddr *)&ua, ual));
    close(u5);
    int c = T(socket(AF_INET, SOCK_STREAM, 0));
    T(connect(c, (struct sockaddr *)&hp, sizeof hp));
    close(c);
    struct sockaddr_in mine_name; socklen_t mnl = sizeof mine_name;
    T(getsockname(mine, (struct sockaddr *)&mine_name, &mnl));
    printf("child-namespace socket keeps its port: %d\n", mine_name.sin_port == ml.sin_port);

    /* A forked child inherits the namespace; without CAP_SYS_ADMIN no new one. */
    pid_t pid = fork();
    if (pid == 0) {
        struct stat st2;
        stat("/proc/self/ns/net", &st2);
        printf("child shares the namespace: %d\n", st2.st_ino == st0.st_ino);
        T(setresuid(65534, 65534, 65534));
        T(unshare(CLONE_NEWNET));
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("child exit %d\n", WEXITSTATUS(status));
    unlink("/tmp/netns156.sock");
    return 0;
}
