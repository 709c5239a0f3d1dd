/* Mount propagation beyond one level, mount_setattr(2) and fspick(2)
 * (session 21, Moat issue 15; mount_namespaces(7), mount_setattr(2)):
 * a mount that is a slave and shared at once receives its master's events
 * and passes them on to its own peers and slaves; a group's last member
 * made private hands its slaves to its master; a bind of a slave onto a
 * shared mount is a shared slave whose copies keep the master; a recursive
 * bind under a shared mount reaches the peers whole; an unmount takes the
 * propagated copies along; a recursive bind leaves unbindable mounts out. mount_setattr's checks and effects (flags,
 * atime, recursion, propagation, locked nothing here) and fspick with
 * fsconfig's reconfigure (read-only, a tmpfs size).
 *
 * Everything happens in a tmpfs at m129 in the work directory. Mountinfo
 * lines are shown for mounts under it, sorted, with peer groups named by
 * letters in order of appearance (never the numbers). */
#include "t.h"
#include <linux/mount.h>
#include <sys/statvfs.h>

#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_fspick
#define SYS_fspick 433
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif

struct attr { uint64_t set, clr, propagation, userns_fd; };

static long setattr_(const char *p, unsigned flags, uint64_t set, uint64_t clr, uint64_t prop, size_t size) {
    struct { struct attr a; char pad[16]; } x = {{set, clr, prop, 0}, {0}};
    return syscall(SYS_mount_setattr, AT_FDCWD, p, flags, &x, size);
}

struct line { char place[256]; int order; long shared, master; int unbindable; char opts[128]; };

static int bysort(const void *a, const void *b) {
    const struct line *x = a, *y = b;
    int c = strcmp(x->place, y->place);
    return c ? c : x->order - y->order;
}

/* The whole of /proc/self/mountinfo into buf, NUL-terminated. */
static void read_mountinfo(char *buf, size_t size) {
    int fd = open("/proc/self/mountinfo", O_RDONLY);
    size_t n = 0;
    ssize_t r;
    while (fd >= 0 && (r = read(fd, buf + n, size - 1 - n)) > 0) n += r;
    if (fd >= 0) close(fd);
    buf[n] = 0;
}

/* The mounts at or below m129 (excluding m129 itself): place, options,
 * propagation with groups lettered. */
static void show(const char *who) {
    static char buf[1 << 17];
    static struct line ls_[512];
    read_mountinfo(buf, sizeof buf);
    int count = 0;
    for (char *l = strtok(buf, "\n"); l && count < 512; l = strtok(NULL, "\n")) {
        char *f[7] = {0};
        char *s = l;
        for (int i = 0; i < 6; i++) { f[i] = s; s = strchr(s, ' '); if (!s) break; *s++ = 0; }
        if (!s) continue;
        char *at = strstr(f[4], "/m129/");
        if (!at) continue;
        struct line *x = &ls_[count];
        memset(x, 0, sizeof *x);
        snprintf(x->place, sizeof x->place, "%s", at + 6);
        snprintf(x->opts, sizeof x->opts, "%s", f[5]);
        x->order = count;
        char *dash = strstr(s - 1, " - ");
        if (dash) *dash = 0;
        char *p;
        if ((p = strstr(s, "shared:"))) x->shared = atol(p + 7);
        if ((p = strstr(s, "master:"))) x->master = atol(p + 7);
        x->unbindable = strstr(s, "unbindable") != NULL;
        count++;
    }
    qsort(ls_, count, sizeof ls_[0], bysort);
    long groups[1024];
    int ng = 0;
    say("%s: %d mounts", who, count);
    for (int i = 0; i < count; i++) {
        char prop[64] = "";
        long ids[2] = {ls_[i].shared, ls_[i].master};
        char letters[2] = {0, 0};
        for (int k = 0; k < 2; k++) {
            if (!ids[k]) continue;
            int j = 0;
            while (j < ng && groups[j] != ids[k]) j++;
            if (j == ng && ng < 1024) groups[ng++] = ids[k];
            letters[k] = 'A' + j % 26;
        }
        if (letters[0]) snprintf(prop + strlen(prop), sizeof prop - strlen(prop), " shared:%c", letters[0]);
        if (letters[1]) snprintf(prop + strlen(prop), sizeof prop - strlen(prop), " master:%c", letters[1]);
        if (ls_[i].unbindable) strcat(prop, " unbindable");
        say("  %s %s%s", ls_[i].place, ls_[i].opts, prop);
    }
}

