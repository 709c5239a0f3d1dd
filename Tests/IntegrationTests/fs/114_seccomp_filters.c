/* An application's own seccomp filters: seccomp(2) and PR_SET_SECCOMP's
 * checks, each action (ALLOW, ERRNO, TRAP with its siginfo, TRACE with no
 * tracer, KILL_THREAD, KILL_PROCESS), the most restrictive of stacked
 * filters winning, inheritance by fork and execve, TSYNC, strict mode and
 * /proc/self/status's lines. Every filtering case runs in a child process so
 * that its filters die with it. */
#include "t.h"
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <ucontext.h>

#define NR_TARGET SYS_getpgid         /* filtered only for its magic argument */
#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1
#endif
#define MAGIC (-4242L)

static int sc(unsigned op, unsigned flags, void *args) { return syscall(SYS_seccomp, op, flags, args); }

/* A filter: arch check, then `ret` for NR_TARGET(MAGIC), ALLOW otherwise. */
static struct sock_filter prog_for(unsigned ret, struct sock_filter f[9]) {
    struct sock_filter p[9] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NR_TARGET, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)MAGIC, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, ret),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    memcpy(f, p, sizeof p);
    return p[0];
}

static int install(unsigned ret, unsigned flags) {
    struct sock_filter f[9];
    prog_for(ret, f);
    struct sock_fprog fp = { .len = 9, .filter = f };
    return sc(SECCOMP_SET_MODE_FILTER, flags, &fp);
}

static void status_lines(const char *tag) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "Seccomp", 7) || !strncmp(line, "NoNewPrivs", 10)) printf("%s %s", tag, line);
    if (f) fclose(f);
    fflush(stdout);
}

/* Runs fn in a child and prints how the child ended. */
static void child(const char *what, void (*fn)(void)) {
    pid_t p = fork();
    if (p == 0) { fn(); fflush(stdout); _exit(0); }
    int st;
    waitpid(p, &st, 0);
    if (WIFSIGNALED(st)) say("%s: killed by %s", what, sigabbrev_np(WTERMSIG(st)));
    else say("%s: exit %d", what, WEXITSTATUS(st));
}

static void invalid_programs(void) {
    struct sock_fprog fp;
    T(sc(SECCOMP_SET_MODE_FILTER, 123, NULL));
    T(sc(SECCOMP_SET_MODE_STRICT, 1, NULL));
    T(sc(99, 0, NULL));
    fp.len = 0; fp.filter = NULL;
    T(sc(SECCOMP_SET_MODE_FILTER, 0, &fp));
    T(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp, 0, 0));
    T(prctl(PR_SET_SECCOMP, 7, 0, 0, 0));
    T(sc(SECCOMP_SET_MODE_FILTER, 0, (void *)8));
    static struct sock_filter big[4097];
    for (int i = 0; i < 4097; i++) big[i] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    fp.len = 4097; fp.filter = big;
    T(sc(SECCOMP_SET_MODE_FILTER, 0, &fp));
    fp.len = 4; fp.filter = NULL;
    T(sc(SECCOMP_SET_MODE_FILTER, 0, &fp));
    struct { const char *what; struct sock_filter f[3]; int n; } bad[] = {
        { "LD H ABS", { BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 0), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) }, 2 },
        { "LD W ABS 2", { BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 2), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) }, 2 },
        { "LD W ABS 64", { BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 64), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) }, 2 },
        { "LD MEM unset", { BPF_STMT(BPF_LD | BPF_MEM, 3), BPF_STMT(BPF_RET | BPF_A, 0) }, 2 },
        { "JA out", { BPF_STMT(BPF_JMP | BPF_JA, 5), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) }, 2 },
        { "no RET last", { BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW), BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0) }, 2 },
        { "DIV 0", { BPF_STMT(BPF_ALU | BPF_DIV | BPF_K, 0), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) }, 2 },
        { "LSH 32", { BPF_STMT(BPF_ALU | BPF_LSH | BPF_K, 32), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) }, 2 },
        { "LD W LEN", { BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) }, 2 },
        { "MEM set", { BPF_STMT(BPF_ST, 3), BPF_STMT(BPF_LD | BPF_MEM, 3), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) }, 3 },
    };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fp.len = bad[i].n; fp.filter = bad[i].f;
        errno = 0;
        /* The valid ones (LEN, MEM set) are installed: allow all, harmless. */
        long r = sc(SECCOMP_SET_MODE_FILTER, 0, &fp);
        say("program %s: %ld %s", bad[i].what, r, r < 0 ? ename(errno) : "");
    }
}

