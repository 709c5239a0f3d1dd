/* AF_UNIX sockets as gVisor's socket_filesystem, socket_abstract,
 * socket_unix_domain and accept_bind suites use them (session 14):
 * - a datagram socket connected to a path keeps the socket it found: sends
 *   work after the file is unlinked; once the peer closes, a send is
 *   ECONNREFUSED, then ENOTCONN; a socket connected elsewhere takes nothing
 *   from a third (EPERM, by sendto and by connect);
 * - SOL_SOCKET options read back what was set (REUSEADDR, KEEPALIVE,
 *   BROADCAST, NO_CHECK, LINGER), SO_SNDBUF/SO_RCVBUF doubled with their
 *   minimums, and a seqpacket pair whose SO_SNDBUF was raised takes more;
 * - listen() on an unbound socket is EINVAL; a connected socket may bind,
 *   and its accepted peer sees the name (getpeername, recvfrom); accept
 *   with a negative address length is EINVAL;
 * - an abstract name of another type is ECONNREFUSED, a path of another
 *   type EPROTOTYPE; sendto with an address on an unconnected stream socket
 *   is EOPNOTSUPP; a datagram send after SHUT_WR, or to a socket shut for
 *   reading, is EPIPE; MSG_TRUNC on seqpacket gives the message's length;
 * - listen's backlog bounds the connections waiting for accept (EAGAIN
 *   without blocking);
 * - bind with the family alone autobinds (again: a no-op, with a name:
 *   EINVAL);
 * - a zero-length stream send carries no file; credentials of a send stay
 *   with the rest of it after a partial read and do not join a send without
 *   them; opening a socket file is ENXIO, even with O_TRUNC. */
#include "t.h"
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

static socklen_t addr(struct sockaddr_un *a, const char *path, int abstract) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    if (abstract) { strcpy(a->sun_path + 1, path); return offsetof(struct sockaddr_un, sun_path) + 1 + strlen(path); }
    strcpy(a->sun_path, path);
    return sizeof *a;
}

static int sock(int type) { return socket(AF_UNIX, type, 0); }

static int geti(int fd, int opt) {
    int v = -1; socklen_t l = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, opt, &v, &l) < 0) return -1000 - errno;
    return l == sizeof v ? v : -2000;
}

static void dgram_peer(void) {
    say("datagram peer held by connect:");
    struct sockaddr_un a1, a2, a3;
    socklen_t l1 = addr(&a1, "/tmp/s81a", 0), l2 = addr(&a2, "/tmp/s81b", 0), l3 = addr(&a3, "/tmp/s81c", 0);
    int s1 = sock(SOCK_DGRAM), s2 = sock(SOCK_DGRAM), s3 = sock(SOCK_DGRAM);
    Q(bind(s1, (void *)&a1, l1)); Q(bind(s2, (void *)&a2, l2)); Q(bind(s3, (void *)&a3, l3));
    T(connect(s1, (void *)&a2, l2));
    T(connect(s2, (void *)&a1, l1));
    T(unlink("/tmp/s81a")); T(unlink("/tmp/s81b"));
    T(write(s1, "abc", 3));
    T(write(s2, "xy", 2));
    char b[16];
    T(recv(s2, b, sizeof b, MSG_DONTWAIT));
    T(recv(s1, b, sizeof b, MSG_DONTWAIT));
    /* s3 may not send to s1 (connected to s2), nor connect to it. */
    T(sendto(s3, "q", 1, 0, (void *)&a3, l3));            /* to itself: fine */
    T(recv(s3, b, sizeof b, MSG_DONTWAIT));
    int s4 = sock(SOCK_DGRAM);
    struct sockaddr_un a4; socklen_t l4 = addr(&a4, "s81d", 1);
    Q(bind(s4, (void *)&a4, l4));
    T(connect(s3, (void *)&a4, l4));
    T(connect(s1, (void *)&a4, l4));                       /* s1 re-connects to s4 */
    T(sendto(s2, "z", 1, 0, (void *)&a4, l4));             /* s4 unconnected: fine */
    T(write(s3, "w", 1));
    T(recv(s4, b, sizeof b, MSG_DONTWAIT));
    T(recv(s4, b, sizeof b, MSG_DONTWAIT));
    int s5 = sock(SOCK_DGRAM);
    struct sockaddr_un a5; socklen_t l5 = addr(&a5, "s81e", 1);
    Q(bind(s5, (void *)&a5, l5));
    T(connect(s5, (void *)&a5, l5));                       /* s5 connected to itself */
    T(sendto(s4, "p", 1, 0, (void *)&a5, l5));
    T(connect(s4, (void *)&a5, l5));
    /* The peer closes: refused once, then not connected. */
    close(s4);
    T(write(s3, "w", 1));
    T(write(s3, "w", 1));
    struct sockaddr_un un = { .sun_family = AF_UNSPEC };
    T(connect(s3, (void *)&un, sizeof un.sun_family));
    T(write(s3, "w", 1));
    close(s1); close(s2); close(s3); close(s5);
    unlink("/tmp/s81c");
}

