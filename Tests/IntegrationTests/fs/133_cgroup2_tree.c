/* cgroup v2 (session 18, issue 15): the cgroup2 file system's tree
 * semantics, in a cgroup namespace rooted at a scratch cgroup. The program
 * mounts cgroup2 (natively the host's hierarchy, in Moat the sandbox's),
 * makes a scratch cgroup under its own, and a child moves into it and
 * unshares a cgroup namespace (a new /proc/self/ns/cgroup): its
 * /proc/self/cgroup becomes "0::/", others' paths and other mounts' roots
 * in mountinfo are relative to it ("/.."), and a cgroup2 mount made there
 * is rooted at the scratch cgroup. In it: mkdir and rmdir (EEXIST, EBUSY while
 * a child or a process is in it, the newline in a name EINVAL), what
 * kernfs refuses (create EACCES, rename/unlink/symlink EPERM, opening a
 * file for an access it has no handler for EACCES), cgroup.max.depth and
 * cgroup.max.descendants (EAGAIN, ERANGE), moving processes by writing to
 * cgroup.procs (0 for the writer; ESRCH, EINVAL), cgroup.threads across
 * domains (EOPNOTSUPP), cgroup.events, cgroup.stat, cgroup.kill, and
 * clone3's CLONE_INTO_CGROUP (EINVAL for a struct without the field, EBADF
 * for a descriptor of no cgroup). Controller files are left out: which
 * controllers cgroup2 has natively depends on the host. The scratch cgroup
 * is removed at the end, natively too (nothing is left on the host). */
#include "t.h"
#include "cgroup.h"
#include <sys/vfs.h>

#define TOP "/tmp/cg133"   /* the cgroup2 file system as the program finds it */
#define NS "/tmp/cg133ns"  /* mounted inside the cgroup namespace */
#define CLONE_INTO_CGROUP_ 0x200000000ULL

static char scratch[512]; /* TOP + the program's cgroup + /fs133.PID */
static char own[256];     /* the program's cgroup ("/" in a container) */

static void link_of(const char *path, char *out, size_t size) {
    memset(out, 0, size);
    if (readlink(path, out, size - 1) < 0) strcpy(out, "none");
}

static void show_cgroup(const char *label, pid_t p) {
    char c[256];
    cgroup_of(p, c, sizeof c);
    say("%s: 0::%s", label, c);
}

static void first_line(const char *label, const char *path) {
    char buf[512];
    if (rd(path, buf, sizeof buf) < 0) { say("%s: -1 %s", label, ename(errno)); return; }
    buf[strcspn(buf, "\n")] = 0;
    say("%s: %s", label, buf);
}

static void show_file(const char *label, const char *path) {
    char buf[512];
    if (rd(path, buf, sizeof buf) < 0) { say("%s: -1 %s", label, ename(errno)); return; }
    for (char *c = buf; *c; c++) if (*c == '\n') *c = '|';
    say("%s: %s", label, buf);
}

/* Whether cgroup.procs of `path` lists exactly the given pids (0: none),
 * in any order. */
static void procs_are(const char *label, const char *path, pid_t a, pid_t b) {
    char buf[512];
    int lines = 0, found = 0;
    rd(path, buf, sizeof buf);
    for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n")) {
        lines++;
        if ((a && atoi(l) == a) || (b && atoi(l) == b)) found++;
    }
    say("%s: %s", label, lines == found && found == (a != 0) + (b != 0) ? "as expected" : "other");
}

/* open, then one read or write of it: the results. */
static void use(const char *label, const char *path, int flags) {
    char b[64] = "1";
    int fd = open(path, flags);
    if (fd < 0) { say("%s: open -1 %s", label, ename(errno)); return; }
    long r = flags == O_RDONLY ? read(fd, b, sizeof b) : write(fd, b, 1);
    say("%s: open ok, %s %ld %s", label, flags == O_RDONLY ? "read" : "write", r, r < 0 ? ename(errno) : "");
    close(fd);
}

/* The mountinfo fields of NS (root, type, source), and whether TOP's
 * root, seen from the namespace, climbs exactly to the hierarchy's root
 * ("/.." once per level of the scratch cgroup). */
static void show_mountinfo(void) {
    char buf[16384], want[256] = "";
    for (const char *c = scratch + strlen(TOP); *c; c++)
        if (*c == '/') strcat(want, "/..");
    rd("/proc/self/mountinfo", buf, sizeof buf);
    for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n")) {
        char root[256], point[256], type[64], source[64];
        const char *dash = strstr(l, " - ");
        if (!dash || sscanf(l, "%*d %*d %*s %255s %255s", root, point) != 2) continue;
        if (!strcmp(point, TOP)) say("mountinfo root of " TOP " is the hierarchy's: %d", !strcmp(root, want));
        if (strcmp(point, NS) || sscanf(dash + 3, "%63s %63s", type, source) != 2) continue;
        say("mountinfo of " NS ": root %s, type %s, source %s", root, type, source);
    }
}

