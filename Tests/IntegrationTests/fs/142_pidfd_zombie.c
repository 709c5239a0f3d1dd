// pidfd_open of a process that has exited and is not reaped yet: Linux opens
// it (the pid still exists), the pidfd is readable at once, and waitid
// through it reaps the child; after the reap the pid is gone (ESRCH).
// asyncio's pidfd child watcher depends on the first part.
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t c = fork();
    if (c == 0) _exit(7);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    // Wait for the exit without reaping.
    printf("waitid WNOWAIT: %d\n", waitid(P_PID, c, &si, WEXITED | WNOWAIT));
    int fd = syscall(SYS_pidfd_open, c, 0);
    printf("pidfd_open of the zombie: %s\n", fd >= 0 ? "ok" : strerror(errno));
    if (fd >= 0) {
        struct pollfd p = { fd, POLLIN, 0 };
        int n = poll(&p, 1, 0);
        printf("poll: %d revents %#x\n", n, p.revents);
        printf("pidfd_send_signal 0: %s\n", syscall(SYS_pidfd_send_signal, fd, 0, NULL, 0) == 0 ? "ok" : strerror(errno));
        memset(&si, 0, sizeof si);
        int r = waitid(P_PIDFD, fd, &si, WEXITED);
        printf("waitid P_PIDFD: %d, code %s, status %d, pid matches %d\n", r, si.si_code == CLD_EXITED ? "CLD_EXITED" : "other",
               si.si_status, si.si_pid == c);
        close(fd);
    }
    fd = syscall(SYS_pidfd_open, c, 0);
    printf("pidfd_open after the reap: %s\n", fd >= 0 ? "ok" : strerror(errno));
    return 0;
}
