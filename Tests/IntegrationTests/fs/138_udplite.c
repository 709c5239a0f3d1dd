// UDP-Lite (RFC 3828) over loopback, IPv4 and IPv6: the socket, its partial
// checksum coverage options, a datagram each way, and the errors of bad
// coverage values. CPython's test_socket runs a hundred cases on it; Moat
// refused the protocol (EPROTONOSUPPORT).
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IPPROTO_UDPLITE
#define IPPROTO_UDPLITE 136
#endif
#define SOL_UDPLITE 136
#define UDPLITE_SEND_CSCOV 10
#define UDPLITE_RECV_CSCOV 11

static void run(int family) {
    const char *name = family == AF_INET ? "ipv4" : "ipv6";
    int s = socket(family, SOCK_DGRAM, IPPROTO_UDPLITE), c = socket(family, SOCK_DGRAM, IPPROTO_UDPLITE);
    if (s < 0 || c < 0) { printf("%s: socket: %s\n", name, strerror(errno)); return; }
    struct sockaddr_storage a;
    socklen_t al;
    memset(&a, 0, sizeof a);
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&a;
        in->sin_family = AF_INET; in->sin_addr.s_addr = htonl(INADDR_LOOPBACK); al = sizeof *in;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a;
        in6->sin6_family = AF_INET6; in6->sin6_addr = in6addr_loopback; al = sizeof *in6;
    }
    printf("%s: bind %d\n", name, bind(s, (struct sockaddr *)&a, al));
    getsockname(s, (struct sockaddr *)&a, &al);
    int v = 0, p = 0;
    socklen_t vl = sizeof v;
    int r = getsockopt(s, SOL_SOCKET, SO_PROTOCOL, &p, &vl);
    printf("  SO_PROTOCOL %d: %d\n", r, p);
    vl = sizeof v;
    r = getsockopt(c, SOL_UDPLITE, UDPLITE_SEND_CSCOV, &v, &vl);
    printf("  send coverage default %d: %d\n", r, v);
    v = 3;
    printf("  set send coverage 3: %d\n", setsockopt(c, SOL_UDPLITE, UDPLITE_SEND_CSCOV, &v, sizeof v));
    v = 0; vl = sizeof v;
    r = getsockopt(c, SOL_UDPLITE, UDPLITE_SEND_CSCOV, &v, &vl);
    printf("  send coverage after 3 (at least the 8-byte header) %d: %d\n", r, v);
    v = 20;
    printf("  set send coverage 20: %d\n", setsockopt(c, SOL_UDPLITE, UDPLITE_SEND_CSCOV, &v, sizeof v));
    v = 16;
    printf("  set recv coverage 16: %d\n", setsockopt(s, SOL_UDPLITE, UDPLITE_RECV_CSCOV, &v, sizeof v));
    short small = 5;
    r = setsockopt(c, SOL_UDPLITE, UDPLITE_SEND_CSCOV, &small, sizeof small);
    printf("  set coverage with a short: %d %s\n", r, r ? strerror(errno) : "");
    printf("  sendto %zd\n", sendto(c, "hello lite", 10, 0, (struct sockaddr *)&a, al));
    char buf[64] = "";
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    printf("  recvfrom %zd '%.*s' from family %d\n", n, n > 0 ? (int)n : 0, buf, from.ss_family);
    printf("  reply %zd\n", sendto(s, "back", 4, 0, (struct sockaddr *)&from, fl));
    n = recv(c, buf, sizeof buf, 0);
    printf("  recv %zd '%.*s'\n", n, n > 0 ? (int)n : 0, buf);
    close(s); close(c);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    run(AF_INET);
    run(AF_INET6);
    int s = socket(AF_INET, SOCK_STREAM, IPPROTO_UDPLITE);
    printf("stream UDP-Lite: %d %s\n", s, s < 0 ? strerror(errno) : "");
    return 0;
}
