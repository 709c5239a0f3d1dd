// TCP request/response round trip on loopback: a child echoes, the parent
// sends 64 bytes and waits for them back, N times (TCP_NODELAY on both
// ends). Prints ns_per_rt=<mean ns per round trip> (connection set-up
// excluded). `tcprr N IDLE` with IDLE > 0: the echo child is an epoll
// server that also holds IDLE idle connections in its epoll set (a server
// with many keep-alive clients), the parent opening them first.
#include <netinet/in.h>
#include <sys/epoll.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int full(int fd, char *b, int n, int rd) {
    for (int off = 0; off < n;) {
        int r = rd ? (int)read(fd, b + off, n - off) : (int)write(fd, b + off, n - off);
        if (r <= 0) return -1;
        off += r;
    }
    return 0;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 10000;
    int idle = argc > 2 ? atoi(argv[2]) : 0;
    int one = 1;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
    socklen_t len = sizeof a;
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1024) || getsockname(l, (struct sockaddr *)&a, &len)) { perror("listen"); return 1; }
    pid_t pid = fork();
    if (pid == 0 && idle > 0) {
        int ep = epoll_create1(0);
        for (int i = 0; i <= idle; i++) {
            int c = accept(l, NULL, NULL);
            if (c < 0) { perror("accept"); _exit(1); }
            setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            struct epoll_event e = { .events = EPOLLIN, .data.fd = c };
            if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &e)) { perror("epoll_ctl"); _exit(1); }
        }
        char b[64];
        for (;;) {
            struct epoll_event ev[16];
            int k = epoll_wait(ep, ev, 16, -1);
            for (int i = 0; i < k; i++)
                if (full(ev[i].data.fd, b, 64, 1) || full(ev[i].data.fd, b, 64, 0)) _exit(0);
        }
    }
    if (pid == 0) {
        int c = accept(l, NULL, NULL);
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char b[64];
        while (full(c, b, 64, 1) == 0 && full(c, b, 64, 0) == 0) {}
        _exit(0);
    }
    for (int i = 0; i < idle; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
    }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char b[64] = "ping";
    for (int i = 0; i < 100; i++) if (full(s, b, 64, 0) || full(s, b, 64, 1)) return 1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) if (full(s, b, 64, 0) || full(s, b, 64, 1)) { fprintf(stderr, "short\n"); return 1; }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    close(s);
    waitpid(pid, NULL, 0);
    double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
    printf("ns_per_rt=%.1f\n", ns / n);
    return 0;
}
