/*
 * pingpong: two threads of one process hand a token back and forth N times,
 * each blocked in the kernel until the other wakes it: every half round is
 * one blocked thread woken by another. The wake-up profile of
 * bench/results/2026-12-06-wakeup-profile.md counts the Sentry's host calls
 * per round with it (no bench/run.sh row: the ring, tcprr and fsops pipe
 * rows are the figures).
 *
 *   pingpong pipe  [N]   1 byte each way over two pipes
 *   pingpong futex [N]   FUTEX_WAIT / FUTEX_WAKE on two words
 *   -> us_per_round=<float>
 *
 * Build static: gcc -O2 -static -pthread -o pingpong pingpong.c
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long n;
static int ab[2], ba[2];
static int word[2];

static void fwait(int *w, int v) { syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0); }
static void fwake(int *w) { syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0); }

static void *pipe_echo(void *arg) {
    (void)arg;
    char c;
    for (long i = 0; i < n; i++) {
        if (read(ab[0], &c, 1) != 1 || write(ba[1], &c, 1) != 1) { perror("echo"); exit(1); }
    }
    return NULL;
}

/* word[k] counts the tokens handed to side k; a side waits while its count
 * is what it last saw. */
static void *futex_echo(void *arg) {
    (void)arg;
    for (long i = 0; i < n; i++) {
        while (__atomic_load_n(&word[1], __ATOMIC_ACQUIRE) == (int)i) fwait(&word[1], (int)i);
        __atomic_store_n(&word[0], (int)(i + 1), __ATOMIC_RELEASE);
        fwake(&word[0]);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: pingpong pipe|futex [N]\n"); return 2; }
    int usePipe = !strcmp(argv[1], "pipe");
    n = argc > 2 ? atol(argv[2]) : 20000;
    if (usePipe && (pipe(ab) || pipe(ba))) { perror("pipe"); return 1; }
    pthread_t th;
    if (pthread_create(&th, NULL, usePipe ? pipe_echo : futex_echo, NULL)) { perror("pthread_create"); return 1; }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char c = 'x';
    for (long i = 0; i < n; i++) {
        if (usePipe) {
            if (write(ab[1], &c, 1) != 1 || read(ba[0], &c, 1) != 1) { perror("ping"); return 1; }
        } else {
            __atomic_store_n(&word[1], (int)(i + 1), __ATOMIC_RELEASE);
            fwake(&word[1]);
            while (__atomic_load_n(&word[0], __ATOMIC_ACQUIRE) == (int)i) fwait(&word[0], (int)i);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_join(th, NULL);
    printf("us_per_round=%.2f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / n);
    return 0;
}