static void options(void) {
    say("socket options:");
    int sv[2];
    Q(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    int opts[] = { SO_REUSEADDR, SO_KEEPALIVE, SO_BROADCAST, SO_NO_CHECK };
    for (unsigned i = 0; i < sizeof opts / sizeof *opts; i++) {
        int one = 1;
        say("  opt %d: before %d", opts[i], geti(sv[0], opts[i]));
        T(setsockopt(sv[0], SOL_SOCKET, opts[i], &one, sizeof one));
        say("  opt %d: after %d, other end %d", opts[i], geti(sv[0], opts[i]), geti(sv[1], opts[i]));
    }
    struct linger lg = { -1, -1 }; socklen_t l = sizeof lg;
    T(getsockopt(sv[0], SOL_SOCKET, SO_LINGER, &lg, &l));
    say("  linger %d %d len %d", lg.l_onoff, lg.l_linger, (int)l);
    struct linger set = { 1, 7 };
    T(setsockopt(sv[0], SOL_SOCKET, SO_LINGER, &set, sizeof set));
    T(setsockopt(sv[0], SOL_SOCKET, SO_LINGER, &set, sizeof set - 1));
    l = sizeof lg;
    T(getsockopt(sv[0], SOL_SOCKET, SO_LINGER, &lg, &l));
    say("  linger %d %d", lg.l_onoff, lg.l_linger);
    int v = 10000;
    T(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, sizeof v));
    say("  sndbuf %d", geti(sv[0], SO_SNDBUF));
    v = 0;
    T(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, sizeof v));
    T(setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &v, sizeof v));
    say("  sndbuf %d rcvbuf %d", geti(sv[0], SO_SNDBUF), geti(sv[0], SO_RCVBUF));
    say("  rcvlowat %d", geti(sv[0], SO_RCVLOWAT));
    v = 100;
    T(setsockopt(sv[0], SOL_SOCKET, SO_RCVLOWAT, &v, sizeof v));
    say("  rcvlowat %d", geti(sv[0], SO_RCVLOWAT));
    v = 0;
    T(setsockopt(sv[0], SOL_SOCKET, SO_RCVLOWAT, &v, sizeof v));
    say("  rcvlowat %d", geti(sv[0], SO_RCVLOWAT));
    close(sv[0]); close(sv[1]);

    /* A seqpacket sender's room is its SO_SNDBUF. */
    Q(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv));
    int buf = geti(sv[0], SO_SNDBUF);
    char *m = calloc(1, buf);
    int sent = 0;
    while (send(sv[0], m, buf / 4, 0) > 0 && sent < 100) sent++;
    say("  seqpacket: a quarter of SO_SNDBUF, %s after some", ename(errno));
    v = buf;
    T(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, sizeof v));
    say("  after raising it: %s", send(sv[0], m, buf / 4, 0) == buf / 4 ? "sent" : ename(errno));
    free(m);
    close(sv[0]); close(sv[1]);
}

