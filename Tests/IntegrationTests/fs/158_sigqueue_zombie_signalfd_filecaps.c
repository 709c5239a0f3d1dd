/* Three things the merged rerun of gVisor's programs (session 20) found:
 * rt_sigqueueinfo to a zombie not yet reaped succeeds (the zombie takes the
 * signal and ignores it, as kill does); a signalfd read puts each kind of
 * siginfo's fields where struct signalfd_siginfo has them (a queued value
 * in ssi_int and ssi_ptr, a child's status in ssi_status, the sender's pid
 * and uid); and any write or truncate of a file removes its file
 * capabilities (security.capability), whoever writes. */
#include "t.h"
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/xattr.h>

struct vfs_cap { uint32_t magic_etc; struct { uint32_t permitted, inheritable; } data[2]; };

static void show_ssi(int sfd, const char *what) {
    struct signalfd_siginfo s;
    memset(&s, 0xa5, sizeof s);
    long n = read(sfd, &s, sizeof s);
    if (n != sizeof s) { printf("%s: read = %ld %s\n", what, n, ename(errno)); return; }
    printf("%s: signo %u code %d pid_is_me %d uid %u int %d ptr %#llx status %d tid %u overrun %u band %u fd %d addr %#llx\n",
           what, s.ssi_signo, s.ssi_code, s.ssi_pid == (uint32_t)getpid(), s.ssi_uid, s.ssi_int,
           (unsigned long long)s.ssi_ptr, s.ssi_status, s.ssi_tid, s.ssi_overrun, s.ssi_band, s.ssi_fd,
           (unsigned long long)s.ssi_addr);
}

static int has_cap(const char *p) {
    char b[64];
    long r = getxattr(p, "security.capability", b, sizeof b);
    return r >= 0 ? (int)r : -errno;
}

int main(void) {
    /* rt_sigqueueinfo and kill to a zombie. */
    pid_t c = fork();
    if (c == 0) _exit(3);
    siginfo_t st;
    T(waitid(P_PID, c, &st, WEXITED | WNOWAIT));                  /* a zombie now, not reaped */
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_code = SI_QUEUE; si.si_value.sival_int = 7;
    T(syscall(SYS_rt_sigqueueinfo, c, SIGUSR1, &si));
    T(kill(c, SIGUSR1));
    si.si_code = SI_USER;
    T(syscall(SYS_rt_sigqueueinfo, c, SIGUSR1, &si));              /* a forged SI_USER: EPERM, zombie or not */
    T(waitpid(c, NULL, 0) == c);
    si.si_code = SI_QUEUE;
    T(syscall(SYS_rt_sigqueueinfo, c, SIGUSR1, &si));              /* reaped: ESRCH */

    /* signalfd's layout for queued values, plain kills and SIGCHLD. */
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGRTMIN + 1); sigaddset(&m, SIGUSR2); sigaddset(&m, SIGCHLD);
    T(sigprocmask(SIG_BLOCK, &m, NULL));
    int sfd = T(signalfd(-1, &m, SFD_NONBLOCK));
    union sigval v1 = { .sival_int = 101 }, v2 = { .sival_ptr = (void *)0x1234567890abcdefULL };
    T(sigqueue(getpid(), SIGRTMIN + 1, v1));
    T(sigqueue(getpid(), SIGRTMIN + 1, v2));
    show_ssi(sfd, "queued int");
    show_ssi(sfd, "queued ptr");
    T(kill(getpid(), SIGUSR2));
    show_ssi(sfd, "kill");
    c = fork();
    if (c == 0) _exit(42);
    T(waitid(P_PID, c, &st, WEXITED | WNOWAIT) == 0);
    struct signalfd_siginfo s;
    T(read(sfd, &s, sizeof s) == sizeof s);
    printf("SIGCHLD: signo %u code %d pid_is_child %d status %d int %d\n", s.ssi_signo, s.ssi_code,
           s.ssi_pid == (uint32_t)c, s.ssi_status, s.ssi_int);
    T(waitpid(c, NULL, 0) == c);
    show_ssi(sfd, "empty");

    /* File capabilities go with a write or a truncate. */
    const char *p = "/tmp/fs158-cap";
    struct vfs_cap cap = { 0x02000001, { { 1u << 7, 0 }, { 0, 0 } } };    /* VFS_CAP_REVISION_2 | EFFECTIVE, CAP_SETUID */
    int fd = T(open(p, O_CREAT | O_RDWR | O_TRUNC, 0666));
    T(fsetxattr(fd, "security.capability", &cap, sizeof cap, 0));
    printf("after set: %d\n", has_cap(p));
    T(pwrite(fd, "x", 1, 0));
    printf("after root's write: %d\n", has_cap(p));
    T(fsetxattr(fd, "security.capability", &cap, sizeof cap, 0));
    T(ftruncate(fd, 0));
    printf("after ftruncate: %d\n", has_cap(p));
    T(fsetxattr(fd, "security.capability", &cap, sizeof cap, 0));
    T(write(fd, "", 0));
    printf("after an empty write: %d\n", has_cap(p));
    T(fchmod(fd, 0666));
    c = fork();
    if (c == 0) {
        if (syscall(SYS_setuid, 65534) < 0) _exit(1);
        int f = open(p, O_WRONLY);
        if (f < 0) _exit(2);
        _exit(write(f, "y", 1) == 1 ? 0 : 3);
    }
    int ws;
    T(waitpid(c, &ws, 0) == c);
    printf("nobody's write: exit %d, then %d\n", WEXITSTATUS(ws), has_cap(p));
    T(close(fd));
    T(unlink(p));
    return 0;
}
