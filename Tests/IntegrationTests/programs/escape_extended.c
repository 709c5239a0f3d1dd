/*
 * escape_extended: the extended escape suite. Each section prints "ok ..."
 * lines, "ESCAPED ..." when something reached the host, and "BROKEN ..."
 * when the sandbox stopped behaving like a kernel (a process that would not
 * die, a call that never returned, an operation that stopped working).
 *
 *   escape_extended SECTION...   (default: every section)
 *
 * Sections:
 *   threads   raw syscalls 0-450 with random arguments from 3 processes x 4
 *             threads at once for a few seconds; every process must then die
 *             when told to (exit_group, then SIGKILL)
 *   stubpage  mprotect/mmap/munmap/mremap/madvise, /proc/self/mem and
 *             process_vm_writev against the page Moat keeps its stub code
 *             on; if any made it the application's, code planted there runs
 *             an open() of the host marker
 *   procs     ptrace, process_vm_writev, /proc/N/mem and signals against
 *             another process of the sandbox, and kill(-1, SIGKILL)
 *   fds       descriptors until EMFILE, then everything must still work
 *   argv      execve with huge argv and env (E2BIG rules)       [native-safe]
 *   paths     a 64 KB deep directory chain and long paths        [native-safe]
 *
 * The test (EscapeSuiteTests.swift) runs every section inside Moat only,
 * with MOAT_ESCAPE_MARKER naming a host file next to the root, and the
 * native-safe sections natively too, comparing their output. Never run the
 * other sections on a host: `threads` calls everything, as root.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define STUB_PAGE 0x7fffffffe000UL

static int out = 1;
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    char b[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof b - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof b - 2) n = sizeof b - 2;
    b[n++] = '\n';
    (void)!write(out, b, n);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- threads -------------------------------------------------------- */

static char *scratch;      /* a private 64 KB mapping the random pointers aim at */
static volatile int stop_threads;

static int skipped(long nr) {
    switch (nr) {
    /* end, replace or duplicate the caller */
    case SYS_exit: case SYS_exit_group: case SYS_rt_sigreturn: case SYS_fork: case SYS_vfork:
    case SYS_clone: case SYS_clone3: case SYS_execve: case SYS_execveat:
    /* suspend it for good, or signal it */
    case SYS_pause: case SYS_rt_sigsuspend: case SYS_kill: case SYS_tkill: case SYS_tgkill:
    case SYS_alarm: case SYS_setitimer: case SYS_timer_create: case SYS_rt_sigaction: case SYS_sigaltstack:
    /* its own memory, thread pointer and identity: the process would just crash */
    case SYS_mmap: case SYS_munmap: case SYS_mremap: case SYS_mprotect: case SYS_brk: case SYS_madvise:
    case SYS_arch_prctl: case SYS_set_tid_address: case SYS_set_robust_list: case SYS_rseq: case SYS_prctl:
    case SYS_personality: case SYS_seccomp: case SYS_ptrace: case SYS_shmdt: case SYS_remap_file_pages:
    case SYS_setuid: case SYS_setgid: case SYS_setreuid: case SYS_setregid: case SYS_setresuid:
    case SYS_setresgid: case SYS_setfsuid: case SYS_setfsgid: case SYS_setgroups: case SYS_capset:
    case SYS_unshare: case SYS_setns: case SYS_chroot: case SYS_pivot_root: case SYS_munlockall:
    case SYS_io_uring_setup: case SYS_userfaultfd:
    /* limits and signals that would end the process early (RLIMIT_CPU,
     * RLIMIT_FSIZE, queued signals): the point is to keep calling */
    case SYS_setrlimit: case SYS_prlimit64: case SYS_rt_sigqueueinfo: case SYS_rt_tgsigqueueinfo:
    case SYS_pidfd_send_signal: case SYS_timer_settime: case SYS_timerfd_settime:
        return 1;
    }
    return 0;
}

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return *s;
}

static long arg(uint64_t *s) {
    switch (rnd(s) % 12) {
    case 0: return 0;
    case 1: return -1;
    case 2: return rnd(s) % 64;
    case 3: return (long)(scratch + rnd(s) % 60000);
    case 4: return (long)STUB_PAGE;
    case 5: return (long)0xffff800000000000UL;
    case 6: return (long)rnd(s);
    case 7: return 1L << (rnd(s) % 63);
    case 8: return (long)(scratch + 65536 - 8);
    case 9: return 0x7fffffffffffL;
    case 10: return (long)"/proc/self/mem";
    default: return (long)(rnd(s) % 4096);
    }
}

