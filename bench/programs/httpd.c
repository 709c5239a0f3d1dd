// A small HTTP/1.1 server for wrk: one thread, poll, keep-alive, a fixed
// 13-byte body for every request. Usage: httpd PORT [SECONDS] (exits after
// SECONDS, default 60).
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXC 1024
static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nhello, world\n";

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 8080;
    int secs = argc > 2 ? atoi(argv[2]) : 60;
    int one = 1;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 512)) { perror("listen"); return 1; }
    static struct pollfd p[MAXC + 1];
    static char buf[MAXC + 1][4096];
    static int have[MAXC + 1];
    int n = 1;
    p[0].fd = l; p[0].events = POLLIN;
    time_t end = time(NULL) + secs;
    while (time(NULL) < end) {
        if (poll(p, n, 1000) < 0) continue;
        if (p[0].revents & POLLIN && n <= MAXC) {
            int c = accept(l, NULL, NULL);
            if (c >= 0) {
                setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                p[n].fd = c; p[n].events = POLLIN; p[n].revents = 0; have[n] = 0; n++;
            }
        }
        for (int i = 1; i < n; i++) {
            if (!p[i].revents) continue;
            int r = read(p[i].fd, buf[i] + have[i], sizeof buf[i] - 1 - have[i]);
            if (r <= 0) {
                close(p[i].fd);
                p[i] = p[n - 1]; have[i] = have[n - 1]; memcpy(buf[i], buf[n - 1], have[i]);
                n--; i--; continue;
            }
            have[i] += r; buf[i][have[i]] = 0;
            char *e;
            while ((e = strstr(buf[i], "\r\n\r\n"))) {
                if (write(p[i].fd, resp, sizeof resp - 1) < 0) break;
                int used = e + 4 - buf[i];
                memmove(buf[i], buf[i] + used, have[i] - used + 1);
                have[i] -= used;
            }
        }
    }
    return 0;
}