static void binding(void) {
    say("binding, listening, accepting:");
    struct sockaddr_un la, ca, got;
    socklen_t ll = addr(&la, "/tmp/s81l", 0), cl = addr(&ca, "/tmp/s81cl", 0);
    int l = sock(SOCK_STREAM | SOCK_NONBLOCK), c = sock(SOCK_STREAM);
    T(listen(l, 5));                                       /* unbound */
    T(bind(l, (void *)&la, ll));
    T(listen(l, 5));
    T(connect(c, (void *)&la, ll));
    T(bind(c, (void *)&ca, cl));                           /* bound after connecting */
    int a = Q(accept(l, NULL, NULL));
    say("  accepted: %d", a >= 0);
    socklen_t gl = sizeof got;
    T(getpeername(a, (void *)&got, &gl));
    say("  accepted's peer: %s (len %d)", got.sun_path, (int)gl);
    T(send(c, "hi", 2, 0));
    char b[8]; gl = sizeof got; memset(&got, 0, sizeof got);
    T(recvfrom(a, b, sizeof b, MSG_DONTWAIT, (void *)&got, &gl));
    say("  sender: %s (len %d)", got.sun_path, (int)gl);
    T(send(a, "ho", 2, 0));
    gl = sizeof got; memset(&got, 0, sizeof got);
    T(recvfrom(c, b, sizeof b, MSG_DONTWAIT, (void *)&got, &gl));
    say("  sender: %s (len %d)", got.sun_path, (int)gl);
    int c2 = sock(SOCK_STREAM);
    T(connect(c2, (void *)&la, ll));
    socklen_t neg = (socklen_t)-1;
    T(accept(l, (void *)&got, &neg));
    /* Another type: abstract names are per type, paths are not. */
    int q = sock(SOCK_SEQPACKET);
    T(connect(q, (void *)&la, ll));
    struct sockaddr_un ab; socklen_t abl = addr(&ab, "s81abs", 1);
    int al = sock(SOCK_STREAM);
    Q(bind(al, (void *)&ab, abl)); Q(listen(al, 1));
    T(connect(q, (void *)&ab, abl));
    int d = sock(SOCK_DGRAM);
    T(connect(d, (void *)&ab, abl));
    T(sendto(d, "x", 1, 0, (void *)&ab, abl));
    /* An unconnected stream socket given an address. */
    int u = sock(SOCK_STREAM);
    T(sendto(u, "x", 1, 0, (void *)&la, ll));
    T(send(u, "x", 1, MSG_NOSIGNAL));
    /* Autobind: the family alone gives an abstract name of five hex digits. */
    int ab2 = sock(SOCK_DGRAM);
    struct sockaddr_un fam = { .sun_family = AF_UNIX };
    T(bind(ab2, (void *)&fam, sizeof(sa_family_t)));
    gl = sizeof got; memset(&got, 0, sizeof got);
    T(getsockname(ab2, (void *)&got, &gl));
    int hexok = got.sun_path[0] == 0;
    for (int i = 1; i < 6; i++) hexok &= (got.sun_path[i] >= '0' && got.sun_path[i] <= '9') || (got.sun_path[i] >= 'a' && got.sun_path[i] <= 'f');
    say("  autobound: len %d, five hex digits %d", (int)gl, hexok);
    T(bind(ab2, (void *)&fam, sizeof(sa_family_t)));
    T(bind(ab2, (void *)&ab, abl));
    close(ab2);
    /* listen(0): one connection waits, the next finds the queue full. */
    int z = sock(SOCK_STREAM);
    struct sockaddr_un za; socklen_t zl = addr(&za, "s81zero", 1);
    Q(bind(z, (void *)&za, zl));
    T(listen(z, 0));
    int z1 = sock(SOCK_STREAM | SOCK_NONBLOCK), z2 = sock(SOCK_STREAM | SOCK_NONBLOCK);
    T(connect(z1, (void *)&za, zl));
    T(connect(z2, (void *)&za, zl));
    int za1 = Q(accept(z, NULL, NULL));
    say("  accepted: %d", za1 >= 0);
    T(connect(z2, (void *)&za, zl));
    close(z); close(z1); close(z2); close(za1);
    /* Opening the socket file. */
    T(chmod("/tmp/s81l", 0777));
    T(open("/tmp/s81l", O_RDONLY));
    T(open("/tmp/s81l", O_RDONLY | O_TRUNC));
    close(l); close(c); close(a); close(c2); close(q); close(al); close(d); close(u);
    unlink("/tmp/s81l"); unlink("/tmp/s81cl");
}

