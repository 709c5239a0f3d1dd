/* System V IPC: shared memory across fork, semaphores with blocking and
 * undo-free semantics, message queues with type selection; errors. */
#include "t.h"
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>

union semun { int val; struct semid_ds *buf; unsigned short *array; };
struct msg { long type; char text[64]; };

int main(void) {
    /* shared memory */
    int id = T(shmget(IPC_PRIVATE, 10000, IPC_CREAT | 0600));
    char *p = shmat(id, NULL, 0);
    T(p != (void *)-1);
    strcpy(p, "parent");
    pid_t c = fork();
    if (c == 0) { strcpy(p + 100, "child wrote this"); _exit(0); }
    waitpid(c, NULL, 0);
    say("shm: %s / %s", p, p + 100);
    struct shmid_ds ds;
    T(shmctl(id, IPC_STAT, &ds));
    say("shm stat: size=%zu mode=%o", ds.shm_segsz, ds.shm_perm.mode & 0777);
    char *q = shmat(id, NULL, SHM_RDONLY);
    T(q != (void *)-1);
    say("second attach sees: %s", q);
    T(shmdt(q));
    T(shmdt(q));
    T(shmctl(id, IPC_RMID, NULL));
    say("still attached after RMID: %s", p);
    T(shmdt(p));
    T(shmat(id, NULL, 0) == (void *)-1);
    T(shmget(IPC_PRIVATE, 0, IPC_CREAT | 0600));
    int k1 = T(shmget(0x1234, 4096, IPC_CREAT | 0640));
    T(shmget(0x1234, 4096, IPC_CREAT | IPC_EXCL | 0640));
    T(shmget(0x1234, 4096, 0) == k1);
    T(shmget(0x1234, 8192, 0));
    T(shmget(0x4321, 4096, 0));
    T(shmctl(k1, IPC_RMID, NULL));
    T(shmctl(k1, IPC_STAT, &ds));
    /* semaphores */
    int s = T(semget(IPC_PRIVATE, 2, IPC_CREAT | 0600));
    union semun arg = {.val = 1};
    T(semctl(s, 0, SETVAL, arg));
    T(semctl(s, 0, GETVAL));
    T(semctl(s, 1, GETVAL));
    struct sembuf down = {0, -1, 0}, up = {0, 1, 0}, nowait = {0, -1, IPC_NOWAIT};
    T(semop(s, &down, 1));
    T(semop(s, &nowait, 1));
    c = fork();
    if (c == 0) {
        struct sembuf d = {0, -1, 0};
        int r = semop(s, &d, 1);                /* blocks until the parent posts */
        _exit(r == 0 ? 3 : 4);
    }
    usleep(200000);
    T(semop(s, &up, 1));
    int st; waitpid(c, &st, 0);
    say("child got the semaphore: %d", WEXITSTATUS(st));
    unsigned short all[2] = {5, 7};
    arg.array = all;
    T(semctl(s, 0, SETALL, arg));
    unsigned short got[2] = {0};
    arg.array = got;
    T(semctl(s, 0, GETALL, arg));
    say("getall %d %d", got[0], got[1]);
    struct sembuf two[2] = {{0, -5, 0}, {1, -8, IPC_NOWAIT}};
    T(semop(s, two, 2));                       /* all or nothing */
    T(semctl(s, 0, GETVAL));
    struct sembuf zero = {0, 0, IPC_NOWAIT};
    T(semop(s, &zero, 1));
    struct sembuf bad = {5, 1, 0};
    T(semop(s, &bad, 1));
    struct timespec ts = {0, 50000000};
    struct sembuf wait1 = {1, -100, 0};
    T(semtimedop(s, &wait1, 1, &ts));
    T(semctl(s, 0, IPC_RMID));
    T(semop(s, &up, 1));
    /* message queues */
    int m = T(msgget(IPC_PRIVATE, IPC_CREAT | 0600));
    struct msg a = {1, "one"}, b = {2, "two"}, d = {3, "three"}, r;
    T(msgsnd(m, &a, 4, 0)); T(msgsnd(m, &b, 4, 0)); T(msgsnd(m, &d, 6, 0));
    T(msgrcv(m, &r, sizeof r.text, 2, 0)); say("type 2: %ld %s", r.type, r.text);
    T(msgrcv(m, &r, sizeof r.text, -3, 0)); say("lowest <= 3: %ld %s", r.type, r.text);
    T(msgrcv(m, &r, 2, 0, 0));
    T(msgrcv(m, &r, 2, 0, MSG_NOERROR)); say("truncated: %ld %.2s", r.type, r.text);
    T(msgrcv(m, &r, sizeof r.text, 0, IPC_NOWAIT));
    struct msqid_ds mq;
    T(msgctl(m, IPC_STAT, &mq));
    say("msg stat: qnum=%lu", (unsigned long)mq.msg_qnum);
    c = fork();
    if (c == 0) { usleep(100000); struct msg x = {9, "late"}; msgsnd(m, &x, 5, 0); _exit(0); }
    T(msgrcv(m, &r, sizeof r.text, 9, 0)); say("blocking receive: %s", r.text);
    waitpid(c, NULL, 0);
    struct msg zero_type = {0, "x"};
    T(msgsnd(m, &zero_type, 2, 0));
    T(msgctl(m, IPC_RMID, NULL));
    T(msgsnd(m, &a, 4, 0));

    /* The info calls fill their own structure and nothing past it, and
     * IPC_INFO agrees with /proc/sys/kernel/shm*. */
    unsigned char big[256];
    int sid = shmget(IPC_PRIVATE, 10000, 0600);
    memset(big, 0x55, sizeof big);
    T(shmctl(0, IPC_INFO, (struct shmid_ds *)big) >= 0);
    struct shminfo *si = (struct shminfo *)big;
    say("shminfo: shmmin=%lu shmmni=%lu shmseg=%lu untouched after: %d", si->shmmin, si->shmmni, si->shmseg,
        big[sizeof(struct shminfo)] == 0x55);
    cat("/proc/sys/kernel/shmmax"); say("shmmax: %lu", si->shmmax);
    cat("/proc/sys/kernel/shmall"); say("shmall: %lu", si->shmall);
    memset(big, 0x55, sizeof big);
    T(shmctl(0, SHM_INFO, (struct shmid_ds *)big) >= 0);
    struct shm_info *sh = (struct shm_info *)big;
    say("shm_info: used_ids=%d shm_tot=%lu untouched after: %d", sh->used_ids, sh->shm_tot, big[sizeof(struct shm_info)] == 0x55);
    T(shmctl(sid, IPC_RMID, NULL));
    return 0;
}
