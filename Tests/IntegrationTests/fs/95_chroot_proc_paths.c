/* Paths /proc shows a chrooted process (session 14, issue 15; gVisor's
 * chroot *NoEscape* cases): through a /proc descriptor opened before the
 * chroot, /proc/self/fd/N and /proc/self/cwd read as paths from the new
 * root, /proc/self/maps names a file mapped after the chroot from there
 * too, and /proc/self/mounts lists no mount outside the new root. */
#include "t.h"

static void link_of(int proc, const char *rel) {
    char buf[512];
    ssize_t n = readlinkat(proc, rel, buf, sizeof buf - 1);
    if (n < 0) { say("readlink %s: %s", rel, ename(errno)); return; }
    buf[n] = 0;
    say("readlink %s: %s", rel[0] == 's' && rel[5] == 'f' ? "self/fd/N" : rel, buf);
}

static void child(void) {
    int proc = open("/proc", O_RDONLY | O_DIRECTORY);
    mkdir("jail", 0755); mkdir("jail/sub", 0755);
    if (chroot("jail") != 0) { say("chroot: %s", ename(errno)); return; }
    T(chdir("/sub"));
    int fd = open("/foo", O_CREAT | O_RDWR, 0644);
    T(ftruncate(fd, 4096));
    char rel[64];
    snprintf(rel, sizeof rel, "self/fd/%d", fd);
    link_of(proc, rel);
    link_of(proc, "self/cwd");
    void *m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    int maps = openat(proc, "self/maps", O_RDONLY);
    static char buf[65536];
    ssize_t n = read(maps, buf, sizeof buf - 1), total = 0;
    while (n > 0) { total += n; n = read(maps, buf + total, sizeof buf - 1 - total); }
    buf[total > 0 ? total : 0] = 0;
    int named = 0, prefixed = 0;
    for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n")) {
        size_t len = strlen(l);
        if (len >= 5 && !strcmp(l + len - 5, " /foo")) named++;
        if (strstr(l, "jail/foo")) prefixed++;
    }
    say("maps: /foo %d, .../jail/foo %d", named, prefixed);
    munmap(m, 4096);
    int mounts = openat(proc, "self/mounts", O_RDONLY);
    n = read(mounts, buf, sizeof buf - 1);
    say("mounts (all outside the root): %s", n < 0 ? ename(errno) : n == 0 ? "none listed" : "listed");
}

int main(void) {
    in_child("chroot", child);
    return 0;
}
