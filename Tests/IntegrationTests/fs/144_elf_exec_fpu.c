// The program image as gVisor's exec_binary, exec and fpsig programs
// (session 19, compat28) check it, natively and in Moat: hand-made ELF
// files whose /proc/PID/maps must show a segment's file pages at their file
// offset and the rest of its .bss as anonymous memory, a segment with no
// file bytes, segments out of order; an unaligned segment offset that
// kills the new program (SIGSEGV) rather than failing execve; PT_INTERP
// paths that are not NUL-terminated, empty or missing; five levels of #!
// scripts but not six; a #! argument's blanks; a script run through a
// close-on-exec descriptor (ENOENT); a signal handler that starts with a
// clean FPU (xmm0 zero, MXCSR 0x1f80) and finds the interrupted state
// restored after it returns; and /proc/cpuinfo's flags for features the
// CPU reports.
#include "t.h"
#include <elf.h>
#include <signal.h>

// getpid; kill(pid, SIGSTOP); exit(0).
static const unsigned char code[] = {
    0xb8, 0x27, 0, 0, 0, 0x0f, 0x05,            // mov $39, %eax; syscall
    0x89, 0xc7,                                  // mov %eax, %edi
    0xbe, 0x13, 0, 0, 0,                         // mov $SIGSTOP, %esi
    0xb8, 0x3e, 0, 0, 0, 0x0f, 0x05,            // mov $62, %eax; syscall
    0xb8, 0x3c, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05, // exit(0)
};

struct seg { uint32_t flags; uint64_t off, vaddr, filesz, memsz; };

// Writes an ELF with the code at `code_off` of the file (mapped at
// 0x40000 + code_off by the first segment) and the segments given.
static void write_elf(const char *path, const struct seg *s, int n, const char *interp, size_t interp_len, size_t file_size) {
    unsigned char *f = calloc(1, file_size);
    Elf64_Ehdr *h = (Elf64_Ehdr *)f;
    memcpy(h->e_ident, ELFMAG, SELFMAG);
    h->e_ident[EI_CLASS] = ELFCLASS64; h->e_ident[EI_DATA] = ELFDATA2LSB; h->e_ident[EI_VERSION] = EV_CURRENT;
    h->e_type = ET_EXEC; h->e_machine = EM_X86_64; h->e_version = EV_CURRENT;
    h->e_phoff = sizeof *h; h->e_phentsize = sizeof(Elf64_Phdr);
    Elf64_Phdr *p = (Elf64_Phdr *)(f + sizeof *h);
    int k = 0;
    p[k].p_type = PT_GNU_STACK; p[k].p_flags = PF_R | PF_W; k++;
    if (interp) {
        p[k].p_type = PT_INTERP; p[k].p_offset = 0x800; p[k].p_filesz = interp_len; p[k].p_memsz = interp_len;
        memcpy(f + 0x800, interp, interp_len); k++;
    }
    for (int i = 0; i < n; i++, k++) {
        p[k].p_type = PT_LOAD; p[k].p_flags = s[i].flags; p[k].p_offset = s[i].off; p[k].p_vaddr = s[i].vaddr;
        p[k].p_filesz = s[i].filesz; p[k].p_memsz = s[i].memsz; p[k].p_align = 4096;
    }
    h->e_phnum = k;
    h->e_entry = 0x40000 + 0x400;
    memcpy(f + 0x400, code, sizeof code);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    write(fd, f, file_size);
    close(fd);
    free(f);
}

// Runs `path`: its stop is waited for and its mappings of `path` (and
// anonymous ones below 0x100000) printed; or how it ended.
static void run(const char *label, const char *path, int fd_exec) {
    int pfd[2];
    pipe2(pfd, O_CLOEXEC);
    pid_t c = fork();
    if (c == 0) {
        char *argv[] = {(char *)path, NULL}, *envp[] = {NULL};
        if (fd_exec >= 0) syscall(SYS_execveat, fd_exec, "", argv, envp, AT_EMPTY_PATH);
        else execve(path, argv, envp);
        int e = errno;
        write(pfd[1], &e, sizeof e);
        _exit(127);
    }
    close(pfd[1]);
    int e = 0;
    if (read(pfd[0], &e, sizeof e) == sizeof e) say("%s: execve = -1 %s", label, ename(e));
    close(pfd[0]);
    int st;
    waitpid(c, &st, WUNTRACED);
    if (WIFSTOPPED(st)) {
        char mp[64], line[512];
        snprintf(mp, sizeof mp, "/proc/%d/maps", c);
        FILE *m = fopen(mp, "r");
        while (m && fgets(line, sizeof line, m)) {
            unsigned long lo, hi, off;
            char perms[8];
            if (sscanf(line, "%lx-%lx %7s %lx", &lo, &hi, perms, &off) != 4 || lo >= 0x100000) continue;
            say("%s: %lx-%lx %s %lx %s", label, lo, hi, perms, off, strstr(line, path) ? "file" : "anon");
        }
        if (m) fclose(m);
        kill(c, SIGKILL);
        waitpid(c, &st, 0);
    } else if (WIFSIGNALED(st)) {
        say("%s: killed by %s", label, sigabbrev_np(WTERMSIG(st)));
    } else if (e == 0) {
        say("%s: exit %d", label, WEXITSTATUS(st));
    }
}