static void *caller(void *p) {
    uint64_t s = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ULL + (uint64_t)getpid();
    long calls = 0;
    while (!stop_threads) {
        long nr = (long)(rnd(&s) % 451);
        if (skipped(nr)) continue;
        /* keep the pointer targets sane for the next call */
        memset(scratch, 'a', 256);
        memcpy(scratch, "moat-escape-secret\0../../moat-escape-secret", 44);
        syscall(nr, arg(&s), arg(&s), arg(&s), arg(&s), arg(&s), arg(&s));
        calls++;
    }
    return (void *)calls;
}

static void threads_child(int id, double seconds) {
    /* stdout moves to a high fd: random close/dup2 hit the low ones */
    out = fcntl(1, F_DUPFD_CLOEXEC, 900);
    /* random writes to fds 0-2 go nowhere */
    int null = open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3; fd++) dup2(null, fd);
    scratch = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (scratch == MAP_FAILED) _exit(3);
    /* Each process works in a directory of its own: getcwd's answer lands
       in the scratch buffer, and a later call may take it for a path. Were
       that "/tmp", a random umount2 then rmdir of it (legitimate for root,
       natively too) would take /tmp from the sections after this one. */
    char dir[32];
    snprintf(dir, sizeof dir, "/tmp/threads-%d", id);
    mkdir(dir, 0777);
    if (chdir(dir) != 0) _exit(3);
    signal(SIGPIPE, SIG_IGN);
    pthread_t t[4];
    for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, caller, (void *)(i + 1 + id * 16));
    double end = now() + seconds;
    while (now() < end) usleep(50000);
    /* Threads may be blocked in any call now; exit_group must end them all. */
    say("ok threads: process %d done", id);
    syscall(SYS_exit_group, 0);
}

static void section_threads(void) {
    pid_t kids[3];
    for (int i = 0; i < 3; i++) {
        fflush(stdout);
        kids[i] = fork();
        if (kids[i] == 0) threads_child(i, 4.0);
    }
    int sig = 0, ended = 0;
    double deadline = now() + 30;
    while (ended < 3 && now() < deadline) {
        int st;
        pid_t w = waitpid(-1, &st, WNOHANG);
        if (w > 0) { ended++; if (WIFSIGNALED(st)) { sig++; say("ok threads: a process died of signal %d", WTERMSIG(st)); } continue; }
        usleep(50000);
    }
    if (ended < 3) {
        say("BROKEN threads: %d of 3 processes did not exit within 30 s; sending SIGKILL", 3 - ended);
        for (int i = 0; i < 3; i++) kill(kids[i], SIGKILL);
        deadline = now() + 10;
        while (ended < 3 && now() < deadline) {
            if (waitpid(-1, NULL, WNOHANG) > 0) ended++; else usleep(50000);
        }
        if (ended < 3) say("BROKEN threads: %d processes survived SIGKILL", 3 - ended);
    }
    say("ok threads: 3 processes ended (%d by a signal)", sig);
}

/* ---- stub page ------------------------------------------------------ */

static sigjmp_buf jb;
static volatile long trap_rax;
static void on_fault(int s, siginfo_t *si, void *uc) {
    (void)si;
    trap_rax = s == SIGTRAP ? (long)((ucontext_t *)uc)->uc_mcontext.gregs[REG_RAX] : -1000 - s;
    siglongjmp(jb, 1);
}
static void catch_faults(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGSYS, SIGFPE };
    for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
}

/* openat(AT_FDCWD, rdi, O_RDONLY); int3 -- the result comes back in rax */
static const unsigned char planted[] = {
    0x48, 0x89, 0xfe,                         /* mov rsi, rdi */
    0x48, 0xc7, 0xc7, 0x9c, 0xff, 0xff, 0xff, /* mov rdi, -100 (AT_FDCWD) */
    0x31, 0xd2,                               /* xor edx, edx */
    0xb8, 0x01, 0x01, 0x00, 0x00,             /* mov eax, 257 (openat) */
    0x0f, 0x05,                               /* syscall */
    0xcc,                                     /* int3 */
};

