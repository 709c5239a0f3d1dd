/* Landlock: a process restricts itself and shows what is still allowed and
 * what is refused. The calls' argument errors (EINVAL, E2BIG, ENOMSG, EBADF,
 * EBADFD, EPERM), the ruleset descriptor's name, then in forked children:
 * reads and writes, directory listing, making and removing files beneath
 * the rules, reparenting (EXDEV without REFER), truncation, execution, TCP
 * bind and connect ports, the signal and abstract-socket scopes, ptrace
 * access to processes outside the domain, device ioctls, mounts,
 * inheritance by fork and execve, and stacking up to 16 layers. The ABI version itself differs between kernels: only ">= 6" is
 * printed. */
#include "t.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>

#define FS_EXECUTE (1ULL << 0)
#define FS_WRITE_FILE (1ULL << 1)
#define FS_READ_FILE (1ULL << 2)
#define FS_READ_DIR (1ULL << 3)
#define FS_REMOVE_DIR (1ULL << 4)
#define FS_REMOVE_FILE (1ULL << 5)
#define FS_MAKE_CHAR (1ULL << 6)
#define FS_MAKE_DIR (1ULL << 7)
#define FS_MAKE_REG (1ULL << 8)
#define FS_MAKE_SOCK (1ULL << 9)
#define FS_MAKE_FIFO (1ULL << 10)
#define FS_MAKE_BLOCK (1ULL << 11)
#define FS_MAKE_SYM (1ULL << 12)
#define FS_REFER (1ULL << 13)
#define FS_TRUNCATE (1ULL << 14)
#define FS_IOCTL_DEV (1ULL << 15)
#define FS_ABI1 ((1ULL << 13) - 1)
#define FS_ALL ((1ULL << 16) - 1)
#define NET_BIND (1ULL << 0)
#define NET_CONNECT (1ULL << 1)
#define SCOPE_UNIX (1ULL << 0)
#define SCOPE_SIGNAL (1ULL << 1)

struct attr { uint64_t fs, net, scoped; };
struct beneath { uint64_t allowed; int32_t parent_fd; } __attribute__((packed));
struct port { uint64_t allowed, port; };

