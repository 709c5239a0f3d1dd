/* cgroup v2 notifications and membership (session 21, issue 15), on a
 * scratch cgroup under the program's own (natively the host's hierarchy,
 * in Moat the sandbox's; removed at the end). cgroup.events: a new open
 * file polls POLLPRI|POLLERR once (until a read from the start); the first
 * live process in a cgroup's subtree and the last one's exit (a zombie does
 * not count) are events for the cgroup and its ancestors, with IN_MODIFY
 * for an inotify watch on the file; a second process is none. A zombie is
 * not in cgroup.procs, writing its pid moves nothing (and succeeds), its
 * cgroup may be removed and /proc/PID/cgroup then says "(deleted)". A
 * write to cgroup.procs is checked with the credentials the file was
 * opened with (the common ancestor's cgroup.procs must be writable by the
 * opener), not the writer's. */
#include "t.h"
#include "cgroup.h"
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>

#define TOP "/tmp/cg127"

static char scratch[512], own[256];

static const char *at(const char *rel) {
    static char p[4][700];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof p[i], "%s%s", scratch, rel);
    return p[i];
}

/* An event on a cgroup.events fd: wait up to `ms` for POLLPRI, then read
 * from the start (which clears it) and print what the file shows. */
static void events(const char *label, int fd, int ms) {
    struct pollfd p = { fd, POLLPRI, 0 };
    int n = poll(&p, 1, ms);
    char buf[128] = {0};
    lseek(fd, 0, SEEK_SET);
    ssize_t r = read(fd, buf, sizeof buf - 1);
    for (char *c = buf; *c; c++) if (*c == '\n') *c = ' ';
    say("%s: poll = %d%s%s; read %s: %s", label, n, p.revents & POLLPRI ? " PRI" : "", p.revents & POLLERR ? " ERR" : "",
        r > 0 ? "ok" : "failed", buf);
    n = poll(&p, 1, 0);
    if (n != 0) say("%s: poll after the read = %d", label, n);
}

static void no_events(const char *label, int fd) {
    usleep(100000);   /* Linux spaces a cgroup's notifications 20 ms apart */
    struct pollfd p = { fd, POLLPRI, 0 };
    say("%s: poll = %d", label, poll(&p, 1, 0));
}

static void inotify_events(const char *label, int in, int ms) {
    struct pollfd p = { in, POLLIN, 0 };
    int n = poll(&p, 1, ms);
    char buf[4096] __attribute__((aligned(8)));
    ssize_t r = n > 0 ? read(in, buf, sizeof buf) : 0;
    int count = 0, modify = 0;
    for (char *c = buf; c < buf + (r > 0 ? r : 0);) {
        struct inotify_event *e = (struct inotify_event *)c;
        count++;
        if (e->mask & IN_MODIFY) modify++;
        c += sizeof *e + e->len;
    }
    say("%s: %d inotify event(s), %d IN_MODIFY", label, count, modify);
}

static pid_t sleeper(int *wfd) {
    int p[2];
    Q(pipe(p));
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        close(p[1]);
        char x;
        _exit(read(p[0], &x, 1) == 1 ? 7 : 8);
    }
    close(p[0]);
    *wfd = p[1];
    return c;
}

static void zombie(pid_t c, int wfd) {
    Q(write(wfd, "x", 1));
    close(wfd);
    siginfo_t si;
    Q(waitid(P_PID, c, &si, WEXITED | WNOWAIT));
}

static int lines(const char *path) {
    char buf[4096];
    if (rd(path, buf, sizeof buf) < 0) return -1;
    int n = 0;
    for (char *c = buf; *c; c++) n += *c == '\n';
    return n;
}

