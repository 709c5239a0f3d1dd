/* Control messages and vectors an application hands sendmsg/recvmsg/readv:
 * the Sentry walks the control buffer and the iovec array itself, so every
 * malformed shape must get Linux's answer. Under Moat a second control
 * message whose cmsg_len was close to 2^64 overflowed the Sentry's bounds
 * check and crashed it (found by the syscall-args fuzz target). */
#include "t.h"
#include <sys/socket.h>

static int sp[2];

/* sendmsg of one byte with the given control buffer. */
static long send_ctl(void *ctl, size_t len) {
    char c = 'x';
    struct iovec v = {&c, 1};
    struct msghdr m = {0};
    m.msg_iov = &v; m.msg_iovlen = 1;
    m.msg_control = ctl; m.msg_controllen = len;
    long r = sendmsg(sp[0], &m, MSG_DONTWAIT);
    if (r >= 0) { /* drain it (and any fd it carried) */
        char b[8]; char cb[256];
        struct iovec rv = {b, sizeof b};
        struct msghdr rm = {0};
        rm.msg_iov = &rv; rm.msg_iovlen = 1; rm.msg_control = cb; rm.msg_controllen = sizeof cb;
        int e = errno;
        if (recvmsg(sp[1], &rm, MSG_DONTWAIT) >= 0)
            for (struct cmsghdr *h = CMSG_FIRSTHDR(&rm); h; h = CMSG_NXTHDR(&rm, h))
                if (h->cmsg_type == SCM_RIGHTS) close(*(int *)CMSG_DATA(h));
        errno = e;
    }
    return r;
}

int main(void) {
    T(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    union { char b[256]; struct cmsghdr align; } u;
    struct cmsghdr *h = (struct cmsghdr *)u.b;
    int fd = 0;

    /* One well-formed SCM_RIGHTS, then a second header claiming ~2^64 bytes. */
    memset(&u, 0, sizeof u);
    h->cmsg_len = CMSG_LEN(sizeof fd); h->cmsg_level = SOL_SOCKET; h->cmsg_type = SCM_RIGHTS;
    memcpy(CMSG_DATA(h), &fd, sizeof fd);
    struct cmsghdr *h2 = (struct cmsghdr *)(u.b + CMSG_SPACE(sizeof fd));
    h2->cmsg_len = (size_t)-1; h2->cmsg_level = SOL_SOCKET; h2->cmsg_type = SCM_RIGHTS;
    T(send_ctl(u.b, CMSG_SPACE(sizeof fd) + sizeof(struct cmsghdr)));
    h2->cmsg_len = (size_t)-1 - 8;
    T(send_ctl(u.b, CMSG_SPACE(sizeof fd) + sizeof(struct cmsghdr)));
    h2->cmsg_len = (size_t)1 << 63;
    T(send_ctl(u.b, CMSG_SPACE(sizeof fd) + sizeof(struct cmsghdr)));
    /* The first header alone claims more than the buffer. */
    h->cmsg_len = (size_t)-1;
    T(send_ctl(u.b, CMSG_SPACE(sizeof fd)));
    /* A header shorter than itself. */
    h->cmsg_len = 8;
    T(send_ctl(u.b, CMSG_SPACE(sizeof fd)));
    /* Well formed, with a tail too short for a second header: ignored. */
    h->cmsg_len = CMSG_LEN(sizeof fd);
    T(send_ctl(u.b, CMSG_SPACE(sizeof fd) + 8));
    /* Well formed alone. */
    T(send_ctl(u.b, CMSG_SPACE(sizeof fd)));
    /* A control length past optmem_max. */
    T(send_ctl(u.b, 1 << 20));

    /* Vectors: a negative length, and lengths that add past MAX_RW_COUNT. */
    char buf[16] = "abcdefgh";
    struct iovec neg[2] = {{buf, 4}, {buf, (size_t)-1}};
    T(writev(sp[0], neg, 2));
    struct msghdr m = {0};
    m.msg_iov = neg; m.msg_iovlen = 2;
    T(sendmsg(sp[0], &m, MSG_DONTWAIT));
    m.msg_iovlen = 1025;
    T(sendmsg(sp[0], &m, MSG_DONTWAIT));
    return 0;
}
