/* Every blocking call must return where Linux returns: an independent
 * syscall suite hung two programs under Moat (issue 15: one blocked in
 * poll() for POLLRDNORM, one in the pipe tests). Each case below blocks in
 * one call while another thread or process makes the event happen (data,
 * a close, a shutdown, a signal); the call's result and revents are
 * printed. The helper acts after a short pause so that the caller is
 * usually already asleep, but the printed outcome is the same either way:
 * nothing here compares timing. A watchdog (alarm) turns a call that never
 * returns into a "HUNG in ..." line instead of a program killed by the
 * harness, so that one lost wakeup does not hide the cases after it. */
#include "t.h"
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <netinet/in.h>
#include <arpa/inet.h>

static const char *phase = "start";
static void on_alarm(int s) {
    (void)s;
    char b[160];
    int n = snprintf(b, sizeof b, "HUNG in %s\n", phase);
    write(1, b, n);
    _exit(3);
}
static void begin(const char *name) {
    phase = name;
    say("== %s", name);
    alarm(30);
}

/* A helper thread: sleeps a little, then runs act(arg). */
struct job { void (*act)(long); long arg; pthread_t th; };
static void *job_main(void *p) {
    struct job *j = p;
    usleep(50000);
    j->act(j->arg);
    return NULL;
}
static void later(struct job *j, void (*act)(long), long arg) {
    j->act = act; j->arg = arg;
    pthread_create(&j->th, NULL, job_main, j);
}
static void done(struct job *j) { pthread_join(j->th, NULL); }
/* Joins the helper; prints what its shutdown returned. */
static int shut_r, shut_e;
static void done_shut(struct job *j) {
    done(j);
    say("  the helper's shutdown = %d %s", shut_r, shut_r ? ename(shut_e) : "");
}

static void act_close(long fd) { close((int)fd); }
static void act_write1(long fd) { write((int)fd, "w", 1); }
static void act_shut_rd(long fd) { shutdown((int)fd, SHUT_RD); }
static void act_shut_wr(long fd) { shutdown((int)fd, SHUT_WR); }
static void act_shut_rdwr(long fd) { shut_r = shutdown((int)fd, SHUT_RDWR); shut_e = errno; }
static void act_read4k(long fd) { static char b[4096]; read((int)fd, b, sizeof b); }
static void act_read_all(long fd) { static char b[65536]; read((int)fd, b, sizeof b); }
static void act_eventfd(long fd) { uint64_t one = 1; write((int)fd, &one, 8); }
static void act_kill_usr1(long pid) { kill((pid_t)pid, SIGUSR1); }

static void show_poll(const char *what, struct pollfd *f, int n) {
    int r = poll(f, n, -1);
    if (r < 0) { say("  %s: poll -1 %s", what, ename(errno)); return; }
    printf("  %s: poll %d:", what, r);
    for (int i = 0; i < n; i++) printf(" %#x", f[i].revents);
    printf("\n");
    fflush(stdout);
}

/* A socketpair of `type`; a helper runs act on the peer (or on the polled
 * socket itself) while poll waits on the first socket for `events`. */
static void pair_case(const char *name, int type, void (*act)(long), int on_peer, short events) {
    struct job j;
    int s[2];
    begin(name);
    T(socketpair(AF_UNIX, type, 0, s));
    later(&j, act, on_peer ? s[1] : s[0]);
    struct pollfd f = {s[0], events, 0};
    show_poll("socket", &f, 1);
    done(&j);
    close(s[0]);
    if (act != act_close) close(s[1]);
}

