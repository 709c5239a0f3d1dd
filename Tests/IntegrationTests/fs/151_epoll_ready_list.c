/* epoll's ready list: only the entries whose files moved are reported, for
 * files the Sentry emulates (pipes, unix sockets, eventfds) and for the
 * host-backed inet sockets it watches through a host epoll instance of its
 * own; level- and edge-triggered entries, EPOLLONESHOT, MOD, DEL, closed
 * files, a dup'd socket added under two fds, a unix socket connected after
 * it was added, an epoll instance inside another one and poll() of an
 * epoll fd that watches inet sockets. */
#include "t.h"
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>

#define NPIPES 200
#define NCONN 64

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* epoll_wait, then print the (data, events) pairs sorted by data. */
static int show(const char *what, int ep, int timeout) {
    struct epoll_event ev[512];
    int n = epoll_wait(ep, ev, 512, timeout);
    if (n < 0) { printf("%s: epoll_wait = -1 %s\n", what, ename(errno)); return n; }
    uint64_t keys[512];
    for (int i = 0; i < n; i++) keys[i] = (ev[i].data.u64 << 32) | ev[i].events;
    qsort(keys, n, sizeof keys[0], cmp_u64);
    printf("%s: %d", what, n);
    for (int i = 0; i < n; i++) printf(" %llu:%#x", (unsigned long long)(keys[i] >> 32), (unsigned)(keys[i] & 0xffffffff));
    printf("\n");
    fflush(stdout);
    return n;
}

static void add(int ep, int fd, uint32_t events, uint64_t data) {
    struct epoll_event e = { .events = events, .data.u64 = data };
    Q(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e));
}

static void pipes(void) {
    int p[NPIPES][2];
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < NPIPES; i++) {
        Q(pipe2(p[i], O_NONBLOCK));
        add(ep, p[i][0], EPOLLIN | (i % 2 ? EPOLLET : 0), i);
    }
    show("pipes idle", ep, 0);
    Q(write(p[7][1], "ab", 2)); Q(write(p[8][1], "ab", 2)); Q(write(p[150][1], "x", 1));
    show("pipes 7 8 150 written", ep, 0);
    /* 8 (level) stays ready; 7 (edge) was reported and nothing new came. */
    show("again", ep, 0);
    char c;
    Q(read(p[8][0], &c, 1));
    show("8 read one of two", ep, 0);
    Q(read(p[8][0], &c, 1));
    Q(read(p[150][0], &c, 1));
    show("8 and 150 drained", ep, 0);
    Q(write(p[7][1], "c", 1));
    show("7 (edge) written again", ep, 0);
    /* A full pipe's write end, edge-triggered for output, drained by its reader. */
    int fill[2];
    Q(pipe2(fill, O_NONBLOCK));
    char buf[4096] = {0};
    while (write(fill[1], buf, sizeof buf) > 0) {}
    add(ep, fill[1], EPOLLOUT | EPOLLET, 1000);
    show("full pipe's write end", ep, 0);
    while (read(fill[0], buf, sizeof buf) > 0) {}
    show("drained", ep, 0);
    /* Oneshot, then MOD re-arms it. */
    add(ep, p[0][1], EPOLLOUT | EPOLLONESHOT, 2000);
    show("oneshot write end", ep, 0);
    show("oneshot again", ep, 0);
    struct epoll_event e = { .events = EPOLLOUT | EPOLLONESHOT, .data.u64 = 2001 };
    T(epoll_ctl(ep, EPOLL_CTL_MOD, p[0][1], &e));
    show("after MOD", ep, 0);
    T(epoll_ctl(ep, EPOLL_CTL_DEL, p[0][1], NULL));
    /* A closed pipe leaves the set; its writer's HUP is not reported. */
    Q(write(p[10][1], "z", 1));
    Q(close(p[10][0]));
    show("10 written then its read end closed", ep, 0);
    /* A writer gone: HUP on the reader. */
    Q(close(p[11][1]));
    show("11's writer closed", ep, 0);
    /* More ready entries than one wait takes: each gets its turn. */
    for (int i = 20; i < 30; i++) Q(write(p[i * 2][1], "r", 1));
    struct epoll_event few[4];
    int seen[NPIPES] = {0}, total = 0;
    for (int round = 0; round < 3; round++) {
        int n = epoll_wait(ep, few, 4, 0);
        for (int i = 0; i < n; i++) { if (!seen[few[i].data.u64]) total++; seen[few[i].data.u64]++; }
    }
    say("10 ready (level), 3 waits of 4: %d distinct reported", total);
    for (int i = 0; i < NPIPES; i++) { close(p[i][0]); close(p[i][1]); }
    close(fill[0]); close(fill[1]);
    close(ep);
}

static int listener(struct sockaddr_in *a) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    socklen_t len = sizeof *a;
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    Q(bind(l, (struct sockaddr *)a, sizeof *a));
    Q(listen(l, 128));
    Q(getsockname(l, (struct sockaddr *)a, &len));
    return l;
}

