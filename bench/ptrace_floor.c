/*
 * ptrace_floor: the cost of one bare PTRACE_SYSEMU syscall round trip.
 *
 *   ptrace_floor [-p] [-c CPU] [N]      N defaults to 200000
 *
 * A forked child loops on syscall(SYS_getppid). The parent traces it with
 * PTRACE_SYSEMU: every getppid stops the child at syscall entry without
 * executing it; the parent reads the registers (PTRACE_GETREGS), writes a fake
 * return value into rax (PTRACE_SETREGS) and resumes with PTRACE_SYSEMU again.
 * One loop iteration is one complete trap/emulate/resume round trip, which is
 * the least that any ptrace-based sandbox (Moat, runsc --platform=ptrace) has
 * to pay per application syscall. The child checks the fake value, so a broken
 * emulation is reported instead of silently measured.
 *
 * Output (stdout):   ns_per_call=<float>
 *
 *   -p       pin tracer and tracee to one CPU (the first CPU we may run on),
 *            which removes cross-CPU wake-ups from the round trip
 *   -c CPU   pin both to the given CPU (implies -p)
 *
 * Build: gcc -O2 -o ptrace_floor ptrace_floor.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef PTRACE_SYSEMU
#define PTRACE_SYSEMU 31
#endif
#ifndef PTRACE_O_EXITKILL
#define PTRACE_O_EXITKILL (1 << 20)
#endif

#define FAKE_PPID 4242L
#define WARMUP 2000L

static void die(const char *what)
{
    fprintf(stderr, "ptrace_floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [-p] [-c CPU] [N>0]\n", argv0);
    exit(2);
}

static __attribute__((noreturn)) void child_main(void)
{
    if (ptrace(PTRACE_TRACEME, 0, 0, 0) != 0)
        _exit(120);
    /* Raw kill, not raise(): glibc's raise() wraps tgkill in sigprocmask
     * calls, which the tracer would then see (and skip) under SYSEMU. */
    syscall(SYS_kill, syscall(SYS_getpid), SIGSTOP);
    for (;;) {
        if (syscall(SYS_getppid) != FAKE_PPID)
            syscall(SYS_exit_group, 3); /* the tracer sees this and fails */
    }
}

/* One round trip: resume to the next syscall entry, emulate it. */
static void round_trip(pid_t pid)
{
    int status;
    struct user_regs_struct regs;

    if (ptrace(PTRACE_SYSEMU, pid, 0, 0) != 0)
        die("PTRACE_SYSEMU");
    if (waitpid(pid, &status, __WALL) != pid)
        die("waitpid");
    if (!WIFSTOPPED(status) || WSTOPSIG(status) != SIGTRAP) {
        fprintf(stderr, "ptrace_floor: unexpected child status 0x%x\n", status);
        exit(1);
    }
    if (ptrace(PTRACE_GETREGS, pid, 0, &regs) != 0)
        die("PTRACE_GETREGS");
    if ((long)regs.orig_rax != SYS_getppid) {
        fprintf(stderr, "ptrace_floor: child made syscall %ld, expected getppid "
                        "(%s)\n", (long)regs.orig_rax,
                (long)regs.orig_rax == SYS_exit_group ? "it saw a wrong return value"
                                                      : "unexpected");
        kill(pid, SIGKILL);
        exit(1);
    }
    regs.rax = (unsigned long long)FAKE_PPID;
    if (ptrace(PTRACE_SETREGS, pid, 0, &regs) != 0)
        die("PTRACE_SETREGS");
}

int main(int argc, char **argv)
{
    long n = 200000;
    int pin = 0, cpu = -1, opt;

    while ((opt = getopt(argc, argv, "pc:")) != -1) {
        switch (opt) {
        case 'p':
            pin = 1;
            break;
        case 'c':
            pin = 1;
            cpu = atoi(optarg);
            break;
        default:
            usage(argv[0]);
        }
    }
    if (optind < argc) {
        char *end;
        n = strtol(argv[optind], &end, 10);
        if (*argv[optind] == '\0' || *end != '\0' || n <= 0)
            usage(argv[0]);
    }

    if (pin) {
        cpu_set_t set;
        if (cpu < 0) {
            if (sched_getaffinity(0, sizeof set, &set) != 0)
                die("sched_getaffinity");
            for (cpu = 0; cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &set); cpu++)
                ;
        }
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        /* Set before fork so that the child inherits the same single CPU. */
        if (sched_setaffinity(0, sizeof set, &set) != 0)
            die("sched_setaffinity");
    }

    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0)
        child_main();

    int status;
    if (waitpid(pid, &status, __WALL) != pid)
        die("waitpid");
    if (!WIFSTOPPED(status) || WSTOPSIG(status) != SIGSTOP) {
        fprintf(stderr, "ptrace_floor: child did not stop (status 0x%x)\n", status);
        return 1;
    }
    if (ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_EXITKILL) != 0)
        die("PTRACE_SETOPTIONS");

    for (long i = 0; i < WARMUP; i++)
        round_trip(pid);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++)
        round_trip(pid);
    clock_gettime(CLOCK_MONOTONIC, &t1);

    kill(pid, SIGKILL);
    waitpid(pid, &status, __WALL);

    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    printf("ns_per_call=%.2f\n", ns / (double)n);
    if (pin)
        fprintf(stderr, "ptrace_floor: pinned to CPU %d\n", cpu);
    return 0;
}
