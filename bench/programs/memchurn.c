/*
 * memchurn: page-fault cost and mmap/munmap churn.
 *
 *   memchurn fault [PAGES]   touch PAGES fresh anonymous pages once each
 *                            (default 20000)       -> ns_per_fault=<float>
 *   memchurn churn [N]       N times: mmap 64 KiB, touch its 16 pages,
 *                            munmap (default 5000) -> us_per_iter=<float>
 *
 * "fault" is what a sandbox adds to a first touch of memory (the host's own
 * fault handling is in the native figure); "churn" adds the address-space
 * changes a malloc-heavy program makes. Build static:
 *   gcc -O2 -static -o memchurn memchurn.c
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "fault";
    if (strcmp(mode, "fault") == 0) {
        long pages = argc > 2 ? atol(argv[2]) : 20000;
        char *p = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) { perror("mmap"); return 1; }
        double t0 = now_ns();
        for (long i = 0; i < pages; i++) p[i * 4096] = (char)i;
        double t1 = now_ns();
        printf("ns_per_fault=%.1f\n", (t1 - t0) / pages);
        return 0;
    }
    if (strcmp(mode, "churn") == 0) {
        long n = argc > 2 ? atol(argv[2]) : 5000;
        double t0 = now_ns();
        for (long i = 0; i < n; i++) {
            char *p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) { perror("mmap"); return 1; }
            for (int j = 0; j < 16; j++) p[j * 4096] = (char)j;
            if (munmap(p, 65536) != 0) { perror("munmap"); return 1; }
        }
        double t1 = now_ns();
        printf("us_per_iter=%.2f\n", (t1 - t0) / 1e3 / n);
        return 0;
    }
    fprintf(stderr, "usage: %s fault [PAGES] | churn [N]\n", argv[0]);
    return 2;
}