static void modes(void) {
    static const char *files[] = { "cgroup.controllers", "cgroup.events", "cgroup.kill", "cgroup.max.depth",
                                   "cgroup.max.descendants", "cgroup.procs", "cgroup.stat", "cgroup.subtree_control",
                                   "cgroup.threads", "cgroup.type", "cpu.stat" };
    for (unsigned i = 0; i < sizeof files / sizeof *files; i++) {
        char p[256];
        struct stat st;
        snprintf(p, sizeof p, NS "/a/%s", files[i]);
        if (stat(p, &st)) say("%s: -1 %s", files[i], ename(errno));
        else say("%s: mode %04o, regular %d", files[i], st.st_mode & 07777, S_ISREG(st.st_mode));
    }
}

/* A child that waits until `fd` (a pipe's read end) reads EOF. */
static pid_t sleeper(int fds[2]) {
    pipe(fds);
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        char c;
        close(fds[1]);
        read(fds[0], &c, 1);
        _exit(0);
    }
    close(fds[0]);
    return p;
}

static long clone3_into(int fd, size_t size) {
    unsigned long long a[11] = { CLONE_INTO_CGROUP_, 0, 0, 0, SIGCHLD, 0, 0, 0, 0, 0, (unsigned long long)fd };
    fflush(stdout);
    return syscall(SYS_clone3, a, size);
}

/* clone3(CLONE_INTO_CGROUP): the child tells (through a pipe, so that
 * the lines come in one order) where it started. */
static void into(const char *label, int fd, size_t size) {
    int io[2];
    char c[256] = "";
    pipe(io);
    long p = clone3_into(fd, size);
    if (p == 0) {
        cgroup_of(getpid(), c, sizeof c);
        write(io[1], c, strlen(c));
        _exit(0);
    }
    close(io[1]);
    if (p < 0) { say("%s: clone3 = -1 %s", label, ename(errno)); close(io[0]); return; }
    waitpid(p, NULL, 0);
    if (read(io[0], c, sizeof c - 1) < 0) c[0] = 0;
    close(io[0]);
    say("%s: clone3 = child, which started in 0::%s", label, c);
}

