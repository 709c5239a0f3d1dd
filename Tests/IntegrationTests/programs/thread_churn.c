/* Thread churn for the host-thread leak test: 1,000 short-lived threads
 * (50 alive at a time) and a 64-thread futex ping-pong, between two phase
 * markers the test watches from the host: /work/phase1 before any thread
 * was made, /work/phase2 after all of them are gone. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static void *nothing(void *a) { return a; }

static int ball;
static void *player(void *arg) {
    long me = (long)arg;
    for (int round = 0; round < 20; round++) {
        int want = (int)((round * 64 + me) % 64);
        while (__atomic_load_n(&ball, __ATOMIC_ACQUIRE) % 64 != want)
            syscall(SYS_futex, &ball, FUTEX_WAIT_PRIVATE, __atomic_load_n(&ball, __ATOMIC_ACQUIRE), NULL, NULL, 0);
        __atomic_add_fetch(&ball, 1, __ATOMIC_RELEASE);
        syscall(SYS_futex, &ball, FUTEX_WAKE_PRIVATE, 64, NULL, NULL, 0);
    }
    return NULL;
}

static void mark(const char *p) { int fd = open(p, O_CREAT | O_WRONLY, 0644); close(fd); }

int main(void) {
    mark("/work/phase1");
    sleep(2);
    for (int batch = 0; batch < 20; batch++) {
        pthread_t t[50];
        for (int i = 0; i < 50; i++) pthread_create(&t[i], NULL, nothing, NULL);
        for (int i = 0; i < 50; i++) pthread_join(t[i], NULL);
    }
    pthread_t p[64];
    for (long i = 0; i < 64; i++) pthread_create(&p[i], NULL, player, (void *)i);
    for (int i = 0; i < 64; i++) pthread_join(p[i], NULL);
    printf("ball=%d\n", ball);
    fflush(stdout);
    sleep(1);
    mark("/work/phase2");
    sleep(2);
    return 0;
}
