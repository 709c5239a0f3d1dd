/*
 * getppid: syscall round-trip micro-benchmark.
 *
 *   getppid [N]        N defaults to 200000
 *
 * Calls syscall(SYS_getppid) N times (the raw syscall, so no libc caching can
 * short-circuit it) and prints the mean cost of one call, timed with
 * clock_gettime(CLOCK_MONOTONIC) around the whole loop:
 *
 *   ns_per_call=<float>
 *
 * Build static so that it runs unchanged in any rootfs:
 *   gcc -O2 -static -o getppid getppid.c
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long n = 200000;
    if (argc > 1) {
        char *end;
        n = strtol(argv[1], &end, 10);
        if (*argv[1] == '\0' || *end != '\0' || n <= 0) {
            fprintf(stderr, "usage: %s [N>0]\n", argv[0]);
            return 2;
        }
    }

    struct timespec t0, t1;
    long sink = 0;
    if (clock_gettime(CLOCK_MONOTONIC, &t0) != 0) {
        perror("clock_gettime");
        return 1;
    }
    for (long i = 0; i < n; i++)
        sink += syscall(SYS_getppid);
    if (clock_gettime(CLOCK_MONOTONIC, &t1) != 0) {
        perror("clock_gettime");
        return 1;
    }

    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    /* sink keeps the calls observable; a negative sum would mean an error. */
    if (sink < 0) {
        fprintf(stderr, "getppid: syscall returned an error\n");
        return 1;
    }
    printf("ns_per_call=%.2f\n", ns / (double)n);
    return 0;
}
