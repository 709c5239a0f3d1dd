/* Behaviour real servers rely on (issue 15): edge-triggered epoll must
 * report a full pipe's or socket's write end again once the reader drains
 * it (Go's os/exec); O_ASYNC / FIOASYNC / F_SETOWN / F_SETSIG deliver SIGIO
 * (nginx's channel to its workers); a process reading its own
 * /proc/self/status or stat is running; tmpfs counts whole pages in
 * st_blocks; SEEK_DATA / SEEK_HOLE on files with data; and what the image
 * keeps in /tmp is visible (the suite puts /tmp/from-image in every copy). */
#include "t.h"
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

static void fill(int fd) {
    static char buf[4096];
    long n = 0;
    while (write(fd, buf, sizeof buf) > 0 || errno == EINTR) n++;
    say("filled until %s: %s", ename(errno), n > 0 ? "yes" : "no");
}

static void drain(int fd) {
    static char buf[65536];
    long total = 0, r;
    while ((r = read(fd, buf, sizeof buf)) > 0) total += r;
    say("drained: %s", total > 0 ? "yes" : "no");
}

/* Waits up to 2 s on an epoll with one entry and prints what came. */
static void wait_one(int ep, const char *what) {
    struct epoll_event ev[4];
    int n = epoll_wait(ep, ev, 4, 20000);   /* returns at the event; long for a loaded machine */
    if (n < 0) { say("%s: epoll_wait -1 %s", what, ename(errno)); return; }
    say("%s: %d event(s)%s%s", what, n, n > 0 && (ev[0].events & EPOLLOUT) ? " OUT" : "",
        n > 0 && (ev[0].events & EPOLLIN) ? " IN" : "");
}

/* The writer registered EPOLLOUT|EPOLLET, filled the pipe until EAGAIN and
 * never waited in between; the reader drains it: the edge must come. */
static void et_writer(int r, int w, const char *kind) {
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLOUT | EPOLLET, .data.fd = w };
    T(epoll_ctl(ep, EPOLL_CTL_ADD, w, &ev));
    say("%s", kind);
    wait_one(ep, "  initially writable");
    fill(w);
    drain(r);
    wait_one(ep, "  after drain");
    struct epoll_event none[1];
    say("  again without a change: %d", epoll_wait(ep, none, 1, 0));
    /* Full again, and this time a wait sees it full before the drain. */
    fill(w);
    say("  while full: %d", epoll_wait(ep, none, 1, 0));
    drain(r);
    wait_one(ep, "  after second drain");
    close(ep);
}

static void et_reader_thread_drain(void) {
    /* The drain happens in another process while the writer sleeps in epoll_wait. */
    int p[2];
    T(pipe2(p, O_NONBLOCK));
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLOUT | EPOLLET, .data.fd = p[1] };
    epoll_ctl(ep, EPOLL_CTL_ADD, p[1], &ev);
    struct epoll_event got[1];
    say("pipe, drained by a child while the writer waits");
    say("  first: %d", epoll_wait(ep, got, 1, 0));
    fill(p[1]);
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        usleep(100000);
        char buf[65536];
        int fl = fcntl(p[0], F_GETFL);
        fcntl(p[0], F_SETFL, fl & ~O_NONBLOCK);
        long total = 0;
        while (total < 4096) { long r = read(p[0], buf, sizeof buf); if (r <= 0) break; total += r; }
        _exit(0);
    }
    wait_one(ep, "  woken");
    waitpid(c, NULL, 0);
    close(p[0]); close(p[1]); close(ep);
}

/* TCP over loopback: a server that read exactly what came (no EAGAIN) and
 * waits again after the next request arrived must still hear of it (a
 * keep-alive client's second request to nginx). */