/* Did the stub page become ours? Then run the planted open from it. */
static void check_planted(const char *how) {
    const char *marker = getenv("MOAT_ESCAPE_MARKER");
    volatile unsigned char first = 0;
    if (sigsetjmp(jb, 1) == 0) first = *(volatile unsigned char *)STUB_PAGE;
    else { say("ok stubpage %s: the page is not readable to the application", how); return; }
    if (memcmp((const void *)STUB_PAGE, planted, sizeof planted) != 0) {
        say("ok stubpage %s: the page does not hold the application's code (first byte %02x)", how, first);
        return;
    }
    say("note stubpage %s: the application's code is at the stub address", how);
    trap_rax = -1;
    if (sigsetjmp(jb, 1) == 0) {
        register long rdi __asm__("rdi") = (long)(marker ? marker : "/nonexistent");
        __asm__ volatile("call *%1" : : "r"(rdi), "r"(STUB_PAGE) : "rax", "rcx", "rdx", "rsi", "r11", "memory");
    }
    if (trap_rax >= 0) say("ESCAPED stubpage %s: code planted at the stub address opened the host marker (fd %ld)", how, trap_rax);
    else say("ok stubpage %s: planted code ran but could not open the marker (%ld)", how, trap_rax);
}

static void section_stubpage(void) {
    catch_faults();
    void *p;
    int r;
    r = mprotect((void *)STUB_PAGE, 4096, PROT_READ | PROT_WRITE | PROT_EXEC);
    say("ok stubpage mprotect RWX: %s", r == 0 ? "allowed" : strerror(errno));
    if (r == 0 && sigsetjmp(jb, 1) == 0) memcpy((void *)STUB_PAGE, planted, sizeof planted);
    check_planted("mprotect");

    p = mmap((void *)STUB_PAGE, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    say("ok stubpage mmap MAP_FIXED: %s", p == MAP_FAILED ? strerror(errno) : "allowed");
    if (p != MAP_FAILED && sigsetjmp(jb, 1) == 0) memcpy((void *)STUB_PAGE, planted, sizeof planted);
    check_planted("mmap");

    r = munmap((void *)STUB_PAGE, 4096);
    say("ok stubpage munmap: %s", r == 0 ? "allowed" : strerror(errno));
    p = mmap((void *)STUB_PAGE, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_FIXED_NOREPLACE | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED && sigsetjmp(jb, 1) == 0) memcpy((void *)STUB_PAGE, planted, sizeof planted);
    check_planted("munmap+mmap");

    void *src = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memcpy(src, planted, sizeof planted);
    p = mremap(src, 4096, 4096, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)STUB_PAGE);
    say("ok stubpage mremap onto it: %s", p == MAP_FAILED ? strerror(errno) : "allowed");
    check_planted("mremap");

    r = madvise((void *)STUB_PAGE, 4096, MADV_DONTNEED);
    say("ok stubpage madvise DONTNEED: %s", r == 0 ? "allowed" : strerror(errno));
    check_planted("madvise");

    int fd = open("/proc/self/mem", O_RDWR);
    if (fd >= 0) {
        ssize_t n = pwrite(fd, planted, sizeof planted, (off_t)STUB_PAGE);
        say("ok stubpage /proc/self/mem write: %s", n == (ssize_t)sizeof planted ? "allowed" : strerror(errno));
        close(fd);
    } else {
        say("ok stubpage /proc/self/mem: %s", strerror(errno));
    }
    check_planted("/proc/self/mem");

    struct iovec l = { (void *)planted, sizeof planted }, rv = { (void *)STUB_PAGE, sizeof planted };
    ssize_t n = process_vm_writev(getpid(), &l, 1, &rv, 1, 0);
    say("ok stubpage process_vm_writev: %s", n == (ssize_t)sizeof planted ? "allowed" : strerror(errno));
    check_planted("process_vm_writev");
}

/* ---- other processes of the sandbox --------------------------------- */

static volatile long victim_word = 1111;

