// Core dumps: which deaths leave a core file (RLIMIT_CORE, PR_SET_DUMPABLE,
// the signal, a name already taken) and what the file holds: an ELF core
// whose notes name the process and the signal and whose PT_LOAD segments
// hold the process's memory as /proc/PID/coredump_filter and MADV_DONTDUMP
// say. Relies on kernel.core_pattern being Linux's default, "core" (it is
// printed; nothing here writes it: natively it is the host's). Every core
// file is removed before the program ends.
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char marker[] = "moat-core-marker-0123456789";
static const char hidden[] = "moat-core-hidden-9876543210";
static char *anon, *secret;

// The soft limit only: the hard one is the caller's (the suite's native side
// lowers only the soft limit too, so a program may raise it, as here).
static void set_core_limit(rlim_t v) {
    struct rlimit r;
    getrlimit(RLIMIT_CORE, &r);
    r.rlim_cur = v == RLIM_INFINITY || v > r.rlim_max ? r.rlim_max : v;
    if (setrlimit(RLIMIT_CORE, &r)) printf("setrlimit: %s\n", strerror(errno));
}

static int status_of(pid_t p) {
    int st = 0;
    if (waitpid(p, &st, 0) != p) printf("waitpid: %s\n", strerror(errno));
    return st;
}

static void show(const char *what, int st) {
    if (WIFSIGNALED(st)) printf("%s: signal %d, core %d", what, WTERMSIG(st), WCOREDUMP(st) ? 1 : 0);
    else printf("%s: exit %d", what, WEXITSTATUS(st));
    struct stat sb;
    if (lstat("core", &sb) == 0) printf(", core file %s mode %o uid %d\n", S_ISREG(sb.st_mode) ? "regular" : "other", sb.st_mode & 07777, sb.st_uid);
    else printf(", no core file\n");
}

// A child that dies of abort() after `prep`.
static pid_t crash_with(void (*prep)(void)) {
    pid_t p = fork();
    if (p == 0) {
        if (prep) prep();
        abort();
    }
    return p;
}

static void not_dumpable(void) { prctl(PR_SET_DUMPABLE, 0); }
static void no_anon(void) {
    int fd = open("/proc/self/coredump_filter", O_WRONLY);
    if (fd < 0 || write(fd, "0x10\n", 5) != 5) _exit(90);
    close(fd);
}

static char *core_data;
static size_t core_len;

static int load_core(void) {
    free(core_data); core_data = NULL; core_len = 0;
    int fd = open("core", O_RDONLY);
    if (fd < 0) return -1;
    struct stat sb;
    fstat(fd, &sb);
    core_data = malloc(sb.st_size + 1);
    size_t got = 0;
    while (got < (size_t)sb.st_size) {
        ssize_t n = read(fd, core_data + got, sb.st_size - got);
        if (n <= 0) break;
        got += n;
    }
    close(fd);
    core_len = got;
    return 0;
}

static Elf64_Phdr *phdrs(int *n) {
    Elf64_Ehdr *e = (Elf64_Ehdr *)core_data;
    *n = e->e_phnum;
    return (Elf64_Phdr *)(core_data + e->e_phoff);
}

// The bytes the core holds for `addr`, or NULL (and *memsz_only set when a
// segment covers it with nothing in the file).
static const char *core_bytes(uintptr_t addr, size_t len, int *memsz_only) {
    int n;
    Elf64_Phdr *ph = phdrs(&n);
    *memsz_only = 0;
    for (int i = 0; i < n; i++) {
        if (ph[i].p_type != PT_LOAD || addr < ph[i].p_vaddr || addr + len > ph[i].p_vaddr + ph[i].p_memsz) continue;
        if (addr + len > ph[i].p_vaddr + ph[i].p_filesz) { *memsz_only = 1; return NULL; }
        size_t off = ph[i].p_offset + (addr - ph[i].p_vaddr);
        if (off + len > core_len) return NULL;
        return core_data + off;
    }
    return NULL;
}

