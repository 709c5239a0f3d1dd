/* Memory policies, memory locks and fork-time advice (session 14, issue 15),
 * beyond what LTP checks; the machine running it natively must have one
 * memory node (node 0), as the sandbox shows:
 * - set_mempolicy/get_mempolicy/mbind: modes and mode flags, node-mask sizes
 *   (maxnode-1 bits are read), MPOL_PREFERRED without nodes reading back as
 *   MPOL_LOCAL, nodes beyond node 0 only, MPOL_F_MEMS_ALLOWED/ADDR/NODE, a
 *   mapping's own policy, holes (EFAULT);
 * - RLIMIT_MEMLOCK without CAP_IPC_LOCK: mlock counts what is locked already,
 *   MAP_LOCKED (EPERM at 0, EAGAIN past it), mremap growing a locked
 *   mapping, mlockall(MCL_FUTURE) locking new mappings until munlockall;
 *   mlock of PROT_NONE is ENOMEM yet locks; MADV_DONTNEED on locked pages;
 *   a child's mappings are not locked (msync MS_INVALIDATE tells: EBUSY);
 * - MADV_DONTFORK: the child lacks the range (msync ENOMEM), MADV_DOFORK
 *   undoes it; a length that wraps is EINVAL; mincore of length -1;
 * - memfd F_SEAL_WRITE: EBUSY (no seal added) while a shared mapping that
 *   may write exists, then shared mappings only without PROT_WRITE (EPERM),
 *   never made writable (EACCES); private ones stay writable. */
#include "t.h"
#include <sys/resource.h>

#define MPOL_DEFAULT 0
#define MPOL_PREFERRED 1
#define MPOL_BIND 2
#define MPOL_INTERLEAVE 3
#define MPOL_LOCAL 4
#define MPOL_F_STATIC_NODES (1 << 15)
#define MPOL_F_RELATIVE_NODES (1 << 14)
#define MPOL_F_NUMA_BALANCING (1 << 13)
#define MPOL_F_NODE (1 << 0)
#define MPOL_F_ADDR (1 << 1)
#define MPOL_F_MEMS_ALLOWED (1 << 2)

static long setp(int mode, unsigned long *m, unsigned long maxnode) { return syscall(SYS_set_mempolicy, mode, m, maxnode); }
static long getp(int *mode, unsigned long *m, unsigned long maxnode, void *addr, int flags) {
    return syscall(SYS_get_mempolicy, mode, m, maxnode, addr, flags);
}
static long mbind_(void *a, unsigned long len, int mode, unsigned long *m, unsigned long maxnode, unsigned flags) {
    return syscall(SYS_mbind, a, len, mode, m, maxnode, flags);
}

static void show_policy(const char *what, void *addr, int flags) {
    int mode = -7;
    unsigned long m[2] = {0xdead, 0xbeef};
    long r = getp(&mode, m, 128, addr, flags);
    if (r < 0) say("%s: get_mempolicy = -1 %s", what, ename(errno));
    else say("%s: mode=%d mask=%lx,%lx", what, mode, m[0], m[1]);
}

/* Whether the page at p is locked / mapped, as seen by msync. */
static const char *lockstate(void *p) {
    if (msync(p, 4096, MS_ASYNC | MS_INVALIDATE) == 0) return "unlocked";
    return errno == EBUSY ? "locked" : ename(errno);
}