static void section_procs(void) {
    int ready[2];
    if (pipe(ready) != 0) { say("BROKEN procs: pipe: %s", strerror(errno)); return; }
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        close(ready[0]);
        (void)!write(ready[1], "x", 1);
        for (int i = 0; i < 600 && victim_word == 1111; i++) usleep(10000);
        _exit(victim_word == 2222 ? 0 : victim_word == 3333 ? 3 : 1);
    }
    close(ready[1]);
    char b;
    (void)!read(ready[0], &b, 1);
    long r = ptrace(PTRACE_ATTACH, c, 0, 0);
    say("ok procs ptrace attach: %s", r == 0 ? "allowed" : strerror(errno));
    if (r == 0) { waitpid(c, NULL, __WALL); ptrace(PTRACE_DETACH, c, 0, 0); }
    long v = 3333;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", c);
    int fd = open(path, O_RDWR);
    if (fd >= 0) {
        ssize_t n = pwrite(fd, &v, sizeof v, (off_t)(uintptr_t)&victim_word);
        say("ok procs /proc/N/mem write: %s", n == (ssize_t)sizeof v ? "allowed" : strerror(errno));
        close(fd);
    } else {
        say("ok procs /proc/N/mem: %s", strerror(errno));
    }
    v = 2222;
    struct iovec l = { &v, sizeof v }, rv = { (void *)&victim_word, sizeof v };
    ssize_t n = process_vm_writev(c, &l, 1, &rv, 1, 0);
    say("ok procs process_vm_writev: %s", n == (ssize_t)sizeof v ? "allowed" : strerror(errno));
    kill(c, SIGSTOP);
    kill(c, SIGCONT);
    int st = 0;
    double deadline = now() + 20;
    pid_t w = 0;
    while ((w = waitpid(c, &st, WNOHANG)) == 0 && now() < deadline) usleep(20000);
    if (w != c) { say("BROKEN procs: the child never ended"); kill(c, SIGKILL); waitpid(c, &st, 0); }
    else if (n == (ssize_t)sizeof v && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
        say("BROKEN procs: process_vm_writev said it wrote, but the child saw no change (status %x)", st);
    else say("ok procs: the child ended (status %x)", st);

    /* kill(-1, SIGKILL) from a child: everyone but init and the caller dies. */
    fflush(stdout);
    pid_t sleeper = fork();
    if (sleeper == 0) { for (;;) pause(); }
    pid_t killer = fork();
    if (killer == 0) { kill(-1, SIGKILL); _exit(0); }
    waitpid(killer, &st, 0);
    deadline = now() + 10;
    while ((w = waitpid(sleeper, &st, WNOHANG)) == 0 && now() < deadline) usleep(20000);
    if (w == sleeper && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) say("ok procs kill(-1): the others died, init lives");
    else { say("BROKEN procs kill(-1): the sleeper %s", w == 0 ? "lives" : "ended otherwise"); kill(sleeper, SIGKILL); waitpid(sleeper, NULL, 0); }
}

/* ---- descriptors ---------------------------------------------------- */

static int works(void) {
    int fd = open("/etc/passwd", O_RDONLY);
    if (fd < 0) return 0;
    char b[16];
    ssize_t n = read(fd, b, sizeof b);
    close(fd);
    if (n <= 0) return 0;
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) { execl("/bin/true", "true", (char *)NULL); _exit(127); }
    int st;
    return c > 0 && waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void section_fds(void) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max > 200000 ? 200000 : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    const char *paths[] = { "/etc/passwd", "/dev/null", "/", "/bin/busybox" };
    int opened = 0, err = 0;
    int pipes = 0;
    for (;;) {
        int fd = (opened % 5 == 4) ? -2 : open(paths[opened % 4], O_RDONLY);
        if (fd == -2) {
            int p[2];
            if (pipe(p) == 0) { opened += 2; pipes++; continue; }
            fd = -1;
        }
        if (fd < 0) { err = errno; break; }
        opened++;
    }
    say("ok fds: %s after about %d descriptors (limit %ld)", strerror(err), opened, (long)rl.rlim_cur);
    if (err != EMFILE && err != ENFILE) say("BROKEN fds: descriptors ran out with %s, not EMFILE", strerror(err));
    if (works()) say("BROKEN fds: open/fork/exec worked with every descriptor taken (expected EMFILE somewhere)");
    close_range(3, ~0U, 0);
    if (!works()) say("BROKEN fds: after closing them all, open/read/fork/exec fail");
    else say("ok fds: everything works again after closing them");
}

/* ---- argv and env --------------------------------------------------- */

static void try_exec(const char *what, char **argv, char **envp) {
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        execve("/bin/true", argv, envp);
        _exit(errno == E2BIG ? 40 : errno == ENOMEM ? 41 : 42);
    }
    int st;
    waitpid(c, &st, 0);
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    say("ok argv %s: %s", what, code == 0 ? "ran" : code == 40 ? "E2BIG" : code == 41 ? "ENOMEM" : "other error");
}