/* poll() waits for only the bits it names, and wakes for them. */
static void poll_bits(void) {
    struct job j;
    int p[2];
    begin("poll POLLRDNORM alone on a pipe, data written later");
    T(pipe(p));
    later(&j, act_write1, p[1]);
    struct pollfd f = {p[0], POLLRDNORM, 0};
    show_poll("read end", &f, 1);
    done(&j);
    begin("poll POLLRDNORM|POLLRDBAND on a pipe, the writer closes later");
    char c; read(p[0], &c, 1);
    later(&j, act_close, p[1]);
    f.events = POLLRDNORM | POLLRDBAND;
    show_poll("read end", &f, 1);
    done(&j);
    close(p[0]);

    begin("poll with no events on a pipe, the writer closes later");
    T(pipe(p));
    later(&j, act_close, p[1]);
    f.fd = p[0]; f.events = 0;
    show_poll("read end", &f, 1);
    done(&j);
    close(p[0]);

    begin("poll POLLWRNORM on a full pipe, the reader drains a page later");
    T(pipe2(p, O_NONBLOCK));
    static char big[65536];
    while (write(p[1], big, sizeof big) > 0) {}
    later(&j, act_read4k, p[0]);
    f.fd = p[1]; f.events = POLLWRNORM;
    show_poll("write end", &f, 1);
    done(&j);
    begin("poll POLLOUT on a full pipe, the reader closes later");
    while (write(p[1], big, sizeof big) > 0) {}
    later(&j, act_close, p[0]);
    f.events = POLLOUT;
    show_poll("write end", &f, 1);
    done(&j);
    close(p[1]);

    pair_case("poll POLLRDNORM on a socketpair, the peer writes later", SOCK_STREAM, act_write1, 1, POLLRDNORM);
    pair_case("poll POLLRDHUP on a socketpair, the peer shuts down writing later", SOCK_STREAM, act_shut_wr, 1, POLLRDHUP);
    pair_case("poll POLLIN on a socketpair, the peer closes later", SOCK_STREAM, act_close, 1, POLLIN);
    pair_case("poll POLLIN on a socketpair, the same socket is shut down for reading later", SOCK_STREAM, act_shut_rd, 0,
              POLLIN | POLLRDNORM);
    pair_case("poll POLLRDNORM on a datagram socketpair, the peer sends later", SOCK_DGRAM, act_write1, 1, POLLRDNORM);
    pair_case("poll POLLRDNORM on a seqpacket socketpair, the peer closes later", SOCK_SEQPACKET, act_close, 1, POLLRDNORM);

    begin("poll POLLIN on an eventfd, another thread adds later");
    int e = T(eventfd(0, EFD_NONBLOCK));
    later(&j, act_eventfd, e);
    f.fd = e; f.events = POLLIN | POLLRDNORM;
    show_poll("eventfd", &f, 1);
    done(&j);
    close(e);

    begin("poll POLLIN on a timerfd that expires");
    int tf = T(timerfd_create(CLOCK_MONOTONIC, 0));
    struct itimerspec its = {{0, 0}, {0, 50000000}};
    T(timerfd_settime(tf, 0, &its, NULL));
    f.fd = tf; f.events = POLLIN | POLLRDNORM;
    show_poll("timerfd", &f, 1);
    close(tf);

    begin("poll POLLIN on a signalfd, another thread sends the blocked signal later");
    sigset_t m; sigemptyset(&m); sigaddset(&m, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &m, NULL);
    int sf = T(signalfd(-1, &m, SFD_NONBLOCK));
    later(&j, act_kill_usr1, getpid());
    f.fd = sf; f.events = POLLIN | POLLRDNORM;
    show_poll("signalfd", &f, 1);
    done(&j);
    struct signalfd_siginfo si;
    T(read(sf, &si, sizeof si)); say("  signo %u", si.ssi_signo);
    close(sf);
    pthread_sigmask(SIG_UNBLOCK, &m, NULL);

    begin("select's exception set on a pipe never fires; the read set does");
    T(pipe(p));
    later(&j, act_write1, p[1]);
    fd_set rs, es; FD_ZERO(&rs); FD_ZERO(&es); FD_SET(p[0], &rs); FD_SET(p[0], &es);
    T(select(p[0] + 1, &rs, NULL, &es, NULL));
    say("  readable %d, exception %d", FD_ISSET(p[0], &rs) != 0, FD_ISSET(p[0], &es) != 0);
    done(&j);
    close(p[0]); close(p[1]);
}

