/* IPC namespaces (session 16, issue 15): unshare, clone and clone3 with
 * CLONE_NEWIPC give an empty namespace (SysV shm, msg, sem and POSIX message
 * queues), whose sysctls start from Linux's defaults; a segment attached
 * before unshare stays attached (shared, detachable, counted); CAP_SYS_ADMIN
 * is needed (EPERM), CLONE_NEWIPC with CLONE_SYSVSEM is EINVAL; the
 * /proc/PID/ns/ipc link, its nsfs ioctls (NS_GET_PARENT EINVAL: no
 * hierarchy) and setns by ns fd or pidfd. Natively the program starts in
 * an IPC namespace of its own (unshare -i), in Moat in the sandbox's. */
#include "t.h"
#include "ns.h"
#include <mqueue.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>

#define K_SHM 0x1110
#define K_MSG 0x1111
#define K_SEM 0x1112
#define K_JOIN 0x1113

struct msg { long type; char text[16]; };

static void read_sysctl(const char *label, const char *path) {
    char buf[128] = "";
    int fd = open(path, O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0) close(fd);
    if (n > 0 && buf[n - 1] == '\n') buf[n - 1] = 0;
    say("%s %s: %s", label, path + 10, n < 0 ? "unreadable" : buf);
}

static int write_sysctl(const char *path, const char *v) {
    int fd = open(path, O_WRONLY);
    if (fd < 0) return -1;
    int r = write(fd, v, strlen(v)) == (ssize_t)strlen(v) ? 0 : -1;
    close(fd);
    return r;
}

/* How many objects /proc/sysvipc/KIND lists (lines past the header). */
static int sysvipc_count(const char *kind) {
    char path[64], buf[8192];
    snprintf(path, sizeof path, "/proc/sysvipc/%s", kind);
    int fd = open(path, O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0) close(fd);
    if (n < 0) return -1;
    int lines = 0;
    for (ssize_t i = 0; i < n; i++) lines += buf[i] == '\n';
    return lines - 1;
}

/* What a process in a fresh namespace finds of ours. */
static void fresh_view(const char *label) {
    say("%s: shmget old key: %s", label, shmget(K_SHM, 0, 0) < 0 ? ename(errno) : "found");
    say("%s: msgget old key: %s", label, msgget(K_MSG, 0) < 0 ? ename(errno) : "found");
    say("%s: semget old key: %s", label, semget(K_SEM, 0, 0) < 0 ? ename(errno) : "found");
    mqd_t q = mq_open("/q111", O_RDONLY);
    say("%s: mq_open old queue: %s", label, q < 0 ? ename(errno) : "found");
    say("%s: sysvipc objects: shm %d msg %d sem %d", label, sysvipc_count("shm"), sysvipc_count("msg"), sysvipc_count("sem"));
}

/* The holder's object, found by those who join its namespace. */
static void fill_holder(void) {
    int id = msgget(K_JOIN, IPC_CREAT | 0600);
    struct msg hm = { 2, "joined" };
    msgsnd(id, &hm, sizeof hm.text, 0);
}

static void unprivileged(void) {
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        if (setuid(65534) != 0) _exit(1);
        T(unshare(CLONE_NEWIPC));
        FAILS(raw_clone(CLONE_NEWIPC | SIGCHLD));
        FAILS(clone3_flags(CLONE_NEWIPC));
        _exit(0);
    }
    say("unprivileged child exit %d", wait_child(p));
}

