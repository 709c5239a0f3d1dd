/*
 * fpswitch: what moving FPU state costs a sandbox, per event.
 *
 *   fpswitch signal N   N signals to itself (kill + an empty handler +
 *                       rt_sigreturn): the frame's FPU area out and back in
 *   fpswitch yield N    two threads, each N sched_yield calls: on Moat's
 *                       KVM platform they share one vCPU, so each yield
 *                       that changes thread moves an XSAVE area out and in
 *
 * Prints ns_per_signal=<float> or ns_per_yield=<float> (wall time over the
 * loop, per event; for yield, per call of one thread). ymm1 holds a value
 * throughout, so the state is in use (XSTATE_BV has AVX) where the CPU has
 * AVX. Build static: gcc -O2 -static -pthread -o fpswitch fpswitch.c
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static void use_avx(void) {
    unsigned a, b, c, d;
    __cpuid(1, a, b, c, d);
    if ((c >> 27 & 1) && (c >> 28 & 1)) {
        static const unsigned char v[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                             17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };
        __asm__ volatile("vmovdqu %0, %%ymm1" : : "m"(v) : "xmm1");
    }
}

static void handler(int sig) { (void)sig; }

static long rounds;
static void *yielder(void *arg) {
    (void)arg;
    use_avx();
    for (long i = 0; i < rounds; i++) syscall(SYS_sched_yield);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[1], "signal") && strcmp(argv[1], "yield")) || atol(argv[2]) <= 0) {
        fprintf(stderr, "usage: %s signal|yield N\n", argv[0]);
        return 2;
    }
    long n = atol(argv[2]);
    if (!strcmp(argv[1], "signal")) {
        signal(SIGUSR1, handler);
        pid_t me = getpid();
        use_avx();
        double t0 = now_ns();
        for (long i = 0; i < n; i++) syscall(SYS_kill, me, SIGUSR1);
        printf("ns_per_signal=%.1f\n", (now_ns() - t0) / n);
        return 0;
    }
    rounds = n;
    pthread_t t;
    double t0 = now_ns();
    if (pthread_create(&t, NULL, yielder, NULL)) return 1;
    yielder(NULL);
    pthread_join(t, NULL);
    printf("ns_per_yield=%.1f\n", (now_ns() - t0) / n);
    return 0;
}
