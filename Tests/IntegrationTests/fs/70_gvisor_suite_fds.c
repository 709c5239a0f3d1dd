/* More edges that gVisor's syscall suite (Tests/Conformance/gvisor-syscalls.sh:
 * fcntl, pipe, ppoll, write, socket_unix_pair) found where Moat differed
 * from Linux:
 * - F_GETFL: open(2) adds O_LARGEFILE (a named FIFO too), pipe(2) and
 *   socketpair(2) do not; O_PATH keeps only O_PATH, O_DIRECTORY and
 *   O_NOFOLLOW; an O_PATH descriptor takes no fcntl but F_DUPFD, F_GETFD,
 *   F_SETFD and F_GETFL (EBADF); open(O_DIRECT) of a directory is EINVAL;
 *   getdents64 with a count past INT_MAX is EINVAL;
 * - F_SETOWN / F_SETOWN_EX of a pid nobody has is ESRCH, INT_MIN is EINVAL;
 * - record locks on pipes and sockets; a close of *another* descriptor of
 *   the file drops the process's locks;
 * - fstatfs of a pipe, a socket, an eventfd: pipefs, sockfs, anon_inodefs;
 *   truncate(2) and ftruncate(2) of a FIFO are EINVAL;
 * - /proc/self/fdinfo/N (pos, flags), and a stat of it keeps no pipe end open;
 * - ppoll, pselect6 and select write the time left back; ppoll's and
 *   pselect6's sigset size must be the kernel's (8);
 * - SIGXFSZ and SIGPIPE come as SI_USER from the process itself;
 * - AF_UNIX: credentials sent while only the sender has SO_PASSCRED; an
 *   SCM_RIGHTS of no fds; a zero-length recvmsg takes the fd; a write to a
 *   peer shut for reading is EPIPE; /proc/self/fd/N of a socket is ENXIO;
 *   SIOCGIFINDEX; other levels than SOL_SOCKET are EOPNOTSUPP; bind into a
 *   missing directory is ENOENT; SO_PEERCRED of a lone and of a listening
 *   socket; an SCM_RIGHTS sent over TCP is ignored (the send succeeds). */
#include "t.h"
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/un.h>

static void getfl(const char *what, int fd) {
    long r = fcntl(fd, F_GETFL);
    if (r < 0) say("F_GETFL %s = -1 %s", what, ename(errno)); else say("F_GETFL %s = 0%lo", what, r);
}

static void status_flags(void) {
    T(mkdir("d", 0755));
    int p = T(open("d", O_RDWR | O_DIRECT | O_SYNC | O_NONBLOCK | O_APPEND | O_PATH | O_NOFOLLOW | O_DIRECTORY));
    getfl("O_PATH dir", p);
    T(fcntl(p, F_SETFL, 0));
    T(fcntl(p, F_SETOWN, 0));
    T(fcntl(p, F_GETOWN));
    struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET };
    T(fcntl(p, F_GETLK, &fl));
    int d = fcntl(p, F_DUPFD, 0);
    T(d >= 0);
    getfl("its dup", d);
    close(d);
    close(p);
    T(open("d", O_RDONLY | O_DIRECT));   /* a directory has no direct I/O */
    int dd = open("d", O_RDONLY | O_DIRECTORY);
    char db[256];
    T(syscall(SYS_getdents64, dd, db, 0x80000000u));   /* past INT_MAX: no record fits */
    T(syscall(SYS_getdents64, dd, db, 0xffffffffu));
    close(dd);
    put("f", "data");
    int f = open("f", O_RDWR | O_APPEND);
    getfl("file", f);
    close(f);
    int pp[2];
    T(pipe(pp));
    getfl("pipe read end", pp[0]);
    getfl("pipe write end", pp[1]);
    close(pp[0]); close(pp[1]);
    T(mkfifo("fifo", 0644));
    int r = open("fifo", O_RDONLY | O_NONBLOCK);
    getfl("named FIFO", r);
    int s[2];
    T(socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    getfl("socketpair", s[0]);
    close(s[0]); close(s[1]);
    int m = memfd_create("m", 0);
    getfl("memfd", m);
    close(m);
    close(r);
}