static void policies(void) {
    unsigned long one = 1, four = 4, zero = 0, big[3] = {1, 0, 0};
    show_policy("initial", NULL, 0);
    T(setp(MPOL_BIND, &one, 64)); show_policy("bind", NULL, 0);
    T(setp(MPOL_INTERLEAVE | MPOL_F_STATIC_NODES, &one, 64)); show_policy("interleave static", NULL, 0);
    T(setp(MPOL_INTERLEAVE | MPOL_F_RELATIVE_NODES, &one, 64)); show_policy("interleave relative", NULL, 0);
    int n = -7;
    T(getp(&n, NULL, 0, NULL, MPOL_F_NODE)); say("next interleave node %d", n);
    T(setp(MPOL_PREFERRED, NULL, 1)); show_policy("preferred without nodes", NULL, 0);
    T(setp(MPOL_LOCAL, NULL, 0)); show_policy("local", NULL, 0);
    T(setp(MPOL_LOCAL, &one, 64));
    T(setp(MPOL_DEFAULT, &one, 64));
    T(setp(MPOL_DEFAULT, &one, 0));
    T(setp(MPOL_DEFAULT, NULL, 0));
    T(setp(MPOL_BIND, &four, 64));
    T(setp(MPOL_BIND, &one, 1));                 /* 0 bits read: no nodes */
    T(setp(MPOL_BIND, &zero, 64));
    T(setp(MPOL_BIND, big, 192));
    big[2] = 1;
    T(setp(MPOL_BIND, big, 192));                /* node 128 does not exist; node 0 does */
    T(setp(MPOL_BIND, &one, 4096 * 8 + 2));
    T(setp(7439, &one, 64));
    T(setp(MPOL_BIND | MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES, &one, 64));
    T(setp(MPOL_INTERLEAVE | MPOL_F_NUMA_BALANCING, &one, 64));
    T(setp(MPOL_PREFERRED | MPOL_F_STATIC_NODES, NULL, 0));
    T(setp(MPOL_BIND, (unsigned long *)8, 64));
    T(setp(MPOL_DEFAULT, NULL, 0));
    T(getp(&n, NULL, 0, NULL, MPOL_F_NODE));
    T(getp(NULL, &one, 0, NULL, 0));
    T(getp(NULL, NULL, 0, NULL, 8));
    T(getp(NULL, NULL, 0, &n, 0));
    T(getp(NULL, &one, 64, NULL, MPOL_F_MEMS_ALLOWED)); say("mems allowed %lx", one);
    T(getp(NULL, &one, 64, NULL, MPOL_F_MEMS_ALLOWED | MPOL_F_NODE));
    T(getp((int *)8, NULL, 0, NULL, 0));

    char *m = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    one = 1;
    T(setp(MPOL_PREFERRED, &one, 64));
    show_policy("mapping before mbind", m, MPOL_F_ADDR);
    /* The thread's policy is inherited by a forked child. */
    pid_t pid = fork();
    if (pid == 0) { show_policy("forked child", NULL, 0); _exit(0); }
    waitpid(pid, NULL, 0);
    T(mbind_(m + 4096, 4096, MPOL_BIND, &one, 64, 0));
    show_policy("mbind page 0", m, MPOL_F_ADDR);
    show_policy("mbind page 1", m + 4096, MPOL_F_ADDR);
    n = -7; T(getp(&n, NULL, 0, m + 4096, MPOL_F_ADDR | MPOL_F_NODE)); say("node of page 1: %d", n);
    T(mbind_(m + 4096, 4096, MPOL_DEFAULT, NULL, 0, 0));
    show_policy("mbind default page 1", m + 4096, MPOL_F_ADDR);
    T(mbind_(m + 1, 4096, MPOL_BIND, &one, 64, 0));
    T(mbind_(m, 4096, MPOL_BIND, &one, 64, 8));
    T(mbind_(m, 0, MPOL_BIND, &one, 64, 0));
    T(mbind_(m, 4096, MPOL_BIND, &four, 64, 0));
    munmap(m + 2 * 4096, 4096);
    T(mbind_(m, 3 * 4096, MPOL_BIND, &one, 64, 0));
    T(getp(&n, NULL, 0, m + 2 * 4096, MPOL_F_ADDR));
    T(setp(MPOL_DEFAULT, NULL, 0));
    munmap(m, 2 * 4096);
}