static void dir(const char *p) { if (mkdir(p, 0755) != 0 && errno != EEXIST) say("mkdir %s: %s", p, ename(errno)); }
static void bind(const char *a, const char *b) { Q(mount(a, b, NULL, MS_BIND, NULL)); }
static void prop(const char *p, unsigned long f) { Q(mount(NULL, p, NULL, f, NULL)); }

/* Detaches everything below m129 (the tmpfs itself stays). */
static void clear(void) {
    for (int round = 0; round < 64; round++) {
        static char buf[1 << 17];
        read_mountinfo(buf, sizeof buf);
        char last[512] = "";
        for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n")) {
            char *s = l;
            for (int i = 0; i < 4 && s; i++) { s = strchr(s, ' '); if (s) s++; }
            if (!s) continue;
            char *e = strchr(s, ' ');
            if (e) *e = 0;
            char *at = strstr(s, "/m129/");
            if (at) snprintf(last, sizeof last, "m129/%s", at + 6);
        }
        if (!last[0]) return;
        if (umount2(last, MNT_DETACH) != 0) { say("clear %s: %s", last, ename(errno)); return; }
    }
}

static void slave_of_slave(void) {
    say("-- a shared slave passes events on");
    dir("m129/a"); dir("m129/b"); dir("m129/c");
    bind("m129/a", "m129/a"); prop("m129/a", MS_SHARED);
    bind("m129/a", "m129/b"); prop("m129/b", MS_SLAVE); prop("m129/b", MS_SHARED);
    bind("m129/b", "m129/c"); prop("m129/c", MS_SLAVE);
    show("before");
    T(mount("none", "m129/a", "tmpfs", 0, "size=64k"));
    show("after mount on a");
    T(umount2("m129/a", MNT_DETACH));
    show("after umount of a");
    /* b private: its slave c now receives from a's group. */
    prop("m129/b", MS_PRIVATE);
    show("b private");
    T(mount("none", "m129/a", "tmpfs", 0, NULL));
    show("mount on a again");
    clear();
}

static void private_master(void) {
    say("-- the last of a group made private hands its slaves on");
    dir("m129/a"); dir("m129/b");
    bind("m129/a", "m129/a"); prop("m129/a", MS_SHARED);
    bind("m129/a", "m129/b"); prop("m129/b", MS_SLAVE); prop("m129/b", MS_SHARED);
    prop("m129/a", MS_PRIVATE);
    show("a private");
    clear();
}

static void bind_slave_to_shared(void) {
    say("-- a slave bound onto a shared mount");
    dir("m129/src"); dir("m129/srcm"); dir("m129/dst"); dir("m129/peer");
    bind("m129/src", "m129/src"); prop("m129/src", MS_SHARED);
    bind("m129/src", "m129/srcm"); prop("m129/src", MS_SLAVE);
    bind("m129/dst", "m129/dst"); prop("m129/dst", MS_SHARED);
    bind("m129/dst", "m129/peer");
    T(mount("m129/src", "m129/dst", NULL, MS_BIND, NULL));
    show("bound");
    clear();
}

static void recursive_bind_propagation(void) {
    say("-- a recursive bind under a shared mount");
    dir("m129/a"); dir("m129/b"); dir("m129/d");
    T(mount("none", "m129/a", "tmpfs", 0, NULL));
    prop("m129/a", MS_SHARED);
    bind("m129/a", "m129/b");
    dir("m129/a/f");
    bind("m129/d", "m129/d");
    dir("m129/d/e");
    bind("m129/d/e", "m129/d/e");
    T(mount("m129/d", "m129/a/f", NULL, MS_BIND | MS_REC, NULL));
    show("rec bound");
    T(umount2("m129/a/f", MNT_DETACH));
    show("after umount of a/f");
    clear();
}