static void owners(void) {
    int s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    T(fcntl(s, F_SETOWN, 12345678));
    T(fcntl(s, F_SETOWN, -12345678));
    T(fcntl(s, F_SETOWN, INT_MIN));
    int set = fcntl(s, F_SETOWN, getpid());
    say("F_SETOWN getpid: %d, F_GETOWN is it: %d", set, fcntl(s, F_GETOWN) == getpid());
    say("F_SETOWN -getpgrp: %d", fcntl(s, F_SETOWN, -getpgrp()));
    for (int type = F_OWNER_TID; type <= F_OWNER_PGRP; type++) {
        struct f_owner_ex o = { .type = type, .pid = -1 };
        say("F_SETOWN_EX type %d pid -1 = %s", type, fcntl(s, F_SETOWN_EX, &o) == 0 ? "0" : ename(errno));
        o.pid = 12345678;
        say("F_SETOWN_EX type %d pid 12345678 = %s", type, fcntl(s, F_SETOWN_EX, &o) == 0 ? "0" : ename(errno));
        o.pid = getpid();   /* a thread, a process and (pid of a leader) a pid in use */
        say("F_SETOWN_EX type %d pid getpid = %s", type, fcntl(s, F_SETOWN_EX, &o) == 0 ? "0" : ename(errno));
    }
    close(s);
}

static int setlk(int fd, short type) {
    struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
    return fcntl(fd, F_SETLK, &fl);
}

static void child_lock(void) {
    int fd = open("locked", O_RDWR);
    say("child F_SETLK write lock: %s", setlk(fd, F_WRLCK) == 0 ? "0" : ename(errno));
}

static void locks(void) {
    int pp[2];
    T(pipe(pp));
    T(setlk(pp[0], F_RDLCK));
    T(setlk(pp[0], F_WRLCK));
    T(setlk(pp[1], F_WRLCK));
    T(setlk(pp[1], F_RDLCK));
    T(flock(pp[0], LOCK_EX));
    close(pp[0]); close(pp[1]);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    memcpy(a.sun_path, "\0moat-fs70-lock", 15);
    T(bind(s, (struct sockaddr *)&a, sizeof(sa_family_t) + 15));
    T(setlk(s, F_RDLCK));
    close(s);
    put("locked", "");
    int fd = open("locked", O_RDWR), other = open("locked", O_RDWR);
    T(setlk(fd, F_WRLCK));
    in_child("lock held", child_lock);
    T(close(other));   /* drops every lock this process has on the file */
    in_child("lock dropped", child_lock);
    close(fd);
}

static void fs_types(void) {
    struct statfs st;
    int pp[2], s[2];
    pipe(pp);
    socketpair(AF_UNIX, SOCK_DGRAM, 0, s);
    int e = eventfd(0, 0);
    T(fstatfs(pp[0], &st)); say("pipe f_type 0x%lx f_bsize %ld f_namelen %ld", (long)st.f_type, (long)st.f_bsize, (long)st.f_namelen);
    T(fstatfs(s[0], &st)); say("socket f_type 0x%lx", (long)st.f_type);
    T(fstatfs(e, &st)); say("eventfd f_type 0x%lx", (long)st.f_type);
    close(pp[0]); close(pp[1]); close(s[0]); close(s[1]); close(e);
    int rd = open("fifo", O_RDONLY | O_NONBLOCK);
    int r = open("fifo", O_RDWR | O_NONBLOCK | O_TRUNC);
    T(r >= 0);
    T(truncate("fifo", 0));
    T(ftruncate(r, 0));
    T(truncate("/dev/null", 0));
    close(r); close(rd);
}

static void fdinfo_line(const char *what, int fd) {
    char p[64], b[512];
    snprintf(p, sizeof p, "/proc/self/fdinfo/%d", fd);
    struct stat st;
    if (lstat(p, &st) != 0) { say("lstat %s: %s", what, ename(errno)); return; }
    say("fdinfo %s: regular %d mode %o", what, S_ISREG(st.st_mode), st.st_mode & 0777);
    int f = open(p, O_RDONLY);
    long n = f >= 0 ? read(f, b, sizeof b - 1) : -1;
    if (f >= 0) close(f);
    if (n < 0) { say("read %s: %s", what, ename(errno)); return; }
    b[n] = 0;
    char *nl = strchr(b, '\n');
    if (nl) nl = strchr(nl + 1, '\n');
    if (nl) *nl = 0;   /* pos and flags: mnt_id and ino are the host's */
    for (char *c = b; *c; c++) if (*c == '\n' || *c == '\t') *c = ' ';
    say("fdinfo %s: %s", what, b);
}

static void fdinfo(void) {
    int pp[2];
    T(pipe(pp));
    fdinfo_line("pipe write end", pp[1]);
    T(close(pp[1]));
    char c;
    T(read(pp[0], &c, 1));   /* end of file: the stat held no reference */
    close(pp[0]);
    int f = open("f", O_RDWR | O_APPEND | O_CLOEXEC);
    lseek(f, 2, SEEK_SET);
    fdinfo_line("file", f);
    close(f);
    say("fdinfo of a closed fd: %s", access("/proc/self/fdinfo/999", F_OK) == 0 ? "exists" : ename(errno));
}