static void et_tcp(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 4) || getsockname(l, (struct sockaddr *)&a, &len)) {
        say("tcp setup: %s", ename(errno)); return;
    }
    int c = socket(AF_INET, SOCK_STREAM, 0);
    T(connect(c, (struct sockaddr *)&a, sizeof a));
    int s = accept4(l, NULL, NULL, SOCK_NONBLOCK);
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.fd = s };
    T(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev));
    say("tcp");
    char buf[8];
    for (int i = 0; i < 3; i++) {
        T(write(c, "r", 1));
        wait_one(ep, "  request arrived");
        T(read(s, buf, 1));
    }
    close(ep); close(s); close(c); close(l);
}

static volatile sig_atomic_t sigio_count, rt_count, rt_code, rt_fd_ok;
static int rt_expect_fd;
static void on_sigio(int s) { (void)s; sigio_count++; }
static void on_rt(int s, siginfo_t *si, void *u) {
    (void)s; (void)u; rt_count++; rt_code = si->si_code; rt_fd_ok = si->si_fd == rt_expect_fd;
}

static void async_io(void) {
    struct sigaction sa = { 0 };
    sa.sa_handler = on_sigio;
    sigaction(SIGIO, &sa, NULL);
    struct sigaction rs = { 0 };
    rs.sa_sigaction = on_rt;
    rs.sa_flags = SA_SIGINFO;
    sigaction(SIGRTMIN + 1, &rs, NULL);
    int one = 1, zero = 0;

    int sv[2];
    T(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    T(fcntl(sv[0], F_GETOWN));
    T(fcntl(sv[0], F_SETOWN, getpid()) == 0);
    T(fcntl(sv[0], F_GETOWN) == getpid());
    T(ioctl(sv[0], FIOASYNC, &one));
    say("socketpair F_GETFL has O_ASYNC: %s", fcntl(sv[0], F_GETFL) & O_ASYNC ? "yes" : "no");
    sigio_count = 0;
    T(write(sv[1], "x", 1));
    say("socketpair SIGIO after the peer wrote: %s", sigio_count > 0 ? "yes" : "no");
    T(ioctl(sv[0], FIOASYNC, &zero));
    say("socketpair F_GETFL has O_ASYNC after clearing: %s", fcntl(sv[0], F_GETFL) & O_ASYNC ? "yes" : "no");
    char c;
    T(read(sv[0], &c, 1));
    sigio_count = 0;
    T(write(sv[1], "y", 1));
    say("socketpair SIGIO once cleared: %s", sigio_count > 0 ? "yes" : "no");

    int p[2];
    T(pipe(p));
    T(ioctl(p[0], FIOASYNC, &one));
    T(fcntl(p[0], F_SETOWN, getpid()));
    sigio_count = 0;
    T(write(p[1], "z", 1));
    say("pipe SIGIO after a write: %s", sigio_count > 0 ? "yes" : "no");

    /* F_SETSIG: a queued signal with si_code POLL_IN and si_fd. */
    T(fcntl(p[0], F_SETSIG, SIGRTMIN + 1));
    T(fcntl(p[0], F_GETSIG) == SIGRTMIN + 1);
    rt_expect_fd = p[0];
    rt_count = 0;
    T(write(p[1], "w", 1));
    say("F_SETSIG signal: %s, si_code POLL_IN: %s, si_fd: %s", rt_count > 0 ? "yes" : "no",
        rt_code == POLL_IN ? "yes" : "no", rt_fd_ok ? "right" : "wrong");
    struct f_owner_ex ox = { 0 };
    T(fcntl(p[0], F_GETOWN_EX, &ox));
    say("F_GETOWN_EX type %d pid is mine: %s", ox.type, ox.pid == getpid() ? "yes" : "no");
    ox.type = F_OWNER_TID; ox.pid = gettid();
    T(fcntl(p[0], F_SETOWN_EX, &ox));
    ox.type = 7;
    T(fcntl(p[0], F_SETOWN_EX, &ox));
    close(p[0]); close(p[1]);

    /* O_ASYNC through F_SETFL on a pipe's write end: accepted and shown. */
    int q[2];
    T(pipe(q));
    T(fcntl(q[1], F_SETFL, fcntl(q[1], F_GETFL) | O_ASYNC));
    say("pipe write end F_GETFL has O_ASYNC: %s", fcntl(q[1], F_GETFL) & O_ASYNC ? "yes" : "no");
    close(q[0]); close(q[1]);
    /* Regular files have no async I/O: FIOASYNC fails, F_SETFL keeps the flag. */
    int f = open("/work/async-file", O_CREAT | O_RDWR, 0644);
    T(ioctl(f, FIOASYNC, &one));
    T(fcntl(f, F_SETFL, O_ASYNC));
    say("file F_GETFL has O_ASYNC: %s", fcntl(f, F_GETFL) & O_ASYNC ? "yes" : "no");
    close(f);
    unlink("/work/async-file");
    signal(SIGIO, SIG_DFL);
}

static void proc_state(void) {
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f)) if (!strncmp(line, "State:", 6)) printf("status %s", line);
    if (f) fclose(f);
    f = fopen("/proc/self/stat", "r");
    if (f && fgets(line, sizeof line, f)) { char *p = strrchr(line, ')'); say("stat state %c", p ? p[2] : '?'); }
    if (f) fclose(f);
}

