/* POSIX message queues (mq_open and friends, through glibc), issue 15:
 * - the fs.mqueue sysctls a fresh IPC namespace shows; mq_open's errors
 *   (no slash, a slash inside, ".", missing, O_EXCL, bad attributes, access
 *   mode 3, mode bits against another user), the descriptor (close-on-exec,
 *   F_GETFL, fstat, the /proc/self/fd link before and after mq_unlink);
 * - two processes: a child fills the queue with prioritized messages and
 *   blocks on one more, the parent takes them highest priority first, FIFO
 *   within one, which frees the child;
 * - O_NONBLOCK and mq_setattr (EAGAIN both ways), EMSGSIZE both ways, a
 *   priority out of range, absolute CLOCK_REALTIME timeouts (ETIMEDOUT,
 *   EINVAL), a blocking receive ended by a signal (EINTR) and one restarted
 *   under SA_RESTART;
 * - poll readiness; read() of the queue (the QSIZE/NOTIFY line);
 * - mq_notify: SIGEV_SIGNAL (si_code, si_value, si_pid, si_uid), EBUSY for
 *   another process, removal by its owner only, SIGEV_NONE, SIGEV_THREAD
 *   (glibc's helper thread), EINVAL for bad events;
 * - mq_unlink: ENOENT, EACCES for another user, a queue used after it.
 * Nothing printed depends on timing, pids or CAP_SYS_RESOURCE (which the
 * native side may lack). */
#include "t.h"
#include <mqueue.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#define Q "/mq104"

static void sysctls(void) {
    const char *k[] = {"queues_max", "msg_max", "msgsize_max", "msg_default", "msgsize_default"};
    for (int i = 0; i < 5; i++) {
        char p[64], b[32] = "";
        snprintf(p, sizeof p, "/proc/sys/fs/mqueue/%s", k[i]);
        int fd = open(p, O_RDONLY);
        if (fd < 0) { say("%s: %s", p, ename(errno)); continue; }
        ssize_t n = read(fd, b, sizeof b - 1);
        close(fd);
        if (n > 0) b[n - 1] = 0;
        say("%s = %s", p, b);
    }
    int fd = open("/proc/sys/fs/mqueue/msg_max", O_WRONLY);
    T(write(fd, "0\n", 2));                         /* below MIN_MSGMAX */
    T(write(fd, "65537\n", 6));                     /* above HARD_MSGMAX */
    close(fd);
}

static void attr(mqd_t q, const char *what) {
    struct mq_attr a;
    if (mq_getattr(q, &a) != 0) { say("%s: getattr %s", what, ename(errno)); return; }
    say("%s: flags=%s maxmsg=%ld msgsize=%ld curmsgs=%ld", what, a.mq_flags & O_NONBLOCK ? "O_NONBLOCK" : "0",
        a.mq_maxmsg, a.mq_msgsize, a.mq_curmsgs);
}

/* The queue file's line, with the notifier's pid named. */
static void status(mqd_t q, pid_t who, const char *name) {
    char b[128];
    ssize_t n = pread(q, b, sizeof b - 1, 0);
    if (n < 0) { say("read: %s", ename(errno)); return; }
    b[n] = 0;
    char *p = strstr(b, "NOTIFY_PID:");
    int pid = p ? atoi(p + 11) : -1;
    if (p) *p = 0;
    say("read %zd: [%s] NOTIFY_PID:%s", n, b, pid == 0 ? "0" : pid == who ? name : "other");
}

static void link_of(mqd_t q) {
    char p[64], b[128];
    snprintf(p, sizeof p, "/proc/self/fd/%d", q);
    ssize_t n = readlink(p, b, sizeof b - 1);
    b[n > 0 ? n : 0] = 0;
    say("fd link: %s", n > 0 ? b : ename(errno));
}


static void recv_one(mqd_t q, const char *what) {
    char b[64];
    unsigned prio = 99;
    ssize_t n = mq_receive(q, b, sizeof b, &prio);
    if (n < 0) { say("%s: receive %s", what, ename(errno)); return; }
    say("%s: \"%.*s\" prio %u", what, (int)n, b, prio);
}