static void loader(void) {
    const size_t hdr = 0x400;
    // Text, then data (half a page of file bytes) with a .bss over two more pages.
    struct seg data[] = {{PF_R | PF_X, 0, 0x40000, hdr + sizeof code, hdr + sizeof code},
                         {PF_R | PF_W, 0x1000, 0x41000, 0x800, 0x2000}};
    write_elf("/tmp/elf-data", data, 2, NULL, 0, 0x1800);
    run("data+bss", "/tmp/elf-data", -1);
    // A segment with no file bytes at all.
    struct seg anon[] = {{PF_R | PF_X, 0, 0x40000, hdr + sizeof code, hdr + sizeof code}, {PF_R, 0x123, 0x42000, 0, 0x1000}};
    write_elf("/tmp/elf-anon", anon, 2, NULL, 0, 0x1000);
    run("anon-only", "/tmp/elf-anon", -1);
    // Segments listed out of address order: each keeps its own file offset.
    struct seg ooo[] = {{PF_R | PF_X, 0, 0x40000, hdr + sizeof code, hdr + sizeof code},
                        {PF_R, 0x1000, 0x20000, 0x100, 0x100}};
    write_elf("/tmp/elf-ooo", ooo, 2, NULL, 0, 0x1100);
    run("out-of-order", "/tmp/elf-ooo", -1);
    // An offset aligned otherwise than its address: the mapping fails after
    // the point of no return.
    struct seg bad[] = {{PF_R | PF_X, 1, 0x40000, hdr + sizeof code, hdr + sizeof code}};
    write_elf("/tmp/elf-unaligned", bad, 1, NULL, 0, 0x1000);
    run("unaligned", "/tmp/elf-unaligned", -1);
    struct seg one[] = {{PF_R | PF_X, 0, 0x40000, hdr + sizeof code, hdr + sizeof code}};
    write_elf("/tmp/elf-interp1", one, 1, "/f/b", 4, 0x1000);
    run("interp without NUL", "/tmp/elf-interp1", -1);
    write_elf("/tmp/elf-interp2", one, 1, "\0", 1, 0x1000);
    run("interp of one byte", "/tmp/elf-interp2", -1);
    write_elf("/tmp/elf-interp3", one, 1, "\0\0", 2, 0x1000);
    run("interp empty", "/tmp/elf-interp3", -1);
    write_elf("/tmp/elf-interp4", one, 1, "/f/b\0", 5, 0x1000);
    run("interp missing", "/tmp/elf-interp4", -1);

    // #! levels: the program, then scripts each running the one before.
    write_elf("/tmp/s0", one, 1, NULL, 0, 0x1000);
    for (int i = 1; i <= 6; i++) {
        char name[32], body[64];
        snprintf(name, sizeof name, "/tmp/s%d", i);
        snprintf(body, sizeof body, "#!/tmp/s%d\n", i - 1);
        int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0755);
        write(fd, body, strlen(body));
        close(fd);
    }
    run("five levels of #!", "/tmp/s5", -1);
    run("six levels of #!", "/tmp/s6", -1);
    int fd = open("/tmp/s1", O_RDONLY | O_CLOEXEC);
    run("script by close-on-exec fd", "/tmp/s1", fd);
    close(fd);
    fd = open("/tmp/s1", O_RDONLY);
    run("script by fd", "/tmp/s1", fd);
    close(fd);
}

