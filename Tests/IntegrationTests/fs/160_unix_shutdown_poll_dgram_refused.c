/* Unix sockets after shutdown and after the peer closed: poll reports
 * POLLOUT while the send buffer has room, shut or not (stream, datagram and
 * seqpacket alike), and none once it is full; a datagram send to a closed
 * peer is ECONNREFUSED once, then ENOTCONN, with no SIGPIPE; a stream
 * connection a listener never accepted, or whose peer closed with bytes
 * unread, is reset (ECONNRESET once, POLLERR, SO_ERROR). */
#include "t.h"
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stddef.h>

static void show(const char *w, int fd) {
    struct pollfd p = { fd, POLLIN | POLLOUT | POLLRDHUP, 0 };
    int n = poll(&p, 1, 0);
    printf("%s: %d %#x\n", w, n, p.revents);
}

static int sigpipes;
static void on_pipe(int s) { (void)s; sigpipes++; }

int main(void) {
    signal(SIGPIPE, on_pipe);
    int types[] = { SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET };
    const char *names[] = { "stream", "dgram", "seqpacket" };
    for (int i = 0; i < 3; i++) {
        char w[80];
        int sv[2];
        T(socketpair(AF_UNIX, types[i], 0, sv));
        snprintf(w, sizeof w, "%s fresh", names[i]); show(w, sv[0]);
        T(shutdown(sv[0], SHUT_WR));
        snprintf(w, sizeof w, "%s after SHUT_WR", names[i]); show(w, sv[0]);
        snprintf(w, sizeof w, "%s its peer", names[i]); show(w, sv[1]);
        T(send(sv[0], "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL));
        T(shutdown(sv[0], SHUT_RD));
        snprintf(w, sizeof w, "%s after SHUT_RDWR", names[i]); show(w, sv[0]);
        snprintf(w, sizeof w, "%s its peer", names[i]); show(w, sv[1]);
        T(close(sv[1]));
        snprintf(w, sizeof w, "%s peer closed", names[i]); show(w, sv[0]);
        T(close(sv[0]));

        T(socketpair(AF_UNIX, types[i], 0, sv));
        char buf[4096] = { 0 };
        int k = 0;
        while (send(sv[0], buf, sizeof buf, MSG_DONTWAIT) > 0 && k < 100000) k++;
        errno = 0;
        snprintf(w, sizeof w, "%s full", names[i]); show(w, sv[0]);
        T(shutdown(sv[0], SHUT_WR));
        snprintf(w, sizeof w, "%s full after SHUT_WR", names[i]); show(w, sv[0]);
        T(close(sv[0]));
        T(close(sv[1]));
    }
    int sv[2];
    T(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    T(close(sv[0]));
    T(write(sv[1], "abc", 3));
    T(write(sv[1], "abc", 3));
    T(send(sv[1], "abc", 3, 0));
    printf("SIGPIPEs: %d\n", sigpipes);
    T(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv));
    T(close(sv[0]));
    T(write(sv[1], "abc", 3));
    printf("SIGPIPEs: %d\n", sigpipes);

    /* A listener closed with a connection it never accepted: the client
     * reads ECONNRESET once, then end of file; poll says POLLERR|POLLHUP
     * until then; SO_ERROR reports it once. And a peer that closes with
     * bytes it never read resets the connection the same way. */
    for (int round = 0; round < 3; round++) {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "fs160-%d-%d", (int)getpid(), round);
        socklen_t al = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(a.sun_path + 1);
        int l = T(socket(AF_UNIX, SOCK_STREAM, 0)), c = T(socket(AF_UNIX, SOCK_STREAM, 0));
        T(bind(l, (struct sockaddr *)&a, al));
        T(listen(l, 5));
        T(connect(c, (struct sockaddr *)&a, al));
        if (round == 2) {
            int s2 = T(accept(l, NULL, NULL));
            T(write(c, "unread", 6));
            T(close(s2));
        }
        T(close(l));
        show("after the close", c);
        char b[8];
        int e = 0;
        socklen_t el = sizeof e;
        if (round == 1) {
            T(getsockopt(c, SOL_SOCKET, SO_ERROR, &e, &el));
            printf("SO_ERROR %s\n", e ? ename(e) : "0");
            T(getsockopt(c, SOL_SOCKET, SO_ERROR, &e, &el));
            printf("SO_ERROR %s\n", e ? ename(e) : "0");
        }
        T(read(c, b, sizeof b));
        T(read(c, b, sizeof b));
        show("after the reads", c);
        T(close(c));
    }
    return 0;
}
