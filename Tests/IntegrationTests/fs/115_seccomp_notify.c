/* Seccomp user notifications (seccomp_unotify(2)): a child installs a filter
 * with SECCOMP_FILTER_FLAG_NEW_LISTENER and hands the listener to its
 * parent over a socket pair; the parent, as supervisor, receives each
 * filtered call, answers with a value, an error, "continue" and an
 * installed file, checks the ioctls' errors, sees the end of the child as
 * POLLHUP; a listener closed under a waiting call answers ENOSYS. */
#include "t.h"
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#define NR_TARGET SYS_getpgid
#define MAGIC (-4242L)

static int install_listener(void) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NR_TARGET, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)MAGIC, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog fp = { .len = 6, .filter = f };
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &fp);
}

static void send_fd(int sock, int fd) {
    char c = 'x';
    struct iovec io = { &c, 1 };
    union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } u;
    struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET; cm->cmsg_type = SCM_RIGHTS; cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    sendmsg(sock, &m, 0);
}
static int recv_fd(int sock) {
    char c;
    struct iovec io = { &c, 1 };
    union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } u;
    struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b };
    if (recvmsg(sock, &m, 0) != 1) return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof fd);
    return fd;
}
static void sync_read(int s) { char c; read(s, &c, 1); }
static void sync_write(int s) { write(s, "k", 1); }

static void child(int s) {
    int l = install_listener();
    if (l < 0) { say("child: install failed %s", ename(errno)); _exit(1); }
    /* The listener: an anonymous file, close-on-exec. */
    char link[64], name[64] = "";
    snprintf(link, sizeof link, "/proc/self/fd/%d", l);
    readlink(link, name, sizeof name - 1);
    say("child: listener is %s, cloexec %d", name, (fcntl(l, F_GETFD) & FD_CLOEXEC) != 0);
    /* A chain takes one listener. */
    T(install_listener());
    send_fd(s, l);
    close(l);
    /* From here the parent prints as it serves: this child's lines wait in
     * memory and go out once the parent is done (in its waitpid). */
    char *mem = NULL;
    size_t memlen = 0;
    FILE *real = stdout;
    stdout = open_memstream(&mem, &memlen);
    sync_read(s);
    T(syscall(NR_TARGET, MAGIC, 1));                 /* answered with a value */
    T(syscall(NR_TARGET, MAGIC, 2));                 /* answered with an error */
    T(syscall(NR_TARGET, MAGIC, 3) == -1 && errno == ESRCH);   /* continued: the real call runs */
    long fd = syscall(NR_TARGET, MAGIC, 4);          /* answered with an installed file */
    say("child: got a file: %d", fd >= 0);
    T(write(fd, "via addfd", 9));
    close(fd);
    sync_read(s);                                    /* the parent closed its listener */
    T(syscall(NR_TARGET, MAGIC, 5));
    T(getpgid(0) == getpgrp());
    fclose(stdout);
    stdout = real;
    fwrite(mem, 1, memlen, stdout);
    fflush(stdout);
    _exit(0);
}

int main(void) {
    int sp[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
    pid_t pid = fork();
    if (pid == 0) { close(sp[0]); child(sp[1]); }
    close(sp[1]);
    int l = recv_fd(sp[0]);
    say("parent: got the listener: %d", l >= 0);
    struct seccomp_notif n;
    struct seccomp_notif_resp r;
    memset(&n, 0, sizeof n);
    n.id = 1;
    T(ioctl(l, SECCOMP_IOCTL_NOTIF_RECV, &n));       /* not zeroed: EINVAL */
    struct pollfd pf = { l, POLLIN | POLLOUT, 0 };
    T(poll(&pf, 1, 0));
    sync_write(sp[0]);

    for (int round = 1; round <= 4; round++) {
        memset(&n, 0, sizeof n);
        T(ioctl(l, SECCOMP_IOCTL_NOTIF_RECV, &n));
        say("round %d: nr ok %d, arch ok %d, args %lld %lld, pid ok %d, flags %u", round,
            n.data.nr == NR_TARGET, n.data.arch == AUDIT_ARCH_X86_64, (long long)n.data.args[0],
            (long long)n.data.args[1], n.pid == (unsigned)pid, n.flags);
        pf.revents = 0;
        poll(&pf, 1, 0);
        say("round %d: poll %#x", round, pf.revents);
        T(ioctl(l, SECCOMP_IOCTL_NOTIF_ID_VALID, &n.id));
        memset(&r, 0, sizeof r);
        r.id = n.id + 1000;
        T(ioctl(l, SECCOMP_IOCTL_NOTIF_SEND, &r));   /* unknown id: ENOENT */
        r.id = n.id;
        r.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        r.val = 1;
        T(ioctl(l, SECCOMP_IOCTL_NOTIF_SEND, &r));   /* continue with a value: EINVAL */
        r.val = 0; r.flags = 0;
        if (round == 1) r.val = 777;
        if (round == 2) r.error = -EPERM;
        if (round == 3) r.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        if (round == 4) {
            int p[2];
            pipe(p);
            struct seccomp_notif_addfd a = { .id = n.id, .flags = 4, .srcfd = p[1] };
            T(ioctl(l, SECCOMP_IOCTL_NOTIF_ADDFD, &a));       /* unknown flag: EINVAL */
            a.flags = 0; a.newfd = 9;
            T(ioctl(l, SECCOMP_IOCTL_NOTIF_ADDFD, &a));       /* newfd without SETFD: EINVAL */
            a.newfd = 0; a.srcfd = 999;
            T(ioctl(l, SECCOMP_IOCTL_NOTIF_ADDFD, &a));       /* EBADF */
            a.srcfd = p[1]; a.flags = SECCOMP_ADDFD_FLAG_SEND;
            long fd = ioctl(l, SECCOMP_IOCTL_NOTIF_ADDFD, &a);
            say("round 4: addfd+send gave a descriptor: %d", fd >= 0);
            say("round 4: a second answer fails: %d", ioctl(l, SECCOMP_IOCTL_NOTIF_SEND, &r) == -1);
            close(p[1]);
            char buf[16] = "";
            T(read(p[0], buf, sizeof buf));
            say("round 4: read %s", buf);
            close(p[0]);
            continue;
        }
        T(ioctl(l, SECCOMP_IOCTL_NOTIF_SEND, &r));
        T(ioctl(l, SECCOMP_IOCTL_NOTIF_ID_VALID, &n.id));     /* answered: ENOENT */
    }
    close(l);
    sync_write(sp[0]);
    int st;
    waitpid(pid, &st, 0);
    say("child: exit %d", WEXITSTATUS(st));

    /* A listener whose only process has ended polls as POLLHUP. */
    int sp2[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sp2);
    pid_t p2 = fork();
    if (p2 == 0) {
        int l2 = install_listener();
        send_fd(sp2[1], l2);
        _exit(0);
    }
    int l2 = recv_fd(sp2[0]);
    waitpid(p2, &st, 0);
    struct pollfd pf2 = { l2, POLLIN, 0 };
    T(poll(&pf2, 1, 1000));
    say("after the child ended: revents %#x", pf2.revents);
    return 0;
}
