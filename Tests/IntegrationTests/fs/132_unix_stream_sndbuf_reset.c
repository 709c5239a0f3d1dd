/* AF_UNIX stream buffers and resets (session 18; gVisor's socket_unix_stream
 * SendBufferOverflow, IncreasedSocketSendBufUnblocksWrites and
 * ReadOneSideClosedWithUnreadData):
 * - SO_SNDBUF shrunk below what is queued at the peer: the next
 *   MSG_DONTWAIT send is EAGAIN; reading the queue empty lets sends go on;
 * - a non-blocking writer filled to EAGAIN sends again once SO_SNDBUF grows;
 * - a socket closed with bytes unread: its peer's next read is ECONNRESET,
 *   once, then end of file; a socket closed with nothing unread gives end
 *   of file alone; the same for SOCK_SEQPACKET;
 * - POLLHUP once the peer shut both directions (SHUT_RDWR), not SHUT_RD alone.
 * Only results and errnos are printed, never byte counts that depend on
 * the kernel's per-buffer overhead. */
#include "t.h"
#include <poll.h>
#include <sys/socket.h>

static void say_r(const char *what, long r) { say("%s: %s", what, r < 0 ? ename(errno) : r == 0 ? "0" : "> 0"); }

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    static char buf[1 << 16];
    int sv[2];

    T(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    say_r("send 16384", send(sv[0], buf, 16384, MSG_DONTWAIT));
    int small = 4096;
    T(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small));
    say_r("send after SO_SNDBUF 4096", send(sv[0], buf, 16384, MSG_DONTWAIT));
    long got = 0, n;
    while ((n = recv(sv[1], buf, sizeof buf, MSG_DONTWAIT)) > 0) got += n;
    say("drained: %ld", got);
    say_r("send once drained", send(sv[0], buf, 1024, MSG_DONTWAIT));
    close(sv[0]); close(sv[1]);

    T(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
    int size = 0;
    socklen_t len = sizeof size;
    T(getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, &len));
    int sends = 0;
    while (send(sv[0], buf, size / 4, 0) > 0 && sends < 10000) sends++;
    say("filled: %s", ename(errno));
    size *= 2;
    T(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size));
    say_r("send after SO_SNDBUF doubled", send(sv[0], buf, 1024, 0));
    close(sv[0]); close(sv[1]);

    /* POLLHUP once both directions are shut: by the peer's SHUT_RDWR, not
     * by its SHUT_RD alone. */
    for (int how = SHUT_RD; how <= SHUT_RDWR; how += SHUT_RDWR - SHUT_RD) {
        T(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
        T(shutdown(sv[1], how));
        struct pollfd p = { sv[0], 0, 0 };
        T(poll(&p, 1, 0));
        say("after the peer's %s: POLLHUP %d", how == SHUT_RD ? "SHUT_RD" : "SHUT_RDWR", !!(p.revents & POLLHUP));
        close(sv[0]); close(sv[1]);
    }

    int types[] = { SOCK_STREAM, SOCK_SEQPACKET };
    for (int i = 0; i < 2; i++) {
        say("%s", i == 0 ? "SOCK_STREAM" : "SOCK_SEQPACKET");
        T(socketpair(AF_UNIX, types[i], 0, sv));
        T(write(sv[1], buf, 10));
        T(shutdown(sv[0], SHUT_RDWR));
        say_r("  read after the peer's shutdown", read(sv[1], buf, 10));
        T(close(sv[0]));
        say_r("  read after the peer closed with 10 bytes unread", read(sv[1], buf, 10));
        say_r("  read again", read(sv[1], buf, 10));
        close(sv[1]);

        T(socketpair(AF_UNIX, types[i], 0, sv));
        T(write(sv[1], buf, 10));
        T(read(sv[0], buf, 10));
        T(close(sv[0]));
        say_r("  read after the peer closed with nothing unread", read(sv[1], buf, 10));
        close(sv[1]);
    }
    return 0;
}
