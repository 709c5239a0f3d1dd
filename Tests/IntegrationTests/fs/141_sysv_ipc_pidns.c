/* SysV IPC's stored pids across pid namespaces: shmctl IPC_STAT's
 * shm_cpid/shm_lpid, msgctl IPC_STAT's msg_lspid/msg_lrpid and semctl
 * GETPID name processes as the reader's namespace numbers them, 0 for one
 * it cannot see. The parent makes the objects and acts on them; a child that
 * is pid 1 of a new pid namespace reads them (the parent's pid: 0), acts
 * (its own: 1), and the parent reads the child's pid as its own namespace
 * numbers it (compared with fork's answer), while the child is alive. */
#include "t.h"
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>

struct msg { long type; char text[8]; };
static int shmid, msqid, semid;

static void stats(const char *who, pid_t me, pid_t other) {
    struct shmid_ds sd;
    struct msqid_ds md;
    T(shmctl(shmid, IPC_STAT, &sd));
    T(msgctl(msqid, IPC_STAT, &md));
    int gp = semctl(semid, 0, GETPID);
    #define WHO(p) ((p) == 0 ? "0" : (p) == me ? "me" : (p) == other ? "other" : "?")
    say("%s: shm_cpid %s shm_lpid %s msg_lspid %s msg_lrpid %s sem GETPID %s", who,
        WHO(sd.shm_cpid), WHO(sd.shm_lpid), WHO(md.msg_lspid), WHO(md.msg_lrpid), WHO(gp));
}

int main(void) {
    shmid = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    msqid = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    semid = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
    if (shmid < 0 || msqid < 0 || semid < 0) { say("get: %s", ename(errno)); return 1; }
    pid_t me = getpid();
    struct sembuf up = {0, 1, 0};
    T(semop(semid, &up, 1));
    struct msg m = {1, "hello"};
    T(msgsnd(msqid, &m, sizeof m.text, 0));
    void *a = shmat(shmid, NULL, 0);
    T(a == (void *)-1 ? -1 : 0);
    T(shmdt(a));
    stats("parent before", me, -1);

    int go[2], done[2];
    T(pipe(go));
    T(pipe(done));
    T(unshare(CLONE_NEWPID));
    pid_t c = fork();
    if (c == 0) {
        pid_t self = getpid();
        say("child pid %d", self);
        stats("child first", self, me);
        void *b = shmat(shmid, NULL, 0);
        T(b == (void *)-1 ? -1 : 0);
        T(shmdt(b));
        T(msgrcv(msqid, &m, sizeof m.text, 0, 0));
        T(semop(semid, &up, 1));
        T(msgsnd(msqid, &m, sizeof m.text, 0));
        stats("child after", self, me);
        /* A grandchild: the child's namespace sees it, numbered 2. */
        pid_t g = fork();
        if (g == 0) {
            T(semop(semid, &up, 1));
            _exit(0);
        }
        T(waitpid(g, NULL, 0));
        say("child: sem GETPID after its child %d (its child %d)", semctl(semid, 0, GETPID), g);
        T(semop(semid, &up, 1));
        /* Unprinted: the parent prints as soon as this arrives, so a line
           printed here after the write would race with its lines. */
        if (write(done[1], "d", 1) != 1) say("write(done) failed");
        char x;
        read(go[0], &x, 1);
        _exit(0);
    }
    char x;
    T(read(done[0], &x, 1));
    stats("parent after", me, c);
    T(write(go[1], "g", 1));
    T(waitpid(c, NULL, 0) == c ? 0 : -1);
    /* The child's pid still names it after it is gone, as Linux's struct pid does. */
    T(semop(semid, &up, 1));
    stats("parent last", me, c);
    T(shmctl(shmid, IPC_RMID, NULL));
    T(msgctl(msqid, IPC_RMID, NULL));
    T(semctl(semid, 0, IPC_RMID));
    return 0;
}
