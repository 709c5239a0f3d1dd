/* Escape attempts. Not differential: run inside Moat only. A file named
 * moat-escape-secret exists next to the root file system's directory on
 * the host (never inside it); any way of opening it, or of creating a
 * file next to it, prints ESCAPED. The test also checks the host side. */
#include "t.h"
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <ucontext.h>

static const char *name = "moat-escape-secret";

static void try_open(const char *how, const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd >= 0) { say("ESCAPED (read) via %s: %s", how, path); close(fd); }
}

static void try_create(const char *how, const char *path) {
    int fd = open(path, O_CREAT | O_WRONLY | O_EXCL, 0644);
    if (fd >= 0) { say("created %s via %s (must stay inside the sandbox)", path, how); close(fd); }
}

static void try_all_ups(const char *how, const char *prefix) {
    char p[512];
    for (int depth = 0; depth < 12; depth++) {
        snprintf(p, sizeof p, "%s", prefix);
        for (int i = 0; i < depth; i++) strncat(p, "../", sizeof p - strlen(p) - 1);
        strncat(p, name, sizeof p - strlen(p) - 1);
        try_open(how, p);
    }
}

static volatile int stop;
static void *flipper(void *arg) {
    (void)arg;
    /* Swaps "flip" between a directory and a symlink to ../../../.. */
    while (!stop) {
        rename("flip", "flipdir");
        symlink("../../../../../../..", "flip");
        unlink("flip");
        rename("flipdir", "flip");
    }
    return NULL;
}

/* Moat's stub page (the last page below 0x7ffffffff000) starts with the
 * "syscall; int3" the Sentry injects its host calls through. An application
 * can jump there too; the call must still be emulated, never run on the host.
 * The int3 after it raises SIGTRAP, whose handler picks up rax. A platform
 * without a stub page (--platform kvm) maps nothing there: the jump faults
 * (SIGSEGV), which is as safe. */
static sigjmp_buf stub_jb;
static volatile long stub_rax;
static volatile int stub_absent;
static void on_stub_trap(int s, siginfo_t *si, void *uc) {
    (void)si;
    if (s == SIGSEGV) stub_absent = 1;
    else stub_rax = ((ucontext_t *)uc)->uc_mcontext.gregs[REG_RAX];
    siglongjmp(stub_jb, 1);
}
static long stub_call(long nr, long a0, long a1, long a2) {
    struct sigaction sa, old, oldsegv;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_stub_trap;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGTRAP, &sa, &old);
    sigaction(SIGSEGV, &sa, &oldsegv);
    stub_rax = -1;
    if (sigsetjmp(stub_jb, 1) == 0) {
        register long rax __asm__("rax") = nr;
        register long rdi __asm__("rdi") = a0;
        register long rsi __asm__("rsi") = a1;
        register long rdx __asm__("rdx") = a2;
        __asm__ volatile("jmp *%4" : : "r"(rax), "r"(rdi), "r"(rsi), "r"(rdx), "r"(0x7fffffffe000UL)
                         : "rcx", "r11", "memory");
    }
    sigaction(SIGTRAP, &old, NULL);
    sigaction(SIGSEGV, &oldsegv, NULL);
    return stub_rax;
}

static void stub_page_calls(void) {
    long pid = stub_call(SYS_getpid, 0, 0, 0);
    if (stub_absent) {
        say("no stub page here: the jump faults");
        say("stub page calls checked");
        return;
    }
    if (pid != getpid()) say("ESCAPED: getpid through the stub page ran on the host (%ld, not %d)", pid, getpid());
    const char *marker = getenv("MOAT_ESCAPE_MARKER");
    if (marker) {
        long fd = stub_call(SYS_openat, AT_FDCWD, (long)marker, O_RDONLY);
        if (fd >= 0) say("ESCAPED (read) via the stub page: %s", marker);
        fd = stub_call(SYS_open, (long)marker, O_RDONLY, 0);
        if (fd >= 0) say("ESCAPED (read) via the stub page (open): %s", marker);
    }
    say("stub page calls checked");
}

