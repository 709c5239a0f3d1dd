/* Resource bombs for LimitsTests: run under a pids or memory limit, in Moat
 * and in runc, they must be contained the same way. Each mode prints lines
 * the test compares; numbers that depend on the runtime's own overhead
 * (how many processes fit under the limit) are printed apart so the test
 * can check them without comparing them.
 *   fork    fork children that wait until fork fails; report the errno,
 *           kill and reap them all, then fork once more (must work again)
 *   thread  create threads until pthread_create fails; then fork at the
 *           limit (must fail the same way), and exit cleanly
 *   memory  touch 1 MiB anonymous mappings for ever (the limit's OOM kill
 *           ends it) */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static void *sleeper(void *a) { (void)a; for (;;) pause(); return 0; }

static int forkbomb(void) {
    static pid_t kids[100000];
    int n = 0;
    for (; n < 100000; n++) {
        pid_t p = fork();
        if (p < 0) { printf("fork failed: %s\n", strerror(errno)); printf("count %d\n", n); break; }
        if (p == 0) { for (;;) pause(); }
        kids[n] = p;
    }
    for (int i = 0; i < n; i++) kill(kids[i], SIGKILL);
    int reaped = 0;
    while (wait(NULL) > 0) reaped++;
    printf("reaped all: %s\n", reaped == n ? "yes" : "no");
    pid_t p = fork();
    if (p == 0) _exit(7);
    int st = 0;
    if (p < 0 || waitpid(p, &st, 0) != p) { printf("fork after: failed %s\n", strerror(errno)); return 1; }
    printf("fork after: exit %d\n", WEXITSTATUS(st));
    return 0;
}

static int threadbomb(void) {
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 65536);
    int n = 0;
    for (; n < 100000; n++) {
        pthread_t t;
        int e = pthread_create(&t, &at, sleeper, 0);
        if (e) { printf("thread create failed: %s\n", strerror(e)); printf("count %d\n", n); break; }
    }
    pid_t p = fork();
    if (p < 0) printf("fork at the limit: %s\n", strerror(errno));
    else if (p == 0) _exit(3);
    else { int st; waitpid(p, &st, 0); printf("fork at the limit: worked\n"); }
    printf("done\n");
    fflush(stdout);
    _exit(0);
}

static int memorybomb(void) {
    for (size_t mib = 1;; mib++) {
        char *p = mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) { printf("mmap failed: %s\n", strerror(errno)); return 1; }
        memset(p, 0x5a, 1 << 20);
        if (mib == 16) { printf("touched 16 MiB\n"); fflush(stdout); }
    }
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "fork")) return forkbomb();
    if (!strcmp(mode, "thread")) return threadbomb();
    if (!strcmp(mode, "memory")) return memorybomb();
    fprintf(stderr, "usage: bombs fork|thread|memory\n");
    return 2;
}
