/* Edges that gVisor's syscall suite (Tests/Conformance/gvisor-syscalls.sh)
 * found where Moat differed from Linux:
 * - getdents64 into a buffer that is shorter than its count claims (an
 *   unprotected page after 256 bytes): the records that fit come back, the
 *   next call goes on from there, nothing is lost; lseek(SEEK_END) on a
 *   /proc directory succeeds (its size is 0: getdents starts over);
 * - open(O_TRUNC) of a directory is EISDIR even read-only; a file that
 *   open(O_CREAT) makes opens for writing whatever its mode says (a caller
 *   without CAP_DAC_OVERRIDE);
 * - brk beyond RLIMIT_DATA and mmap beyond RLIMIT_AS are ENOMEM; mprotect
 *   with a length that rounds past the top is ENOMEM; MAP_32BIT maps in the
 *   first 4 GB; /proc/self/statm has its seven fields;
 * - a pipe's reader blocked in read() while another thread closes its
 *   descriptor still holds the read end: a write succeeds and the read gets
 *   the bytes (Moat used to fail the write with EPIPE and leave the reader
 *   waiting for ever). */
#include "t.h"
#include <pthread.h>
#include <sys/resource.h>

static void getdents_short_buffer(void) {
    T(mkdir("many", 0755));
    char p[64];
    for (int i = 0; i < 100; i++) { snprintf(p, sizeof p, "many/file-with-a-longish-name-%03d", i); put(p, ""); }
    char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    T(mprotect(m + 4096, 4096, PROT_NONE));
    char *buf = m + 4096 - 256;
    int fd = open("many", O_RDONLY | O_DIRECTORY);
    long n, total = 0, calls = 0, first = -1;
    while ((n = syscall(SYS_getdents64, fd, buf, 4096)) > 0) {
        for (long off = 0; off < n;) { struct dirent64 *d = (void *)(buf + off); total++; off += d->d_reclen; }
        if (first < 0) first = n <= 256;
        calls++;
    }
    say("getdents64 into 256 usable bytes: last %ld, entries %ld, the first call within the 256: %ld, more than one call: %d",
        n, total, first, calls > 1);
    close(fd);
    T(syscall(SYS_getdents64, -1, buf, 4096));
    fd = open("many", O_RDONLY | O_DIRECTORY);
    T(syscall(SYS_getdents64, fd, m + 8192 - 8, 4096));  /* not even one record fits: EFAULT */
    close(fd);
    munmap(m, 8192);
    fd = open("/proc/self", O_RDONLY | O_DIRECTORY);
    char b[512];
    say("lseek(/proc/self, 0, SEEK_END) ok: %d", lseek(fd, 0, SEEK_END) >= 0);
    say("getdents64 there returns records: %d", syscall(SYS_getdents64, fd, b, sizeof b) > 0);
    close(fd);
}

static void create_unwritable(void) {
    if (setgid(65534) || setuid(65534)) { say("setuid nobody failed"); return; }
    int fd = T(open("open-dir/new", O_CREAT | O_TRUNC | O_WRONLY, 055));
    if (fd >= 0) { T(write(fd, "x", 1)); close(fd); }
    T(open("open-dir/new", O_WRONLY));  /* the second open checks the mode: EACCES */
}

static void open_edges(void) {
    T(mkdir("open-dir", 0777));
    T(chmod("open-dir", 0777));
    T(open("open-dir", O_RDONLY | O_TRUNC));
    T(open("open-dir", O_RDONLY | O_DIRECTORY | O_TRUNC));
    int fd = T(open("open-dir", O_PATH | O_TRUNC));
    if (fd >= 0) close(fd);
    in_child("create_unwritable", create_unwritable);
    struct stat st;
    if (stat("open-dir/new", &st) == 0) show_stat("open-dir/new", &st);
}

static void limits(void) {
    struct rlimit r = {0, RLIM_INFINITY};
    void *cur = sbrk(0);
    T(setrlimit(RLIMIT_DATA, &r));
    say("brk +8 KiB with RLIMIT_DATA 0: %s", brk((char *)cur + 8192) == 0 ? "grew" : ename(errno));
    r.rlim_cur = RLIM_INFINITY;
    T(setrlimit(RLIMIT_DATA, &r));
    char *m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    T(mprotect(m, (size_t)-1, PROT_READ));
    T(mprotect(m, 0, PROT_READ));
    munmap(m, 4096);
    m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    say("MAP_32BIT below 4 GB: %d", m != MAP_FAILED && (uintptr_t)m + 4096 <= (1ULL << 32));
    if (m != MAP_FAILED) munmap(m, 4096);
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long v[7] = {0};
    int got = f ? fscanf(f, "%lu %lu %lu %lu %lu %lu %lu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]) : -1;
    if (f) fclose(f);
    say("/proc/self/statm: %d fields, size > 0: %d", got, v[0] > 0);
    unsigned long vss = v[0] * 4096;
    r.rlim_cur = vss + (20 << 20);
    T(setrlimit(RLIMIT_AS, &r));
    say("mmap 200 MiB over RLIMIT_AS: %s", mmap(NULL, 200 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED ? ename(errno) : "mapped");
    r.rlim_cur = vss + (240 << 20);
    T(setrlimit(RLIMIT_AS, &r));
    say("mmap 200 MiB under RLIMIT_AS: %s", mmap(NULL, 200 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED ? ename(errno) : "mapped");
}

static int pfd[2];
static volatile pid_t reader_tid;
static void *reader(void *arg) {
    int v = 0;
    reader_tid = gettid();
    long n = read(pfd[0], &v, sizeof v);
    *(long *)arg = n == sizeof v && v == 42;
    return NULL;
}

static void pipe_close_under_read(void) {
    T(pipe(pfd));
    long ok = 0;
    pthread_t th;
    pthread_create(&th, NULL, reader, &ok);
    /* Until the reader sleeps (in read: it does nothing else). */
    while (!reader_tid) sched_yield();
    char path[64], st[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)reader_tid);
    for (;;) {
        int fd = open(path, O_RDONLY);
        long n = fd >= 0 ? read(fd, st, sizeof st - 1) : -1;
        if (fd >= 0) close(fd);
        if (n <= 0) { say("no %s", path); break; }
        st[n] = 0;
        char *e = strrchr(st, ')');
        if (e && e[2] == 'S') break;
        usleep(1000);
    }
    T(close(pfd[0]));
    int v = 42;
    T(write(pfd[1], &v, sizeof v));
    pthread_join(th, NULL);
    say("reader got the bytes: %ld", ok);
    close(pfd[1]);
}

int main(void) {
    getdents_short_buffer();
    open_edges();
    in_child("limits", limits);
    pipe_close_under_read();
    return 0;
}
