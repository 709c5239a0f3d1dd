// /proc as gVisor's proc program (session 19, compat28) checks it, natively
// and in Moat: /proc/PID/mem (reads and writes of a process's memory, EIO
// where nothing is mapped, a partial read at a mapping's end, nothing once
// the process is gone, only SEEK_SET and SEEK_CUR), /proc/PID/io's counts,
// a reaped process's directory and files answering ESRCH, /proc/TID of a
// thread, task/TID/children, comm written through task/TID, /proc/stat's
// lines, a resident set that follows the pages touched, /proc/mounts as a
// symlink, ns/net and ns/user, and /proc/cpuinfo opened for writing by root.
#include "t.h"
#include <pthread.h>
#include <signal.h>

static char secret[] = "hello-world";

/* The file's text (NUL-terminated) in buf; its length. */
static ssize_t slurp(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY);
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    return n;
}

static void proc_mem_self(void) {
    int fd = open("/proc/self/mem", O_RDWR);
    T(fd >= 0);
    char out[sizeof secret] = {0};
    say("pread secret: %ld %s", (long)pread(fd, out, sizeof out, (off_t)(uintptr_t)secret), out);
    char in[] = "HELLO-WORLD";
    say("pwrite: %ld now %s", (long)pwrite(fd, in, sizeof in, (off_t)(uintptr_t)secret), secret);
    T(lseek(fd, 0, SEEK_END) == -1 && errno == EINVAL);
    T(lseek(fd, (off_t)(uintptr_t)secret, SEEK_SET) == (off_t)(uintptr_t)secret);
    T(lseek(fd, 6, SEEK_CUR) == (off_t)(uintptr_t)secret + 6);
    memset(out, 0, sizeof out);
    say("read after seek: %ld %s", (long)read(fd, out, 5), out);
    char *m = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(m, 'x', 4096);
    munmap(m + 4096, 4096);
    char buf[4096];
    say("partial read at a mapping's end: %ld", (long)pread(fd, buf, sizeof buf, (off_t)(uintptr_t)(m + 4095)));
    T(pread(fd, buf, 1, (off_t)(uintptr_t)(m + 4096)));
    munmap(m, 4096);
    close(fd);
}

static int sync_pipe[2], go_pipe[2];

static void proc_of_child(void) {
    pipe(sync_pipe); pipe(go_pipe);
    pid_t c = fork();
    if (c == 0) {
        int null = open("/dev/null", O_WRONLY);
        for (int i = 0; i < 3; i++) write(null, "12345", 5);
        write(sync_pipe[1], "r", 1);
        char b;
        read(go_pipe[0], &b, 1);
        _exit(0);
    }
    char b;
    read(sync_pipe[0], &b, 1);
    char path[64], text[512];
    snprintf(path, sizeof path, "/proc/%d/io", c);
    slurp(path, text, sizeof text);
    // The child wrote 3 times 5 bytes and once 1 byte, and read nothing yet.
    char *w = strstr(text, "wchar:"), *cw = strstr(text, "syscw:"), *cr = strstr(text, "syscr:");
    say("io: wchar %ld syscw %ld syscr %ld", w ? atol(w + 6) : -1, cw ? atol(cw + 6) : -1, cr ? atol(cr + 6) : -1);

    snprintf(path, sizeof path, "/proc/%d/mem", c);
    int mem = open(path, O_RDONLY);
    T(mem >= 0);
    char out[sizeof secret] = {0};
    say("child's secret: %ld %s", (long)pread(mem, out, sizeof out, (off_t)(uintptr_t)secret), out);
    snprintf(path, sizeof path, "/proc/%d", c);
    int dir = open(path, O_RDONLY | O_DIRECTORY);
    T(dir >= 0);
    int stat = openat(dir, "stat", O_RDONLY);
    T(stat >= 0);
    int task = openat(dir, "task", O_RDONLY | O_DIRECTORY);
    T(task >= 0);
    write(go_pipe[1], "g", 1);
    int st;
    waitpid(c, &st, 0);
    say("mem after exit: %ld", (long)pread(mem, out, sizeof out, (off_t)(uintptr_t)secret));
    char l[64];
    T(readlinkat(dir, "exe", l, sizeof l));
    T(openat(dir, "status", O_RDONLY) >= 0);
    T(read(stat, text, sizeof text));
    T(syscall(SYS_getdents64, task, text, sizeof text));
    close(mem); close(dir); close(stat); close(task);
}

