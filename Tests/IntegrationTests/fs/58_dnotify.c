/* dnotify, fcntl(fd, F_NOTIFY, mask) on a directory: which changes signal
 * the process (F_SETSIG's signal with si_fd and si_code POLL_MSG), on the
 * directory's own fd and on its parent's, once or with DN_MULTISHOT; a
 * rename within a directory is DN_RENAME, a move between two is
 * DN_DELETE/DN_CREATE (LTP fcntl38, fcntl39); closing the fd ends the mark;
 * F_NOTIFY on a file is ENOTDIR. The signal is sent before the call that
 * caused it returns, so each check reads the counts right after it. */
#include "t.h"
#include <signal.h>

#define SIG (SIGRTMIN + 1)
static int fds[2];
static volatile int got[2], code_ok = 1, other;

static void handler(int sig, siginfo_t *si, void *u) {
    (void)sig; (void)u;
    if (si->si_code != 3 /* POLL_MSG */) code_ok = 0;
    if (si->si_fd == fds[0]) got[0]++;
    else if (si->si_fd == fds[1]) got[1]++;
    else other++;
}

static void show(const char *what) {
    say("%s: parent %d, sub %d, other %d, si_code POLL_MSG %d", what, got[0], got[1], other, code_ok);
    got[0] = got[1] = other = 0;
}

static void watch(int i, unsigned long mask) {
    Q(fcntl(fds[i], F_SETSIG, SIG));
    Q(fcntl(fds[i], F_NOTIFY, mask));
}

int main(void) {
    struct sigaction sa = { 0 };
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIG, &sa, 0);
    T(mkdir("dn", 0755));
    T(chdir("dn"));
    T(mkdir("sub", 0700));
    close(open("file", O_CREAT | O_WRONLY, 0644));

    int f = open("file", O_RDONLY);
    T(fcntl(f, F_NOTIFY, DN_MODIFY));
    close(f);

    /* Attributes: the directory's own change reaches both fds. */
    fds[0] = open(".", O_RDONLY);
    fds[1] = open("sub", O_RDONLY);
    watch(0, DN_ATTRIB | DN_MULTISHOT);
    watch(1, DN_ATTRIB | DN_MULTISHOT);
    T(chmod("sub", 0755));
    show("chmod sub");
    T(chmod("file", 0600));
    show("chmod file");
    T(chmod("sub", 0700));
    show("chmod sub again (multishot)");
    close(fds[0]); close(fds[1]);
    T(chmod("sub", 0755));
    show("chmod sub after close");

    /* Renames. */
    fds[0] = open(".", O_RDONLY);
    fds[1] = open("sub", O_RDONLY);
    watch(0, DN_RENAME | DN_MULTISHOT);
    watch(1, DN_RENAME | DN_MULTISHOT);
    T(rename("file", "sub/file"));
    show("rename into sub (DN_RENAME)");
    T(rename("sub/file", "sub/file2"));
    show("rename inside sub (DN_RENAME)");
    T(rename("sub", "sub2"));
    show("rename sub itself (DN_RENAME)");
    close(fds[0]); close(fds[1]);

    fds[0] = open(".", O_RDONLY);
    fds[1] = open("sub2", O_RDONLY);
    watch(0, DN_CREATE | DN_DELETE | DN_MULTISHOT);
    watch(1, DN_CREATE | DN_DELETE | DN_MULTISHOT);
    T(rename("sub2/file2", "file"));
    show("move from sub2 to parent (DN_CREATE|DN_DELETE)");
    T(unlink("file"));
    show("unlink in parent");
    T(mkdir("sub2/d", 0755));
    show("mkdir in sub2");
    close(fds[0]); close(fds[1]);

    /* Without DN_MULTISHOT: once. Modify and access need the file's data. */
    fds[0] = open(".", O_RDONLY);
    fds[1] = -1;
    watch(0, DN_MODIFY);
    int w = open("data", O_CREAT | O_WRONLY, 0644);
    T(write(w, "x", 1));
    show("create then write (DN_MODIFY once)");
    T(write(w, "y", 1));
    show("write again (no mark left)");
    watch(0, DN_MODIFY | DN_CREATE);
    watch(0, 0);
    T(write(w, "z", 1));
    show("write after F_NOTIFY 0");
    close(w);
    close(fds[0]);
    return 0;
}
