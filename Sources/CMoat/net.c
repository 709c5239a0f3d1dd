// Networking shims: glibc declares these only under _GNU_SOURCE, which the
// Swift importer does not define.
#define _GNU_SOURCE
#include "cmoat.h"
#include <sched.h>
#include <string.h>
#include <sys/socket.h>

int moat_accept4(int fd, void *addr, unsigned *len, int flags) {
    return accept4(fd, (struct sockaddr *)addr, (socklen_t *)len, flags);
}

int moat_setns(int fd, int nstype) { return setns(fd, nstype); }

// One message with one passed fd (SCM_RIGHTS), for the egress broker.
int moat_send_fd(int sock, const void *buf, size_t len, int fd) {
    struct iovec iov = { (void *)buf, len };
    char control[CMSG_SPACE(sizeof(int))];
    memset(control, 0, sizeof control);
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (fd >= 0) {
        m.msg_control = control;
        m.msg_controllen = sizeof control;
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    return (int)sendmsg(sock, &m, MSG_NOSIGNAL);
}

// Receives one message and at most one passed fd (*fd = -1 if none).
int moat_recv_fd(int sock, void *buf, size_t len, int *fd) {
    struct iovec iov = { buf, len };
    char control[CMSG_SPACE(sizeof(int))];
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control };
    *fd = -1;
    ssize_t n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
    if (n < 0) return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
            memcpy(fd, CMSG_DATA(c), sizeof(int));
    }
    return (int)n;
}
