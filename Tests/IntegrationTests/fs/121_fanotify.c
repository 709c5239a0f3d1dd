/* fanotify notification groups: fanotify_init's and fanotify_mark's argument
 * errors, then the events of inode marks (a file, a directory with and
 * without FAN_EVENT_ON_CHILD and FAN_ONDIR), mount and filesystem marks,
 * ignore masks, FAN_MARK_FLUSH, exec's FAN_OPEN_EXEC, merging of one file's
 * unread events, and what each event carries: its mask, a descriptor of the
 * file opened in the reader (checked against the file: same inode, access
 * mode from event_f_flags; reading and closing it raise no events) and the
 * pid of the process that caused it. */
#include "t.h"
#include <sys/fanotify.h>

static int me_child;

static void show(int g, const char *what) {
    char buf[4096];
    ssize_t n = read(g, buf, sizeof buf);
    if (n < 0) { say("%s: read -1 %s", what, ename(errno)); return; }
    for (char *p = buf; p < buf + n;) {
        struct fanotify_event_metadata *m = (void *)p;
        char fdinfo[64] = "no fd";
        if (m->fd >= 0) {
            struct stat a, b;
            fstat(m->fd, &a);
            char link[64], target[256] = {0};
            snprintf(link, sizeof link, "/proc/self/fd/%d", m->fd);
            readlink(link, target, sizeof target - 1);
            int same = stat(target, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev;
            snprintf(fdinfo, sizeof fdinfo, "fd of %s (%s), flags %o", target, same ? "same file" : "OTHER",
                     fcntl(m->fd, F_GETFL) & (O_ACCMODE | O_NONBLOCK));
            /* Reading and closing it raise no events (the next read shows). */
            char c;
            if (S_ISREG(a.st_mode)) pread(m->fd, &c, 1, 0);
            close(m->fd);
        }
        const char *who = m->pid == getpid() ? "me" : m->pid == me_child ? "child" : "other";
        say("%s: mask %llx ver %d len %u, %s, pid %s", what, (unsigned long long)m->mask, m->vers, m->event_len,
            fdinfo, who);
        p += m->event_len;
    }
}

static void touch_file(const char *p) {
    int fd = open(p, O_RDWR);
    char c;
    read(fd, &c, 1);
    write(fd, "x", 1);
    close(fd);
}

int main(int argc, char **argv) {
    if (argc > 1) return 0;
    mkdir("/work/fan", 0755);
    mkdir("/work/fan/dir", 0755);
    put("/work/fan/a", "aaaa");
    put("/work/fan/b", "bbbb");
    put("/work/fan/dir/c", "cccc");
    symlink("a", "/work/fan/link");

    T(fanotify_init(0x80000000, O_RDONLY));
    T(fanotify_init(FAN_CLASS_NOTIF, 3));
    T(fanotify_init(FAN_CLASS_CONTENT | FAN_CLASS_PRE_CONTENT, O_RDONLY));
    int g = T(fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK, O_RDONLY));
    say("cloexec %d, nonblock %d", fcntl(g, F_GETFD) & FD_CLOEXEC, !!(fcntl(g, F_GETFL) & O_NONBLOCK));
    char link[64], name[64] = {0};
    snprintf(link, sizeof link, "/proc/self/fd/%d", g);
    readlink(link, name, sizeof name - 1);
    say("group fd: %s", name);
    T(read(g, name, sizeof name));

    T(fanotify_mark(-1, FAN_MARK_ADD, FAN_OPEN, AT_FDCWD, "/work/fan/a"));
    T(fanotify_mark(0, FAN_MARK_ADD, FAN_OPEN, AT_FDCWD, "/work/fan/a"));
    T(fanotify_mark(g, FAN_MARK_ADD | FAN_MARK_REMOVE, FAN_OPEN, AT_FDCWD, "/work/fan/a"));
    T(fanotify_mark(g, FAN_MARK_ADD | FAN_MARK_MOUNT | FAN_MARK_FILESYSTEM, FAN_OPEN, AT_FDCWD, "/work/fan/a"));
    T(fanotify_mark(g, FAN_MARK_ADD, 1ULL << 40, AT_FDCWD, "/work/fan/a"));
    T(fanotify_mark(g, FAN_MARK_ADD, FAN_OPEN_PERM, AT_FDCWD, "/work/fan/a"));
    T(fanotify_mark(g, FAN_MARK_ADD, FAN_CREATE, AT_FDCWD, "/work/fan"));
    T(fanotify_mark(g, FAN_MARK_ADD | FAN_MARK_ONLYDIR, FAN_OPEN, AT_FDCWD, "/work/fan/a"));
    T(fanotify_mark(g, FAN_MARK_REMOVE, FAN_OPEN, AT_FDCWD, "/work/fan/a"));
    T(fanotify_mark(g, FAN_MARK_ADD, FAN_OPEN, AT_FDCWD, "/work/fan/nothing"));
    T(fanotify_mark(g, FAN_MARK_FLUSH | FAN_MARK_DONT_FOLLOW, 0, AT_FDCWD, "/work/fan"));

    say("-- an inode mark on a file");
    T(fanotify_mark(g, FAN_MARK_ADD, FAN_OPEN | FAN_ACCESS | FAN_MODIFY | FAN_CLOSE, AT_FDCWD, "/work/fan/a"));
    touch_file("/work/fan/a");
    touch_file("/work/fan/b");
    show(g, "a");
    T(read(g, name, sizeof name));
    int fd = open("/work/fan/a", O_RDONLY);
    show(g, "a open");
    close(fd);
    show(g, "a close");
    say("-- through a symlink, and DONT_FOLLOW marks the link");
    T(fanotify_mark(g, FAN_MARK_REMOVE, FAN_ACCESS | FAN_MODIFY | FAN_CLOSE, AT_FDCWD, "/work/fan/link"));
    T(fanotify_mark(g, FAN_MARK_ADD | FAN_MARK_DONT_FOLLOW, FAN_OPEN, AT_FDCWD, "/work/fan/link"));
    close(open("/work/fan/link", O_RDONLY));
    show(g, "link");
    T(fanotify_mark(g, FAN_MARK_FLUSH, 0, AT_FDCWD, "/work/fan"));
    close(open("/work/fan/a", O_RDONLY));
    show(g, "after flush");

    say("-- a directory mark");
    T(fanotify_mark(g, FAN_MARK_ADD, FAN_OPEN | FAN_CLOSE_NOWRITE, AT_FDCWD, "/work/fan"));
    close(open("/work/fan/a", O_RDONLY));
    close(open("/work/fan", O_RDONLY | O_DIRECTORY));
    show(g, "dir, no ONDIR nor ON_CHILD");
    T(fanotify_mark(g, FAN_MARK_ADD, FAN_EVENT_ON_CHILD | FAN_ONDIR, AT_FDCWD, "/work/fan"));
    close(open("/work/fan/a", O_RDONLY));
    close(open("/work/fan/dir", O_RDONLY | O_DIRECTORY));
    close(open("/work/fan/dir/c", O_RDONLY));
    close(open("/work/fan", O_RDONLY | O_DIRECTORY));
    show(g, "dir, ONDIR and ON_CHILD");
    say("-- an ignore mask on one child");
    T(fanotify_mark(g, FAN_MARK_ADD | FAN_MARK_IGNORED_MASK, FAN_OPEN, AT_FDCWD, "/work/fan/b"));
    close(open("/work/fan/b", O_RDONLY));
    close(open("/work/fan/a", O_RDONLY));
    show(g, "ignored b");
    T(fanotify_mark(g, FAN_MARK_FLUSH, 0, AT_FDCWD, "/work/fan"));

    say("-- event_f_flags: descriptors opened read-write");
    int g2 = T(fanotify_init(FAN_CLASS_NOTIF, O_RDWR | O_NONBLOCK));
    T(fanotify_mark(g2, FAN_MARK_ADD, FAN_CLOSE_WRITE, AT_FDCWD, "/work/fan/a"));
    touch_file("/work/fan/a");
    show(g2, "rw");
    say("-- exec: FAN_OPEN_EXEC, from a child");
    T(fanotify_mark(g2, FAN_MARK_ADD, FAN_OPEN_EXEC | FAN_OPEN, AT_FDCWD, "/work/prog"));
    me_child = fork();
    if (me_child == 0) { execl("/work/prog", "prog", "child", NULL); _exit(99); }
    waitpid(me_child, NULL, 0);
    show(g2, "exec, read-write descriptors");
    close(g2);
    g2 = T(fanotify_init(FAN_CLASS_NOTIF, O_RDONLY));
    T(fanotify_mark(g2, FAN_MARK_ADD, FAN_OPEN_EXEC, AT_FDCWD, "/work/prog"));
    me_child = fork();
    if (me_child == 0) { execl("/work/prog", "prog", "child", NULL); _exit(99); }
    waitpid(me_child, NULL, 0);
    close(open("/work/prog", O_RDONLY));
    show(g2, "exec");
    close(g2);

    say("-- mount and filesystem marks");
    int g3 = T(fanotify_init(FAN_CLASS_NOTIF | FAN_NONBLOCK, O_RDONLY));
    T(fanotify_mark(g3, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_CLOSE_NOWRITE, AT_FDCWD, "/work"));
    close(open("/work/fan/dir/c", O_RDONLY));
    close(open("/proc/self/status", O_RDONLY));
    show(g3, "mount");
    T(fanotify_mark(g3, FAN_MARK_REMOVE | FAN_MARK_MOUNT, FAN_CLOSE_NOWRITE, AT_FDCWD, "/work"));
    T(fanotify_mark(g3, FAN_MARK_REMOVE | FAN_MARK_MOUNT, FAN_CLOSE_NOWRITE, AT_FDCWD, "/work"));
    T(fanotify_mark(g3, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_OPEN, AT_FDCWD, "/work"));
    close(open("/work/fan/b", O_RDONLY));
    show(g3, "filesystem");
    close(g3);
    close(g);
    return 0;
}
