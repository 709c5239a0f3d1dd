/*
 * ring: a token passed around a ring of T threads, each waiting on its own
 * condition variable (pthread mutex + condvar), H hops in all. Every hop is
 * one thread waking the next and going back to sleep, so the figure is the
 * cost of a blocked thread woken by another one.
 *
 *   ring [THREADS [HOPS]]   defaults 64 and 20000        -> us_per_hop=<float>
 *
 * Build static: gcc -O2 -static -pthread -o ring ring.c
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct slot {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long token;          /* hop number held by this thread, or -1 */
    int pad[8];
};

static struct slot *slots;
static int nthreads;
static long hops;

static void *worker(void *arg) {
    int me = (int)(long)arg, next = (me + 1) % nthreads;
    for (;;) {
        pthread_mutex_lock(&slots[me].mu);
        while (slots[me].token < 0) pthread_cond_wait(&slots[me].cv, &slots[me].mu);
        long t = slots[me].token;
        slots[me].token = -1;
        pthread_mutex_unlock(&slots[me].mu);
        /* Pass it on even past the end so that every thread sees a stop. */
        pthread_mutex_lock(&slots[next].mu);
        slots[next].token = t + 1;
        pthread_cond_signal(&slots[next].cv);
        pthread_mutex_unlock(&slots[next].mu);
        if (t >= hops) return NULL;
    }
}

int main(int argc, char **argv) {
    nthreads = argc > 1 ? atoi(argv[1]) : 64;
    hops = argc > 2 ? atol(argv[2]) : 20000;
    if (nthreads < 2 || hops < 1) { fprintf(stderr, "usage: ring [THREADS>=2 [HOPS>=1]]\n"); return 2; }
    slots = calloc(nthreads, sizeof *slots);
    pthread_t *tids = calloc(nthreads, sizeof *tids);
    for (int i = 0; i < nthreads; i++) {
        pthread_mutex_init(&slots[i].mu, NULL);
        pthread_cond_init(&slots[i].cv, NULL);
        slots[i].token = -1;
    }
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&tids[i], NULL, worker, (void *)(long)i) != 0) { perror("pthread_create"); return 1; }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_mutex_lock(&slots[0].mu);
    slots[0].token = 0;
    pthread_cond_signal(&slots[0].cv);
    pthread_mutex_unlock(&slots[0].mu);
    /* The hop that reaches `hops` ends the ring; each thread then leaves
     * once the token has passed it (up to nthreads more hops, not timed). */
    pthread_join(tids[hops % nthreads], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    for (int i = 0; i < nthreads; i++) if (i != hops % nthreads) pthread_join(tids[i], NULL);
    printf("us_per_hop=%.2f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / hops);
    return 0;
}
