/* POSIX ACLs (system.posix_acl_access / system.posix_acl_default, the
 * xattr format setfacl writes) on a tmpfs of the program's own: set and get
 * back, the format checks (EINVAL, EOPNOTSUPP), the mode taking the ACL's
 * bits (the group bits are the mask) and chmod writing back into the ACL, a
 * minimal ACL folding into the mode, only the owner setting one, a default
 * ACL only on a directory, enforcement for a named user (a setuid child),
 * and a new file and directory inheriting a directory's default ACL. */
#include "t.h"
#include <grp.h>
#include <sys/xattr.h>

#define ACC "system.posix_acl_access"
#define DEF "system.posix_acl_default"

struct ent { uint16_t tag, perm; uint32_t id; };
static unsigned char buf[512];

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
}

static void mode(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0) printf("mode %s %o\n", path, st.st_mode & 07777);
}

static int as_user(uid_t u, const char *path, int flags) {
    pid_t c = fork();
    if (c == 0) {
        if (setgroups(0, NULL) || setgid(u) || setuid(u)) _exit(99);
        int fd = open(path, flags);
        _exit(fd >= 0 ? 0 : errno == EACCES ? 13 : 98);
    }
    int st;
    waitpid(c, &st, 0);
    return WEXITSTATUS(st);
}

int main(void) {
    T(mkdir("/work/acl", 0755));
    T(mount("tmpfs", "/work/acl", "tmpfs", 0, "mode=0755"));
    T(chdir("/work/acl"));
    umask(022);
    T(close(open("f", O_CREAT | O_RDWR, 0644)));
    T(mkdir("d", 0755));

    struct ent full[] = {{1, 6, -1}, {2, 4, 65534}, {4, 4, -1}, {0x10, 6, -1}, {0x20, 4, -1}};
    int n = build(full, 5);
    T(getxattr("f", ACC, buf, sizeof buf));
    T(setxattr("f", ACC, buf, n, 0));
    show("f", ACC);
    mode("f");
    char list[256];
    int ln = listxattr("f", list, sizeof list);
    printf("listxattr f: %d %s\n", ln, ln > 0 ? list : "");

    /* chmod writes USER_OBJ, MASK and OTHER; GROUP_OBJ stays. */
    T(chmod("f", 0460));
    show("f", ACC);
    mode("f");

    /* Format and validity checks. */
    T(setxattr("f", ACC, buf, 1, 0));
    T(setxattr("f", ACC, buf, n - 1, 0));
    uint32_t bad = 3;
    memcpy(buf, &bad, 4);
    T(setxattr("f", ACC, buf, n, 0));
    struct ent nomask[] = {{1, 6, -1}, {2, 4, 65534}, {4, 4, -1}, {0x20, 4, -1}};
    T(setxattr("f", ACC, buf, build(nomask, 4), 0));
    struct ent badperm[] = {{1, 6, -1}, {4, 8, -1}, {0x20, 4, -1}};
    T(setxattr("f", ACC, buf, build(badperm, 3), 0));
    struct ent twice[] = {{1, 6, -1}, {1, 6, -1}, {4, 4, -1}, {0x20, 4, -1}};
    T(setxattr("f", ACC, buf, build(twice, 4), 0));
    struct ent order[] = {{4, 4, -1}, {1, 6, -1}, {0x20, 4, -1}};
    T(setxattr("f", ACC, buf, build(order, 3), 0));

    /* A minimal ACL is a mode: nothing stored. */
    struct ent minimal[] = {{1, 7, -1}, {4, 5, -1}, {0x20, 0, -1}};
    T(setxattr("f", ACC, buf, build(minimal, 3), 0));
    show("f", ACC);
    mode("f");

    /* A default ACL only on a directory. */
    T(setxattr("f", DEF, buf, build(minimal, 3), 0));
    T(removexattr("f", DEF));
    T(symlink("f", "l"));
    T(lsetxattr("l", ACC, buf, build(full, 5), 0));
    T(lgetxattr("l", ACC, buf, sizeof buf));

    /* Named user enforcement: nobody gets read through the ACL, not write. */
    T(chmod("f", 0600));
    printf("nobody read before: %d\n", as_user(65534, "/work/acl/f", O_RDONLY));
    struct ent grant[] = {{1, 6, -1}, {2, 7, 65534}, {4, 0, -1}, {0x10, 4, -1}, {0x20, 0, -1}};
    T(setxattr("f", ACC, buf, build(grant, 5), 0));
    mode("f");
    printf("nobody read: %d\n", as_user(65534, "/work/acl/f", O_RDONLY));
    printf("nobody write: %d\n", as_user(65534, "/work/acl/f", O_WRONLY));
    printf("uid 1000 read: %d\n", as_user(1000, "/work/acl/f", O_RDONLY));
    /* Only the owner sets an ACL, even with write permission. */
    T(chmod("d", 0777));
    pid_t c = fork();
    if (c == 0) {
        if (setuid(65534)) _exit(99);
        int fd = open("/work/acl/d/own", O_CREAT | O_RDWR, 0666);
        close(fd);
        int r = setxattr("/work/acl/f", ACC, buf, build(grant, 5), 0);
        int r2 = setxattr("/work/acl/d/own", ACC, buf, build(grant, 5), 0);
        printf("nobody sets root's: %d %s; its own: %d\n", r, r ? ename(errno) : "", r2);
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    T(removexattr("f", ACC));
    show("f", ACC);
    mode("f");
    printf("nobody read after remove: %d\n", as_user(65534, "/work/acl/f", O_RDONLY));

    /* Default ACL inheritance: the umask does not apply, the create mode masks. */
    T(chmod("d", 0755));
    struct ent dflt[] = {{1, 7, -1}, {2, 5, 65534}, {4, 5, -1}, {0x10, 7, -1}, {0x20, 5, -1}};
    T(setxattr("d", DEF, buf, build(dflt, 5), 0));
    show("d", DEF);
    T(close(open("d/new", O_CREAT | O_RDWR, 0640)));
    show("d/new", ACC);
    show("d/new", DEF);
    mode("d/new");
    T(mkdir("d/sub", 0777));
    show("d/sub", ACC);
    show("d/sub", DEF);
    mode("d/sub");
    T(mknod("d/fifo", S_IFIFO | 0666, 0));
    mode("d/fifo");
    int tf = open("d", O_TMPFILE | O_RDWR, 0604);
    printf("O_TMPFILE: %s\n", tf >= 0 ? "ok" : ename(errno));
    if (tf >= 0) {
        struct stat st;
        fstat(tf, &st);
        printf("tmpfile mode %o\n", st.st_mode & 07777);
        T(linkat(tf, "", AT_FDCWD, "d/tmp", AT_EMPTY_PATH));
        show("d/tmp", ACC);
        close(tf);
    }
    T(setxattr("d", DEF, "", 0, 0));
    show("d", DEF);
    T(close(open("d/plain", O_CREAT | O_RDWR, 0666)));
    show("d/plain", ACC);
    mode("d/plain");

    T(chdir("/"));
    T(umount("/work/acl"));
    return 0;
}
