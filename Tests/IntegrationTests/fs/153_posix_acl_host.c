/* POSIX ACLs on the root file system itself (fs/162 uses a tmpfs of its
 * own): with --no-overlay these are host files the Gofer serves, so the ACLs
 * live on the host file; under the overlay they are the Sentry's. Set and
 * read back, the mode following the ACL and a chmod rewriting the mask, the
 * format and validity checks, access for named users and groups that are not
 * the owner (setuid children), and that a chmod's new mask is enforced at
 * once, removal, default ACLs inherited by files, directories and their
 * subdirectories with the umask ignored, and, in a user namespace that maps
 * only uid 0, a named id it does not map (EINVAL to set, the overflow id to
 * read). */
#include "t.h"
#include <grp.h>
#include <sys/xattr.h>

#define ACC "system.posix_acl_access"
#define DEF "system.posix_acl_default"

struct ent { uint16_t tag, perm; uint32_t id; };
static unsigned char buf[512];
static int proc, work;

static int build(const struct ent *e, int n) {
    uint32_t v = 2;
    memcpy(buf, &v, 4);
    memcpy(buf + 4, e, n * sizeof *e);
    return 4 + n * (int)sizeof *e;
}

static void show(const char *path, const char *name) {
    unsigned char b[512];
    int n = getxattr(path, name, b, sizeof b);
    if (n < 0) { printf("get %s %s: %s\n", path, name, ename(errno)); return; }
    printf("get %s %s: %d bytes:", path, name, n);
    for (int o = 4; o + 8 <= n; o += 8) {
        struct ent e;
        memcpy(&e, b + o, 8);
        printf(" %x/%o/%d", e.tag, e.perm, (int)e.id);
    }
    printf("\n");
    fflush(stdout);
}

static void mode(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0) printf("mode %s %o\n", path, st.st_mode & 07777);
    else printf("mode %s: %s\n", path, ename(errno));
    fflush(stdout);
}

static void list(const char *path) {
    char l[512];
    int n = listxattr(path, l, sizeof l);
    printf("listxattr %s: %d", path, n);
    for (int o = 0; n > 0 && o < n; o += strlen(l + o) + 1) printf(" %s", l + o);
    printf("\n");
    fflush(stdout);
}

/* A child with uid u, gid g and no other groups opens `path`: 0 when it
 * can, 13 for EACCES. */
static int as_user(uid_t u, gid_t g, const char *path, int flags) {
    pid_t c = fork();
    if (c == 0) {
        if (setgroups(0, NULL) || setgid(g) || setuid(u)) _exit(99);
        int fd = open(path, flags);
        _exit(fd >= 0 ? 0 : errno == EACCES ? 13 : 98);
    }
    int st;
    waitpid(c, &st, 0);
    return WEXITSTATUS(st);
}

static void access_line(const char *what, uid_t u, gid_t g, const char *path, int flags) {
    printf("%s: %d\n", what, as_user(u, g, path, flags));
    fflush(stdout);
}