static void describe_core(pid_t child, int sig, const char *comm) {
    if (load_core()) { printf("  cannot read the core file\n"); return; }
    Elf64_Ehdr *e = (Elf64_Ehdr *)core_data;
    printf("  ELF %d, type %d, machine %d\n", memcmp(e->e_ident, ELFMAG, SELFMAG) == 0, e->e_type, e->e_machine);
    int n, notes = 0, prstatus = 0, psinfo = 0, siginfo = 0, auxv = 0, files = 0, fpregs = 0;
    Elf64_Phdr *ph = phdrs(&n);
    for (int i = 0; i < n; i++) {
        if (ph[i].p_type != PT_NOTE) continue;
        notes++;
        size_t off = ph[i].p_offset, end = off + ph[i].p_filesz;
        int first_prstatus = 1;
        while (off + 12 <= end) {
            Elf64_Nhdr *nh = (Elf64_Nhdr *)(core_data + off);
            const char *name = core_data + off + 12;
            const char *desc = name + ((nh->n_namesz + 3) & ~3);
            if (nh->n_type == NT_PRSTATUS && strcmp(name, "CORE") == 0 && first_prstatus) {
                first_prstatus = 0;
                int cursig = *(short *)(desc + 12);
                pid_t pid = *(int *)(desc + 32);
                unsigned long long fsbase = *(unsigned long long *)(desc + 112 + 21 * 8);
                unsigned long long mine = 0;
                syscall(SYS_arch_prctl, 0x1003 /* ARCH_GET_FS */, &mine);
                prstatus = (cursig == sig) + 2 * (pid == child) + 4 * (fsbase == mine);
            }
            if (nh->n_type == NT_PRPSINFO) psinfo = strncmp(desc + 40, comm, 16) == 0 ? 1 : 2;
            if (nh->n_type == NT_SIGINFO) siginfo = ((siginfo_t *)desc)->si_signo == sig ? 1 : 2;
            if (nh->n_type == NT_AUXV) {
                const unsigned long long *a = (const unsigned long long *)desc;
                for (size_t k = 0; k + 1 < nh->n_descsz / 8; k += 2) if (a[k] == AT_PAGESZ) auxv = a[k + 1] == 4096 ? 1 : 2;
            }
            if (nh->n_type == NT_FILE) {
                const unsigned long long *f = (const unsigned long long *)desc;
                const char *names = desc + 16 + f[0] * 24;
                for (unsigned long long k = 0; k < f[0]; k++) {
                    if (strcmp(names, "/work/prog") == 0) files = 1;
                    names += strlen(names) + 1;
                }
            }
            if (nh->n_type == NT_FPREGSET) fpregs = nh->n_descsz == 512;
            off = desc - core_data + ((nh->n_descsz + 3) & ~3);
        }
    }
    printf("  notes %d: prstatus %d, psinfo %d, siginfo %d, auxv %d, file of /work/prog %d, fpregs %d\n",
           notes, prstatus, psinfo, siginfo, auxv, files, fpregs);
    int memsz_only;
    const char *m = core_bytes((uintptr_t)anon, sizeof marker, &memsz_only);
    printf("  anonymous marker: %s\n", m ? (memcmp(m, marker, sizeof marker) == 0 ? "in the file" : "wrong bytes") : memsz_only ? "left out" : "no segment");
    m = core_bytes((uintptr_t)secret, sizeof hidden, &memsz_only);
    printf("  MADV_DONTDUMP marker: %s\n", m ? (memcmp(m, hidden, sizeof hidden) == 0 ? "in the file" : "wrong bytes") : memsz_only ? "left out" : "no segment");
    m = core_bytes((uintptr_t)marker, sizeof marker, &memsz_only);
    printf("  read-only data of the program: %s\n", m ? "in the file" : memsz_only ? "left out" : "no segment");
}