static void locks(void) {
    /* Without CAP_IPC_LOCK (an unprivileged user in a child). */
    pid_t pid = fork();
    if (pid == 0) {
        if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534)) { say("setresuid failed"); _exit(1); }
        struct rlimit rl = {2 * 4096, 2 * 4096};
        T(setrlimit(RLIMIT_MEMLOCK, &rl));
        char *a = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        T(mlock(a, 4096));
        T(mlock(a, 4096));                       /* already locked: no more */
        T(mlock(a + 4096, 2 * 4096));            /* 3 pages > 2 */
        T(mlock(a + 4096, 4096));
        say("a: %s %s %s", lockstate(a), lockstate(a + 4096), lockstate(a + 2 * 4096));
        void *b = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
        say("MAP_LOCKED past the limit: %s", b == MAP_FAILED ? ename(errno) : "mapped");
        T(munlock(a, 4 * 4096));
        b = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
        say("MAP_LOCKED within: %s %s", b == MAP_FAILED ? ename(errno) : "mapped", b == MAP_FAILED ? "" : lockstate(b));
        void *c = mremap(b, 4096, 3 * 4096, MREMAP_MAYMOVE);
        say("mremap growing it past the limit: %s", c == MAP_FAILED ? ename(errno) : "moved");
        T(madvise(b, 4096, MADV_DONTNEED));
        char *pn = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        T(munlock(b, 4096));
        T(mlock(pn, 4096)); say("PROT_NONE after mlock: %s", lockstate(pn));
        T(munlockall());
        T(mlockall(MCL_FUTURE));
        char *d = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        say("new mapping under MCL_FUTURE: %s", d == MAP_FAILED ? ename(errno) : lockstate(d));
        char *e = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        say("one past the limit under MCL_FUTURE: %s", e == MAP_FAILED ? ename(errno) : "mapped");
        T(munlockall());
        e = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        say("after munlockall: %s", lockstate(e));
        rl.rlim_cur = 0;
        T(setrlimit(RLIMIT_MEMLOCK, &rl));
        b = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
        say("MAP_LOCKED at limit 0: %s", b == MAP_FAILED ? ename(errno) : "mapped");
        T(mlock(a, 4096));
        _exit(0);
    }
    int st; waitpid(pid, &st, 0); say("child exit %d", WEXITSTATUS(st));

    char *l = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    T(mlock(l, 4096)); say("parent: %s", lockstate(l));
    pid = fork();
    if (pid == 0) { say("child: %s", lockstate(l)); _exit(0); }
    waitpid(pid, &st, 0);
    T(munlock(l, 4096));
}

static void dontfork(void) {
    char *m = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(m, 1, 3 * 4096);
    T(madvise(m + 1, 4096, MADV_DONTFORK));
    T(madvise(m, 0, MADV_DONTFORK));
    T(madvise(0, (size_t)-2048, MADV_DONTFORK));
    T(madvise(m + 4096, 4096, MADV_DONTFORK));
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 3; i++) {
            int r = msync(m + i * 4096, 4096, MS_ASYNC);
            say("child page %d: %s%s", i, r == 0 ? "mapped" : ename(errno), r == 0 && m[i * 4096] == 1 ? " (1)" : "");
        }
        /* The hole is free for a new mapping. */
        void *n = mmap(m + 4096, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        say("child mmap at the hole: %s", n == MAP_FAILED ? ename(errno) : n == m + 4096 ? "there" : "elsewhere");
        _exit(0);
    }
    int st; waitpid(pid, &st, 0);
    T(madvise(m + 4096, 4096, MADV_DOFORK));
    pid = fork();
    if (pid == 0) { say("after MADV_DOFORK child page 1: %s", msync(m + 4096, 4096, MS_ASYNC) == 0 ? "mapped" : ename(errno)); _exit(0); }
    waitpid(pid, &st, 0);
    munmap(m + 2 * 4096, 4096);
    T(madvise(m, 3 * 4096, MADV_DONTFORK));      /* a hole: ENOMEM, the rest marked */
    pid = fork();
    if (pid == 0) { say("child page 0 after the ENOMEM: %s", msync(m, 4096, MS_ASYNC) == 0 ? "mapped" : ename(errno)); _exit(0); }
    waitpid(pid, &st, 0);
    unsigned char v[2];
    T(mincore(NULL, (size_t)-1, v));
    T(mincore(m, (size_t)-1, v));
    munmap(m, 2 * 4096);
}

static void seals(void) {
    int fd = memfd_create("s", MFD_ALLOW_SEALING);
    T(ftruncate(fd, 4096));
    char *w = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    T(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW));
    T(fcntl(fd, F_GET_SEALS));
    munmap(w, 4096);
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    int ro = open(self, O_RDONLY);
    char *r = ro < 0 ? MAP_FAILED : mmap(NULL, 4096, PROT_READ, MAP_SHARED, ro, 0);
    say("shared mapping of a read-only descriptor: %s", r == MAP_FAILED ? ename(errno) : "mapped");
    T(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
    if (r != MAP_FAILED) munmap(r, 4096);
    T(fcntl(fd, F_GET_SEALS));
    void *x = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    say("shared writable after the seal: %s", x == MAP_FAILED ? ename(errno) : "mapped");
    char *y = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    say("shared read-only after the seal: %s", y == MAP_FAILED ? ename(errno) : "mapped");
    if (y != MAP_FAILED) T(mprotect(y, 4096, PROT_READ | PROT_WRITE));
    char *z = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    say("private writable after the seal: %s", z == MAP_FAILED ? ename(errno) : (z[0] = 1, "mapped, written"));
    close(fd);
}

int main(void) {
    seals();
    policies();
    locks();
    dontfork();
    return 0;
}
