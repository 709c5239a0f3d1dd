/* Escape attempts. Not differential: run inside Moat only. A file named
 * moat-escape-secret exists next to the root file system's directory on
 * the host (never inside it); any way of opening it, or of creating a
 * file next to it, prints ESCAPED. The test also checks the host side. */
#include "t.h"
#include <pthread.h>

static const char *name = "moat-escape-secret";

static void try_open(const char *how, const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd >= 0) { say("ESCAPED (read) via %s: %s", how, path); close(fd); }
}

static void try_create(const char *how, const char *path) {
    int fd = open(path, O_CREAT | O_WRONLY | O_EXCL, 0644);
    if (fd >= 0) { say("created %s via %s (must stay inside the sandbox)", path, how); close(fd); }
}

static void try_all_ups(const char *how, const char *prefix) {
    char p[512];
    for (int depth = 0; depth < 12; depth++) {
        snprintf(p, sizeof p, "%s", prefix);
        for (int i = 0; i < depth; i++) strncat(p, "../", sizeof p - strlen(p) - 1);
        strncat(p, name, sizeof p - strlen(p) - 1);
        try_open(how, p);
    }
}

static volatile int stop;
static void *flipper(void *arg) {
    (void)arg;
    /* Swaps "flip" between a directory and a symlink to ../../../.. */
    while (!stop) {
        rename("flip", "flipdir");
        symlink("../../../../../../..", "flip");
        unlink("flip");
        rename("flipdir", "flip");
    }
    return NULL;
}

int main(void) {
    T(chdir("/"));
    try_all_ups("dot-dot from /", "/");
    try_all_ups("dot-dot from cwd", "");
    try_all_ups("/proc/self/root", "/proc/self/root/");
    try_all_ups("/proc/1/root", "/proc/1/root/");
    try_all_ups("/proc/self/cwd", "/proc/self/cwd/");
    /* symlinks pointing up and to / */
    T(mkdir("/e", 0755));
    T(symlink("/", "/e/toroot"));
    T(symlink("../../../../../../../..", "/e/up"));
    T(symlink("/../../..", "/e/absup"));
    try_all_ups("symlink to /", "/e/toroot/");
    try_all_ups("symlink up", "/e/up/");
    try_all_ups("absolute symlink up", "/e/absup/");
    /* an O_PATH fd of / and openat with .. */
    int r = T(open("/", O_PATH | O_DIRECTORY));
    char p[256];
    for (int d = 1; d < 10; d++) {
        p[0] = 0;
        for (int i = 0; i < d; i++) strcat(p, "../");
        strcat(p, name);
        int fd = openat(r, p, O_RDONLY);
        if (fd >= 0) say("ESCAPED via openat(O_PATH /)");
    }
    /* the classic chroot escape: chroot into a subdirectory, then walk up */
    T(mkdir("/e/jail", 0755));
    int keep = T(open("/", O_RDONLY | O_DIRECTORY));
    T(chroot("/e/jail"));
    T(fchdir(keep));
    for (int i = 0; i < 20; i++) Q(chdir(".."));
    T(chroot("."));
    try_all_ups("chroot escape", "/");
    /* hard links to things outside: the source must be nameable first */
    T(link("/../moat-escape-secret", "/e/hl"));
    /* bind-mount the parent of / */
    T(mkdir("/e/m", 0755));
    Q(mount("/..", "/e/m", NULL, MS_BIND, NULL));
    try_all_ups("bind mount of /..", "/e/m/");
    Q(umount("/e/m"));
    /* a fresh procfs */
    T(mkdir("/e/proc", 0755));
    Q(mount("proc", "/e/proc", "proc", 0, NULL));
    try_all_ups("new procfs root link", "/e/proc/1/root/");
    try_all_ups("new procfs cwd link", "/e/proc/self/cwd/");
    Q(umount("/e/proc"));
    /* writes: try to create files above the root */
    try_create("dot-dot", "/../../moat-escape-created");
    try_create("symlink up", "/e/up/moat-escape-created2");
    /* a symlink swapped in during walks */
    T(mkdir("/e/race", 0755));
    T(chdir("/e/race"));
    T(mkdir("flip", 0755));
    pthread_t th;
    pthread_create(&th, NULL, flipper, NULL);
    for (int i = 0; i < 3000; i++) {
        char q[128];
        snprintf(q, sizeof q, "flip/%s", name);
        int fd = open(q, O_RDONLY);
        if (fd >= 0) { say("ESCAPED via a swapped symlink"); close(fd); }
        fd = open("flip/moat-escape-created3", O_CREAT | O_WRONLY, 0644);
        if (fd >= 0) close(fd);
    }
    stop = 1;
    pthread_join(th, NULL);
    say("done");
    return 0;
}