static void *crash_thread(void *arg) {
    (void)arg;
    *(volatile long *)core_data = syscall(SYS_gettid);  // the tid, for the parent
    raise(SIGSEGV);
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    char pat[256] = "";
    int fd = open("/proc/sys/kernel/core_pattern", O_RDONLY);
    if (fd >= 0) { ssize_t n = read(fd, pat, sizeof pat - 1); if (n > 0) pat[n] = 0; close(fd); }
    printf("core_pattern: %s", pat);
    fd = open("/proc/self/coredump_filter", O_RDONLY);
    char filt[32] = "";
    if (fd >= 0) { ssize_t n = read(fd, filt, sizeof filt - 1); if (n > 0) filt[n] = 0; close(fd); }
    printf("coredump_filter: %s", filt);
    struct rlimit hard;
    getrlimit(RLIMIT_CORE, &hard);
    printf("RLIMIT_CORE hard limit: %s\n", hard.rlim_max == RLIM_INFINITY ? "unlimited" : "limited (no core can be asked for)");

    anon = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    secret = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memcpy(anon, marker, sizeof marker);
    memcpy(secret, hidden, sizeof hidden);
    printf("madvise DONTDUMP: %d\n", madvise(secret, 1 << 16, MADV_DONTDUMP));
    printf("madvise DODUMP on an unmapped range: %s\n", madvise((char *)anon + (2 << 20) + (1 << 24), 4096, MADV_DODUMP) ? strerror(errno) : "ok");
    unlink("core");

    set_core_limit(0);
    show("limit 0, abort", status_of(crash_with(NULL)));
    set_core_limit(4095);
    show("limit 4095, abort", status_of(crash_with(NULL)));

    set_core_limit(RLIM_INFINITY);
    pid_t c = crash_with(NULL);
    show("unlimited, abort", status_of(c));
    describe_core(c, SIGABRT, "prog");

    // An old file of the name is replaced.
    unlink("core");
    fd = open("core", O_CREAT | O_WRONLY, 0644);
    if (write(fd, "old", 3) != 3) printf("write: %s\n", strerror(errno));
    close(fd);
    c = crash_with(NULL);
    show("over an old file", status_of(c));
    load_core();
    printf("  replaced: %d\n", core_len > 3 && memcmp(core_data, ELFMAG, SELFMAG) == 0);

    // A directory of the name: no dump.
    unlink("core");
    mkdir("core", 0755);
    show("core is a directory", status_of(crash_with(NULL)));
    rmdir("core");

    show("not dumpable", status_of(crash_with(not_dumpable)));

    c = crash_with(no_anon);
    show("coredump_filter 0x10", status_of(c));
    describe_core(c, SIGABRT, "prog");
    unlink("core");

    // Killed from outside: SIGQUIT dumps, SIGTERM does not.
    int sigs[] = { SIGQUIT, SIGTERM, SIGSEGV, SIGKILL };
    for (int i = 0; i < 4; i++) {
        pid_t p = fork();
        if (p == 0) { signal(sigs[i], SIG_DFL); for (;;) pause(); }
        usleep(20000);
        kill(p, sigs[i]);
        char what[64];
        snprintf(what, sizeof what, "killed by %d", sigs[i]);
        show(what, status_of(p));
        unlink("core");
    }

    // waitid's view: CLD_DUMPED.
    c = crash_with(NULL);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    waitid(P_PID, c, &si, WEXITED);
    printf("waitid: code %s, status %d\n", si.si_code == CLD_DUMPED ? "CLD_DUMPED" : si.si_code == CLD_KILLED ? "CLD_KILLED" : "other", si.si_status);
    unlink("core");

    // A handler that falls back to the default: still a dump.
    c = fork();
    if (c == 0) { signal(SIGFPE, SIG_IGN); signal(SIGFPE, SIG_DFL); raise(SIGFPE); _exit(0); }
    show("SIGFPE after SIG_IGN then SIG_DFL", status_of(c));
    unlink("core");

    // A small limit: the file is cut short, the dump still counts.
    set_core_limit(8192);
    c = crash_with(NULL);
    show("limit 8192", status_of(c));
    struct stat sb;
    printf("  size within the limit: %d\n", stat("core", &sb) == 0 && sb.st_size <= 8192);
    unlink("core");
    set_core_limit(RLIM_INFINITY);

    // A second thread crashes: its registers come first.
    core_data = mmap(NULL, 1 << 22, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    c = fork();
    if (c == 0) {
        signal(SIGSEGV, SIG_DFL);
        pthread_t th;
        pthread_create(&th, NULL, crash_thread, NULL);
        for (;;) pause();
    }
    int st = status_of(c);
    long tid = *(volatile long *)core_data;
    show("a thread raises SIGSEGV", st);
    core_data = NULL;
    if (load_core() == 0) {
        int n;
        Elf64_Phdr *ph = phdrs(&n);
        pid_t first = 0;
        for (int i = 0; i < n && !first; i++)
            if (ph[i].p_type == PT_NOTE) first = *(int *)(core_data + ph[i].p_offset + 12 + 8 + 32);
        printf("  first NT_PRSTATUS is the crashing thread: %d\n", first == tid && tid != 0);
    }
    unlink("core");
    return 0;
}
