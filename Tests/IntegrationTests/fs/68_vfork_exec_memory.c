/* A vfork child that execs runs beside its parent as a process of its own:
 * both then change their page tables (mmap, write, munmap of a fresh page,
 * again and again at one address) and yield to each other, and each must
 * always see its own memory: a fresh anonymous page reads zero, a write
 * reads back. On the KVM platform a vfork child starts on its parent's
 * vCPU (same address space); its exec gives it a new root, which must move
 * it to a vCPU of its own (Sentry/Kernel/KVMTasks.swift): under shadow
 * paging a vCPU that switches between two roots keeps stale translations
 * of the one it left, and the parent then reads the child's pages or its
 * own old ones. python's subprocess is such a vfork + exec. */
#include "t.h"
#include <sched.h>

#define ROUNDS 3000

static int churn(uintptr_t at, unsigned seed) {
    /* The exec'd child runs this too, in its own address space. */
    int bad = 0;
    for (unsigned i = 0; i < ROUNDS; i++) {
        volatile unsigned *p = mmap((void *)at, 4096, PROT_READ | PROT_WRITE,
                                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (p == MAP_FAILED) return -1;
        for (int j = 0; j < 1024; j += 64) if (p[j] != 0) bad++;
        unsigned v = seed * 100000 + i + 1;
        for (int j = 0; j < 1024; j += 64) p[j] = v;
        sched_yield();
        for (int j = 0; j < 1024; j += 64) if (p[j] != v) bad++;
        munmap((void *)p, 4096);
        sched_yield();
    }
    return bad;
}

/* Copy-on-write while the exec'd child runs: after each fork the parent
 * writes its page again, and the fork child must still read the value of
 * the fork (the write-protection fork put in the parent's page tables must
 * take effect on the parent's vCPU). */
static int cow(uintptr_t at) {
    int bad = 0;
    volatile unsigned *p = mmap((void *)at, 4096, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED) return -1;
    for (unsigned i = 0; i < 200; i++) {
        p[0] = i;
        pid_t c = fork();
        if (c == 0) {
            for (int k = 0; k < 20; k++) sched_yield();
            _exit(p[0] == i ? 0 : 1);
        }
        if (c < 0) return -1;
        p[0] = i + 1000000;
        sched_yield();
        int st;
        if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st)) bad++;
    }
    return bad;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "child")) {
        int bad = churn(0x300000000, 2);
        return bad == 0 ? 0 : bad < 0 ? 2 : 1;
    }
    char *args[] = { argv[0], "child", NULL };
    char *env[] = { NULL };
    pid_t pid = vfork();
    if (pid == 0) { execve(argv[0], args, env); _exit(127); }
    say("vfork + exec: %s", pid > 0 ? "ok" : "failed");
    int bad = churn(0x300000000, 1);
    say("parent: %d rounds, pages not as written or not zero when fresh: %d", ROUNDS, bad);
    say("parent: fork children that saw a write made after their fork: %d", cow(0x310000000));
    int st;
    T(waitpid(pid, &st, 0) == pid);
    say("child: exit %d (0: all its pages right, 1: some wrong)", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
}