int main(void) {
    T(mkdir(TOP, 0755));
    T(mount("none", TOP, "cgroup2", 0, NULL));
    cgroup_of(getpid(), own, sizeof own);
    snprintf(scratch, sizeof scratch, TOP "%s/fs127.%d", strcmp(own, "/") ? own : "", getpid());
    T(mkdir(scratch, 0755));
    T(mkdir(at("/a"), 0755));
    T(mkdir(at("/a/b"), 0755));

    int ea = open(at("/a/cgroup.events"), O_RDONLY);
    int eb = open(at("/a/b/cgroup.events"), O_RDONLY);
    int eb2 = open(at("/a/b/cgroup.events"), O_RDONLY);
    events("a, new open file", ea, 0);
    events("b, new open file", eb, 0);
    no_events("a, once read", ea);
    int in = inotify_init1(IN_NONBLOCK);
    T(inotify_add_watch(in, at("/a/b/cgroup.events"), IN_MODIFY) >= 0);

    int w1, w2;
    pid_t p1 = sleeper(&w1), p2 = sleeper(&w2);
    T(wr_pid(at("/a/b/cgroup.procs"), p1));
    events("b, first process in", eb, 2000);
    events("a, first process in b", ea, 2000);
    inotify_events("b, first process in", in, 2000);
    T(wr_pid(at("/a/b/cgroup.procs"), p2));
    no_events("b, second process in", eb);
    no_events("a, second process in b", ea);
    inotify_events("b, second process in", in, 100);

    zombie(p1, w1);
    no_events("b, one of two a zombie", eb);
    say("b's cgroup.procs lines with one zombie: %d", lines(at("/a/b/cgroup.procs")));
    T(wr_pid(at("/cgroup.procs"), p1));
    char c[256];
    cgroup_of(p1, c, sizeof c);
    say("the zombie's cgroup ends in /a/b: %d", strlen(c) > 4 && !strcmp(c + strlen(c) - 4, "/a/b"));
    say("scratch's cgroup.procs lines: %d", lines(at("/cgroup.procs")));

    zombie(p2, w2);
    events("b, both zombies", eb, 2000);
    events("a, both of b's zombies", ea, 2000);
    inotify_events("b, both zombies", in, 2000);
    /* The second open file of b's has not read since it was opened: one event pending. */
    events("b, the second open file", eb2, 0);

    T(rmdir(at("/a/b")));
    cgroup_of(p1, c, sizeof c);
    say("the zombie's cgroup once removed ends in /a/b (deleted): %d", strlen(c) > 14 && !strcmp(c + strlen(c) - 14, "/a/b (deleted)"));
    int st;
    T(waitpid(p1, &st, 0) == p1);
    T(waitpid(p2, &st, 0) == p2);
    close(ea); close(eb); close(eb2); close(in);

    /* Open-time credentials: a descriptor opened by uid 65534 moves nothing
     * until 65534 may write the common ancestor's cgroup.procs. */
    T(mkdir(at("/p"), 0755));
    T(mkdir(at("/p/c"), 0755));
    T(wr(at("/p/cgroup.procs"), "0"));
    T(chown(at("/p/c/cgroup.procs"), 65534, -1));
    T(syscall(SYS_setresuid, -1, 65534, -1));
    int fd = open(at("/p/c/cgroup.procs"), O_RDWR);
    T(syscall(SYS_setresuid, -1, 0, -1));
    T(fd >= 0);
    T(write(fd, "0", 1));
    T(chown(at("/p/cgroup.procs"), 65534, -1));
    T(write(fd, "0", 1));
    cgroup_of(getpid(), c, sizeof c);
    say("own cgroup now ends in /p/c: %d", strlen(c) > 4 && !strcmp(c + strlen(c) - 4, "/p/c"));
    close(fd);

    char back[600];
    snprintf(back, sizeof back, TOP "%s/cgroup.procs", strcmp(own, "/") ? own : "");
    T(wr(back, "0"));
    T(rmdir(at("/p/c")));
    T(rmdir(at("/p")));
    T(rmdir(at("/a")));
    T(rmdir(scratch));
    T(umount(TOP));
    T(rmdir(TOP));
    return 0;
}