static void unbindable_rbind(void) {
    say("-- unbindable mounts in a recursive bind");
    dir("m129/u"); dir("m129/v"); dir("m129/w");
    bind("m129/u", "m129/u");
    dir("m129/u/x"); dir("m129/u/y");
    bind("m129/u/x", "m129/u/x"); prop("m129/u/x", MS_UNBINDABLE);
    bind("m129/u/y", "m129/u/y");
    T(mount("m129/u/x", "m129/w", NULL, MS_BIND, NULL));
    T(mount("m129/u", "m129/v", NULL, MS_BIND | MS_REC, NULL));
    prop("m129/u", MS_UNBINDABLE);
    T(mount("m129/u", "m129/w", NULL, MS_BIND | MS_REC, NULL));
    show("rbind skips unbindable");
    clear();
}

static void setattr_cases(void) {
    say("-- mount_setattr");
    dir("m129/t");
    T(mount("none", "m129/t", "tmpfs", MS_NOSUID, NULL));
    T(setattr_("m129/t", 0, MOUNT_ATTR_RDONLY, 0, 0, 8));               /* short */
    T(setattr_("m129/t", 0, MOUNT_ATTR_RDONLY, 0, 0, 8192));            /* past a page */
    T(setattr_("m129/t", 0x1, MOUNT_ATTR_RDONLY, 0, 0, 32));            /* unknown flag */
    T(setattr_("m129/t", 0, 1ULL << 40, 0, 0, 32));                      /* unknown attribute */
    T(setattr_("nonexistent", 0, 0, 0, 0, 32));                          /* nothing asked: no lookup */
    T(setattr_("nonexistent", 0, MOUNT_ATTR_NODEV, 0, 0, 32));
    T(setattr_("m129/t", 0, MOUNT_ATTR_NOATIME, 0, 0, 32));             /* atime without clearing it */
    T(setattr_("m129/t", 0, MOUNT_ATTR_NOATIME, MOUNT_ATTR_NOATIME, 0, 32)); /* part of the field */
    T(setattr_("m129/t", 0, 0, 0, MS_SHARED | MS_SLAVE, 32));
    T(setattr_("m129/t", 0, 0, 0, MS_BIND, 32));
    T(setattr_("m129", 0, MOUNT_ATTR_NODEV, 0, 0, 32) == 0 ? 0 : -1);  /* the test's tmpfs root: fine */
    T(setattr_("m129/t/.", 0, MOUNT_ATTR_NODEV, 0, 0, 32));
    dir("m129/t/sub");
    dir("m129/t/x");
    T(setattr_("m129/t/sub", 0, MOUNT_ATTR_NODEV, 0, 0, 32));          /* not a mount's root */
    {
        int d = open("/", O_RDONLY | O_DIRECTORY);
        struct attr a = {MOUNT_ATTR_IDMAP, 0, 0, (uint64_t)d};
        T(syscall(SYS_mount_setattr, AT_FDCWD, "m129/t", 0, &a, sizeof a)); /* no user namespace */
        a.userns_fd = 999;
        T(syscall(SYS_mount_setattr, AT_FDCWD, "m129/t", 0, &a, sizeof a)); /* no descriptor */
        close(d);
    }
    T(setattr_("m129/t", 0, 0, MOUNT_ATTR_IDMAP, 0, 32));
    {
        struct { struct attr a; char pad[8]; } x = {{MOUNT_ATTR_NODEV, 0, 0, 0}, {1}};
        T(syscall(SYS_mount_setattr, AT_FDCWD, "m129/t", 0, &x, 40)); /* unknown nonzero tail */
    }
    T(setattr_("m129/t", 0, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, 0, 40));
    T(mkdir("m129/t/y", 0755));
    T(mount("none", "m129/t/sub", "tmpfs", 0, NULL));
    show("rdonly,nodev,noexec; nosuid cleared");
    T(setattr_("m129/t", AT_RECURSIVE, MOUNT_ATTR_NOATIME | MOUNT_ATTR_NOSYMFOLLOW, MOUNT_ATTR__ATIME | MOUNT_ATTR_RDONLY, MS_SHARED, 32));
    show("recursive noatime, nosymfollow, rw, shared");
    T(setattr_("m129/t", 0, MOUNT_ATTR_STRICTATIME | MOUNT_ATTR_NODIRATIME, MOUNT_ATTR__ATIME, MS_PRIVATE, 32));
    show("strictatime, nodiratime, private");
    T(setattr_("m129/t", AT_RECURSIVE, 0, 0, MS_UNBINDABLE, 32));
    show("recursive unbindable");
    T(mount("m129/t", "m129/t/x", NULL, MS_BIND, NULL));
    clear();
}