/* The same from a process that has made enough calls to be on Moat's fast
 * path (its own seccomp layer): the stub's base filter then refuses calls
 * from the stub page that the Sentry never injects, and kills the process
 * (SIGSYS); an emulated call is fine too. Only ESCAPED is a failure. */
static void stub_page_calls_warm(void) {
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        for (int i = 0; i < 200; i++) if (getppid() < 0) _exit(2);
        stub_page_calls();
        _exit(0);
    }
    int st = 0;
    waitpid(c, &st, 0);
    if (WIFSIGNALED(st)) say("warm stub page calls: killed by signal %d", WTERMSIG(st));
    else say("warm stub page calls: exit %d", WEXITSTATUS(st));
}

int main(void) {
    T(chdir("/"));
    stub_page_calls();
    stub_page_calls_warm();
    try_all_ups("dot-dot from /", "/");
    try_all_ups("dot-dot from cwd", "");
    try_all_ups("/proc/self/root", "/proc/self/root/");
    try_all_ups("/proc/1/root", "/proc/1/root/");
    try_all_ups("/proc/self/cwd", "/proc/self/cwd/");
    /* symlinks pointing up and to / */
    T(mkdir("/e", 0755));
    T(symlink("/", "/e/toroot"));
    T(symlink("../../../../../../../..", "/e/up"));
    T(symlink("/../../..", "/e/absup"));
    try_all_ups("symlink to /", "/e/toroot/");
    try_all_ups("symlink up", "/e/up/");
    try_all_ups("absolute symlink up", "/e/absup/");
    /* an O_PATH fd of / and openat with .. */
    int r = T(open("/", O_PATH | O_DIRECTORY));
    char p[256];
    for (int d = 1; d < 10; d++) {
        p[0] = 0;
        for (int i = 0; i < d; i++) strcat(p, "../");
        strcat(p, name);
        int fd = openat(r, p, O_RDONLY);
        if (fd >= 0) say("ESCAPED via openat(O_PATH /)");
    }
    /* the classic chroot escape: chroot into a subdirectory, then walk up */
    T(mkdir("/e/jail", 0755));
    int keep = T(open("/", O_RDONLY | O_DIRECTORY));
    T(chroot("/e/jail"));
    T(fchdir(keep));
    for (int i = 0; i < 20; i++) Q(chdir(".."));
    T(chroot("."));
    try_all_ups("chroot escape", "/");
    /* hard links to things outside: the source must be nameable first */
    T(link("/../moat-escape-secret", "/e/hl"));
    /* bind-mount the parent of / */
    T(mkdir("/e/m", 0755));
    Q(mount("/..", "/e/m", NULL, MS_BIND, NULL));
    try_all_ups("bind mount of /..", "/e/m/");
    Q(umount("/e/m"));
    /* a fresh procfs */
    T(mkdir("/e/proc", 0755));
    Q(mount("proc", "/e/proc", "proc", 0, NULL));
    try_all_ups("new procfs root link", "/e/proc/1/root/");
    try_all_ups("new procfs cwd link", "/e/proc/self/cwd/");
    Q(umount("/e/proc"));
    /* writes: try to create files above the root */
    try_create("dot-dot", "/../../moat-escape-created");
    try_create("symlink up", "/e/up/moat-escape-created2");
    /* a symlink swapped in during walks */
    T(mkdir("/e/race", 0755));
    T(chdir("/e/race"));
    T(mkdir("flip", 0755));
    pthread_t th;
    pthread_create(&th, NULL, flipper, NULL);
    for (int i = 0; i < 3000; i++) {
        char q[128];
        snprintf(q, sizeof q, "flip/%s", name);
        int fd = open(q, O_RDONLY);
        if (fd >= 0) { say("ESCAPED via a swapped symlink"); close(fd); }
        fd = open("flip/moat-escape-created3", O_CREAT | O_WRONLY, 0644);
        if (fd >= 0) close(fd);
    }
    stop = 1;
    pthread_join(th, NULL);
    say("done");
    return 0;
}
