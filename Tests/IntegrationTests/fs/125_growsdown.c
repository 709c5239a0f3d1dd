/* A MAP_GROWSDOWN mapping grows on a fault just below it, as a thread
 * stack made on it shows: a thread recursing through 128 KiB of a stack of
 * which 16 KiB were mapped ends normally; with a page mapped inside the
 * stack guard gap (256 pages) below, the first growth fails and the child
 * dies of SIGSEGV. Direct touches below: one page below grows the mapping
 * (/proc/self/maps shows it larger), a touch beyond RLIMIT_STACK does not.
 * A file mapping cannot grow down (EINVAL). */
#include "t.h"
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#define PG 4096L

static void *deep(void *limit) {
    volatile char pad[512];
    pad[0] = 1;
    if ((char *)pad < (char *)limit) return (void *)(long)pad[0];
    return deep(limit);
}

/* A stack of `stack` bytes whose top `mapped` bytes are a growsdown
 * mapping, with the rest and a guard gap below it free. */
static char *make_stack(long stack, long mapped) {
    long reserve = 256 * PG + stack;
    char *start = mmap(NULL, reserve, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(start, reserve);
    if (mmap(start + reserve - mapped, mapped, PROT_READ | PROT_WRITE,
             MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN, -1, 0) == MAP_FAILED)
        say("mmap growsdown: %s", ename(errno));
    return start + reserve - stack;
}

static void run_thread(char *bottom, long stack) {
    pthread_attr_t a;
    pthread_t th;
    pthread_attr_init(&a);
    pthread_attr_setstack(&a, bottom, stack);
    pthread_create(&th, &a, deep, bottom + PG);
    pthread_join(th, NULL);
}

static void child_case(const char *what, long stack, long mapped, int block) {
    pid_t p = fork();
    if (p == 0) {
        char *bottom = make_stack(stack, mapped);
        if (block) mmap(bottom, PG, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        run_thread(bottom, stack);
        _exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    if (WIFSIGNALED(st)) say("%s: killed by %s", what, strsignal(WTERMSIG(st)));
    else say("%s: exit %d", what, WEXITSTATUS(st));
}

/* The size of the mapping that contains `a`, from /proc/self/maps. */
static long mapping_size(void *a) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    long size = -1;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long s, e;
        if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s <= (unsigned long)a && (unsigned long)a < e) size = (long)(e - s);
    }
    if (f) fclose(f);
    return size;
}

int main(void) {
    long stack = 8 * 16384;
    child_case("grow from 16 KiB", stack, 16384, 0);
    child_case("grow from half", stack, stack / 2, 0);
    child_case("page in the guard gap, 16 KiB", stack, 16384, 1);
    child_case("page in the guard gap, half", stack, stack / 2, 1);

    char *bottom = make_stack(stack, 2 * PG);
    char *top = bottom + stack;
    say("mapped: %ld", mapping_size(top - PG));
    top[-3 * PG] = 1;                       /* one page below */
    say("after a touch one page below: %ld", mapping_size(top - PG));
    top[-6 * PG + 100] = 1;                 /* three pages further */
    say("after a touch three pages further: %ld", mapping_size(top - PG));

    /* Not past RLIMIT_STACK. */
    pid_t p = fork();
    if (p == 0) {
        struct rlimit r = { 64 * 1024, 64 * 1024 };
        setrlimit(RLIMIT_STACK, &r);
        top[-32 * PG] = 1;
        _exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    say("touch past RLIMIT_STACK: %s", WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "no signal");

    int fd = open("/tmp/gd", O_RDWR | O_CREAT | O_TRUNC, 0600);
    ftruncate(fd, PG);
    T(mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_GROWSDOWN, fd, 0) == MAP_FAILED ? -1 : 0);
    close(fd);
    unlink("/tmp/gd");
    return 0;
}