static void fspick_cases(void) {
    say("-- fspick");
    dir("m129/p");
    dir("m129/q");
    T(mount("none", "m129/p", "tmpfs", 0, "size=16k"));
    T(syscall(SYS_fspick, AT_FDCWD, "m129/p", 0x10));
    T(syscall(SYS_fspick, -1, "m129/p", 0));
    T(syscall(SYS_fspick, AT_FDCWD, "nonexistent", 0));
    dir("m129/p/d");
    T(syscall(SYS_fspick, AT_FDCWD, "m129/p/d", 0));
    bind("m129/p", "m129/q");
    int fd = syscall(SYS_fspick, AT_FDCWD, "m129/p", FSPICK_CLOEXEC);
    say("fspick: %s", fd >= 0 ? "fd" : ename(errno));
    T(syscall(SYS_fsconfig, fd, FSCONFIG_SET_FLAG, "ro", NULL, 0));
    T(syscall(SYS_fsconfig, fd, FSCONFIG_CMD_CREATE, NULL, NULL, 0));
    T(syscall(SYS_fsconfig, fd, FSCONFIG_CMD_RECONFIGURE, NULL, NULL, 0));
    struct statvfs sv;
    T(statvfs("m129/p", &sv));
    say("p read-only: %s", sv.f_flag & ST_RDONLY ? "yes" : "no");
    T(statvfs("m129/q", &sv));
    say("q (a bind of it) read-only: %s", sv.f_flag & ST_RDONLY ? "yes" : "no");
    T(open("m129/q/new", O_CREAT | O_WRONLY, 0644));
    T(syscall(SYS_fsconfig, fd, FSCONFIG_SET_FLAG, "rw", NULL, 0));
    T(syscall(SYS_fsconfig, fd, FSCONFIG_CMD_RECONFIGURE, NULL, NULL, 0));
    T(statvfs("m129/p", &sv));
    say("p read-only: %s, blocks %lu", sv.f_flag & ST_RDONLY ? "yes" : "no", (unsigned long)sv.f_blocks);
    int w = open("m129/p/new", O_CREAT | O_WRONLY, 0644);
    say("open new: %s", w >= 0 ? "ok" : ename(errno));
    char page[4096];
    memset(page, 'x', sizeof page);
    T(write(w, page, sizeof page));
    T(write(w, page, sizeof page));
    T(syscall(SYS_fsconfig, fd, FSCONFIG_SET_STRING, "size", "4k", 0));
    T(syscall(SYS_fsconfig, fd, FSCONFIG_CMD_RECONFIGURE, NULL, NULL, 0));   /* below what it holds */
    T(syscall(SYS_fsconfig, fd, FSCONFIG_SET_STRING, "size", "32k", 0));
    T(syscall(SYS_fsconfig, fd, FSCONFIG_CMD_RECONFIGURE, NULL, NULL, 0));
    T(statvfs("m129/p", &sv));
    say("p blocks %lu", (unsigned long)sv.f_blocks);
    close(w);
    close(fd);
    dir("m129/u");
    T(mount("none", "m129/u", "tmpfs", 0, NULL));
    fd = syscall(SYS_fspick, AT_FDCWD, "m129/u", 0);
    T(syscall(SYS_fsconfig, fd, FSCONFIG_SET_STRING, "size", "32k", 0));
    T(syscall(SYS_fsconfig, fd, FSCONFIG_CMD_RECONFIGURE, NULL, NULL, 0));   /* no limit to change */
    close(fd);
    clear();
}

int main(void) {
    dir("m129");
    if (mount("none", "m129", "tmpfs", 0, NULL) != 0) { say("mount m129: %s", ename(errno)); return 1; }
    T(mount(NULL, "m129", NULL, MS_PRIVATE, NULL));
    slave_of_slave();
    private_master();
    bind_slave_to_shared();
    recursive_bind_propagation();
    unbindable_rbind();
    setattr_cases();
    fspick_cases();
    show("end");
    T(umount2("m129", MNT_DETACH));
    return 0;
}