static void opens(void) {
    struct mq_attr bad = {.mq_maxmsg = 0, .mq_msgsize = 16};
    T(mq_open("noslash", O_CREAT | O_RDWR, 0600, NULL));
    T(mq_open("/a/b", O_CREAT | O_RDWR, 0600, NULL));
    T(mq_open("/..", O_CREAT | O_RDWR, 0600, NULL));
    T(mq_open("/", O_CREAT | O_RDWR, 0600, NULL));
    T(mq_open("/missing", O_RDWR));
    T(mq_open(Q, O_CREAT | O_RDWR, 0600, &bad));
    bad.mq_maxmsg = 4; bad.mq_msgsize = -1;
    T(mq_open(Q, O_CREAT | O_RDWR, 0600, &bad));
    char longname[300];
    longname[0] = '/'; memset(longname + 1, 'n', 256); longname[257] = 0;
    T(mq_open(longname, O_CREAT | O_RDWR, 0600, NULL));
    T(mq_unlink(longname));
    T(mq_unlink("/missing"));
    mqd_t d = mq_open("/mq104dflt", O_CREAT | O_EXCL | O_RDWR, 0640, NULL);
    attr(d, "default attributes");
    T(mq_open("/mq104dflt", O_CREAT | O_EXCL | O_RDWR, 0600, NULL));
    T(mq_open("/mq104dflt", O_RDWR | O_WRONLY));
    struct stat st;
    T(fstat(d, &st));
    say("fstat: mode %o size %lld nlink %ld", st.st_mode, (long long)st.st_size, (long)st.st_nlink);
    T(fchmod(d, 0604));
    T(fstat(d, &st));
    say("after fchmod: mode %o", st.st_mode);
    T(fcntl(d, F_GETFD));
    T(fcntl(d, F_GETFL));
    T(write(d, "x", 1));
    /* Another user: read is granted by 0604, write is not; unlink is not. */
    pid_t c = fork();
    if (c == 0) {
        if (setresuid(65534, 65534, 65534) != 0) _exit(9);
        T(mq_open("/mq104dflt", O_RDONLY) >= 0);
        T(mq_open("/mq104dflt", O_WRONLY));
        T(mq_unlink("/mq104dflt"));
        _exit(0);
    }
    waitpid(c, NULL, 0);
    T(mq_close(d));
    T(mq_unlink("/mq104dflt"));
    T(mq_unlink("/mq104dflt"));
}

static void exchange(void) {
    struct mq_attr a = {.mq_maxmsg = 4, .mq_msgsize = 64};
    mqd_t q = mq_open(Q, O_CREAT | O_EXCL | O_RDWR, 0600, &a);
    if (q < 0) { say("open: %s", ename(errno)); return; }
    attr(q, "created");
    link_of(q);
    pid_t c = fork();
    if (c == 0) {
        mqd_t w = mq_open(Q, O_WRONLY);
        const char *m[] = {"a1", "b5", "c1", "d9", "e0"};
        unsigned p[] = {1, 5, 1, 9, 0};
        for (int i = 0; i < 5; i++)               /* the fifth waits for room */
            if (mq_send(w, m[i], strlen(m[i]), p[i]) != 0) _exit(10 + i);
        _exit(0);
    }
    struct mq_attr now;
    do { usleep(1000); if (mq_getattr(q, &now) != 0) break; } while (now.mq_curmsgs < 4);
    struct pollfd pf = {.fd = q, .events = POLLIN | POLLOUT};
    T(poll(&pf, 1, 0));
    say("full: revents %s%s", pf.revents & POLLIN ? "POLLIN " : "", pf.revents & POLLOUT ? "POLLOUT" : "");
    status(q, 0, "");
    for (int i = 0; i < 5; i++) recv_one(q, "got");
    int st;
    waitpid(c, &st, 0);
    say("sender exit %d", WEXITSTATUS(st));
    pf.revents = 0;
    T(poll(&pf, 1, 0));
    say("empty: revents %s%s", pf.revents & POLLIN ? "POLLIN " : "", pf.revents & POLLOUT ? "POLLOUT" : "");
    T(mq_close(q));
}

static void nonblocking(void) {
    mqd_t q = mq_open(Q, O_RDWR | O_NONBLOCK);
    if (q < 0) { say("open: %s", ename(errno)); return; }
    attr(q, "nonblocking");
    char b[64];
    T(mq_receive(q, b, sizeof b, NULL));
    for (int i = 0; i < 5; i++) T(mq_send(q, "xyz", 3, (unsigned)i));
    T(mq_send(q, b, 65, 0));
    T(mq_send(q, "p", 1, 32768));
    T(mq_receive(q, b, 63, NULL));
    status(q, 0, "");
    struct mq_attr blocking = {.mq_flags = 0}, old;
    T(mq_setattr(q, &blocking, &old));
    say("old flags %s", old.mq_flags & O_NONBLOCK ? "O_NONBLOCK" : "0");
    struct mq_attr junk = {.mq_flags = O_NONBLOCK | O_APPEND};
    T(mq_setattr(q, &junk, NULL));
    struct timespec past = {1, 0}, bad = {0, 1000000000L}, soon = t_deadline(CLOCK_REALTIME, 30);
    T(mq_timedsend(q, "t", 1, 0, &past));            /* full, blocking: the time has passed */
    T(mq_timedsend(q, "t", 1, 0, &soon));
    T(mq_timedsend(q, "t", 1, 0, &bad));
    for (int i = 0; i < 4; i++) recv_one(q, "drain");
    soon = t_deadline(CLOCK_REALTIME, 30);
    T(mq_timedreceive(q, b, sizeof b, NULL, &soon));
    T(mq_timedreceive(q, b, sizeof b, NULL, &past));
    T(mq_timedreceive(q, b, sizeof b, NULL, &bad));
    T(mq_close(q));
}