static pid_t thread_tid;
static int thread_go;
static void *thread_main(void *a) {
    (void)a;
    thread_tid = gettid();
    while (!__atomic_load_n(&thread_go, __ATOMIC_ACQUIRE)) usleep(1000);
    return NULL;
}

static void task_views(void) {
    pthread_t th;
    pthread_create(&th, NULL, thread_main, NULL);
    while (!__atomic_load_n(&thread_tid, __ATOMIC_ACQUIRE)) usleep(1000);
    char path[96], text[4096];
    snprintf(path, sizeof path, "/proc/%d/status", thread_tid);
    T(slurp(path, text, sizeof text) > 0);
    char *p = strstr(text, "\nPid:\t");
    say("/proc/TID/status shows the thread: %d", p && atoi(p + 6) == thread_tid);
    snprintf(path, sizeof path, "/proc/%d/task/%d", thread_tid, thread_tid);
    struct stat sb;
    T(stat(path, &sb));
    snprintf(path, sizeof path, "/proc/self/task/%d/comm", thread_tid);
    int fd = open(path, O_WRONLY);
    T(fd >= 0);
    T(write(fd, "renamed-thread-with-a-long-name\n", 32));
    close(fd);
    slurp(path, text, 64);
    say("comm: %s", text);
    struct stat before;
    stat("/proc/self/task", &before);
    __atomic_store_n(&thread_go, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    struct stat after;
    stat("/proc/self/task", &after);
    say("task nlink drops by one: %d", (int)(before.st_nlink - after.st_nlink));

    pid_t c = fork();
    if (c == 0) { pause(); _exit(0); }
    snprintf(path, sizeof path, "/proc/self/task/%d/children", getpid());
    T(slurp(path, text, sizeof text) >= 0);
    say("children lists the child: %d", atoi(text) == c);
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
}

static long rss_kb(void) {
    char text[4096];
    slurp("/proc/self/status", text, sizeof text);
    char *p = strstr(text, "VmRSS:");
    return p ? atol(p + 6) : -1;
}

static void misc(void) {
    char text[8192];
    slurp("/proc/stat", text, sizeof text);
    say("/proc/stat has cpu, softirq, procs_running: %d %d %d", strncmp(text, "cpu ", 4) == 0,
        strstr(text, "\nsoftirq ") != NULL, strstr(text, "\nprocs_running ") != NULL);
    long before = rss_kb();
    size_t len = 64 << 20;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (size_t i = 0; i < len; i += 4096) m[i] = 1;
    long after = rss_kb();
    say("VmRSS grew by about 64 MiB: %d", after - before > 56 * 1024 && after - before < 72 * 1024);
    munmap(m, len);
    char l[64] = {0};
    T(readlink("/proc/mounts", l, sizeof l - 1));
    say("/proc/mounts -> %s", l);
    memset(l, 0, sizeof l);
    say("ns/net and ns/user: %d %d", readlink("/proc/self/ns/net", l, sizeof l) > 0 && strncmp(l, "net:[", 5) == 0,
        readlink("/proc/self/ns/user", l, sizeof l) > 0 && strncmp(l, "user:[", 6) == 0);
    ssize_t n = slurp("/proc/sys/vm/mmap_min_addr", text, 32);
    say("mmap_min_addr is a number: %d", n > 1 && text[0] >= '0' && text[0] <= '9');
    int fd = open("/proc/cpuinfo", O_WRONLY);
    T(fd >= 0);
    T(write(fd, "x", 1));
    close(fd);
}

int main(void) {
    proc_mem_self();
    proc_of_child();
    task_views();
    misc();
    return 0;
}
