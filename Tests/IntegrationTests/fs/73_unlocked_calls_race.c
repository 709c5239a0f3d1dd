/* Calls the Sentry serves without its kernel lock, or with the lock given
 * up around their copies (getpid, gettid, getppid, sched_yield; pread64 of
 * a file; stat), raced against what other threads change meanwhile:
 *
 *   - pread in threads while another thread closes the fd, or dup2s another
 *     file over it: each read is all of one file or EBADF, never a mix, a
 *     wrong byte or another error, and EBADF comes once the fd is closed;
 *   - stat in threads while another thread renames files over the name:
 *     each answer is one of the two files' sizes;
 *   - getppid in a thread of a process whose parent exits: it turns to the
 *     subreaper (the atomic copy of the parent follows reparenting);
 *   - a signal to, and an exit_group around, threads that do nothing but
 *     getppid: the handler runs and the process ends (a kick meant for a
 *     thread between two such calls is not lost). The main thread is among
 *     them: in Moat it alone has the seccomp-notification fast path (a
 *     clone inherits its listener and may not add its own).
 *
 * Prints only results both kernels define; a hang is caught by alarm. */
#include "t.h"
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>

#define SZ 4096
static char want_a[SZ], want_b[SZ];
static int shared_fd;
static int stop;

struct pread_stats { long whole_a, whole_b, ebadf, bad; };

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define BUMP(x) __atomic_add_fetch(&(x), 1, __ATOMIC_SEQ_CST)

static void *preader(void *arg) {
    struct pread_stats *s = arg;
    char buf[SZ];
    while (!LOAD(stop)) {
        ssize_t n = pread(shared_fd, buf, SZ, 0);
        if (n == SZ && !memcmp(buf, want_a, SZ)) BUMP(s->whole_a);
        else if (n == SZ && !memcmp(buf, want_b, SZ)) BUMP(s->whole_b);
        else if (n == -1 && errno == EBADF) BUMP(s->ebadf);
        else BUMP(s->bad);
    }
    return NULL;
}

static void race_pread(int with_dup2) {
    enum { N = 4 };
    pthread_t th[N];
    struct pread_stats st[N];
    memset(st, 0, sizeof st);
    stop = 0;
    shared_fd = open("/tmp/race-a", O_RDONLY);
    int other = open("/tmp/race-b", O_RDONLY);
    for (int i = 0; i < N; i++) pthread_create(&th[i], NULL, preader, &st[i]);
    /* Every thread reads A before the change, and sees the change after it. */
    for (int i = 0; i < N; i++) while (LOAD(st[i].whole_a) == 0 && LOAD(st[i].bad) == 0) sched_yield();
    if (with_dup2) dup2(other, shared_fd);
    else close(shared_fd);
    for (int i = 0; i < N; i++)
        while ((with_dup2 ? LOAD(st[i].whole_b) : LOAD(st[i].ebadf)) < 3 && LOAD(st[i].bad) == 0) sched_yield();
    __atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
    long b = 0, e = 0, bad = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        b += st[i].whole_b; e += st[i].ebadf; bad += st[i].bad;
    }
    if (with_dup2) say("pread racing dup2: every thread read A then B; EBADF %ld, other %ld", e, bad);
    else say("pread racing close: every thread read A then EBADF; reads of B %ld, other %ld", b, bad);
    /* The fd number is free again after close, used by B after dup2. */
    char c;
    if (with_dup2) { T(pread(shared_fd, &c, 1, 0)); close(shared_fd); }
    else T(pread(shared_fd, &c, 1, 0));
    close(other);
}

struct stat_stats { long small, big, enoent, bad; };

static void *stater(void *arg) {
    struct stat_stats *s = arg;
    struct stat sb;
    while (!LOAD(stop)) {
        if (stat("/tmp/race-name", &sb) == 0) {
            if (sb.st_size == 100) BUMP(s->small);
            else if (sb.st_size == 200) BUMP(s->big);
            else BUMP(s->bad);
        } else if (errno == ENOENT) BUMP(s->enoent);
        else BUMP(s->bad);
    }
    return NULL;
}

static void write_file(const char *p, int size) {
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char b[256] = {0};
    Q(write(fd, b, size));
    close(fd);
}

static void race_stat(void) {
    enum { N = 3 };
    pthread_t th[N];
    struct stat_stats st[N];
    memset(st, 0, sizeof st);
    stop = 0;
    write_file("/tmp/race-name", 100);
    for (int i = 0; i < N; i++) pthread_create(&th[i], NULL, stater, &st[i]);
    for (int i = 0; i < N; i++) while (LOAD(st[i].small) + LOAD(st[i].bad) + LOAD(st[i].enoent) == 0) sched_yield();
    for (int k = 0; k < 200; k++) {
        write_file("/tmp/race-next", k % 2 ? 100 : 200);
        Q(rename("/tmp/race-next", "/tmp/race-name"));   /* atomic: the name never goes missing */
    }
    __atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
    long enoent = 0, bad = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        enoent += st[i].enoent; bad += st[i].bad;
    }
    say("stat racing rename: ENOENT %ld, other %ld", enoent, bad);
    unlink("/tmp/race-name");
}