static volatile int hits;
static void on_sig(int s) { (void)s; hits++; }

/* A child that signals the parent until killed (the first signal that finds
 * the parent asleep interrupts it). */
static pid_t pester(int then_send) {
    pid_t parent = getpid(), c = fork();
    if (c == 0) {
        mqd_t w = mq_open(Q, O_WRONLY);
        for (int i = 0;; i++) {
            kill(parent, SIGUSR2);
            usleep(20000);
            if (then_send && i == 3) mq_send(w, "late", 4, 2);
        }
    }
    return c;
}

static void interrupted(void) {
    mqd_t q = mq_open(Q, O_RDONLY);
    if (q < 0) { say("open: %s", ename(errno)); return; }
    char b[64];
    struct sigaction sa = {.sa_handler = on_sig};
    sigaction(SIGUSR2, &sa, NULL);
    pid_t c = pester(0);
    T(mq_receive(q, b, sizeof b, NULL));
    kill(c, SIGKILL); waitpid(c, NULL, 0);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, NULL);
    c = pester(1);
    recv_one(q, "restarted");
    kill(c, SIGKILL); waitpid(c, NULL, 0);
    say("handler ran: %s", hits > 0 ? "yes" : "no");
    signal(SIGUSR2, SIG_DFL);
    T(mq_close(q));
}

static int tpipe[2];
static void on_thread(union sigval v) {
    char c = (char)v.sival_int;
    write(tpipe[1], &c, 1);
}

static void notify(void) {
    mqd_t q = mq_open(Q, O_RDWR);
    if (q < 0) { say("open: %s", ename(errno)); return; }
    sigset_t set;
    sigemptyset(&set); sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1, .sigev_value.sival_int = 42};
    T(mq_notify(q, &ev));
    status(q, getpid(), "self");
    pid_t c = fork();
    if (c == 0) {
        T(mq_notify(q, &ev));                      /* someone else's: EBUSY */
        T(mq_notify(q, NULL));                     /* not the owner's: ignored */
        T(mq_send(q, "n", 1, 0));
        _exit(0);
    }
    siginfo_t si;
    struct timespec bound = {60, 0};                /* only against a hang: never reached when it works */
    int s = sigtimedwait(&set, &si, &bound);
    waitpid(c, NULL, 0);
    say("signal %d code %s value %d pid %s uid %d", s, si.si_code == SI_MESGQ ? "SI_MESGQ" : "other",
        si.si_value.sival_int, si.si_pid == c ? "sender" : "other", (int)si.si_uid);
    status(q, 0, "");
    recv_one(q, "notified");
    /* Fired once: a second message sends nothing and another may register. */
    T(mq_send(q, "m", 1, 0));
    struct timespec zero = {0, 0};
    T(sigtimedwait(&set, &si, &zero));
    recv_one(q, "unnotified");
    T(mq_notify(q, &ev));
    T(mq_notify(q, NULL));
    status(q, 0, "");
    ev.sigev_notify = SIGEV_NONE;
    T(mq_notify(q, &ev));
    status(q, getpid(), "self");
    T(mq_send(q, "o", 1, 0));
    status(q, 0, "");
    recv_one(q, "after SIGEV_NONE");
    ev.sigev_notify = 99;
    T(mq_notify(q, &ev));
    ev.sigev_notify = SIGEV_SIGNAL; ev.sigev_signo = 65;
    T(mq_notify(q, &ev));
    T(mq_notify(-1, NULL));
    T(mq_notify(1, NULL));
    /* glibc's SIGEV_THREAD: its helper thread starts ours. */
    pipe(tpipe);
    ev = (struct sigevent){.sigev_notify = SIGEV_THREAD, .sigev_notify_function = on_thread, .sigev_value.sival_int = 'T'};
    T(mq_notify(q, &ev));
    T(mq_notify(q, NULL));
    T(mq_notify(q, &ev));
    T(mq_send(q, "th", 2, 3));
    char got = 0;
    T(read(tpipe[0], &got, 1));
    say("thread ran with '%c'", got);
    recv_one(q, "thread");
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    T(mq_close(q));
}

static void unlinked(void) {
    mqd_t q = mq_open(Q, O_RDWR);
    T(mq_unlink(Q));
    link_of(q);
    T(mq_open(Q, O_RDWR));
    T(mq_send(q, "still", 5, 7));
    recv_one(q, "after unlink");
    T(mq_close(q));
    T(mq_close(q));
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    umask(022);
    sysctls();
    opens();
    exchange();
    nonblocking();
    interrupted();
    notify();
    unlinked();
    return 0;
}