static void timeouts(void) {
    struct timespec ts = { 0, 10 * 1000 * 1000 };
    T(syscall(SYS_ppoll, NULL, 0, &ts, NULL, 0));
    say("ppoll time left: %ld %ld", (long)ts.tv_sec, ts.tv_nsec);
    sigset_t m;
    sigemptyset(&m);
    ts.tv_sec = 0; ts.tv_nsec = 0;
    T(syscall(SYS_ppoll, NULL, 0, &ts, &m, 128));
    T(syscall(SYS_ppoll, NULL, 0, &ts, &m, 8));
    int pp[2];
    pipe(pp);
    write(pp[1], "x", 1);
    struct pollfd pf = { .fd = pp[0], .events = POLLIN };
    ts.tv_sec = 5; ts.tv_nsec = 0;
    T(syscall(SYS_ppoll, &pf, 1, &ts, NULL, 0));
    say("ppoll ready at once: time left above 4 s %d, at most 5 s %d", ts.tv_sec >= 4, ts.tv_sec < 5 || (ts.tv_sec == 5 && ts.tv_nsec == 0));
    struct timeval tv = { 0, 10000 };
    T(select(0, NULL, NULL, NULL, &tv));
    say("select time left: %ld %ld", (long)tv.tv_sec, (long)tv.tv_usec);
    ts.tv_sec = 0; ts.tv_nsec = 10 * 1000 * 1000;
    struct { const sigset_t *ss; size_t len; } sm = { &m, 16 };
    T(syscall(SYS_pselect6, 0, NULL, NULL, NULL, &ts, &sm));
    sm.len = 8;
    T(syscall(SYS_pselect6, 0, NULL, NULL, NULL, &ts, &sm));
    say("pselect6 time left: %ld %ld", (long)ts.tv_sec, ts.tv_nsec);
    close(pp[0]); close(pp[1]);
}

static void show_info(const char *what, int sig) {
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, sig);
    siginfo_t si;
    struct timespec zero = { 0, 0 };
    int r = sigtimedwait(&m, &si, &zero);
    say("%s: signal %d code %d from me %d uid %d", what, r, si.si_code, si.si_pid == getpid(), si.si_uid == getuid());
}

static void self_signals(void) {
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGXFSZ);
    sigaddset(&m, SIGPIPE);
    sigprocmask(SIG_BLOCK, &m, NULL);
    int fd = open("big", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char buf[1100];
    memset(buf, 'a', sizeof buf);
    struct rlimit old, lim = { 1024, RLIM_INFINITY };
    getrlimit(RLIMIT_FSIZE, &old);
    fflush(stdout);
    setrlimit(RLIMIT_FSIZE, &lim);
    long a = write(fd, buf, 1025);
    long b = write(fd, buf, 1);
    int e = errno;
    setrlimit(RLIMIT_FSIZE, &old);
    say("writes past RLIMIT_FSIZE: %ld, then %ld %s", a, b, ename(e));
    show_info("SIGXFSZ", SIGXFSZ);
    close(fd);
    int pp[2];
    pipe(pp);
    close(pp[0]);
    T(write(pp[1], "x", 1));
    show_info("SIGPIPE", SIGPIPE);
    close(pp[1]);
}