static void unmapped(void) {
    /* Linux makes no user namespace for a chrooted process, and the native
     * side runs in a chroot: give the root back first (as fs/149 does). */
    pid_t c = fork();
    if (c == 0) {
        mkdir("jail153", 0700);
        if (chroot("jail153") != 0) { say("chroot: %s", ename(errno)); _exit(1); }
        for (int i = 0; i < 64; i++) chdir("..");
        chroot(".");
        fchdir(work);
        rmdir("jail153");
        if (unshare(CLONE_NEWUSER) != 0) { say("unshare: %s", ename(errno)); _exit(1); }
        int fd = openat(proc, "self/uid_map", O_WRONLY);
        if (fd < 0 || write(fd, "0 0 1\n", 6) != 6) { say("uid_map: %s", ename(errno)); _exit(1); }
        close(fd);
        say("in a namespace mapping uid 0 only:");
        show("a153/u", ACC);
        struct ent other[] = {{1, 6, -1}, {2, 4, 1000}, {4, 4, -1}, {0x10, 4, -1}, {0x20, 0, -1}};
        T(setxattr("a153/u", ACC, buf, build(other, 5), 0));
        struct ent self[] = {{1, 6, -1}, {2, 5, 0}, {4, 4, -1}, {0x10, 5, -1}, {0x20, 0, -1}};
        T(setxattr("a153/u", ACC, buf, build(self, 5), 0));
        show("a153/u", ACC);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    show("a153/u", ACC);
}

int main(void) {
    proc = open("/proc", O_RDONLY | O_DIRECTORY);
    work = open(".", O_RDONLY | O_DIRECTORY);
    Q(setgroups(0, NULL));
    umask(022);
    T(mkdir("a153", 0755));
    T(close(open("a153/f", O_CREAT | O_RDWR, 0644)));
    T(mkdir("a153/d", 0755));

    /* Set, read back, the mode follows (group bits are the mask). */
    struct ent full[] = {{1, 6, -1}, {2, 4, 65534}, {4, 4, -1}, {8, 6, 1234}, {0x10, 6, -1}, {0x20, 4, -1}};
    int n = build(full, 6);
    T(getxattr("a153/f", ACC, buf, sizeof buf));
    T(setxattr("a153/f", ACC, buf, n, 0));
    show("a153/f", ACC);
    mode("a153/f");
    list("a153/f");

    /* chmod writes USER_OBJ, MASK and OTHER; GROUP_OBJ and named entries stay. */
    T(chmod("a153/f", 0460));
    show("a153/f", ACC);
    mode("a153/f");

    /* Format and validity checks: nothing changes. */
    T(setxattr("a153/f", ACC, buf, 1, 0));
    T(setxattr("a153/f", ACC, buf, n - 1, 0));
    uint32_t bad = 3;
    memcpy(buf, &bad, 4);
    T(setxattr("a153/f", ACC, buf, n, 0));
    struct ent nomask[] = {{1, 6, -1}, {2, 4, 65534}, {4, 4, -1}, {0x20, 4, -1}};
    T(setxattr("a153/f", ACC, buf, build(nomask, 4), 0));
    struct ent badperm[] = {{1, 6, -1}, {4, 8, -1}, {0x20, 4, -1}};
    T(setxattr("a153/f", ACC, buf, build(badperm, 3), 0));
    struct ent twice[] = {{1, 6, -1}, {1, 6, -1}, {4, 4, -1}, {0x20, 4, -1}};
    T(setxattr("a153/f", ACC, buf, build(twice, 4), 0));
    struct ent order[] = {{4, 4, -1}, {1, 6, -1}, {0x20, 4, -1}};
    T(setxattr("a153/f", ACC, buf, build(order, 3), 0));
    struct ent badtag[] = {{1, 6, -1}, {4, 4, -1}, {0x40, 4, -1}, {0x20, 4, -1}};
    T(setxattr("a153/f", ACC, buf, build(badtag, 4), 0));
    struct ent noother[] = {{1, 6, -1}, {4, 4, -1}};
    T(setxattr("a153/f", ACC, buf, build(noother, 2), 0));
    struct ent undef[] = {{1, 6, -1}, {2, 4, -1}, {4, 4, -1}, {0x10, 6, -1}, {0x20, 4, -1}};
    T(setxattr("a153/f", ACC, buf, build(undef, 5), 0));
    show("a153/f", ACC);
    mode("a153/f");

    /* A default ACL is for directories; symlinks take none. */
    T(setxattr("a153/f", DEF, buf, build(full, 6), 0));
    T(removexattr("a153/f", DEF));
    T(symlink("f", "a153/l"));
    T(lsetxattr("a153/l", ACC, buf, build(full, 6), 0));
    T(lgetxattr("a153/l", ACC, buf, sizeof buf));

    /* Who may open it: named users and groups under the mask. */
    struct ent grant[] = {{1, 6, -1}, {2, 6, 65534}, {2, 0, 1000}, {4, 0, -1}, {8, 4, 1234}, {0x10, 4, -1}, {0x20, 0, -1}};
    T(setxattr("a153/f", ACC, buf, build(grant, 7), 0));
    mode("a153/f");
    access_line("user 65534 read", 65534, 65534, "a153/f", O_RDONLY);
    access_line("user 65534 write (mask r)", 65534, 65534, "a153/f", O_WRONLY);
    access_line("user 1000 read", 1000, 1000, "a153/f", O_RDONLY);
    access_line("group 1234 read", 2000, 1234, "a153/f", O_RDONLY);
    access_line("user 2000 read", 2000, 2000, "a153/f", O_RDONLY);
    /* A chmod's mask applies at once. */
    T(chmod("a153/f", 0660));
    show("a153/f", ACC);
    access_line("user 65534 write (mask rw)", 65534, 65534, "a153/f", O_WRONLY);
    T(chmod("a153/f", 0600));
    access_line("user 65534 read (mask none)", 65534, 65534, "a153/f", O_RDONLY);
    /* A directory's ACL decides searching it. */
    T(close(open("a153/d/inside", O_CREAT | O_RDWR, 0644)));
    T(chmod("a153/d", 0700));
    access_line("user 65534 through d before", 65534, 65534, "a153/d/inside", O_RDONLY);
    struct ent search[] = {{1, 7, -1}, {2, 1, 65534}, {4, 0, -1}, {0x10, 1, -1}, {0x20, 0, -1}};
    T(setxattr("a153/d", ACC, buf, build(search, 5), 0));
    mode("a153/d");
    access_line("user 65534 through d", 65534, 65534, "a153/d/inside", O_RDONLY);
    access_line("user 1000 through d", 1000, 1000, "a153/d/inside", O_RDONLY);

    /* Only the owner sets an ACL. */
    pid_t c = fork();
    if (c == 0) {
        if (setuid(65534)) _exit(99);
        int r = setxattr("a153/f", ACC, buf, build(grant, 7), 0);
        printf("nobody sets root's: %d %s\n", r, r ? ename(errno) : "");
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, NULL, 0);

    /* Removal. */
    T(removexattr("a153/f", ACC));
    show("a153/f", ACC);
    mode("a153/f");
    list("a153/f");
    access_line("user 65534 read after remove", 65534, 65534, "a153/f", O_RDONLY);
    T(removexattr("a153/d", ACC));
    T(chmod("a153/d", 0755));
    list("a153/d");

    /* Default ACLs: the umask does not apply, the create mode masks. */
    struct ent dflt[] = {{1, 7, -1}, {2, 5, 65534}, {4, 5, -1}, {0x10, 7, -1}, {0x20, 5, -1}};
    T(setxattr("a153/d", DEF, buf, build(dflt, 5), 0));
    show("a153/d", DEF);
    list("a153/d");
    umask(077);
    T(close(open("a153/d/new", O_CREAT | O_RDWR, 0640)));
    show("a153/d/new", ACC);
    show("a153/d/new", DEF);
    mode("a153/d/new");
    access_line("user 65534 read inherited", 65534, 65534, "a153/d/new", O_RDONLY);
    access_line("user 1000 read inherited", 1000, 1000, "a153/d/new", O_RDONLY);
    T(mkdir("a153/d/sub", 0777));
    show("a153/d/sub", ACC);
    show("a153/d/sub", DEF);
    mode("a153/d/sub");
    T(mkdir("a153/d/sub/deeper", 0750));
    show("a153/d/sub/deeper", ACC);
    show("a153/d/sub/deeper", DEF);
    mode("a153/d/sub/deeper");
    T(close(open("a153/d/sub/deeper/leaf", O_CREAT | O_RDWR, 0666)));
    show("a153/d/sub/deeper/leaf", ACC);
    mode("a153/d/sub/deeper/leaf");
    access_line("user 65534 read leaf", 65534, 65534, "a153/d/sub/deeper/leaf", O_RDONLY);
    int tf = open("a153/d", O_TMPFILE | O_RDWR, 0604);
    printf("O_TMPFILE: %s\n", tf >= 0 ? "ok" : ename(errno));
    if (tf >= 0) {
        struct stat st;
        fstat(tf, &st);
        printf("tmpfile mode %o\n", st.st_mode & 07777);
        T(linkat(tf, "", AT_FDCWD, "a153/d/tmp", AT_EMPTY_PATH));
        show("a153/d/tmp", ACC);
        close(tf);
    }
    /* Without the default ACL the umask is back. */
    T(setxattr("a153/d", DEF, "", 0, 0));
    show("a153/d", DEF);
    T(close(open("a153/d/plain", O_CREAT | O_RDWR, 0666)));
    show("a153/d/plain", ACC);
    mode("a153/d/plain");
    umask(022);

    /* Ids a user namespace does not map. */
    T(close(open("a153/u", O_CREAT | O_RDWR, 0644)));
    struct ent two[] = {{1, 6, -1}, {2, 4, 1000}, {4, 4, -1}, {8, 4, 1234}, {0x10, 4, -1}, {0x20, 0, -1}};
    T(setxattr("a153/u", ACC, buf, build(two, 6), 0));
    unmapped();
    return 0;
}