static void in_namespace(void) {
    char p[600];
    snprintf(p, sizeof p, "%s/cgroup.procs", scratch);
    char before[64], after[64];
    T(wr(p, "0"));
    link_of("/proc/self/ns/cgroup", before, sizeof before);
    T(unshare(CLONE_NEWCGROUP));
    link_of("/proc/self/ns/cgroup", after, sizeof after);
    say("ns/cgroup link: cgroup:[ %d, changed %d", !strncmp(after, "cgroup:[", 8), strcmp(before, after) != 0);
    show_cgroup("own cgroup in the namespace", getpid());
    show_cgroup("parent's cgroup from the namespace", getppid());
    T(mkdir(NS, 0755));
    T(mount("none", NS, "cgroup2", 0, NULL));
    struct statfs sf;
    T(statfs(NS, &sf));
    say("f_type is CGROUP2_SUPER_MAGIC: %d", sf.f_type == 0x63677270);
    show_mountinfo();
    procs_are("root cgroup.procs", NS "/cgroup.procs", getpid(), 0);
    show_file("root cgroup.type", NS "/cgroup.type");

    /* mkdir and rmdir. */
    T(mkdir(NS "/a", 0755));
    T(mkdir(NS "/a", 0755));
    T(mkdir(NS "/a/b", 0700));
    T(mkdir(NS "/bad\nname", 0755));
    T(mkdir(NS "/a/cgroup.procs/x", 0755));
    stat_path(NS "/a");
    stat_path(NS "/a/b");
    first_line("root cgroup.stat", NS "/cgroup.stat");
    first_line("a cgroup.stat", NS "/a/cgroup.stat");
    show_file("a cgroup.type", NS "/a/cgroup.type");
    show_file("a cgroup.events", NS "/a/cgroup.events");
    show_file("a cgroup.max.depth", NS "/a/cgroup.max.depth");
    modes();
    T(open(NS "/a/newfile", O_CREAT | O_WRONLY, 0644));
    T(rename(NS "/a/b", NS "/a/c"));
    T(unlink(NS "/a/cgroup.procs"));
    T(rmdir(NS "/a/cgroup.procs"));
    T(symlink("x", NS "/a/link"));
    T(link(NS "/a/cgroup.procs", NS "/a/hard"));
    T(mknod(NS "/a/fifo", S_IFIFO | 0644, 0));
    use("cgroup.controllers for writing", NS "/a/cgroup.controllers", O_WRONLY);
    use("cgroup.kill for reading", NS "/a/cgroup.kill", O_RDONLY);
    use("cgroup.events for writing", NS "/a/cgroup.events", O_WRONLY);
    T(rmdir(NS "/a"));

    /* Moving processes. */
    int go[2];
    pid_t g = sleeper(go);
    T(wr_pid(NS "/a/cgroup.procs", g));
    procs_are("a cgroup.procs", NS "/a/cgroup.procs", g, 0);
    procs_are("root cgroup.procs", NS "/cgroup.procs", getpid(), 0);
    show_cgroup("moved child", g);
    show_file("a cgroup.events", NS "/a/cgroup.events");
    show_file("root cgroup.events", NS "/cgroup.events");
    T(wr_pid(NS "/a/cgroup.threads", g));
    T(wr_pid(NS "/a/b/cgroup.threads", g));
    T(wr(NS "/a/cgroup.procs", "abc"));
    T(wr(NS "/a/cgroup.procs", "-1"));
    T(wr(NS "/a/cgroup.procs", "999999999"));
    T(rmdir(NS "/a"));
    T(rmdir(NS "/a/b"));
    T(rmdir(NS "/a"));
    T(wr(NS "/a/b/cgroup.procs", "0"));
    T(wr(NS "/a/cgroup.procs", "0"));
    show_cgroup("self after moving", getpid());
    procs_are("a cgroup.procs", NS "/a/cgroup.procs", getpid(), g);
    T(wr(NS "/cgroup.procs", "0"));
    show_cgroup("self moved back", getpid());
    close(go[1]);
    waitpid(g, NULL, 0);
    procs_are("a cgroup.procs once it exited", NS "/a/cgroup.procs", 0, 0);
    show_file("a cgroup.events", NS "/a/cgroup.events");
    T(rmdir(NS "/a"));
    stat_path(NS "/a");
    T(rmdir(NS "/a"));
    first_line("root cgroup.stat", NS "/cgroup.stat");

    /* Limits of the tree. */
    T(wr(NS "/cgroup.max.depth", "1"));
    show_file("cgroup.max.depth", NS "/cgroup.max.depth");
    T(mkdir(NS "/d", 0755));
    T(mkdir(NS "/d/e", 0755));
    T(wr(NS "/cgroup.max.depth", "-1"));
    T(wr(NS "/cgroup.max.depth", "two"));
    T(wr(NS "/cgroup.max.depth", "max"));
    T(mkdir(NS "/d/e", 0755));
    T(wr(NS "/cgroup.max.descendants", "2"));
    show_file("cgroup.max.descendants", NS "/cgroup.max.descendants");
    T(mkdir(NS "/f", 0755));
    T(rmdir(NS "/d/e"));
    T(mkdir(NS "/f", 0755));
    T(wr(NS "/cgroup.max.descendants", "max"));
    show_file("cgroup.max.descendants", NS "/cgroup.max.descendants");
    T(rmdir(NS "/f"));
    T(rmdir(NS "/d"));

    /* cgroup.kill. */
    T(mkdir(NS "/k", 0755));
    pid_t v = sleeper(go);
    T(wr_pid(NS "/k/cgroup.procs", v));
    T(wr(NS "/k/cgroup.kill", "2"));
    T(wr(NS "/k/cgroup.kill", "x"));
    T(wr(NS "/k/cgroup.kill", "1"));
    int st = 0;
    waitpid(v, &st, 0);
    say("killed: signaled %d, signal %d", WIFSIGNALED(st), WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    close(go[1]);
    T(rmdir(NS "/k"));

    /* clone3(CLONE_INTO_CGROUP). */
    T(mkdir(NS "/c", 0755));
    int dir = open(NS "/c", O_RDONLY | O_DIRECTORY);
    int opath = open(NS "/c", O_PATH);
    int file = open(NS "/c/cgroup.procs", O_RDONLY);
    int tmp = open("/tmp", O_RDONLY | O_DIRECTORY);
    into("directory fd", dir, 88);
    into("O_PATH fd", opath, 88);
    into("struct of 64 bytes", dir, 64);
    into("cgroup.procs fd", file, 88);
    into("fd of /tmp", tmp, 88);
    into("closed fd", 1000, 88);
    procs_are("c cgroup.procs once they exited", NS "/c/cgroup.procs", 0, 0);
    T(rmdir(NS "/c"));
    T(openat(dir, "cgroup.procs", O_RDONLY));
    close(dir); close(opath); close(file); close(tmp);

    T(umount(NS));
    T(rmdir(NS));
}

int main(void) {
    T(mkdir(TOP, 0755));
    T(mount("none", TOP, "cgroup2", 0, NULL));
    cgroup_of(getpid(), own, sizeof own);
    say("own cgroup line starts with 0::/ : %d", own[0] == '/');
    snprintf(scratch, sizeof scratch, TOP "%s/fs133.%d", strcmp(own, "/") ? own : "", getpid());
    T(mkdir(scratch, 0755));

    fflush(stdout);
    pid_t c = fork();
    if (c == 0) { in_namespace(); fflush(stdout); _exit(0); }
    waitpid(c, NULL, 0);
    char path[600];
    snprintf(path, sizeof path, "%s/cgroup.procs", scratch);
    procs_are("scratch cgroup.procs once the child exited", path, 0, 0);
    /* Whatever a failed run left behind. */
    const char *left[] = { "/a/b", "/a", "/d/e", "/d", "/f", "/k", "/c" };
    for (unsigned i = 0; i < sizeof left / sizeof *left; i++) {
        snprintf(path, sizeof path, "%s%s", scratch, left[i]);
        rmdir(path);
    }
    T(rmdir(scratch));
    T(umount(TOP));
    T(rmdir(TOP));
    return 0;
}