static void tmpfs_blocks(void) {
    mkdir("/work/tt", 0755);
    if (mount("tmpfs", "/work/tt", "tmpfs", 0, NULL) != 0) { say("mount tmpfs: %s", ename(errno)); return; }
    struct stat st;
    put("/work/tt/one", "x");
    int fd = open("/work/tt/big", O_CREAT | O_WRONLY, 0644);
    char buf[5000];
    memset(buf, 'b', sizeof buf);
    T(write(fd, buf, sizeof buf));
    close(fd);
    put("/work/tt/empty", "");
    mkdir("/work/tt/d", 0755);
    for (const char *const *p = (const char *const[]){ "/work/tt/one", "/work/tt/big", "/work/tt/empty", "/work/tt/d", NULL }; *p; p++) {
        T(lstat(*p, &st));
        say("%s blocks=%lld", *p, (long long)st.st_blocks);
    }
    /* SEEK_DATA / SEEK_HOLE, on tmpfs and on the rootfs. */
    const char *files[] = { "/work/tt/big", "/work/seekfile" };
    put("/work/seekfile", "0123456789");
    for (int i = 0; i < 2; i++) {
        fd = open(files[i], O_RDONLY);
        say("%s", files[i]);
        T(lseek(fd, 0, SEEK_DATA));
        T(lseek(fd, 3, SEEK_DATA));
        T(lseek(fd, 0, SEEK_HOLE));
        T(lseek(fd, 100000, SEEK_DATA));
        T(lseek(fd, 100000, SEEK_HOLE));
        T(lseek(fd, -1, SEEK_DATA));
        close(fd);
    }
    unlink("/work/seekfile");
    T(umount("/work/tt"));
    rmdir("/work/tt");
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int p[2], sv[2], e;
    T(pipe2(p, O_NONBLOCK));
    et_writer(p[0], p[1], "pipe");
    close(p[0]); close(p[1]);
    T(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
    et_writer(sv[1], sv[0], "socketpair");
    close(sv[0]); close(sv[1]);
    et_reader_thread_drain();
    et_tcp();
    /* eventfd: full at 0xfffffffffffffffe, writable again once read. */
    e = eventfd(0, EFD_NONBLOCK);
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLOUT | EPOLLET };
    epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev);
    say("eventfd");
    wait_one(ep, "  initially writable");
    uint64_t v = 0xfffffffffffffffeULL;
    T(write(e, &v, 8));
    v = 1;
    T(write(e, &v, 8));
    T(read(e, &v, 8));
    wait_one(ep, "  after read");
    close(ep); close(e);
    async_io();
    proc_state();
    tmpfs_blocks();
    cat("/tmp/from-image");
    return 0;
}