static void passcred(int type, const char *name) {
    int s[2], on = 1;
    socketpair(AF_UNIX, type, 0, s);
    setsockopt(s[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
    T(write(s[0], "0123456789", 10));
    setsockopt(s[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
    char data[16], ctl[CMSG_SPACE(sizeof(struct ucred))];
    struct iovec iov = { data, sizeof data };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl };
    long n = recvmsg(s[1], &mh, 0);
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    struct ucred u = { 0 };
    if (c && c->cmsg_type == SCM_CREDENTIALS) memcpy(&u, CMSG_DATA(c), sizeof u);
    say("%s: recvmsg %ld, credentials %d, of me %d uid %u gid %u", name, n, c != NULL, u.pid == getpid(), u.uid, u.gid);
    close(s[0]); close(s[1]);
}

static long send_fds(int s, const int *fds, int n, const char *data, int len) {
    char ctl[CMSG_SPACE(sizeof(int) * 4)] = { 0 };
    struct iovec iov = { (void *)data, len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = CMSG_SPACE(sizeof(int) * n) };
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS; c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    long r = sendmsg(s, &mh, 0);
    if (r < 0) say("sendmsg %d fds = -1 %s", n, ename(errno)); else say("sendmsg %d fds = %ld", n, r);
    return r;
}

static void recv_show(int s, int len, const char *what) {
    char data[64] = { 0 }, ctl[CMSG_SPACE(sizeof(int) * 4)];
    struct iovec iov = { data, len };
    struct msghdr mh = { .msg_iov = len ? &iov : NULL, .msg_iovlen = len ? 1 : 0, .msg_control = ctl, .msg_controllen = sizeof ctl };
    long n = recvmsg(s, &mh, MSG_DONTWAIT);
    struct cmsghdr *c = n >= 0 ? CMSG_FIRSTHDR(&mh) : NULL;
    int fd = -1;
    if (c && c->cmsg_type == SCM_RIGHTS) { memcpy(&fd, CMSG_DATA(c), sizeof fd); close(fd); }
    say("%s: recvmsg %ld%s%s, SCM_RIGHTS %d", what, n, n < 0 ? " " : "", n < 0 ? ename(errno) : "", c != NULL && fd >= 0);
}

static void rights(void) {
    int s[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, s);
    send_fds(s[0], NULL, 0, "abcdefghij", 10);
    send_fds(s[0], NULL, 0, "klmnopqrst", 10);
    recv_show(s[1], 64, "two sends of no fds, one read");
    send_fds(s[0], &s[0], 1, "a", 1);
    recv_show(s[1], 0, "zero-length read");
    recv_show(s[1], 1, "then the byte");
    close(s[0]); close(s[1]);
    socketpair(AF_UNIX, SOCK_DGRAM, 0, s);
    send_fds(s[0], NULL, 0, "abcdefghij", 10);
    recv_show(s[1], 64, "datagram of no fds");
    close(s[0]); close(s[1]);
}

static void shut_read(int type, const char *name) {
    int s[2];
    socketpair(AF_UNIX, type, 0, s);
    T(shutdown(s[0], SHUT_RD));
    say("%s: peer writes: %s", name, write(s[1], "abc", 3) == 3 ? "3" : ename(errno));
    say("%s: shut end writes: %s", name, write(s[0], "abc", 3) == 3 ? "3" : ename(errno));
    char b[4];
    say("%s: peer reads: %ld", name, read(s[1], b, sizeof b));
    close(s[0]); close(s[1]);
}

static void unix_misc(void) {
    int s[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, s);
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", s[0]);
    T(open(p, O_WRONLY));
    T(open(p, O_RDONLY));
    struct ifreq ifr = { 0 };
    strcpy(ifr.ifr_name, "lo");
    long r = ioctl(s[0], SIOCGIFINDEX, &ifr);
    say("SIOCGIFINDEX lo on a unix socket: %s, index %d", r == 0 ? "0" : ename(errno), r == 0 ? ifr.ifr_ifindex : -1);
    int v = 1;
    socklen_t vl = sizeof v;
    T(getsockopt(s[0], SOL_PACKET, SO_TYPE, &v, &vl));
    T(setsockopt(s[0], SOL_PACKET, SO_PASSCRED, &v, sizeof v));
    T(setsockopt(s[0], IPPROTO_TCP, 1, &v, sizeof v));
    struct sockaddr_un a = { .sun_family = AF_UNIX, .sun_path = "/some/path/that/does/not/exist" };
    T(bind(s[0], (struct sockaddr *)&a, sizeof a));
    close(s[0]); close(s[1]);
    struct ucred u;
    socklen_t ul = sizeof u;
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    T(getsockopt(l, SOL_SOCKET, SO_PEERCRED, &u, &ul));
    say("SO_PEERCRED alone: pid %d uid %d gid %d", u.pid, (int)u.uid, (int)u.gid);
    struct sockaddr_un la = { .sun_family = AF_UNIX };
    memcpy(la.sun_path, "\0moat-fs70-listen", 17);
    T(bind(l, (struct sockaddr *)&la, sizeof(sa_family_t) + 17));
    T(listen(l, 1));
    T(getsockopt(l, SOL_SOCKET, SO_PEERCRED, &u, &ul));
    say("SO_PEERCRED listening: of me %d uid %u gid %u", u.pid == getpid(), u.uid, u.gid);
    close(l);
}

/* SCM_RIGHTS over TCP (loopback): Linux ignores it, the send succeeds. */
static void inet_rights(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &al)) { say("tcp listener: %s", ename(errno)); return; }
    int c = socket(AF_INET, SOCK_STREAM, 0);
    T(connect(c, (struct sockaddr *)&a, sizeof a));
    int s = accept(l, NULL, NULL);
    char b;
    if (send_fds(c, &l, 1, "x", 1) == 1) T(read(s, &b, 1));   /* nothing to wait for otherwise */
    close(s); close(c); close(l);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    status_flags();
    owners();
    locks();
    fs_types();
    fdinfo();
    timeouts();
    in_child("self signals", self_signals);
    passcred(SOCK_STREAM, "stream");
    passcred(SOCK_DGRAM, "datagram");
    passcred(SOCK_SEQPACKET, "seqpacket");
    rights();
    shut_read(SOCK_STREAM, "stream");
    shut_read(SOCK_DGRAM, "datagram");
    shut_read(SOCK_SEQPACKET, "seqpacket");
    unix_misc();
    inet_rights();
    return 0;
}