/* Blocking reads and writes end when the other side goes away. */
static void pipe_ends(void) {
    struct job j;
    int p[2];
    char buf[16];
    begin("blocked pipe read, the only writer closes");
    T(pipe(p));
    later(&j, act_close, p[1]);
    T(read(p[0], buf, sizeof buf));
    done(&j);
    close(p[0]);

    begin("blocked pipe read, a forked writer exits");
    T(pipe(p));
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) { close(p[0]); usleep(50000); _exit(0); }
    close(p[1]);
    T(read(p[0], buf, sizeof buf));
    waitpid(c, NULL, 0);
    close(p[0]);

    begin("blocked pipe write of 128 KiB, the reader drains it in pieces");
    T(pipe(p));
    fflush(stdout);
    c = fork();
    if (c == 0) {
        close(p[1]);
        static char b[7000];
        long total = 0, r;
        usleep(50000);
        while ((r = read(p[0], b, sizeof b)) > 0) total += r;
        say("  reader got %ld bytes", total);
        _exit(0);
    }
    close(p[0]);
    static char big[131072];
    T(write(p[1], big, sizeof big));
    close(p[1]);
    waitpid(c, NULL, 0);

    begin("blocked pipe write, the reader closes (SIGPIPE ignored)");
    signal(SIGPIPE, SIG_IGN);
    T(pipe(p));
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    while (write(p[1], big, sizeof big) > 0) {}
    fcntl(p[1], F_SETFL, 0);
    later(&j, act_close, p[0]);
    T(write(p[1], big, 4096));
    done(&j);
    close(p[1]);

    begin("blocked pipe write, the reader closes (SIGPIPE kills)");
    T(pipe(p));
    fflush(stdout);
    c = fork();
    if (c == 0) {
        signal(SIGPIPE, SIG_DFL);
        close(p[0]);
        write(p[1], big, sizeof big);   /* blocks after 64 KiB, then the signal */
        _exit(0);
    }
    close(p[1]);
    usleep(50000);
    close(p[0]);
    int st;
    waitpid(c, &st, 0);
    say("  child: signaled %d sig %d", WIFSIGNALED(st), WIFSIGNALED(st) ? WTERMSIG(st) : 0);

    begin("a partial write before the reader closes returns the count");
    T(pipe(p));
    /* 64 KiB fit, the reader frees up to 64 KiB, then it is gone: */
    static char huge[65536 * 4];
    fflush(stdout);
    c = fork();
    if (c == 0) {
        close(p[1]);
        char b[65536];
        usleep(100000);
        read(p[0], b, sizeof b);
        _exit(0);
    }
    close(p[0]);
    long w = write(p[1], huge, sizeof huge);
    say("  write returned %s", w > 0 && w < (long)sizeof huge ? "a short count" : w == (long)sizeof huge ? "everything" : ename(errno));
    waitpid(c, NULL, 0);
    close(p[1]);

    begin("splice from an empty pipe, the writer closes");
    int q[2];
    T(pipe(p)); T(pipe(q));
    later(&j, act_close, p[1]);
    T(splice(p[0], NULL, q[1], NULL, 4096, 0));
    done(&j);
    begin("tee from an empty pipe, the writer writes");
    close(p[0]);
    T(pipe(p));
    later(&j, act_write1, p[1]);
    T(tee(p[0], q[1], 4096, 0));
    done(&j);
    int n = 0; T(ioctl(q[0], FIONREAD, &n)); say("  FIONREAD of the target %d", n);
    begin("vmsplice into a full pipe, the reader drains");
    fcntl(q[1], F_SETFL, O_NONBLOCK);
    while (write(q[1], big, sizeof big) > 0) {}
    fcntl(q[1], F_SETFL, 0);
    later(&j, act_read_all, q[0]);
    struct iovec v = {big, 4096};
    T(vmsplice(q[1], &v, 1, 0));
    done(&j);
    close(p[0]); close(p[1]); close(q[0]); close(q[1]);

    begin("a pipe reopened through /proc/self/fd is the same pipe");
    T(pipe(p));
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", p[0]);
    int w2 = T(open(path, O_WRONLY));
    T(write(w2, "via proc", 8));
    memset(buf, 0, sizeof buf);
    T(read(p[0], buf, sizeof buf)); say("  read back \"%s\"", buf);
    snprintf(path, sizeof path, "/proc/self/fd/%d", p[1]);
    int r2 = T(open(path, O_RDONLY));
    T(write(p[1], "x", 1));
    T(read(r2, buf, 1));
    close(p[1]); close(w2);
    later(&j, act_close, r2);                      /* not the last reader */
    struct pollfd pf = {p[0], POLLIN, 0};
    show_poll("read end after both writers closed", &pf, 1);
    done(&j);
    T(read(p[0], buf, sizeof buf));
    close(p[0]);

    begin("FIFO: a blocking open for reading waits for a writer");
    T(mkfifo("fifo", 0600));
    fflush(stdout);
    c = fork();
    if (c == 0) { usleep(50000); int fd = open("fifo", O_WRONLY); write(fd, "f", 1); close(fd); _exit(0); }
    int fd = T(open("fifo", O_RDONLY) >= 0);
    waitpid(c, NULL, 0);
    unlink("fifo");
    (void)fd;
}

