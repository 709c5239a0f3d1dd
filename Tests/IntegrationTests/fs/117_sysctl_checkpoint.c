/* /proc/sys keys programs (and LTP) read or write, honoured:
 * - kernel.{msg,shm,sem}_next_id (CONFIG_CHECKPOINT_RESTORE): the next
 *   SysV object takes the id written, or the first free index above it
 *   with its sequence number; the key reads -1 again after;
 * - msgrcv's MSG_COPY: the message at a position, left in the queue;
 * - kernel.ns_last_pid in a new pid namespace: the next fork gets the pid
 *   after the one written;
 * - fs.nr_open bounds RLIMIT_NOFILE; fs.pipe-max-size bounds F_SETPIPE_SZ
 *   without CAP_SYS_RESOURCE (read only here: natively both are the
 *   host's own);
 * - an inotify queue past fs.inotify.max_queued_events ends in one
 *   IN_Q_OVERFLOW;
 * - /proc/self/status has VmSwap, kernel.tainted is a number.
 * Natively the program runs in its own IPC namespace (unshare -i), so the
 * next_id writes touch nothing outside. */
#include "t.h"
#include <signal.h>
#include <linux/capability.h>
#include <sys/inotify.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/shm.h>

#ifndef MSG_COPY
#define MSG_COPY 040000
#endif

static long readnum(const char *p) {
    char b[64] = {0};
    int fd = open(p, O_RDONLY);
    if (fd < 0) { say("%s: open %s", p, ename(errno)); return -999; }
    ssize_t n = read(fd, b, sizeof b - 1);
    close(fd);
    return n > 0 ? strtol(b, NULL, 10) : -998;
}

static void writenum(const char *p, long v) {
    char b[32];
    int fd = open(p, O_WRONLY);
    if (fd < 0) { say("%s: open for writing %s", p, ename(errno)); return; }
    int n = snprintf(b, sizeof b, "%ld", v);
    if (write(fd, b, n) != n) say("%s = %ld: %s", p, v, ename(errno));
    close(fd);
}

static void next_ids(void) {
    writenum("/proc/sys/kernel/msg_next_id", 4242);
    int q = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    say("msgget after msg_next_id=4242: %s", q == 4242 ? "4242" : "other");
    say("msg_next_id now %ld", readnum("/proc/sys/kernel/msg_next_id"));
    /* the id taken: the next free index above it, same sequence */
    writenum("/proc/sys/kernel/msg_next_id", 4242);
    int q2 = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    say("again: %s", q2 == 4243 ? "4243" : "other");
    writenum("/proc/sys/kernel/msg_next_id", 3 * 32768 + 7);
    int q3 = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    say("with a sequence: %s", q3 == 3 * 32768 + 7 ? "3*32768+7" : "other");
    struct msqid_ds ds;
    T(msgctl(q3, IPC_STAT, &ds));
    say("__seq %u", (unsigned)ds.msg_perm.__seq);

    writenum("/proc/sys/kernel/shm_next_id", 77);
    int s = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    say("shmget after shm_next_id=77: %s", s == 77 ? "77" : "other");
    writenum("/proc/sys/kernel/sem_next_id", 99);
    int m = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
    say("semget after sem_next_id=99: %s", m == 99 ? "99" : "other");
    say("shm_next_id %ld sem_next_id %ld", readnum("/proc/sys/kernel/shm_next_id"), readnum("/proc/sys/kernel/sem_next_id"));
    writenum("/proc/sys/kernel/msg_next_id", -5);

    /* MSG_COPY */
    struct { long type; char text[16]; } msg = { 5, "first" }, got;
    T(msgsnd(q, &msg, 6, 0));
    msg.type = 6; strcpy(msg.text, "second");
    T(msgsnd(q, &msg, 7, 0));
    T(msgrcv(q, &got, sizeof got.text, 1, MSG_COPY));
    T(msgrcv(q, &got, sizeof got.text, 1, MSG_COPY | IPC_NOWAIT | MSG_EXCEPT));
    memset(&got, 0, sizeof got);
    T(msgrcv(q, &got, sizeof got.text, 1, MSG_COPY | IPC_NOWAIT));
    say("copy of #1: type %ld %s", got.type, got.text);
    T(msgrcv(q, &got, sizeof got.text, 2, MSG_COPY | IPC_NOWAIT));
    T(msgrcv(q, &got, 3, 0, MSG_COPY | IPC_NOWAIT));
    T(msgctl(q, IPC_STAT, &ds));
    say("still queued: %lu", (unsigned long)ds.msg_qnum);
    T(msgrcv(q, &got, sizeof got.text, 0, IPC_NOWAIT));
    say("received: type %ld %s", got.type, got.text);

    msgctl(q, IPC_RMID, NULL); msgctl(q2, IPC_RMID, NULL); msgctl(q3, IPC_RMID, NULL);
    shmctl(s, IPC_RMID, NULL); semctl(m, 0, IPC_RMID);
}