int main(void) {
    char own[64], other[64], path[64];
    link_of("/proc/self/ns/ipc", own, sizeof own);
    say("ipc link starts with ipc:[ : %d", strncmp(own, "ipc:[", 5) == 0);

    /* Objects of ours. */
    int shm = shmget(K_SHM, 4096, IPC_CREAT | 0600);
    say("shmget: %d", shm >= 0);
    char *mem = shmat(shm, NULL, 0);
    say("shmat: %d", mem != (void *)-1);
    strcpy(mem, "before");
    int msq = msgget(K_MSG, IPC_CREAT | 0600);
    struct msg m = { 1, "hello" };
    T(msgsnd(msq, &m, sizeof m.text, 0));
    int sem = semget(K_SEM, 1, IPC_CREAT | 0600);
    say("semget: %d", sem >= 0);
    struct mq_attr attr = { .mq_maxmsg = 4, .mq_msgsize = 32 };
    mqd_t q = mq_open("/q111", O_CREAT | O_RDWR, 0600, &attr);
    say("mq_open: %d", q >= 0);
    T(write_sysctl("/proc/sys/kernel/msgmni", "100"));
    T(write_sysctl("/proc/sys/fs/mqueue/msg_max", "20"));

    /* unshare: an empty namespace with default limits; the attachment stays. */
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        T(unshare(CLONE_NEWIPC));
        link_of("/proc/self/ns/ipc", other, sizeof other);
        say("unshared: link differs: %d", strcmp(own, other) != 0);
        fresh_view("unshared");
        read_sysctl("unshared", "/proc/sys/kernel/msgmni");
        read_sysctl("unshared", "/proc/sys/fs/mqueue/msg_max");
        read_sysctl("unshared", "/proc/sys/kernel/shmmni");
        read_sysctl("unshared", "/proc/sys/kernel/sem");
        say("unshared: attached segment reads %s", mem);
        strcpy(mem, "after");
        struct shmid_ds ds;
        T(shmctl(shm, IPC_STAT, &ds));                          /* not in this namespace */
        T(shmdt(mem));
        int mine = shmget(K_SHM, 8192, IPC_CREAT | 0600);
        say("unshared: own segment with the same key: %d", mine >= 0);
        say("unshared: sysvipc shm %d", sysvipc_count("shm"));
        T(write_sysctl("/proc/sys/kernel/msgmni", "7"));
        mqd_t q2 = mq_open("/q111", O_CREAT | O_RDWR, 0600, &attr);
        say("unshared: own queue with the same name: %d", q2 >= 0);
        _exit(0);
    }
    say("unshared child exit %d", wait_child(p));
    say("segment reads %s", mem);
    struct shmid_ds ds;
    T(shmctl(shm, IPC_STAT, &ds));
    say("nattch %lu", (unsigned long)ds.shm_nattch);
    say("shmget same key: same id %d", shmget(K_SHM, 0, 0) == shm);
    memset(&m, 0, sizeof m);
    T(msgrcv(msq, &m, sizeof m.text, 0, IPC_NOWAIT));
    say("message %s", m.text);
    read_sysctl("ours", "/proc/sys/kernel/msgmni");
    read_sysctl("ours", "/proc/sys/fs/mqueue/msg_max");
    say("sysvipc objects: shm %d msg %d sem %d", sysvipc_count("shm"), sysvipc_count("msg"), sysvipc_count("sem"));
    struct mq_attr a2;
    T(mq_getattr(q, &a2));
    say("our queue: maxmsg %ld", a2.mq_maxmsg);

    /* clone and clone3 with CLONE_NEWIPC. */
    fflush(stdout);
    p = raw_clone(CLONE_NEWIPC | SIGCHLD);
    if (p == 0) { fresh_view("clone"); _exit(0); }
    say("clone child exit %d", wait_child(p));
    fflush(stdout);
    p = clone3_flags(CLONE_NEWIPC);
    if (p == 0) { fresh_view("clone3"); _exit(0); }
    say("clone3 child exit %d", wait_child(p));
    FAILS(raw_clone(CLONE_NEWIPC | CLONE_SYSVSEM | SIGCHLD));
    FAILS(clone3_flags(CLONE_NEWIPC | CLONE_SYSVSEM));
    fflush(stdout);
    p = fork();
    if (p == 0) { T(unshare(CLONE_NEWIPC | CLONE_SYSVSEM)); fresh_view("unshare with SYSVSEM"); _exit(0); }
    say("SYSVSEM child exit %d", wait_child(p));
    unprivileged();

    /* setns: a process in a namespace of its own, joined by fd and pidfd. */
    int go_w;
    pid_t holder;
    int nsfd = ns_holder(CLONE_NEWIPC, "ipc", fill_holder, &go_w, &holder, path, sizeof path);
    if (nsfd < 0) return 1;
    int selffd = ns_fd_checks(nsfd, CLONE_NEWIPC, "ipc");

    fflush(stdout);
    p = fork();
    if (p == 0) {
        T(setns(nsfd, CLONE_NEWUTS));
        T(setns(nsfd, CLONE_NEWPID));
        T(setns(nsfd, CLONE_NEWIPC));
        say("joined by fd: link is the holder's: %d", ({ link_of("/proc/self/ns/ipc", other, sizeof other);
            char h[64]; link_of(path, h, sizeof h); strcmp(h, other) == 0; }));
        say("joined by fd: msgget holder's key: %d, ours: %s", msgget(K_JOIN, 0) >= 0,
            msgget(K_MSG, 0) < 0 ? ename(errno) : "found");
        T(setns(selffd, 0));
        say("back: msgget holder's key: %s, ours: %d", msgget(K_JOIN, 0) < 0 ? ename(errno) : "found", msgget(K_MSG, 0) >= 0);
        int pfd = syscall(SYS_pidfd_open, holder, 0);
        T(setns(pfd, CLONE_NEWIPC | CLONE_NEWUTS));
        int id = msgget(K_JOIN, 0);
        struct msg got = { 0, "" };
        T(msgrcv(id, &got, sizeof got.text, 2, IPC_NOWAIT));
        say("joined by pidfd: message %s", got.text);
        if (setuid(65534) == 0) T(setns(selffd, CLONE_NEWIPC));
        _exit(0);
    }
    say("joining child exit %d", wait_child(p));
    close(go_w);
    say("holder exit %d", wait_child(holder));
    /* A namespace whose processes are gone lives on while an fd names it. */
    fflush(stdout);
    p = fork();
    if (p == 0) {
        T(setns(nsfd, 0));
        say("held namespace: msgget holder's key: %d", msgget(K_JOIN, 0) >= 0);
        _exit(0);
    }
    say("held namespace child exit %d", wait_child(p));

    /* Our own objects, cleaned up. */
    T(shmdt(mem));
    T(shmctl(shm, IPC_RMID, NULL));
    T(msgctl(msq, IPC_RMID, NULL));
    T(semctl(sem, 0, IPC_RMID));
    T(mq_unlink("/q111"));
    return 0;
}
