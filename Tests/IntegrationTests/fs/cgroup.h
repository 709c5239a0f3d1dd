/* Helpers of the cgroup2 programs (fs/127, fs/133): writes of a value or
 * a pid to an interface file, a whole small file, and a process's cgroup
 * v2 path from /proc/PID/cgroup. Include after t.h. */
/* One write of `s` to an existing file: 0 or -1 with errno. */
static int wr(const char *path, const char *s) {
    int fd = open(path, O_WRONLY);
    if (fd < 0) return -1;
    int r = write(fd, s, strlen(s)) < 0 ? -1 : 0;
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

static int wr_pid(const char *path, pid_t p) {
    char b[32];
    snprintf(b, sizeof b, "%d", p);
    return wr(path, b);
}

/* A file's contents (NUL-terminated), or "" and -1. */
static ssize_t rd(const char *path, char *buf, size_t size) {
    buf[0] = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n >= 0) buf[n] = 0;
    return n;
}

/* /proc/PID/cgroup's v2 line (without "0::" and the newline). */
static void cgroup_of(pid_t p, char *out, size_t size) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/cgroup", p);
    snprintf(out, size, "?");
    if (rd(path, buf, sizeof buf) < 0) return;
    for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
        if (!strncmp(l, "0::", 3)) { snprintf(out, size, "%s", l + 3); return; }
}