static pid_t first_parent;
static void *ppid_watcher(void *arg) {
    (void)arg;
    for (long i = 0; i < 2000000000L; i++)
        if (syscall(SYS_getppid) != first_parent) return (void *)1;
    return NULL;
}

static void reparent(void) {
    int p[2];
    Q(pipe(p));
    Q(prctl(PR_SET_CHILD_SUBREAPER, 1));
    pid_t me = getpid();
    pid_t mid = fork();
    if (mid == 0) {
        pid_t leaf = fork();
        if (leaf == 0) {
            first_parent = getppid();
            pthread_t th;
            pthread_create(&th, NULL, ppid_watcher, NULL);
            char c = 1;
            Q(write(p[1], &c, 1));       /* the middle process may exit now */
            void *changed;
            pthread_join(th, &changed);
            int to_subreaper = syscall(SYS_getppid) == me;
            _exit(changed && to_subreaper ? 0 : 1);
        }
        char c;
        Q(read(p[0], &c, 1));
        _exit(0);
    }
    int s;
    waitpid(mid, &s, 0);
    pid_t leaf = wait(&s);          /* the leaf, now the subreaper's child */
    say("getppid in a thread after the parent exits: leaf reaped %s, saw the subreaper %s",
        leaf > 0 ? "yes" : "no", WIFEXITED(s) && WEXITSTATUS(s) == 0 ? "yes" : "no");
    Q(prctl(PR_SET_CHILD_SUBREAPER, 0));
    close(p[0]); close(p[1]);
}

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }
static void *spin_until_signal(void *arg) {
    (void)arg;
    while (!got_usr1) syscall(SYS_getppid);
    return NULL;
}
static void *spin_forever(void *arg) {
    (void)arg;
    for (;;) { syscall(SYS_getppid); syscall(SYS_gettid); sched_yield(); }
    return NULL;
}

static pthread_t main_thread;
static void *signal_main(void *arg) {
    (void)arg;
    usleep(20000);
    pthread_kill(main_thread, SIGUSR1);
    return NULL;
}

static void kicks(void) {
    signal(SIGUSR1, on_usr1);
    /* The main thread first: the first thread of the sandbox's first
     * process is the one Moat serves through seccomp notifications. */
    main_thread = pthread_self();
    pthread_t sender;
    pthread_create(&sender, NULL, signal_main, NULL);
    while (!got_usr1) syscall(SYS_getppid);
    pthread_join(sender, NULL);
    say("signal to the main thread looping on getppid: handled yes");
    got_usr1 = 0;

    pthread_t th;
    pthread_create(&th, NULL, spin_until_signal, NULL);
    usleep(20000);
    pthread_kill(th, SIGUSR1);
    pthread_join(th, NULL);
    say("signal to a thread looping on getppid: handled %s", got_usr1 ? "yes" : "no");

    pid_t c = fork();
    if (c == 0) {
        pthread_t t2[3];
        for (int i = 0; i < 3; i++) pthread_create(&t2[i], NULL, spin_forever, NULL);
        usleep(20000);
        exit(7);                    /* exit_group while they spin */
    }
    int s;
    waitpid(c, &s, 0);
    say("exit_group around threads looping on getppid: status %d", WIFEXITED(s) ? WEXITSTATUS(s) : -1);

    c = fork();
    if (c == 0) {
        pthread_t t3;
        pthread_create(&t3, NULL, spin_forever, NULL);
        for (;;) pause();
    }
    usleep(20000);
    kill(c, SIGTERM);
    waitpid(c, &s, 0);
    say("SIGTERM to a process whose thread loops on getppid: signal %d", WIFSIGNALED(s) ? WTERMSIG(s) : -1);
}

int main(void) {
    alarm(60);
    memset(want_a, 'a', SZ);
    memset(want_b, 'b', SZ);
    int fd = open("/tmp/race-a", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    Q(write(fd, want_a, SZ)); close(fd);
    fd = open("/tmp/race-b", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    Q(write(fd, want_b, SZ)); close(fd);

    say("gettid is getpid in the main thread: %s", syscall(SYS_gettid) == getpid() ? "yes" : "no");
    T(sched_yield());
    race_pread(0);
    race_pread(1);
    race_stat();
    reparent();
    kicks();
    unlink("/tmp/race-a");
    unlink("/tmp/race-b");
    return 0;
}