static void messages(void) {
    say("datagram shutdown, MSG_TRUNC, zero-length sends, credentials:");
    struct sockaddr_un a1, a2;
    socklen_t l1 = addr(&a1, "s81m1", 1), l2 = addr(&a2, "s81m2", 1);
    int s1 = sock(SOCK_DGRAM), s2 = sock(SOCK_DGRAM);
    Q(bind(s1, (void *)&a1, l1)); Q(bind(s2, (void *)&a2, l2));
    Q(connect(s1, (void *)&a2, l2)); Q(connect(s2, (void *)&a1, l1));
    T(shutdown(s1, SHUT_WR));
    T(write(s1, "abc", 3));
    T(write(s2, "abc", 3));
    T(shutdown(s1, SHUT_RD));
    T(write(s2, "abc", 3));
    close(s1); close(s2);

    int sv[2];
    Q(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv));
    char big[512] = { 0 }, b[512];
    T(send(sv[0], big, sizeof big, 0));
    T(recv(sv[1], b, 100, MSG_TRUNC | MSG_DONTWAIT));
    T(send(sv[0], big, 10, 0));
    struct iovec none = { 0 };
    struct msghdr mh = { .msg_iov = &none, .msg_iovlen = 1 };
    T(recvmsg(sv[1], &mh, MSG_TRUNC | MSG_DONTWAIT));
    say("  msg_flags & MSG_TRUNC: %d", !!(mh.msg_flags & MSG_TRUNC));
    close(sv[0]); close(sv[1]);

    /* A zero-length stream send with a file: nothing arrives. */
    Q(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    char cbuf[CMSG_SPACE(sizeof(int) * 3)] = { 0 };
    struct iovec iv = { big, 0 };
    struct msghdr sm = { .msg_iov = &iv, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = CMSG_SPACE(sizeof(int)) };
    struct cmsghdr *h = CMSG_FIRSTHDR(&sm);
    h->cmsg_level = SOL_SOCKET; h->cmsg_type = SCM_RIGHTS; h->cmsg_len = CMSG_LEN(sizeof(int));
    int fd0 = 0; memcpy(CMSG_DATA(h), &fd0, sizeof fd0);
    T(sendmsg(sv[0], &sm, 0));
    T(write(sv[0], "after", 5));
    struct iovec rv = { b, sizeof b };
    struct msghdr rm = { .msg_iov = &rv, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
    T(recvmsg(sv[1], &rm, MSG_DONTWAIT));
    say("  control length %d", (int)rm.msg_controllen);

    /* Credentials: a send without them does not join one with them, and
     * the rest of a partly read send keeps its own. */
    int one = 1;
    T(write(sv[0], "0123456789", 10));
    T(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one));
    T(write(sv[0], "abcdefghij", 10));
    for (int i = 0; i < 4; i++) {
        rv.iov_len = i < 2 ? sizeof b : 5;
        rm.msg_controllen = sizeof cbuf;
        long r = recvmsg(sv[1], &rm, MSG_DONTWAIT);
        struct cmsghdr *c = rm.msg_controllen ? CMSG_FIRSTHDR(&rm) : NULL;
        struct ucred uc = { -1, 0, 0 };
        if (c && c->cmsg_type == SCM_CREDENTIALS) memcpy(&uc, CMSG_DATA(c), sizeof uc);
        say("  recv %ld: pid is mine %d, uid %d", r, uc.pid == getpid(), (int)uc.uid);
        if (i == 1) T(write(sv[0], "klmnopqrst", 10));
    }
    close(sv[0]); close(sv[1]);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    dgram_peer();
    options();
    binding();
    messages();
    return 0;
}