static void last_pid(void) {
    fflush(stdout);
    if (unshare(CLONE_NEWPID) != 0) { say("unshare(CLONE_NEWPID): %s", ename(errno)); return; }
    pid_t init = fork();
    if (init == 0) {
        /* pid 1 of the new namespace */
        say("init: pid %d, ns_last_pid %ld", getpid(), readnum("/proc/sys/kernel/ns_last_pid"));
        writenum("/proc/sys/kernel/ns_last_pid", 499);
        say("written 499: reads %ld", readnum("/proc/sys/kernel/ns_last_pid"));
        fflush(stdout);
        pid_t c = fork();
        if (c == 0) _exit(0);
        say("fork after ns_last_pid=499: child %d", c);
        waitpid(c, NULL, 0);
        writenum("/proc/sys/kernel/ns_last_pid", 4194304);
        writenum("/proc/sys/kernel/ns_last_pid", -1);
        say("after bad writes: %ld", readnum("/proc/sys/kernel/ns_last_pid"));
        fflush(stdout);
        _exit(0);
    }
    waitpid(init, NULL, 0);
}

static void limits(void) {
    long nr = readnum("/proc/sys/fs/nr_open");
    struct rlimit r = { 1024, (rlim_t)nr + 1 };
    T(setrlimit(RLIMIT_NOFILE, &r));
    struct rlimit now;
    getrlimit(RLIMIT_NOFILE, &now);
    r.rlim_max = now.rlim_max;
    T(setrlimit(RLIMIT_NOFILE, &r));
    long pm = readnum("/proc/sys/fs/pipe-max-size");
    int p[2];
    T(pipe(p));
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        /* without CAP_SYS_RESOURCE: pipe-max-size is the ceiling */
        struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
        struct __user_cap_data_struct d[2];
        memset(d, 0, sizeof d);
        if (syscall(SYS_capset, &h, d) != 0) say("capset: %s", ename(errno));
        say("F_SETPIPE_SZ pipe-max-size: %s", fcntl(p[0], F_SETPIPE_SZ, (int)pm) == pm ? "ok" : ename(errno));
        say("F_SETPIPE_SZ twice that: %s", fcntl(p[0], F_SETPIPE_SZ, (int)pm * 2) >= 0 ? "ok" : ename(errno));
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    close(p[0]); close(p[1]);
}

static void overflow(void) {
    long max = readnum("/proc/sys/fs/inotify/max_queued_events");
    put("ev", "x");
    int in = inotify_init1(IN_NONBLOCK);
    T(inotify_add_watch(in, "ev", IN_MODIFY | IN_ACCESS));
    int fd = open("ev", O_RDWR);
    char c = 'y';
    /* alternate so that no two queued events in a row are the same */
    for (long i = 0; i < max + 10; i++) {
        if (i % 2 == 0) (void)!pwrite(fd, &c, 1, 0); else (void)!pread(fd, &c, 1, 0);
    }
    close(fd);
    static char buf[1 << 20];
    long events = 0, overflows = 0, last_wd = 0;
    unsigned last_mask = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n <= 0) break;
        for (char *q = buf; q < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)q;
            events++;
            if (e->mask & IN_Q_OVERFLOW) overflows++;
            last_wd = e->wd; last_mask = e->mask;
            q += sizeof *e + e->len;
        }
    }
    say("inotify: %s events, %ld overflow, the last wd %ld mask %#x", events == max + 1 ? "max+1" : "other",
        overflows, last_wd, last_mask);
    close(in);
    unlink("ev");
}

int main(void) {
    next_ids();
    last_pid();
    limits();
    overflow();
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    int swap = 0;
    while (f && fgets(line, sizeof line, f)) if (!strncmp(line, "VmSwap:", 7)) swap = 1;
    if (f) fclose(f);
    say("VmSwap line: %s", swap ? "yes" : "no");
    say("tainted is a number: %s", readnum("/proc/sys/kernel/tainted") >= 0 ? "yes" : "no");
    return 0;
}