static void section_argv(void) {
    static char *v[70000];
    char *one = malloc(200000);
    memset(one, 'a', 199999); one[199999] = 0;
    char *arg = malloc(8192);
    memset(arg, 'b', 8191); arg[8191] = 0;
    char *empty[] = { NULL };
    /* one argument over MAX_ARG_STRLEN (128 KB) */
    v[0] = "true"; v[1] = one; v[2] = NULL;
    try_exec("one 200 KB argument", v, empty);
    /* 60 KB total: fine */
    for (int i = 1; i <= 7; i++) v[i] = arg;
    v[8] = NULL;
    try_exec("7 x 8 KB arguments", v, empty);
    /* 3 MB total: over a quarter of the 8 MB stack limit */
    for (int i = 1; i <= 384; i++) v[i] = arg;
    v[385] = NULL;
    try_exec("384 x 8 KB arguments", v, empty);
    /* 65,000 tiny arguments: fine by size */
    for (int i = 1; i < 65000; i++) v[i] = "x";
    v[65000] = NULL;
    try_exec("65000 short arguments", v, empty);
    /* the same in the environment */
    char *e[400];
    char *ev = malloc(8200);
    strcpy(ev, "K="); memset(ev + 2, 'c', 8189); ev[8191] = 0;
    for (int i = 0; i < 384; i++) e[i] = ev;
    e[384] = NULL;
    char *a[] = { "true", NULL };
    try_exec("384 x 8 KB environment strings", a, e);
    e[0] = "K=v"; e[1] = NULL;
    try_exec("a small environment", a, e);
}

/* ---- deep and long paths -------------------------------------------- */

static void section_paths(void) {
    char name[251];
    memset(name, 'd', 250); name[250] = 0;
    if (chdir("/tmp") != 0) { say("BROKEN paths: chdir /tmp: %s", strerror(errno)); return; }
    int depth = 0;
    while (depth < 260) {
        if (mkdir(name, 0755) != 0 || chdir(name) != 0) break;
        depth++;
    }
    say("ok paths: descended %d levels of 250-byte names (%d bytes)", depth, depth * 251);
    char buf[8192];
    char *cwd = getcwd(buf, sizeof buf);
    say("ok paths getcwd at the bottom: %s", cwd ? "a path" : strerror(errno));
    int fd = open("file", O_CREAT | O_WRONLY, 0644);
    say("ok paths create at the bottom: %s", fd >= 0 ? "ok" : strerror(errno));
    if (fd >= 0) close(fd);
    /* an absolute path of the whole chain: over PATH_MAX */
    char *lp = malloc(70000);
    strcpy(lp, "/tmp");
    for (int i = 0; i < depth && strlen(lp) < 69000; i++) { strcat(lp, "/"); strcat(lp, name); }
    fd = open(lp, O_RDONLY);
    say("ok paths open of a %zu-byte path: %s", strlen(lp), fd >= 0 ? "opened" : strerror(errno));
    if (fd >= 0) close(fd);
    /* a 4095-byte relative path of ./ components (fits PATH_MAX) and one more */
    char *dots = malloc(5000);
    dots[0] = 0;
    while (strlen(dots) < 4094 - 4) strcat(dots, "./");
    strcat(dots, "file");
    fd = open(dots, O_RDONLY);
    say("ok paths open of a %zu-byte ./ path: %s", strlen(dots), fd >= 0 ? "opened" : strerror(errno));
    if (fd >= 0) close(fd);
    strcat(dots, "/");
    memmove(dots + 2, dots, strlen(dots) + 1);
    dots[0] = '.'; dots[1] = '/';
    fd = open(dots, O_RDONLY);
    say("ok paths open of a %zu-byte ./ path: %s", strlen(dots), fd >= 0 ? "opened" : strerror(errno));
    if (fd >= 0) close(fd);
    /* climb out and remove the chain */
    unlink("file");
    int removed = 0;
    for (int i = 0; i < depth; i++) {
        if (chdir("..") != 0) break;
        if (rmdir(name) == 0) removed++;
    }
    say("ok paths: removed %d of %d levels", removed, depth);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *all[] = { "threads", "stubpage", "procs", "fds", "argv", "paths" };
    int n = argc > 1 ? argc - 1 : 6;
    for (int i = 0; i < n; i++) {
        const char *s = argc > 1 ? argv[i + 1] : all[i];
        say("== %s", s);
        if (!strcmp(s, "threads")) section_threads();
        else if (!strcmp(s, "stubpage")) section_stubpage();
        else if (!strcmp(s, "procs")) section_procs();
        else if (!strcmp(s, "fds")) section_fds();
        else if (!strcmp(s, "argv")) section_argv();
        else if (!strcmp(s, "paths")) section_paths();
        else { say("unknown section %s", s); return 2; }
    }
    say("done");
    return 0;
}