static void inet(void) {
    struct sockaddr_in a;
    int l = listener(&a);
    int cli[NCONN], srv[NCONN];
    for (int i = 0; i < NCONN; i++) {
        cli[i] = socket(AF_INET, SOCK_STREAM, 0);
        Q(connect(cli[i], (struct sockaddr *)&a, sizeof a));
        srv[i] = accept4(l, NULL, NULL, SOCK_NONBLOCK);
        if (srv[i] < 0) { printf("accept4 = -1 %s\n", ename(errno)); return; }
    }
    int ep = epoll_create1(0);
    for (int i = 0; i < NCONN; i++) add(ep, srv[i], EPOLLIN | EPOLLRDHUP | (i % 2 ? EPOLLET : 0), i);
    add(ep, l, EPOLLIN, 500);
    show("inet idle", ep, 0);
    Q(write(cli[3], "hello", 5)); Q(write(cli[4], "hello", 5)); Q(write(cli[40], "x", 1));
    show("3 4 40 sent", ep, 1000);
    show("again (3 edge, 4 and 40 level)", ep, 0);
    char buf[64];
    Q(read(srv[4], buf, sizeof buf)); Q(read(srv[40], buf, sizeof buf));
    show("4 and 40 read", ep, 0);
    Q(write(cli[3], "more", 4));
    show("3 (edge) sent more", ep, 1000);
    Q(shutdown(cli[9], SHUT_WR));
    show("9's peer shut down writing", ep, 1000);
    /* A blocking wait woken by data that arrives later (a child sends it). */
    pid_t pid = fork();
    if (pid == 0) { usleep(50000); Q(write(cli[20], "late", 4)); _exit(0); }
    show("wait for 20", ep, 5000);
    Q(waitpid(pid, NULL, 0));
    Q(read(srv[20], buf, sizeof buf));
    /* A new connection on the listener. */
    int late = socket(AF_INET, SOCK_STREAM, 0);
    Q(connect(late, (struct sockaddr *)&a, sizeof a));
    show("listener has a connection", ep, 1000);
    int acc = accept(l, NULL, NULL);
    /* A dup of a socket added under a second fd: both entries report. */
    int d = dup(srv[30]);
    add(ep, d, EPOLLIN, 600);
    Q(write(cli[30], "d", 1));
    show("30 and its dup", ep, 1000);
    T(epoll_ctl(ep, EPOLL_CTL_DEL, d, NULL));
    close(d);
    Q(read(srv[30], buf, sizeof buf));
    show("dup removed, 30 read", ep, 0);
    /* Output readiness, edge-triggered, via MOD. */
    struct epoll_event e = { .events = EPOLLOUT | EPOLLET, .data.u64 = 700 };
    T(epoll_ctl(ep, EPOLL_CTL_MOD, srv[50], &e));
    show("50 modified to EPOLLOUT|EPOLLET", ep, 0);
    show("50 again", ep, 0);
    /* A closed socket leaves the set. */
    Q(write(cli[60], "c", 1));
    Q(close(srv[60]));
    show("60 written, then closed", ep, 200);
    /* poll() of the epoll fd: readable once one of its sockets is. */
    struct pollfd pf = { .fd = ep, .events = POLLIN };
    T(poll(&pf, 1, 0));
    Q(write(cli[61], "p", 1));
    T(poll(&pf, 1, 2000));
    say("revents %#x", pf.revents);
    show("61 sent", ep, 0);
    /* An epoll instance inside another: the outer wait wakes for the inner
     * one's socket. */
    int outer = epoll_create1(0);
    int inner = epoll_create1(0);
    add(inner, srv[62], EPOLLIN, 62);
    add(outer, inner, EPOLLIN, 9000);
    show("outer idle", outer, 0);
    pid = fork();
    if (pid == 0) { usleep(50000); Q(write(cli[62], "n", 1)); _exit(0); }
    show("outer waits for the inner's socket", outer, 5000);
    show("inner", inner, 0);
    Q(waitpid(pid, NULL, 0));
    for (int i = 0; i < NCONN; i++) { close(cli[i]); if (i != 60) close(srv[i]); }
    close(late); close(acc); close(l); close(ep); close(inner); close(outer);
}

static void unix_sockets(void) {
    /* Added before it is connected: the connection's data is reported. */
    char path[] = "/tmp/epoll-151.sock";
    unlink(path);
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    strcpy(a.sun_path, path);
    Q(bind(l, (struct sockaddr *)&a, sizeof a));
    Q(listen(l, 4));
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int ep = epoll_create1(0);
    add(ep, c, EPOLLIN, 1);
    add(ep, l, EPOLLIN, 2);
    show("unconnected unix socket", ep, 0);
    Q(connect(c, (struct sockaddr *)&a, sizeof a));
    show("connected (listener ready)", ep, 0);
    int s = accept(l, NULL, NULL);
    show("accepted", ep, 0);
    pid_t pid = fork();
    if (pid == 0) { usleep(50000); Q(write(s, "u", 1)); _exit(0); }
    show("wait for the peer's byte", ep, 5000);
    Q(waitpid(pid, NULL, 0));
    char u;
    Q(read(c, &u, 1));
    /* An eventfd and a socketpair beside it. */
    int efd = eventfd(0, EFD_NONBLOCK);
    int sp[2];
    Q(socketpair(AF_UNIX, SOCK_DGRAM, 0, sp));
    add(ep, efd, EPOLLIN | EPOLLET, 3);
    add(ep, sp[0], EPOLLIN, 4);
    uint64_t one = 1;
    Q(write(efd, &one, 8));
    Q(send(sp[1], "dg", 2, 0));
    show("eventfd and datagram", ep, 0);
    show("again (eventfd edge, datagram level)", ep, 0);
    Q(write(efd, &one, 8));
    show("eventfd written again", ep, 0);
    close(c); close(s); close(l); close(efd); close(sp[0]); close(sp[1]); close(ep);
    unlink(path);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    pipes();
    inet();
    unix_sockets();
    return 0;
}