static void no_privilege(void) {
    /* Without no_new_privs and CAP_SYS_ADMIN: EACCES. */
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];
    syscall(SYS_capget, &h, d);
    d[0].effective &= ~(1u << CAP_SYS_ADMIN);
    Q(syscall(SYS_capset, &h, d));
    T(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    T(install(SECCOMP_RET_ALLOW, 0));
    T(prctl(PR_GET_SECCOMP, 0, 0, 0, 0));
    T(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    T(install(SECCOMP_RET_ALLOW, 0));
    T(prctl(PR_GET_SECCOMP, 0, 0, 0, 0));
}

static void errno_action(void) {
    T(install(SECCOMP_RET_ERRNO | ENOTNAM, 0));
    T(syscall(NR_TARGET, MAGIC));
    T(syscall(NR_TARGET, MAGIC + 1));
    T(getpgid(0) == getpgrp());
    T(install(SECCOMP_RET_ERRNO | 5000, 0));                 /* data above MAX_ERRNO */
    T(syscall(NR_TARGET, MAGIC));
    status_lines("errno:");
}

static void errno_zero(void) {
    T(install(SECCOMP_RET_ERRNO | 0, 0));
    T(syscall(NR_TARGET, MAGIC));
}

static volatile int trap_ok;
static void on_sys(int sig, siginfo_t *si, void *uc) {
    ucontext_t *u = uc;
    trap_ok = sig == SIGSYS && si->si_code == SYS_SECCOMP && si->si_errno == 0xbeef && si->si_syscall == NR_TARGET &&
              si->si_arch == AUDIT_ARCH_X86_64 && si->si_call_addr != NULL && u->uc_mcontext.gregs[REG_RAX] == NR_TARGET;
}
static void trap_action(void) {
    struct sigaction sa = { .sa_sigaction = on_sys, .sa_flags = SA_SIGINFO };
    sigaction(SIGSYS, &sa, NULL);
    T(install(SECCOMP_RET_TRAP | 0xbeef, 0));
    syscall(NR_TARGET, MAGIC);
    say("trap handler saw the call: %d", trap_ok);
}
static void trap_blocked(void) {
    /* A blocked SIGSYS is forced: the default action kills. */
    sigset_t s; sigemptyset(&s); sigaddset(&s, SIGSYS);
    sigprocmask(SIG_BLOCK, &s, NULL);
    T(install(SECCOMP_RET_TRAP, 0));
    syscall(NR_TARGET, MAGIC);
    say("survived a blocked trap");
}

static void trace_action(void) {
    T(install(SECCOMP_RET_TRACE | 7, 0));
    T(syscall(NR_TARGET, MAGIC));
}
static void notif_no_listener(void) {
    T(install(SECCOMP_RET_USER_NOTIF, 0));
    T(syscall(NR_TARGET, MAGIC));
}

static void kill_process(void) {
    T(install(SECCOMP_RET_KILL_PROCESS, 0));
    syscall(NR_TARGET, MAGIC);
    say("survived KILL_PROCESS");
}

static void *victim(void *arg) { syscall(NR_TARGET, MAGIC); say("thread survived"); return arg; }
static void kill_thread(void) {
    T(install(SECCOMP_RET_KILL_THREAD, 0));
    pthread_t th;
    pthread_create(&th, NULL, victim, NULL);
    /* The thread dies alone; this one goes on (join would wait for ever: no
     * clear_child_tid wake is promised for a killed thread, so sleep). */
    usleep(200 * 1000);
    say("main thread alive after its sibling was killed");
}
static void kill_last_thread(void) {
    T(install(SECCOMP_RET_KILL_THREAD, 0));
    syscall(NR_TARGET, MAGIC);
    say("survived KILL_THREAD alone");
}

static void stacked(void) {
    T(install(SECCOMP_RET_TRACE, 0));
    T(install(SECCOMP_RET_ERRNO | EXDEV, 0));
    T(install(SECCOMP_RET_ALLOW, 0));
    T(install(SECCOMP_RET_ERRNO | ENOTNAM, 0));
    T(syscall(NR_TARGET, MAGIC));              /* ERRNO beats TRACE and ALLOW; the first ERRNO installed last wins */
    status_lines("stacked:");
    T(install(SECCOMP_RET_KILL_PROCESS, 0));
    syscall(NR_TARGET, MAGIC);
    say("survived stacked KILL_PROCESS");
}

static void inherited(void) {
    T(install(SECCOMP_RET_ERRNO | ENOTNAM, 0));
    pid_t p = fork();
    if (p == 0) {
        T(syscall(NR_TARGET, MAGIC));
        execl("/proc/self/exe", "prog", "--exec-child", (char *)NULL);
        _exit(9);
    }
    int st;
    waitpid(p, &st, 0);
    say("fork/exec child: exit %d", WEXITSTATUS(st));
}

static volatile int tsync_step, diverged;
static void *tsync_thread(void *arg) {
    T(install(SECCOMP_RET_ERRNO | ENOTNAM, SECCOMP_FILTER_FLAG_TSYNC));
    return arg;
}
static void tsync(void) {
    T(syscall(NR_TARGET, MAGIC));
    T(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    pthread_t th;
    pthread_create(&th, NULL, tsync_thread, NULL);
    pthread_join(th, NULL);
    T(syscall(NR_TARGET, MAGIC));
    T(prctl(PR_GET_SECCOMP, 0, 0, 0, 0));
}

static void *diverge_thread(void *arg) {
    T(install(SECCOMP_RET_ERRNO | EXDEV, 0));             /* only this thread */
    T(syscall(NR_TARGET, MAGIC));
    diverged = 1;
    while (!tsync_step) usleep(1000);
    return arg;
}
static void tsync_fails(void) {
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    pthread_t th;
    pthread_create(&th, NULL, diverge_thread, NULL);
    while (!diverged) usleep(1000);
    T(syscall(NR_TARGET, MAGIC));                          /* the main thread has no filter */
    long r = install(SECCOMP_RET_ERRNO | ENOTNAM, SECCOMP_FILTER_FLAG_TSYNC);
    say("TSYNC with a diverged sibling names it: %d", r > 0);
    T(install(SECCOMP_RET_ERRNO | ENOTNAM, SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_TSYNC_ESRCH));
    T(syscall(NR_TARGET, MAGIC));
    tsync_step = 1;
    pthread_join(th, NULL);
}

static void strict_ok(void) {
    T(prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0));
    write(1, "strict: write works\n", 20);
    syscall(SYS_exit, 0);
}
static void strict_kill(void) {
    T(sc(SECCOMP_SET_MODE_STRICT, 0, NULL));
    getppid();
    write(1, "strict: survived getppid\n", 25);
}
static void strict_then_filter(void) {
    /* A filter thread cannot go strict, nor the reverse (the latter shown in
     * the exit: seccomp() is not one of strict mode's calls). */
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    T(install(SECCOMP_RET_ALLOW, 0));
    T(sc(SECCOMP_SET_MODE_STRICT, 0, NULL));
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--exec-child")) {
        T(syscall(NR_TARGET, MAGIC));
        T(prctl(PR_GET_SECCOMP, 0, 0, 0, 0));
        return 3;
    }
    unsigned acts[] = { SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD, SECCOMP_RET_TRAP, SECCOMP_RET_ERRNO,
                        SECCOMP_RET_USER_NOTIF, SECCOMP_RET_TRACE, SECCOMP_RET_LOG, SECCOMP_RET_ALLOW, 0x12340000, 0x00050001 };
    for (unsigned i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        errno = 0;
        long r = sc(SECCOMP_GET_ACTION_AVAIL, 0, &acts[i]);
        say("action 0x%08x available: %ld %s", acts[i], r, r < 0 ? ename(errno) : "");
    }
    T(sc(SECCOMP_GET_ACTION_AVAIL, 1, &acts[0]));
    T(sc(SECCOMP_GET_ACTION_AVAIL, 0, NULL));
    struct seccomp_notif_sizes sz;
    T(sc(SECCOMP_GET_NOTIF_SIZES, 0, &sz));
    say("sizes: notif %u resp %u data %u", sz.seccomp_notif, sz.seccomp_notif_resp, sz.seccomp_data);
    T(prctl(PR_GET_SECCOMP, 0, 0, 0, 0));
    status_lines("start:");

    child("invalid programs", invalid_programs);
    child("no privilege", no_privilege);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);               /* every child below inherits it */
    child("errno", errno_action);
    child("errno 0", errno_zero);
    child("trap", trap_action);
    child("trap blocked", trap_blocked);
    child("trace", trace_action);
    child("user notif without listener", notif_no_listener);
    child("kill process", kill_process);
    child("kill thread", kill_thread);
    child("kill last thread", kill_last_thread);
    child("stacked", stacked);
    child("inherited", inherited);
    child("tsync", tsync);
    child("tsync fails", tsync_fails);
    child("strict", strict_ok);
    child("strict kill", strict_kill);
    child("strict after filter", strict_then_filter);
    return 0;
}
