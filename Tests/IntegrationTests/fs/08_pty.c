/* Pseudo-terminals: /dev/ptmx and /dev/pts, the line discipline (canonical
 * mode, echo, erase, CR/NL, EOF), the signal characters reaching the
 * foreground process group, window size, hang-up. */
#include "t.h"
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>

static void drain(int m, const char *label) {
    char buf[512];
    /* The line discipline works asynchronously: wait (up to 2 s, for a
     * loaded machine) until something is there, then a moment for the rest. */
    struct pollfd p = {.fd = m, .events = POLLIN};
    poll(&p, 1, 2000);
    usleep(100000);
    int n = read(m, buf, sizeof buf);
    printf("%s: ", label);
    if (n < 0) { printf("-1 %s\n", ename(errno)); fflush(stdout); return; }
    printf("\"");
    for (int i = 0; i < n; i++) {
        unsigned char c = buf[i];
        if (c == '\n') printf("\\n"); else if (c == '\r') printf("\\r"); else if (c < 32 || c > 126) printf("\\x%02x", c); else putchar(c);
    }
    printf("\"\n");
    fflush(stdout);
}

int main(void) {
    int m = T(posix_openpt(O_RDWR | O_NOCTTY));
    T(grantpt(m));
    T(unlockpt(m));
    char *name = ptsname(m);
    say("ptsname starts with /dev/pts/: %d", name && strncmp(name, "/dev/pts/", 9) == 0);
    int fl = fcntl(m, F_GETFL);
    fcntl(m, F_SETFL, fl | O_NONBLOCK);
    int s = T(open(name, O_RDWR | O_NOCTTY));
    T(isatty(s));
    T(isatty(m));
    struct termios tio;
    T(tcgetattr(s, &tio));
    say("lflag ICANON=%d ECHO=%d ISIG=%d; oflag ONLCR=%d; iflag ICRNL=%d", !!(tio.c_lflag & ICANON), !!(tio.c_lflag & ECHO),
        !!(tio.c_lflag & ISIG), !!(tio.c_oflag & ONLCR), !!(tio.c_iflag & ICRNL));
    /* canonical input with echo and erase */
    T(write(m, "helo\x7fo\r", 7));
    drain(m, "echo");
    char buf[256] = {0};
    T(read(s, buf, sizeof buf));
    say("slave read: %s", buf);
    /* output processing */
    T(write(s, "out\n", 4));
    drain(m, "master sees");
    /* a partial line is not readable in canonical mode */
    fcntl(s, F_SETFL, O_NONBLOCK);
    T(write(m, "partial", 7));
    drain(m, "echo2");
    T(read(s, buf, sizeof buf));
    T(write(m, "\x04", 1));                     /* VEOF with text: delivers it */
    memset(buf, 0, sizeof buf);
    T(read(s, buf, sizeof buf));
    T(write(m, "\x04", 1));                     /* VEOF on an empty line: read 0 */
    T(read(s, buf, sizeof buf));
    /* raw mode */
    cfmakeraw(&tio);
    T(tcsetattr(s, TCSANOW, &tio));
    T(write(m, "ab", 2));
    T(read(s, buf, sizeof buf));
    drain(m, "no echo in raw mode");
    /* window size */
    struct winsize ws = {.ws_row = 40, .ws_col = 100};
    T(ioctl(m, TIOCSWINSZ, &ws));
    struct winsize got = {0};
    T(ioctl(s, TIOCGWINSZ, &got));
    say("winsize %dx%d", got.ws_row, got.ws_col);
    T(close(s));
    /* a session with the pty as its controlling terminal; ^C reaches it */
    struct termios def;
    int ready[2]; T(pipe(ready));   /* the child says when the tty is its own (no sleep: a loaded machine) */
    pid_t c = fork();
    if (c == 0) {
        close(ready[0]);
        setsid();
        int sl = open(name, O_RDWR);            /* becomes the controlling tty */
        tcgetattr(sl, &def);
        def.c_lflag |= ICANON | ECHO | ISIG;
        tcsetattr(sl, TCSANOW, &def);
        int r = ioctl(sl, TIOCSCTTY, 0);
        printf("child: TIOCSCTTY=%d tcgetpgrp==getpgrp: %d\n", r, tcgetpgrp(sl) == getpgrp());
        fflush(stdout);
        if (write(ready[1], "r", 1) != 1) _exit(5);
        pause();                                 /* until SIGINT (its default action ends us even before pause) */
        _exit(0);
    }
    close(ready[1]);
    char rc; T(read(ready[0], &rc, 1));
    close(ready[0]);
    T(write(m, "\x03", 1));
    int st;
    waitpid(c, &st, 0);
    say("child ended by signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    drain(m, "echo of ^C");
    /* master closed: the slave reads EOF and writes fail */
    int m2 = T(posix_openpt(O_RDWR | O_NOCTTY));
    grantpt(m2); unlockpt(m2);
    int s2 = T(open(ptsname(m2), O_RDWR | O_NOCTTY));
    T(close(m2));
    T(read(s2, buf, sizeof buf));
    T(write(s2, "x", 1));
    T(close(s2));
    /* slave closed: the master reads EIO */
    int m3 = T(posix_openpt(O_RDWR | O_NOCTTY));
    grantpt(m3); unlockpt(m3);
    int s3 = T(open(ptsname(m3), O_RDWR | O_NOCTTY));
    T(close(s3));
    T(read(m3, buf, sizeof buf));
    T(close(m3));
    /* a locked pty cannot be opened */
    int m4 = T(posix_openpt(O_RDWR | O_NOCTTY));
    T(open(ptsname(m4), O_RDWR | O_NOCTTY));
    T(close(m));
    return 0;
}