static void script_arg(void) {
    int fd = open("/tmp/echo.sh", O_WRONLY | O_CREAT | O_TRUNC, 0755);
    const char *body = "#!/bin/echo   one two  \t\n";
    write(fd, body, strlen(body));
    close(fd);
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        char *argv[] = {"/tmp/echo.sh", "three", NULL}, *envp[] = {NULL};
        execve("/tmp/echo.sh", argv, envp);
        _exit(127);
    }
    waitpid(c, NULL, 0);
}

static volatile uint64_t in_handler_xmm0 = 1;
static volatile uint32_t in_handler_mxcsr;
static void on_usr1(int s, siginfo_t *si, void *uc) {
    (void)s; (void)si; (void)uc;
    uint64_t v;
    __asm__ volatile("movq %%xmm0, %0" : "=r"(v));
    in_handler_xmm0 = v;
    uint32_t m;
    __asm__ volatile("stmxcsr %0" : "=m"(m));
    in_handler_mxcsr = m;
    v = 0x1111;
    __asm__ volatile("movq %0, %%xmm0" : : "r"(v));
}

static void signal_fpu(void) {
    struct sigaction sa = {0};
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    long pid = getpid(), tid = gettid();
    uint64_t before = 0xdeadbeeffacefeedULL, got;
    uint32_t zero = 0, mx_after, mx_orig;
    __asm__ volatile("stmxcsr %0" : "=m"(mx_orig));
    __asm__ volatile("movq %0, %%xmm0" : : "r"(before));
    __asm__ volatile("ldmxcsr %0" : : "m"(zero));
    __asm__ volatile("mov $234, %%eax; mov %0, %%rdi; mov %1, %%rsi; mov $10, %%edx; syscall"
                     : : "r"(pid), "r"(tid) : "rax", "rdi", "rsi", "rdx", "rcx", "r11", "memory");
    __asm__ volatile("movq %%xmm0, %0" : "=r"(got));
    __asm__ volatile("stmxcsr %0" : "=m"(mx_after));
    __asm__ volatile("ldmxcsr %0" : : "m"(mx_orig));
    say("handler: xmm0 %llx mxcsr %x; after: xmm0 restored %d, mxcsr %x", (unsigned long long)in_handler_xmm0,
        in_handler_mxcsr, got == before, mx_after);
}

static void cpuinfo_flags(void) {
    static char text[1 << 16];
    int fd = open("/proc/cpuinfo", O_RDONLY);
    ssize_t n, len = 0;
    while ((n = read(fd, text + len, sizeof text - 1 - len)) > 0) len += n;
    close(fd);
    text[len] = 0;
    char *f = strstr(text, "\nflags\t\t: ");
    char *end = f ? strchr(f + 1, '\n') : NULL;
    if (!f || !end) { say("no flags line"); return; }
    *end = 0;
    const char *names[] = {"fpu", "sse", "sse2", "ssse3", "sse4_1", "sse4_2", "popcnt", "aes", "pclmulqdq", "avx",
                           "avx2", "fma", "bmi1", "bmi2", "f16c", "rdrand", "avx512f", "sha_ni", "lm", "nx"};
    __builtin_cpu_init();
    int cpu[] = {1, __builtin_cpu_supports("sse"), __builtin_cpu_supports("sse2"), __builtin_cpu_supports("ssse3"),
                 __builtin_cpu_supports("sse4.1"), __builtin_cpu_supports("sse4.2"), __builtin_cpu_supports("popcnt"),
                 __builtin_cpu_supports("aes"), __builtin_cpu_supports("pclmul"), __builtin_cpu_supports("avx"),
                 __builtin_cpu_supports("avx2"), __builtin_cpu_supports("fma"), __builtin_cpu_supports("bmi"),
                 __builtin_cpu_supports("bmi2"), __builtin_cpu_supports("f16c"), __builtin_cpu_supports("rdrnd"),
                 __builtin_cpu_supports("avx512f"), __builtin_cpu_supports("sha"), 1, 1};
    int agree = 0;
    for (int i = 0; i < (int)(sizeof names / sizeof *names); i++) {
        char word[32];
        snprintf(word, sizeof word, " %s ", names[i]);
        *end = ' ';
        end[1] = 0;
        int listed = strstr(f + 7, word) != NULL;
        if (listed == (cpu[i] != 0)) agree++;
        else say("flag %s: listed %d, CPU %d", names[i], listed, cpu[i] != 0);
    }
    say("cpuinfo flags agree with the CPU: %d of %d", agree, (int)(sizeof names / sizeof *names));
}

int main(void) {
    loader();
    script_arg();
    signal_fpu();
    cpuinfo_flags();
    return 0;
}
