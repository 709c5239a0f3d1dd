/*
 * cpuloop: a CPU-bound loop that makes no syscalls while it runs.
 *
 *   cpuloop [N]    N million iterations (default 60)    -> ms=<float>
 *
 * Timed with CLOCK_MONOTONIC around the loop only (two calls in all), so
 * the figure shows whether a sandbox slows down code that never traps.
 * Build static: gcc -O2 -static -o cpuloop cpuloop.c
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    long n = (argc > 1 ? atol(argv[1]) : 60) * 1000000L;
    struct timespec t0, t1;
    volatile uint64_t sink;
    uint64_t x = 88172645463325252ULL, acc = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;   /* xorshift64 */
        acc += x % 1000003;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    sink = acc;
    (void)sink;
    printf("ms=%.1f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e6);
    return 0;
}