/* Sockets: a blocked receive or accept ends with shutdown or close. */
static void sockets(void) {
    struct job j;
    int s[2];
    char buf[16];
    begin("blocked recv on a socketpair, the same socket is shut down for reading");
    T(socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    later(&j, act_shut_rd, s[0]);
    T(recv(s[0], buf, sizeof buf, 0));
    done(&j);
    close(s[0]); close(s[1]);
    begin("blocked recv on a datagram socketpair, the socket is shut down");
    T(socketpair(AF_UNIX, SOCK_DGRAM, 0, s));
    later(&j, act_shut_rdwr, s[0]);
    T(recv(s[0], buf, sizeof buf, 0));
    done_shut(&j);
    close(s[0]); close(s[1]);

    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    begin("blocked accept on TCP, the listener is shut down");
    int l = T(socket(AF_INET, SOCK_STREAM, 0));
    T(bind(l, (void *)&a, sizeof a));
    T(listen(l, 4));
    later(&j, act_shut_rdwr, l);
    T(accept(l, NULL, NULL));
    done_shut(&j);
    close(l);

    begin("blocked recv on TCP, the peer closes; then poll says RDHUP");
    l = T(socket(AF_INET, SOCK_STREAM, 0));
    a.sin_port = 0;
    T(bind(l, (void *)&a, sizeof a));
    T(listen(l, 4));
    getsockname(l, (void *)&a, &al);
    int c = T(socket(AF_INET, SOCK_STREAM, 0));
    T(connect(c, (void *)&a, sizeof a));
    int srv = T(accept(l, NULL, NULL));
    later(&j, act_close, c);
    T(recv(srv, buf, sizeof buf, 0));
    done(&j);
    struct pollfd f = {srv, POLLIN | POLLRDNORM | POLLRDHUP, 0};
    show_poll("server socket", &f, 1);
    close(srv); close(l);

    begin("blocked recv on UDP, the socket is shut down");
    int u = T(socket(AF_INET, SOCK_DGRAM, 0));
    a.sin_port = 0;
    T(bind(u, (void *)&a, sizeof a));
    later(&j, act_shut_rdwr, u);
    T(recv(u, buf, sizeof buf, 0));
    done_shut(&j);
    close(u);

    begin("epoll_wait on a pipe, the writer closes: EPOLLHUP");
    int p[2]; T(pipe(p));
    int ep = T(epoll_create1(0));
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = p[0]};
    T(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
    later(&j, act_close, p[1]);
    struct epoll_event got;
    T(epoll_wait(ep, &got, 1, -1));
    say("  events %#x", got.events);
    done(&j);
    close(p[0]); close(ep);
}

/* AF_UNIX sockets that are not connected: a bound datagram socket and a
 * listener. SO_RCVTIMEO bounds their waits too, and shutdown() (which
 * Linux allows on them) ends a blocked recv or accept. */
static void unix_unconnected(void) {
    struct job j;
    char buf[16];
    struct sockaddr_un { sa_family_t f; char p[108]; } na = {AF_UNIX, ""};
    struct timeval tv = {0, 50000};
    begin("recv with SO_RCVTIMEO on a bound AF_UNIX datagram socket");
    int d = T(socket(AF_UNIX, SOCK_DGRAM, 0));
    strcpy(na.p, "dgram.sock");
    T(bind(d, (void *)&na, sizeof na));
    T(setsockopt(d, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    T(recv(d, buf, sizeof buf, 0));
    T(recvfrom(d, buf, sizeof buf, 0, NULL, NULL));
    tv.tv_usec = 0;
    T(setsockopt(d, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    begin("blocked recv on a bound AF_UNIX datagram socket, shut down for reading");
    later(&j, act_shut_rd, d);
    T(recv(d, buf, sizeof buf, 0));
    done(&j);
    struct pollfd f = {d, POLLIN | POLLRDNORM | POLLRDHUP | POLLOUT, 0};
    show_poll("after shutdown", &f, 1);
    T(recv(d, buf, sizeof buf, MSG_DONTWAIT));
    close(d); unlink("dgram.sock");

    begin("accept with SO_RCVTIMEO on an AF_UNIX listener");
    int l = T(socket(AF_UNIX, SOCK_STREAM, 0));
    strcpy(na.p, "listen.sock");
    T(bind(l, (void *)&na, sizeof na));
    T(listen(l, 4));
    tv.tv_usec = 50000;
    T(setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    T(accept(l, NULL, NULL));
    tv.tv_usec = 0;
    T(setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    f.fd = l; f.events = POLLIN | POLLRDNORM | POLLRDHUP | POLLOUT;
    T(poll(&f, 1, 0)); say("  listener revents %#x", f.revents);
    begin("blocked accept on an AF_UNIX listener, shut down");
    later(&j, act_shut_rdwr, l);
    T(accept(l, NULL, NULL));
    done_shut(&j);
    T(poll(&f, 1, 0)); say("  listener revents %#x", f.revents);
    close(l); unlink("listen.sock");
}

/* Timers on the CPU-time clocks expire after that much CPU time, never
 * before (Linux's guarantee; a busy loop waits for the signal). */
static volatile sig_atomic_t cpu_fired;
static void on_usr2(int s) { (void)s; cpu_fired = 1; }
static void cpu_timers(void) {
    signal(SIGUSR2, on_usr2);
    clockid_t clocks[2] = {CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID};
    for (int i = 0; i < 2; i++) {
        begin(i == 0 ? "timer on CLOCK_PROCESS_CPUTIME_ID" : "timer on CLOCK_THREAD_CPUTIME_ID");
        struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR2};
        timer_t tm;
        T(timer_create(clocks[i], &ev, &tm));
        struct timespec start, end;
        clock_gettime(clocks[i], &start);
        struct itimerspec its = {{0, 0}, {0, 100000000}};
        cpu_fired = 0;
        T(timer_settime(tm, 0, &its, NULL));
        struct itimerspec left;
        T(timer_gettime(tm, &left));
        say("  remaining at most the value: %d", left.it_value.tv_sec == 0 && left.it_value.tv_nsec <= 100000000);
        while (!cpu_fired) {}
        clock_gettime(clocks[i], &end);
        long used = (end.tv_sec - start.tv_sec) * 1000000000L + end.tv_nsec - start.tv_nsec;
        say("  fired after at least 100 ms of CPU time: %d", used >= 100000000);
        T(timer_gettime(tm, &left));
        say("  disarmed: %d", left.it_value.tv_sec == 0 && left.it_value.tv_nsec == 0);
        T(timer_delete(tm));
    }
}

int main(void) {
    signal(SIGALRM, on_alarm);
    poll_bits();
    pipe_ends();
    sockets();
    unix_unconnected();
    cpu_timers();
    alarm(0);
    say("end");
    return 0;
}
