/* PTHREAD_PRIO_INHERIT mutexes (FUTEX_LOCK_PI, UNLOCK_PI, TRYLOCK_PI) under
 * contention from four threads, and a robust process-shared PI mutex whose
 * owner dies. */
#include "t.h"
#include <pthread.h>
static pthread_mutex_t m;
static int counter;
static void *worker(void *a) {
    for (int i = 0; i < 2000; i++) { pthread_mutex_lock(&m); counter++; pthread_mutex_unlock(&m); }
    return a;
}
int main(void) {
    pthread_mutexattr_t at; pthread_mutexattr_init(&at);
    T(pthread_mutexattr_setprotocol(&at, PTHREAD_PRIO_INHERIT));
    T(pthread_mutex_init(&m, &at));
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    say("counter %d", counter);
    T(pthread_mutex_trylock(&m));
    T(pthread_mutex_trylock(&m));
    T(pthread_mutex_unlock(&m));
    /* robust + PI, owner dies */
    pthread_mutex_t *sm = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
    T(pthread_mutex_init(sm, &at));
    pid_t c = fork();
    if (c == 0) { pthread_mutex_lock(sm); _exit(0); }
    waitpid(c, NULL, 0);
    int r = pthread_mutex_lock(sm);
    say("robust PI after owner death: %s", r == EOWNERDEAD ? "EOWNERDEAD" : r == 0 ? "0" : "other");
    return 0;
}
