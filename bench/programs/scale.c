/*
 * scale: T threads each doing one independent syscall in a loop for S
 * seconds; prints the aggregate rate over all threads. The calls share
 * nothing but the process: getppid (no state), stat of FILE (path lookup),
 * pread of 4 KiB from FILE at offset 0 (each thread its own descriptor).
 *
 *   scale getppid|stat|pread THREADS SECONDS [FILE]   -> kops_per_s=<float>
 *
 * Build static: gcc -O2 -static -pthread -o scale scale.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum op { OP_GETPPID, OP_STAT, OP_PREAD };
static enum op op;
static const char *file = "/bench/data";
static double seconds;
static pthread_barrier_t start;

struct result { long ops; double t0, t1; char pad[40]; };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void *worker(void *arg) {
    struct result *r = arg;
    char buf[4096];
    struct stat st;
    int fd = -1;
    if (op == OP_PREAD && (fd = open(file, O_RDONLY)) < 0) { perror(file); exit(1); }
    pthread_barrier_wait(&start);
    double t0 = now(), t = t0;
    long n = 0;
    while (t - t0 < seconds) {
        for (int i = 0; i < 64; i++) {
            switch (op) {
            case OP_GETPPID: syscall(SYS_getppid); break;
            case OP_STAT: if (stat(file, &st) != 0) { perror("stat"); exit(1); } break;
            case OP_PREAD: if (pread(fd, buf, sizeof buf, 0) != sizeof buf) { perror("pread"); exit(1); } break;
            }
        }
        n += 64;
        t = now();
    }
    r->ops = n;
    r->t0 = t0;
    r->t1 = t;
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: scale getppid|stat|pread THREADS SECONDS [FILE]\n"); return 2; }
    if (!strcmp(argv[1], "getppid")) op = OP_GETPPID;
    else if (!strcmp(argv[1], "stat")) op = OP_STAT;
    else if (!strcmp(argv[1], "pread")) op = OP_PREAD;
    else { fprintf(stderr, "scale: unknown call %s\n", argv[1]); return 2; }
    int threads = atoi(argv[2]);
    seconds = atof(argv[3]);
    if (argc > 4) file = argv[4];
    if (threads < 1 || seconds <= 0) { fprintf(stderr, "scale: bad THREADS or SECONDS\n"); return 2; }
    pthread_t *tids = calloc(threads, sizeof *tids);
    struct result *res = calloc(threads, sizeof *res);
    pthread_barrier_init(&start, NULL, threads);
    for (int i = 0; i < threads; i++)
        if (pthread_create(&tids[i], NULL, worker, &res[i]) != 0) { perror("pthread_create"); return 1; }
    /* All calls over the span from the first thread's start to the last
     * one's end (a sum of per-thread rates would count threads that ran
     * one after another as if they had run side by side). */
    long ops = 0;
    double first = 0, last = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tids[i], NULL);
        ops += res[i].ops;
        if (i == 0 || res[i].t0 < first) first = res[i].t0;
        if (i == 0 || res[i].t1 > last) last = res[i].t1;
    }
    printf("kops_per_s=%.1f\n", ops / (last - first) / 1e3);
    return 0;
}