static long create(const struct attr *a, size_t size, unsigned flags) {
    return syscall(SYS_landlock_create_ruleset, a, size, flags);
}
static long add_path(int rs, const char *path, uint64_t allowed) {
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) { say("open %s: %s", path, ename(errno)); return -1; }
    struct beneath b = { allowed, fd };
    long r = syscall(SYS_landlock_add_rule, rs, 1, &b, 0);
    if (r) say("add_rule %s: %s", path, ename(errno));
    close(fd);
    return r;
}
static long add_port(int rs, uint64_t port, uint64_t allowed) {
    struct port p = { allowed, port };
    return syscall(SYS_landlock_add_rule, rs, 2, &p, 0);
}
static long restrict_self(int rs) { return syscall(SYS_landlock_restrict_self, rs, 0); }
static void enforce(int rs) {
    Q(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    Q(restrict_self(rs));
    close(rs);
}
static int wait_child(pid_t p) {
    int st = 0;
    waitpid(p, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void errors(void) {
    struct attr a = { FS_EXECUTE, 0, 0 };
    long v = create(NULL, 0, 1);
    say("version >= 6: %s", v >= 6 ? "yes" : "no");
    T(create(NULL, 0, 4));
    T(create(&a, 0, 1));
    T(create(NULL, sizeof a, 0));
    T(create(&a, 7, 0));
    static char big[8192];
    memcpy(big, &a, sizeof a);
    big[100] = 1;
    T(create((struct attr *)big, 200, 0));
    T(create((struct attr *)big, 4097, 0));
    struct attr bad = { 1ULL << 63, 0, 0 };
    T(create(&bad, sizeof bad, 0));
    struct attr badnet = { 0, 1ULL << 20, 0 };
    T(create(&badnet, sizeof badnet, 0));
    struct attr empty = { 0, 0, 0 };
    T(create(&empty, sizeof empty, 0));
    int rs = create(&a, 8, 0);
    say("ruleset from the first field alone: %s", rs >= 0 ? "ok" : ename(errno));
    char link[64], name[128] = {0};
    snprintf(link, sizeof link, "/proc/self/fd/%d", rs);
    T(readlink(link, name, sizeof name - 1));
    say("ruleset fd: %s", name);
    int fl = fcntl(rs, F_GETFD);
    say("close-on-exec: %d, access mode O_RDWR: %d", fl & FD_CLOEXEC, (fcntl(rs, F_GETFL) & O_ACCMODE) == O_RDWR);
    char c;
    T(read(rs, &c, 1));

    struct beneath b = { FS_EXECUTE, open("/work", O_PATH) };
    T(syscall(SYS_landlock_add_rule, rs, 1, &b, 1));
    T(syscall(SYS_landlock_add_rule, rs, 3, &b, 0));
    T(syscall(SYS_landlock_add_rule, -1, 1, &b, 0));
    T(syscall(SYS_landlock_add_rule, b.parent_fd, 1, &b, 0));
    T(syscall(SYS_landlock_add_rule, rs, 1, NULL, 0));
    struct beneath e = { 0, b.parent_fd };
    T(syscall(SYS_landlock_add_rule, rs, 1, &e, 0));
    struct beneath unhandled = { FS_READ_FILE, b.parent_fd };
    T(syscall(SYS_landlock_add_rule, rs, 1, &unhandled, 0));
    struct beneath badfd = { FS_EXECUTE, -1 };
    T(syscall(SYS_landlock_add_rule, rs, 1, &badfd, 0));
    int pfd[2];
    pipe(pfd);
    struct beneath pipefd = { FS_EXECUTE, pfd[0] };
    T(syscall(SYS_landlock_add_rule, rs, 1, &pipefd, 0));
    struct beneath self = { FS_EXECUTE, rs };
    T(syscall(SYS_landlock_add_rule, rs, 1, &self, 0));
    T(syscall(SYS_landlock_add_rule, rs, 1, &b, 0));
    T(add_port(rs, 80, NET_BIND));
    struct attr fsdir = { FS_READ_DIR | FS_EXECUTE, NET_BIND, 0 };
    int rs2 = create(&fsdir, sizeof fsdir, 0);
    put("/work/plain", "x");
    int file = open("/work/plain", O_PATH);
    struct beneath dironfile = { FS_READ_DIR, file };
    T(syscall(SYS_landlock_add_rule, rs2, 1, &dironfile, 0));
    struct beneath exonfile = { FS_EXECUTE, file };
    T(syscall(SYS_landlock_add_rule, rs2, 1, &exonfile, 0));
    T(add_port(rs2, 65536, NET_BIND));
    T(add_port(rs2, 80, NET_CONNECT));
    T(add_port(rs2, 80, 0));
    T(add_port(rs2, 80, NET_BIND));

    T(syscall(SYS_landlock_restrict_self, rs, 1U << 31));
    T(syscall(SYS_landlock_restrict_self, -1, 0));
    T(syscall(SYS_landlock_restrict_self, file, 0));
    pid_t p = fork();
    if (p == 0) {
        /* Without no_new_privs nor CAP_SYS_ADMIN. */
        Q(setresuid(65534, 65534, 65534));
        T(syscall(SYS_landlock_restrict_self, rs, 0));
        Q(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
        T(syscall(SYS_landlock_restrict_self, rs, 0));
        _exit(0);
    }
    wait_child(p);
    p = fork();
    if (p == 0) {
        int i, n = 0;
        for (i = 0; i < 20; i++) {
            if (syscall(SYS_landlock_restrict_self, rs, 0) != 0) break;
            n++;
        }
        say("stacked %d layers, then %s", n, ename(errno));
        _exit(0);
    }
    wait_child(p);
    close(rs); close(rs2); close(file); close(b.parent_fd); close(pfd[0]); close(pfd[1]);
}

/* /work/fs: ro (read only), rw (everything), rw2 (everything), rf
 * (everything but REFER), wo (write without truncate), x (execute). */
static void setup_tree(void) {
    mkdir("/work/fs", 0755);
    const char *d[] = { "ro", "rw", "rw2", "rf", "wo", "x" };
    for (int i = 0; i < 6; i++) {
        char p[64];
        snprintf(p, sizeof p, "/work/fs/%s", d[i]);
        mkdir(p, 0755);
        snprintf(p, sizeof p, "/work/fs/%s/f", d[i]);
        put(p, "data\n");
        snprintf(p, sizeof p, "/work/fs/%s/sub", d[i]);
        mkdir(p, 0755);
    }
    put("/work/fs/rw/g", "g\n");
    put("/work/fs/rw/h", "h\n");
    put("/work/fs/rf/g", "g\n");
    symlink("/bin/busybox", "/work/fs/x/true");
    symlink("/bin/busybox", "/work/fs/ro/true");
}

static int fs_ruleset(uint64_t handled) {
    struct attr a = { handled, 0, 0 };
    int rs = create(&a, sizeof a, 0);
    uint64_t read = FS_READ_FILE | FS_READ_DIR;
    add_path(rs, "/", read & handled);
    add_path(rs, "/bin", (read | FS_EXECUTE) & handled);
    add_path(rs, "/work/prog", (FS_READ_FILE | FS_EXECUTE) & handled);
    add_path(rs, "/work/fs/ro", read & handled);
    add_path(rs, "/work/fs/rw", handled);
    add_path(rs, "/work/fs/rw2", handled);
    add_path(rs, "/work/fs/rf", handled & ~FS_REFER);
    add_path(rs, "/work/fs/wo", (FS_WRITE_FILE | FS_MAKE_REG) & handled);
    add_path(rs, "/work/fs/x", (read | FS_EXECUTE) & handled);
    add_path(rs, "/dev/null", (FS_READ_FILE | FS_WRITE_FILE) & handled);
    return rs;
}

static void try_exec(const char *path) {
    pid_t p = fork();
    if (p == 0) {
        execl(path, "true", NULL);
        _exit(100 + errno);
    }
    int r = wait_child(p);
    if (r >= 100) say("exec %s: %s", path, ename(r - 100));
    else say("exec %s: exit %d", path, r);
}

static void filesystem(void) {
    setup_tree();
    pid_t p = fork();
    if (p == 0) {
        enforce(fs_ruleset(FS_ALL));
        say("-- one layer, every filesystem right handled");
        int fd = T(open("/work/fs/ro/f", O_RDONLY));
        close(fd);
        T(open("/work/fs/ro/f", O_WRONLY));
        T(open("/work/fs/ro/f", O_RDWR));
        T(open("/work/fs/ro/new", O_WRONLY | O_CREAT, 0644));
        T(mkdir("/work/fs/ro/d", 0755));
        T(mkfifo("/work/fs/ro/fifo", 0644));
        T(symlink("f", "/work/fs/ro/l"));
        T(unlink("/work/fs/ro/f"));
        T(rmdir("/work/fs/ro/sub"));
        T(truncate("/work/fs/ro/f", 1));
        fd = T(open("/work/fs/ro/sub", O_RDONLY | O_DIRECTORY));
        close(fd);
        T(open("/work/fs/ro/sub", O_PATH));
        T(open("/work", O_RDONLY | O_DIRECTORY));
        T(open("/work/plain", O_RDONLY));
        T(open("/work/prog", O_RDONLY));
        fd = T(open("/work/fs/rw/new", O_WRONLY | O_CREAT, 0644));
        close(fd);
        T(mkdir("/work/fs/rw/d", 0755));
        T(mkfifo("/work/fs/rw/fifo", 0644));
        T(symlink("f", "/work/fs/rw/l"));
        T(rename("/work/fs/rw/new", "/work/fs/rw/new2"));
        T(rename("/work/fs/rw/g", "/work/fs/rw2/g"));
        T(rename("/work/fs/rw2/g", "/work/fs/rw/g"));
        T(rename("/work/fs/rw/h", "/work/fs/ro/h"));
        T(rename("/work/fs/ro/f", "/work/fs/rw/f2"));
        T(rename("/work/fs/rf/g", "/work/fs/rw/g2"));
        T(rename("/work/fs/rw/h", "/work/fs/rf/h"));
        T(link("/work/fs/rw/h", "/work/fs/rw/h2"));
        T(link("/work/fs/rw/h", "/work/fs/rw2/h3"));
        T(link("/work/fs/rf/g", "/work/fs/rw/g3"));
        T(link("/work/fs/ro/f", "/work/fs/rw/f3"));
        T(syscall(SYS_renameat2, AT_FDCWD, "/work/fs/rw/h", AT_FDCWD, "/work/fs/rw2/f", 2));
        T(unlink("/work/fs/rw/new2"));
        T(rmdir("/work/fs/rw/d"));
        T(truncate("/work/fs/rw/f", 2));
        fd = T(open("/work/fs/wo/f", O_WRONLY));
        T(ftruncate(fd, 1));
        T(write(fd, "w", 1));
        close(fd);
        T(open("/work/fs/wo/f", O_WRONLY | O_TRUNC));
        T(open("/work/fs/wo/f", O_RDONLY));
        fd = T(open("/work/fs/wo/new", O_WRONLY | O_CREAT | O_TRUNC, 0644));
        close(fd);
        T(open("/work/fs/wo/sub", O_RDONLY | O_DIRECTORY));
        fd = T(open("/work/fs/rw/f", O_RDWR));
        T(ftruncate(fd, 0));
        close(fd);
        try_exec("/work/fs/x/true");
        try_exec("/work/fs/ro/true");
        try_exec("/bin/true");
        fd = T(open("/dev/null", O_WRONLY));
        int n;
        T(ioctl(fd, FIONREAD, &n));
        T(ioctl(fd, FIOCLEX));
        close(fd);
        T(open("/dev/zero", O_RDONLY));
        /* A pipe reopened through /proc is no path a rule names: allowed. */
        int pp[2];
        pipe(pp);
        char pl[64];
        snprintf(pl, sizeof pl, "/proc/self/fd/%d", pp[1]);
        fd = open(pl, O_WRONLY);
        say("reopen a pipe's write end: %s", fd >= 0 ? "ok" : ename(errno));
        close(fd); close(pp[0]); close(pp[1]);
        T(mount("none", "/work/fs/rw/sub", "tmpfs", 0, NULL));
        T(umount("/proc"));
        /* Kept across fork and execve. */
        pid_t q = fork();
        if (q == 0) {
            T(open("/work/fs/ro/f", O_WRONLY));
            execl("/work/prog", "prog", "child", NULL);
            _exit(99);
        }
        wait_child(q);
        _exit(0);
    }
    wait_child(p);

    p = fork();
    if (p == 0) {
        say("-- a first-version ruleset: reparenting is always refused");
        enforce(fs_ruleset(FS_ABI1));
        T(rename("/work/fs/rw/g", "/work/fs/rw2/g"));
        T(rename("/work/fs/rw/g", "/work/fs/rw/g4"));
        T(rename("/work/fs/rw/g4", "/work/fs/rw/g"));
        T(link("/work/fs/rw/g", "/work/fs/rw2/g5"));
        T(truncate("/work/fs/ro/f", 1));
        say("-- a second layer with only writes handled, granted beneath rw");
        struct attr a = { FS_WRITE_FILE, 0, 0 };
        int rs = create(&a, sizeof a, 0);
        add_path(rs, "/work/fs/rw", FS_WRITE_FILE);
        enforce(rs);
        int fd = T(open("/work/fs/rw/f", O_WRONLY));
        close(fd);
        T(open("/work/fs/rw2/f", O_WRONLY));
        fd = T(open("/work/fs/rw2/f", O_RDONLY));
        close(fd);
        T(open("/work/fs/ro/f", O_WRONLY));
        _exit(0);
    }
    wait_child(p);
}

static void network(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    Q(bind(l, (struct sockaddr *)&sa, sizeof sa));
    Q(listen(l, 8));
    Q(getsockname(l, (struct sockaddr *)&sa, &len));
    pid_t p = fork();
    if (p == 0) {
        say("-- TCP: bind only port 0, connect only the listener's port");
        struct attr a = { 0, NET_BIND | NET_CONNECT, 0 };
        int rs = create(&a, sizeof a, 0);
        Q(add_port(rs, 0, NET_BIND));
        Q(add_port(rs, ntohs(sa.sin_port), NET_CONNECT));
        enforce(rs);
        struct sockaddr_in b = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        int s = socket(AF_INET, SOCK_STREAM, 0);
        T(bind(s, (struct sockaddr *)&b, sizeof b));
        close(s);
        s = socket(AF_INET, SOCK_STREAM, 0);
        b.sin_port = htons(1);
        T(bind(s, (struct sockaddr *)&b, sizeof b));
        T(bind(s, (struct sockaddr *)&b, 8));
        T(connect(s, (struct sockaddr *)&b, sizeof b));
        T(connect(s, (struct sockaddr *)&sa, sizeof sa));
        close(s);
        s = socket(AF_INET, SOCK_DGRAM, 0);
        T(bind(s, (struct sockaddr *)&b, sizeof b));
        close(s);
        _exit(0);
    }
    wait_child(p);
    close(l);
}

/* A listening stream socket bound to the abstract name `name`; its
 * address in *sa, *len. */
static int abstract_listener(const char *name, struct sockaddr_un *sa, socklen_t *len) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path + 1, name, strlen(name));
    *len = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name);
    Q(bind(s, (struct sockaddr *)sa, *len));
    Q(listen(s, 8));
    return s;
}

static void scopes(void) {
    struct sockaddr_un ua;
    socklen_t ulen;
    int ls = abstract_listener("moat-ll-out", &ua, &ulen);
    pid_t outside = fork();
    if (outside == 0) { pause(); _exit(0); }
    pid_t p = fork();
    if (p == 0) {
        say("-- scopes: signals and abstract sockets stay in the domain");
        struct attr a = { 0, 0, SCOPE_UNIX | SCOPE_SIGNAL };
        enforce(create(&a, sizeof a, 0));
        T(kill(outside, 0));
        T(kill(getppid(), 0));
        T(kill(getpid(), 0));
        pid_t inside = fork();
        if (inside == 0) { pause(); _exit(0); }
        /* ptrace access (kcmp asks for it): only within the domain. */
        T(syscall(SYS_kcmp, getpid(), outside, 0, 0, 0));
        T(syscall(SYS_kcmp, getpid(), inside, 0, 0, 0));
        T(kill(inside, SIGKILL));
        wait_child(inside);
        int c = socket(AF_UNIX, SOCK_STREAM, 0);
        T(connect(c, (struct sockaddr *)&ua, ulen));
        close(c);
        struct sockaddr_un ia;
        socklen_t ilen;
        abstract_listener("moat-ll-in", &ia, &ilen);
        c = socket(AF_UNIX, SOCK_STREAM, 0);
        T(connect(c, (struct sockaddr *)&ia, ilen));
        _exit(0);
    }
    wait_child(p);
    kill(outside, SIGKILL);
    wait_child(outside);
    close(ls);
}

int main(int argc, char **argv) {
    if (argc > 1) {
        say("after execve:");
        T(open("/work/fs/ro/f", O_WRONLY));
        /* (Not its number: the native shell may hold descriptors from 10.) */
        int fd = open("/work/fs/ro/f", O_RDONLY);
        say("open(\"/work/fs/ro/f\", O_RDONLY): %s", fd >= 0 ? "ok" : ename(errno));
        close(fd);
        return 0;
    }
    errors();
    filesystem();
    network();
    scopes();
    return 0;
}
