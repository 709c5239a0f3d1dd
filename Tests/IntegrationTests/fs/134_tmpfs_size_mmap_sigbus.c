/* A mapped page of a tmpfs file that holds nothing needs room in the
 * tmpfs when it is first touched: on a tmpfs at its size= limit the
 * touch gets SIGBUS (session 21, Moat issue 15; gVisor's mount
 * TmpfsSizeMmap). Pages the file already holds, pages within the room
 * left and a tmpfs without a limit map as usual; past the end of the file
 * it is SIGBUS everywhere. Each touch runs in a child; the parent prints
 * how it ended. */
#include "t.h"
#include <signal.h>

static volatile char *map;
static long at;

static void touch_read(void) { volatile char c = map[at]; (void)c; }
static void touch_write(void) { map[at] = 'w'; }

static void try(const char *what, void (*fn)(void), long off) {
    at = off;
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) { fn(); _exit(0); }
    int st;
    waitpid(p, &st, 0);
    if (WIFSIGNALED(st)) say("%s at page %ld: killed by %s", what, off / 4096, strsignal(WTERMSIG(st)));
    else say("%s at page %ld: exit %d", what, off / 4096, WEXITSTATUS(st));
}

int main(void) {
    if (mkdir("m134", 0755) != 0 && errno != EEXIST) say("mkdir: %s", ename(errno));
    T(mount("none", "m134", "tmpfs", 0, "size=8k"));
    char page[4096];
    memset(page, 'x', sizeof page);

    say("-- a private read mapping of a sparse file, room for one page");
    int fd = open("m134/sparse", O_CREAT | O_RDWR, 0644);
    int held = open("m134/held", O_CREAT | O_RDWR, 0644);
    T(write(held, page, sizeof page));                 /* one of the two pages */
    T(ftruncate(fd, 3 * 4096));
    map = mmap(NULL, 4 * 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    say("mmap: %s", map == MAP_FAILED ? ename(errno) : "ok");
    try("read", touch_read, 0);
    try("read", touch_read, 4096 + 2);
    try("read", touch_read, 2 * 4096);
    try("read", touch_read, 3 * 4096);                 /* past the end */
    munmap((void *)map, 4 * 4096);

    say("-- a shared writable mapping");
    map = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    say("mmap: %s", map == MAP_FAILED ? ename(errno) : "ok");
    try("write", touch_write, 10);
    try("write", touch_write, 2 * 4096 + 10);
    munmap((void *)map, 3 * 4096);

    say("-- pages the file holds");
    map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, held, 0);
    try("read", touch_read, 100);
    munmap((void *)map, 4096);
    close(held);
    close(fd);

    say("-- a tmpfs without a limit");
    T(mkdir("m134/free", 0755));
    T(mount("none", "m134/free", "tmpfs", 0, NULL));
    fd = open("m134/free/f", O_CREAT | O_RDWR, 0644);
    T(ftruncate(fd, 4 * 4096));
    map = mmap(NULL, 4 * 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    try("read", touch_read, 3 * 4096);
    munmap((void *)map, 4 * 4096);
    close(fd);
    T(umount("m134/free"));
    T(umount("m134"));
    return 0;
}
