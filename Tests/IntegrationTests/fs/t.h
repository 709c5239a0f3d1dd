/* Shared helpers for the differential file-system programs.
 *
 * Each program prints one line per checked call: the call's text, and its
 * result or its errno *name*. The same static binary runs natively (chroot)
 * and inside Moat; the two outputs must be identical, so print only what the
 * kernel defines (results, errnos, modes, sizes, link counts, contents), never
 * inode numbers, device numbers, timestamps of "now" or addresses. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *ename(int e) {
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

/* T(call): print "call = result" or "call = -1 ENAME". Returns the result. */
#define T(expr) ({ long t_r_ = (long)(expr); t_report(#expr, t_r_, errno); })
static long t_report(const char *what, long r, int e) {
    if (r == -1) printf("%s = -1 %s\n", what, ename(e));
    else printf("%s = %ld\n", what, r);
    fflush(stdout);
    errno = 0;
    return r;
}

/* Q(call): like T but silent on success; prints only a failure. */
#define Q(expr) ({ long t_r_ = (long)(expr); t_quiet(#expr, t_r_, errno); })
static long t_quiet(const char *what, long r, int e) {
    if (r == -1) { printf("%s = -1 %s\n", what, ename(e)); fflush(stdout); }
    errno = 0;
    return r;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#include <stdarg.h>
static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* `ms` milliseconds from now on `clock`: an absolute deadline. */
static inline struct timespec t_deadline(clockid_t clock, long ms) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    ts.tv_nsec += ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    return ts;
}

/* The comparable part of a stat. */
static void show_stat(const char *label, const struct stat *st) {
    say("%s: type=%o perm=%04o nlink=%lu uid=%u gid=%u size=%lld", label,
        (unsigned)(st->st_mode & S_IFMT) >> 12, (unsigned)(st->st_mode & 07777),
        (unsigned long)st->st_nlink, st->st_uid, st->st_gid,
        S_ISDIR(st->st_mode) ? -1LL : (long long)st->st_size);
}

static void stat_path(const char *p) {
    struct stat st;
    if (lstat(p, &st) != 0) { say("lstat(%s) = -1 %s", p, ename(errno)); return; }
    show_stat(p, &st);
}

/* Writes a whole string to a new file (mode 0644). */
static void put(const char *p, const char *s) {
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { say("put %s: %s", p, ename(errno)); return; }
    if (write(fd, s, strlen(s)) != (ssize_t)strlen(s)) say("put %s: short write", p);
    close(fd);
}

/* Prints a file's contents (up to 4 KiB), escaped. */
static void cat(const char *p) {
    char buf[4096];
    int fd = open(p, O_RDONLY);
    if (fd < 0) { say("cat %s: -1 %s", p, ename(errno)); return; }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) { say("cat %s: read -1 %s", p, ename(errno)); return; }
    buf[n] = 0;
    printf("cat %s: \"", p);
    for (ssize_t i = 0; i < n; i++) {
        unsigned char c = buf[i];
        if (c == '\n') printf("\\n"); else if (c < 32 || c > 126) printf("\\x%02x", c); else putchar(c);
    }
    printf("\" (%zd bytes)\n", n);
    fflush(stdout);
}

/* Lists a directory's names, sorted, excluding . and .. */
static int cmpstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static void ls(const char *p) {
    DIR *d = opendir(p);
    if (!d) { say("ls %s: -1 %s", p, ename(errno)); return; }
    char *names[512];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 512) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmpstr);
    printf("ls %s:", p);
    for (int i = 0; i < n; i++) { printf(" %s", names[i]); free(names[i]); }
    printf("\n");
    fflush(stdout);
}

/* Runs fn in a child and waits; prints how the child ended if not exit 0. */
static void in_child(const char *what, void (*fn)(void)) {
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) { fn(); fflush(stdout); _exit(0); }
    int st;
    waitpid(p, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) say("%s: child status 0x%x", what, st);
}
