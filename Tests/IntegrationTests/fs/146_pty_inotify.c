/* The pty line discipline (canonical line limit, VEOL, word erase, output
 * processing, termios2, packet mode, TCFLSH per side, devpts instances) and
 * inotify's ordering around unlink and rmdir (DELETE_SELF before the
 * directory's DELETE, or at the last close), IN_EXCL_UNLINK, and exec's
 * events on the program run. */
#include "t.h"
#include <poll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <asm/termbits.h>

static int master, slave;

static void openpair(void) {
    master = open("/dev/ptmx", O_RDWR | O_NONBLOCK);
    int n = 0, unlock = 0;
    ioctl(master, TIOCGPTN, &n);
    ioctl(master, TIOCSPTLCK, &unlock);
    char name[64];
    snprintf(name, sizeof name, "/dev/pts/%d", n);
    slave = open(name, O_RDWR | O_NONBLOCK | O_NOCTTY);
}

static void closepair(void) { close(slave); close(master); }

/* Reads what `fd` has (waiting up to 1 s for the first byte). */
static void drain(const char *label, int fd) {
    struct pollfd p = {fd, POLLIN, 0};
    poll(&p, 1, 1000);
    static char buf[65536];
    long total = 0, n;
    /* How the bytes split between reads is the kernel's business: print
     * what came, its first and last bytes. */
    while (total < (long)sizeof buf && (n = read(fd, buf + total, sizeof buf - total)) > 0) total += n;
    printf("%s: total %ld, then %s;", label, total, n < 0 ? ename(errno) : "0");
    for (long i = 0; i < total && i < 16; i++) printf(" %02x", (unsigned char)buf[i]);
    printf(" ..");
    for (long i = total > 24 ? total - 24 : 16; i < total; i++) printf(" %02x", (unsigned char)buf[i]);
    printf("\n");
}

static void setflags(unsigned iflag_on, unsigned oflag_on, unsigned lflag_off, int veol) {
    struct termios2 t;
    ioctl(slave, TCGETS2, &t);
    t.c_iflag |= iflag_on;
    t.c_oflag |= oflag_on;
    t.c_lflag &= ~lflag_off;
    if (veol) t.c_cc[VEOL] = veol;
    T(ioctl(slave, TCSETS2, &t));
    printf("speeds %u %u\n", t.c_ispeed, t.c_ospeed);
}

static void pty(void) {
    openpair();
    char big[4100];
    memset(big, 'M', sizeof big);
    big[sizeof big - 1] = '\n';
    T(write(master, big, sizeof big));
    drain("canonical big line", slave);
    T(write(master, "hello hi\x17\n", 10));
    drain("word erase", slave);
    drain("echo", master);
    setflags(0, 0, 0, '=');
    T(write(master, "abc=def", 7));
    drain("VEOL", slave);
    closepair();

    openpair();
    setflags(0, OCRNL, ICANON, 0);
    T(write(slave, "\r", 1));
    drain("OCRNL", master);
    closepair();
    openpair();
    setflags(0, ONOCR, ICANON, 0);
    T(write(slave, "\rfoo\r\r", 6));
    drain("ONOCR", master);
    closepair();

    openpair();
    int one = 1;
    T(ioctl(slave, TIOCPKT, &one));
    T(ioctl(master, TIOCPKT, &one));
    T(write(slave, "hi\n", 3));
    drain("packet data", master);
    T(ioctl(slave, TCFLSH, TCIOFLUSH));
    struct pollfd p = {master, POLLIN | POLLPRI, 0};
    T(poll(&p, 1, 1000));
    printf("revents %x\n", p.revents);
    drain("packet flush", master);
    T(ioctl(master, TCFLSH, TCIFLUSH));
    p.revents = 0;
    T(poll(&p, 1, 0));
    T(ioctl(slave, TCFLSH, 42));
    closepair();

    /* A devpts instance of its own: its ptmx and its pairs. */
    T(mkdir("/tmp/pts2", 0755));
    T(mount("devpts", "/tmp/pts2", "devpts", 0, "newinstance,ptmxmode=0666"));
    int m = open("/tmp/pts2/ptmx", O_RDWR);
    printf("instance ptmx: %s\n", m < 0 ? ename(errno) : "open");
    int n = -1, unlock = 0;
    ioctl(m, TIOCGPTN, &n);
    ioctl(m, TIOCSPTLCK, &unlock);
    char name[64];
    snprintf(name, sizeof name, "/tmp/pts2/%d", n);
    int s = open(name, O_RDWR | O_NOCTTY);
    printf("instance slave: %s\n", s < 0 ? ename(errno) : "open");
    close(s); close(m);
    T(umount("/tmp/pts2"));
}

static int ifd;

static void events(const char *label) {
    char buf[4096];
    long n = read(ifd, buf, sizeof buf);
    printf("%s:", label);
    for (char *p = buf; n > 0 && p < buf + n;) {
        struct inotify_event *e = (struct inotify_event *)p;
        printf(" %d:%x%s%s", e->wd, e->mask, e->len ? ":" : "", e->len ? e->name : "");
        p += sizeof *e + e->len;
    }
    printf("\n");
}

static void inotify(void) {
    ifd = inotify_init1(IN_NONBLOCK);
    T(mkdir("/tmp/in", 0755));
    T(mkdir("/tmp/in/child", 0755));
    int pw = inotify_add_watch(ifd, "/tmp/in", IN_ALL_EVENTS);
    int cw = inotify_add_watch(ifd, "/tmp/in/child", IN_ALL_EVENTS);
    printf("wds %d %d\n", pw, cw);
    T(rmdir("/tmp/in/child"));
    events("rmdir");
    /* An open directory defers its DELETE_SELF to the last close. */
    T(mkdir("/tmp/in/held", 0755));
    events("mkdir");
    int dfd = open("/tmp/in/held", O_RDONLY | O_DIRECTORY);
    events("open");
    cw = inotify_add_watch(ifd, "/tmp/in/held", IN_ALL_EVENTS);
    T(rmdir("/tmp/in/held"));
    events("rmdir held");
    close(dfd);
    events("close");
    /* IN_EXCL_UNLINK: what is done through an unlinked file's descriptor is
     * not heard, its size change is. */
    int fd = open("/tmp/in/f", O_RDWR | O_CREAT, 0644);
    events("create");
    int ew = inotify_add_watch(ifd, "/tmp/in/f", IN_ALL_EVENTS | IN_EXCL_UNLINK);
    inotify_rm_watch(ifd, pw);
    events("rm_watch");
    pw = inotify_add_watch(ifd, "/tmp/in", IN_ALL_EVENTS | IN_EXCL_UNLINK);
    T(unlink("/tmp/in/f"));
    events("unlink");
    T(write(fd, "x", 1));
    T(ftruncate(fd, 100));
    events("write, ftruncate");
    close(fd);
    events("close");
    (void)ew;
    /* exec of a script: OPEN, ACCESS, CLOSE_NOWRITE on it. */
    fd = open("/tmp/in/script", O_RDWR | O_CREAT, 0755);
    T(write(fd, "#!/bin/true\n", 12));
    close(fd);
    events("script");
    int sw = inotify_add_watch(ifd, "/tmp/in/script", IN_ALL_EVENTS);
    (void)sw;
    inotify_rm_watch(ifd, pw);
    events("rm_watch");
    pid_t c = fork();
    if (c == 0) { execl("/tmp/in/script", "script", (char *)NULL); _exit(127); }
    int st;
    waitpid(c, &st, 0);
    printf("script exit %d\n", WEXITSTATUS(st));
    events("exec");
    close(ifd);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pty();
    inotify();
    return 0;
}
