/* Concurrent writers and lockers, and rename/unlink races, across
 * processes: the end state (not the interleaving) must match. */
#include "t.h"

#define N 8
#define ROUNDS 200

static void appender(int id) {
    int fd = open("c/log", O_WRONLY | O_APPEND);
    char line[32];
    for (int i = 0; i < ROUNDS; i++) {
        int n = snprintf(line, sizeof line, "w%d %03d\n", id, i);
        if (write(fd, line, n) != n) _exit(1);
    }
    close(fd);
    _exit(0);
}

/* Increments a counter in a file under an fcntl lock. */
static void locker(int id) {
    (void)id;
    int fd = open("c/counter", O_RDWR);
    for (int i = 0; i < ROUNDS / 4; i++) {
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        if (fcntl(fd, F_SETLKW, &fl) != 0) _exit(2);
        char buf[16] = {0};
        pread(fd, buf, 15, 0);
        int v = atoi(buf);
        sched_yield();
        int n = snprintf(buf, sizeof buf, "%d\n", v + 1);
        if (pwrite(fd, buf, n, 0) != n) _exit(3);
        fl.l_type = F_UNLCK;
        fcntl(fd, F_SETLK, &fl);
    }
    _exit(0);
}

/* flock-protected increments through separate opens. */
static void flocker(int id) {
    (void)id;
    for (int i = 0; i < ROUNDS / 4; i++) {
        int fd = open("c/fcounter", O_RDWR);
        if (flock(fd, LOCK_EX) != 0) _exit(2);
        char buf[16] = {0};
        pread(fd, buf, 15, 0);
        int v = atoi(buf);
        int n = snprintf(buf, sizeof buf, "%d\n", v + 1);
        if (pwrite(fd, buf, n, 0) != n) _exit(3);
        close(fd); /* releases the lock */
    }
    _exit(0);
}

/* Renames a file back and forth while others look it up. */
static void renamer(int id) {
    char a[32], b[32];
    snprintf(a, sizeof a, "c/r/%d-a", id);
    snprintf(b, sizeof b, "c/r/%d-b", id);
    for (int i = 0; i < ROUNDS; i++) {
        if (rename(a, b) != 0) _exit(4);
        if (rename(b, a) != 0) _exit(5);
    }
    _exit(0);
}

/* Creates and unlinks a shared name; exactly one creator wins each time. */
static int wins[N];
static void racer(int id) {
    int won = 0;
    for (int i = 0; i < ROUNDS; i++) {
        int fd = open("c/race", O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (fd >= 0) { won++; close(fd); if (unlink("c/race") != 0) _exit(6); }
        else if (errno != EEXIST) _exit(7);
    }
    char p[32];
    snprintf(p, sizeof p, "c/wins%d", id);
    FILE *f = fopen(p, "w");
    fprintf(f, "%d\n", won);
    fclose(f);
    _exit(0);
}

static void run_all(const char *what, void (*fn)(int)) {
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        if (pids[i] == 0) fn(i);
    }
    int bad = 0;
    for (int i = 0; i < N; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bad++;
    }
    say("%s: %d children failed", what, bad);
}

int main(void) {
    (void)wins;
    T(mkdir("c", 0755));
    T(mkdir("c/r", 0755));
    put("c/log", "");
    put("c/counter", "0\n");
    put("c/fcounter", "0\n");
    run_all("appenders", appender);
    struct stat st;
    T(stat("c/log", &st)); say("log size %lld (expected %d)", (long long)st.st_size, N * ROUNDS * 7);
    /* every line intact, each writer's lines in order */
    FILE *f = fopen("c/log", "r");
    char line[64];
    int next[N] = {0}, broken = 0;
    while (fgets(line, sizeof line, f)) {
        int w, i;
        if (sscanf(line, "w%d %d", &w, &i) != 2 || w < 0 || w >= N || i != next[w]) broken++;
        else next[w]++;
    }
    fclose(f);
    say("broken or out-of-order lines: %d", broken);
    T(unlink("c/log")); /* its interleaving differs from run to run */
    run_all("fcntl lockers", locker);
    cat("c/counter");
    run_all("flock lockers", flocker);
    cat("c/fcounter");
    for (int i = 0; i < N; i++) { char p[32]; snprintf(p, sizeof p, "c/r/%d-a", i); put(p, "r"); }
    run_all("renamers", renamer);
    ls("c/r");
    run_all("create/unlink racers", racer);
    int total = 0;
    for (int i = 0; i < N; i++) {
        char p[32]; snprintf(p, sizeof p, "c/wins%d", i);
        FILE *w = fopen(p, "r"); int v = 0; if (w) { if (fscanf(w, "%d", &v) != 1) v = -1; fclose(w); } total += v > 0 ? 1 : 0;
        unlink(p);
    }
    say("racers that won at least once: >0: %d", total > 0);
    T(access("c/race", F_OK));
    /* a lock conflict seen from another process, and F_GETLK's answer */
    int fd = T(open("c/counter", O_RDWR));
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 5};
    T(fcntl(fd, F_SETLK, &fl));
    pid_t me = getpid();
    pid_t c = fork();
    if (c == 0) {
        int f2 = open("c/counter", O_RDWR);
        struct flock q = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 100};
        T(fcntl(f2, F_SETLK, &q));
        T(fcntl(f2, F_GETLK, &q));
        say("getlk: type=%d start=%lld len=%lld pid_is_parent=%d", q.l_type, (long long)q.l_start, (long long)q.l_len, q.l_pid == me);
        struct flock r = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
        T(fcntl(f2, F_SETLK, &r));
        _exit(0);
    }
    waitpid(c, NULL, 0);
    /* a deadlock between two processes: the second to wait gets EDEADLK */
    struct flock a = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    T(fcntl(fd, F_SETLK, &a));
    int go[2]; T(pipe(go));
    c = fork();
    if (c == 0) {
        int f2 = open("c/counter", O_RDWR);
        struct flock b = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 1, .l_len = 1};
        fcntl(f2, F_SETLK, &b);
        write(go[1], "x", 1);
        struct flock w = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
        int r = fcntl(f2, F_SETLKW, &w);   /* waits for the parent's lock */
        _exit(r == 0 ? 0 : 9);
    }
    char x; T(read(go[0], &x, 1));
    usleep(200000);                        /* let the child block (usually) */
    struct flock w2 = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 1, .l_len = 1};
    /* Whichever of the two waits second closes the cycle and gets EDEADLK;
     * on a loaded machine that may be the child. Exactly one of them does. */
    int pr = fcntl(fd, F_SETLKW, &w2);
    int pe = pr < 0 ? errno : 0;
    T(close(fd));                          /* lets the child through */
    int cst; waitpid(c, &cst, 0);
    int parent_dl = pr < 0 && pe == EDEADLK, child_dl = WIFEXITED(cst) && WEXITSTATUS(cst) == 9;
    say("deadlock: exactly one saw EDEADLK: %d, child exited: %d", parent_dl + child_dl == 1, WIFEXITED(cst));
    return 0;
}
