/* Control-message and memory-mapping corners an independent syscall suite
 * exercises (issue 15: SCM_RIGHTS / SCM_CREDENTIALS on socket pairs, mmap
 * edge cases): a control buffer too small for the descriptors (MSG_CTRUNC,
 * the rest closed), several SCM_RIGHTS in one message, more descriptors
 * than one message may carry, SO_PASSCRED, credentials naming another
 * process as root and as a plain user, where a stream read stops around
 * descriptors; then MAP_FIXED_NOREPLACE, mremap's variants, mprotect
 * splitting a mapping, MAP_POPULATE, msync and madvise rules, and which
 * mmap flags MAP_SHARED_VALIDATE accepts. Descriptor
 * numbers are printed (the sandbox must hand out the same lowest numbers);
 * addresses and pids are not, only whether they match. */
#include "t.h"
#include <grp.h>
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/user.h>

static int count_open(void) {
    int n = 0;
    for (int fd = 0; fd < 1024; fd++) if (fcntl(fd, F_GETFD) >= 0) n++;
    return n;
}

/* Sends `n` copies of fd 0 (plus data) as one SCM_RIGHTS per `per` fds. */
static long send_fds(int s, int n, int per, const char *data) {
    static union { char b[CMSG_SPACE(sizeof(int) * 300) * 4]; struct cmsghdr a; } u;
    memset(&u, 0, sizeof u);
    struct iovec v = {(void *)data, strlen(data)};
    struct msghdr m = {0};
    m.msg_iov = &v; m.msg_iovlen = 1;
    m.msg_control = u.b;
    size_t len = 0;
    for (int done = 0; done < n; done += per) {
        int k = n - done < per ? n - done : per;
        struct cmsghdr *h = (struct cmsghdr *)(u.b + len);
        h->cmsg_len = CMSG_LEN(sizeof(int) * k);
        h->cmsg_level = SOL_SOCKET; h->cmsg_type = SCM_RIGHTS;
        for (int i = 0; i < k; i++) ((int *)CMSG_DATA(h))[i] = 0;
        len += CMSG_SPACE(sizeof(int) * k);
    }
    m.msg_controllen = len;
    return sendmsg(s, &m, 0);
}

/* Receives into a control buffer of `cap` bytes; prints the data, flags,
 * each control message and the descriptors it installed (then closes them). */
static void recv_show(int s, size_t cap, size_t datacap, int flags) {
    char data[64] = {0};
    static union { char b[8192]; struct cmsghdr a; } u;
    memset(&u, 0, sizeof u);
    struct iovec v = {data, datacap};
    struct msghdr m = {0};
    m.msg_iov = &v; m.msg_iovlen = 1;
    m.msg_control = cap ? u.b : NULL; m.msg_controllen = cap;
    long r = recvmsg(s, &m, flags);
    if (r < 0) { say("  recvmsg = -1 %s", ename(errno)); return; }
    printf("  recvmsg = %ld \"%.*s\" flags%s%s controllen %zu", r, (int)r, data,
           m.msg_flags & MSG_CTRUNC ? " CTRUNC" : "", m.msg_flags & MSG_TRUNC ? " TRUNC" : "", (size_t)m.msg_controllen);
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
        if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
            int k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            printf(" | RIGHTS len %zu:", (size_t)h->cmsg_len);
            for (int i = 0; i < k; i++) {
                int fd = ((int *)CMSG_DATA(h))[i];
                if (i < 4) printf(" %d", fd);
                else if (i == 4) printf(" ... (%d)", k);
                close(fd);
            }
        } else if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_CREDENTIALS) {
            struct ucred c; memcpy(&c, CMSG_DATA(h), sizeof c);
            printf(" | CREDENTIALS len %zu pid %s uid %u gid %u", (size_t)h->cmsg_len,
                   c.pid == getpid() ? "mine" : c.pid == 0 ? "0" : "other", c.uid, c.gid);
        } else printf(" | level %d type %d len %zu", h->cmsg_level, h->cmsg_type, (size_t)h->cmsg_len);
    }
    printf("\n");
    fflush(stdout);
}

static void rights(void) {
    int s[2];
    T(socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    int before = count_open();
    say("-- three fds, room for one");
    T(send_fds(s[0], 3, 3, "abc"));
    recv_show(s[1], CMSG_SPACE(sizeof(int)), 64, 0);
    say("  leaked descriptors: %d", count_open() - before);
    say("-- three fds, no control buffer");
    T(send_fds(s[0], 3, 3, "abc"));
    recv_show(s[1], 0, 64, 0);
    say("  leaked descriptors: %d", count_open() - before);
    say("-- a control buffer shorter than a header");
    T(send_fds(s[0], 1, 1, "abc"));
    recv_show(s[1], 12, 64, 0);
    say("  leaked descriptors: %d", count_open() - before);
    say("-- two SCM_RIGHTS messages of two fds each");
    T(send_fds(s[0], 4, 2, "two"));
    recv_show(s[1], 256, 64, 0);
    say("-- 253 fds (SCM_MAX_FD), 254 fds");
    T(send_fds(s[0], 253, 253, "max"));
    recv_show(s[1], 4096, 64, 0);
    T(send_fds(s[0], 254, 254, "over"));
    T(send_fds(s[0], 254, 127, "over"));
    say("-- MSG_PEEK with fds, then the real read");
    T(send_fds(s[0], 2, 2, "peek"));
    recv_show(s[1], 256, 64, MSG_PEEK);
    recv_show(s[1], 256, 64, 0);
    say("  leaked descriptors: %d", count_open() - before);
    say("-- a stream read stops after the bytes that carried fds");
    T(send_fds(s[0], 1, 1, "ab"));
    T(write(s[0], "cd", 2));
    recv_show(s[1], 256, 64, 0);
    recv_show(s[1], 256, 64, MSG_DONTWAIT);
    say("-- bytes without fds, then bytes with fds, read at once");
    T(write(s[0], "ab", 2));
    T(send_fds(s[0], 1, 1, "cd"));
    recv_show(s[1], 256, 64, 0);
    recv_show(s[1], 256, 64, MSG_DONTWAIT);
    say("-- fds sent with a short read of the data");
    T(send_fds(s[0], 1, 1, "long data"));
    recv_show(s[1], 256, 4, 0);
    recv_show(s[1], 256, 64, MSG_DONTWAIT);
    say("-- SCM_RIGHTS with a closed descriptor");
    int bad = 100;
    char cb[CMSG_SPACE(sizeof(int))] = {0};
    struct cmsghdr *h = (struct cmsghdr *)cb;
    h->cmsg_len = CMSG_LEN(sizeof(int)); h->cmsg_level = SOL_SOCKET; h->cmsg_type = SCM_RIGHTS;
    memcpy(CMSG_DATA(h), &bad, sizeof bad);
    struct iovec v = {"x", 1};
    struct msghdr m = {0}; m.msg_iov = &v; m.msg_iovlen = 1; m.msg_control = cb; m.msg_controllen = sizeof cb;
    T(sendmsg(s[0], &m, 0));
    say("-- unknown SOL_SOCKET type, other level");
    h->cmsg_type = 77;
    T(sendmsg(s[0], &m, 0));
    h->cmsg_level = 0 /* SOL_IP */; h->cmsg_type = SCM_RIGHTS;
    T(sendmsg(s[0], &m, 0));
    recv_show(s[1], 256, 64, MSG_DONTWAIT);
    close(s[0]); close(s[1]);

    say("-- datagram pair: three fds, room for one; MSG_TRUNC with fds");
    T(socketpair(AF_UNIX, SOCK_DGRAM, 0, s));
    T(send_fds(s[0], 3, 3, "dgram"));
    recv_show(s[1], CMSG_SPACE(sizeof(int)), 64, 0);
    T(send_fds(s[0], 2, 2, "truncated"));
    recv_show(s[1], 256, 3, 0);
    say("  leaked descriptors: %d", count_open() - before);
    close(s[0]); close(s[1]);
}

static void send_cred(int s, pid_t pid, uid_t uid, gid_t gid, const char *what) {
    char cb[CMSG_SPACE(sizeof(struct ucred))] = {0};
    struct cmsghdr *h = (struct cmsghdr *)cb;
    h->cmsg_len = CMSG_LEN(sizeof(struct ucred)); h->cmsg_level = SOL_SOCKET; h->cmsg_type = SCM_CREDENTIALS;
    struct ucred c = {pid, uid, gid};
    memcpy(CMSG_DATA(h), &c, sizeof c);
    struct iovec v = {"c", 1};
    struct msghdr m = {0}; m.msg_iov = &v; m.msg_iovlen = 1; m.msg_control = cb; m.msg_controllen = sizeof cb;
    long r = sendmsg(s, &m, 0);
    if (r < 0) say("  %s: sendmsg = -1 %s", what, ename(errno));
    else say("  %s: sendmsg = %ld", what, r);
}

static void credentials(void) {
    int s[2], on = 1;
    T(socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    say("-- no SO_PASSCRED: credentials sent are not delivered");
    send_cred(s[0], getpid(), 0, 0, "own pid");
    recv_show(s[1], 256, 64, 0);
    T(setsockopt(s[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof on));
    int v = 0; socklen_t vl = sizeof v;
    T(getsockopt(s[1], SOL_SOCKET, SO_PASSCRED, &v, &vl)); say("  SO_PASSCRED %d", v);
    say("-- SO_PASSCRED: plain data carries the sender's credentials");
    T(write(s[0], "p", 1));
    recv_show(s[1], 256, 64, 0);
    say("-- root names other ids and an existing pid");
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) { pause(); _exit(0); }
    send_cred(s[0], child, 1234, 5678, "child pid, other ids");
    recv_show(s[1], 256, 64, 0);
    send_cred(s[0], 999999, 0, 0, "no such pid");
    send_cred(s[0], 0, 0, 0, "pid 0");
    send_cred(s[0], getpid(), -1, 0, "uid -1");
    recv_show(s[1], 256, 64, MSG_DONTWAIT);
    say("-- a credentials buffer too small");
    T(write(s[0], "q", 1));
    recv_show(s[1], CMSG_SPACE(sizeof(struct ucred)) - 8, 64, 0);
    say("-- as a plain user");
    fflush(stdout);
    pid_t u = fork();
    if (u == 0) {
        setgroups(0, NULL);
        if (setresgid(1000, 1000, 1000) || setresuid(1000, 1000, 1000)) { say("  setresuid failed"); _exit(1); }
        send_cred(s[0], getpid(), 1000, 1000, "own ids");
        send_cred(s[0], child, 1000, 1000, "another pid");
        send_cred(s[0], getpid(), 0, 1000, "uid 0");
        send_cred(s[0], getpid(), 1000, 0, "gid 0");
        _exit(0);
    }
    int st; waitpid(u, &st, 0);
    recv_show(s[1], 256, 64, MSG_DONTWAIT);
    kill(child, SIGKILL); waitpid(child, NULL, 0);
    say("-- fds and credentials in one message");
    char cb[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))] = {0};
    struct cmsghdr *h = (struct cmsghdr *)cb;
    h->cmsg_len = CMSG_LEN(sizeof(int)); h->cmsg_level = SOL_SOCKET; h->cmsg_type = SCM_RIGHTS;
    int zero = 0; memcpy(CMSG_DATA(h), &zero, sizeof zero);
    h = (struct cmsghdr *)(cb + CMSG_SPACE(sizeof(int)));
    h->cmsg_len = CMSG_LEN(sizeof(struct ucred)); h->cmsg_level = SOL_SOCKET; h->cmsg_type = SCM_CREDENTIALS;
    struct ucred c = {getpid(), 0, 0}; memcpy(CMSG_DATA(h), &c, sizeof c);
    struct iovec iv = {"b", 1};
    struct msghdr m = {0}; m.msg_iov = &iv; m.msg_iovlen = 1; m.msg_control = cb; m.msg_controllen = sizeof cb;
    T(sendmsg(s[0], &m, 0));
    recv_show(s[1], 256, 64, 0);
    close(s[0]); close(s[1]);
}

/* A call that returns an address: prints "at WANT", "elsewhere" or the errno. */
#define A(expr, want) ({ void *a_r_ = (void *)(expr); int a_e_ = errno; \
    if (a_r_ == MAP_FAILED) say("%s = MAP_FAILED %s", #expr, ename(a_e_)); \
    else say("%s = %s", #expr, a_r_ == (void *)(want) ? "at " #want : "elsewhere"); errno = 0; a_r_; })

static sigjmp_buf jb;
static void on_segv(int s) { siglongjmp(jb, s); }
static int probe(volatile char *p, int write) {
    if (sigsetjmp(jb, 1)) return 0;
    if (write) *p = 1; else (void)*p;
    return 1;
}

/* The permissions of the mappings that cover [a, a+len) in /proc/self/maps. */
static void show_maps(const char *label, char *a, size_t len) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    printf("  %s:", label);
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi; char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3) continue;
        if (hi <= (unsigned long)a || lo >= (unsigned long)a + len) continue;
        printf(" [%+ld,%+ld) %s", (long)(lo - (unsigned long)a) / 4096, (long)(hi - (unsigned long)a) / 4096, perms);
    }
    printf("\n");
    if (f) fclose(f);
    fflush(stdout);
}

static void mappings(void) {
    signal(SIGSEGV, on_segv);
    signal(SIGBUS, on_segv);
    long pg = 4096;
    char *a = mmap(NULL, 8 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    say("-- MAP_FIXED_NOREPLACE");
    A(mmap(a + 2 * pg, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0), a + 2 * pg);
    T(munmap(a + 4 * pg, 2 * pg));
    A(mmap(a + 3 * pg, 2 * pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0), a + 3 * pg);
    A(mmap(a + 4 * pg, 2 * pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0), a + 4 * pg);
    show_maps("after NOREPLACE", a, 8 * pg);
    A(mmap(a + 4 * pg + 1, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0), NULL);
    say("-- mprotect splits and merges");
    /* Inaccessible guard pages on both sides keep neighbours from merging. */
    char *guard = mmap(NULL, 6 * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *m = mmap(guard + pg, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    T(mprotect(m + pg, pg, PROT_READ));
    show_maps("middle read-only", m, 4 * pg);
    say("  write below %d, in %d, above %d", probe(m, 1), probe(m + pg, 1), probe(m + 2 * pg, 1));
    T(mprotect(m + pg, pg, PROT_READ | PROT_WRITE));
    say("  write in the middle again %d", probe(m + pg, 1));
    T(mprotect(m + pg, 2 * pg, PROT_NONE));
    say("  read in PROT_NONE %d", probe(m + pg, 0));
    T(munmap(m + 3 * pg, pg));
    T(mprotect(m + 2 * pg, 2 * pg, PROT_READ));     /* runs into the hole: ENOMEM */
    show_maps("after a failed mprotect", m, 4 * pg);
    T(mprotect(a + 1, pg, PROT_READ));
    T(mprotect(a, pg, PROT_READ | 0x1000));
    say("-- mremap");
    char *b = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(b, 'b', 4 * pg);
    A(mremap(b, 4 * pg, 2 * pg, 0), b);                   /* shrink in place */
    say("  tail gone: %d", !probe(b + 3 * pg, 0));
    A(mremap(b, 2 * pg, 3 * pg, 0), b);                   /* grow into the freed tail */
    say("  grown page reads zero: %d", probe(b + 2 * pg, 0) && b[2 * pg] == 0);
    A(mremap(a, pg, 2 * pg, 0), NULL);              /* next page is taken */
    char *c = mremap(b, 3 * pg, 64 * pg, MREMAP_MAYMOVE);
    say("  MAYMOVE: %s, data kept %d", c == MAP_FAILED ? ename(errno) : "ok", c != MAP_FAILED && c[0] == 'b' && c[pg] == 'b');
    char *d = mremap(c, 64 * pg, 64 * pg, MREMAP_MAYMOVE | MREMAP_FIXED, a);
    say("  FIXED onto another mapping: %s, at target %d, data kept %d", d == MAP_FAILED ? ename(errno) : "ok", d == a, d != MAP_FAILED && d[0] == 'b');
    A(mremap(a, pg, pg, MREMAP_FIXED, a + 100 * pg), NULL);   /* FIXED without MAYMOVE */
    A(mremap(a, 4 * pg, 4 * pg, MREMAP_MAYMOVE | MREMAP_FIXED, a + 2 * pg), NULL); /* overlap */
    A(mremap(a + 1, pg, pg, 0), NULL);
    A(mremap(a, pg, 0, MREMAP_MAYMOVE), NULL);
    A(mremap(a, pg, pg, 0x80), NULL);
    char *e = mremap(a, pg, pg, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
    say("  DONTUNMAP: %s, data moved %d, old reads zero %d", e == MAP_FAILED ? ename(errno) : "ok",
        e != MAP_FAILED && e[0] == 'b', e != MAP_FAILED && probe(a, 0) && a[0] == 0);
    char *s = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    s[0] = 's';
    char *s2 = mremap(s, 0, pg, MREMAP_MAYMOVE);           /* old_size 0: a second view */
    say("  old_size 0 of a shared mapping: %s, same page %d", s2 == MAP_FAILED ? ename(errno) : "ok",
        s2 != MAP_FAILED && (s2[0] = 't', s[0] == 't'));
    char *hole = mmap(NULL, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(hole, pg);
    A(mremap(hole, pg, pg, MREMAP_MAYMOVE), NULL);          /* not mapped */
    say("-- MAP_POPULATE, mincore, msync, madvise");
    char *p = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    unsigned char vec[4] = {0};
    T(mincore(p, 4 * pg, vec)); say("  populated resident: %d %d %d %d", vec[0] & 1, vec[1] & 1, vec[2] & 1, vec[3] & 1);
    T(mincore(p + 1, pg, vec));
    T(msync(p, pg, MS_SYNC | MS_ASYNC));
    T(msync(p + 1, pg, MS_SYNC));
    T(msync(p, pg, 0x100));
    T(msync(p, pg, MS_INVALIDATE));
    T(munmap(p + pg, pg));
    T(msync(p, 4 * pg, MS_SYNC));
    memset(p, 'p', pg);
    T(madvise(p, pg, MADV_DONTNEED)); say("  private anon after DONTNEED reads %d", p[0]);
    int fd = T(open("mapped", O_RDWR | O_CREAT | O_TRUNC, 0644));
    T(write(fd, "file contents", 13));
    char *fm = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    fm[0] = 'F';
    T(madvise(fm, pg, MADV_DONTNEED));
    T(madvise(p, pg, 12345));
    T(madvise(p + 1, pg, MADV_NORMAL));
    T(madvise(p, pg, MADV_FREE));
    T(madvise(fm, pg, MADV_FREE));                     /* file mapping */
    T(madvise(p, pg, MADV_REMOVE));                    /* private anon */
    A(mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), NULL);
    A(mmap(NULL, pg, PROT_READ, MAP_PRIVATE, fd, 1), NULL);
    A(mmap(NULL, pg, PROT_READ, MAP_SHARED | MAP_PRIVATE, fd, 0), NULL);
    close(fd);
    fd = T(open("mapped", O_RDONLY));
    A(mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), NULL);
    A(mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0), NULL);
    close(fd);
    fd = T(open("mapped", O_WRONLY));
    A(mmap(NULL, pg, PROT_WRITE, MAP_SHARED, fd, 0), NULL);
    close(fd);
    say("-- MAP_GROWSDOWN");
    char *g = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN, -1, 0);
    say("  mapped %d", g != MAP_FAILED);
    if (g != MAP_FAILED) show_maps("growsdown", g, 4 * pg);
}

/* The x86 debug registers through PTRACE_POKEUSER / PEEKUSER (LTP's
 * ptrace09 sets a watchpoint this way). */
static void debug_registers(void) {
    say("-- debug registers of a tracee");
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) { ptrace(PTRACE_TRACEME, 0, NULL, NULL); raise(SIGSTOP); _exit(7); }
    int st;
    waitpid(c, &st, 0);
    say("  stopped by %d", WIFSTOPPED(st) ? WSTOPSIG(st) : -1);
    static short watched;
    size_t dr = offsetof(struct user, u_debugreg);
    T(ptrace(PTRACE_POKEUSER, c, (void *)dr, &watched));
    T(ptrace(PTRACE_POKEUSER, c, (void *)(dr + 7 * 8), (void *)0x30001));
    errno = 0;
    long v = ptrace(PTRACE_PEEKUSER, c, (void *)dr, NULL);
    say("  DR0 reads back: %d", v == (long)&watched);
    v = ptrace(PTRACE_PEEKUSER, c, (void *)(dr + 7 * 8), NULL);
    say("  DR7 reads back %#lx", v);
    T(ptrace(PTRACE_POKEUSER, c, (void *)(dr + 4 * 8), (void *)0));
    T(ptrace(PTRACE_POKEUSER, c, (void *)(dr + 3), (void *)0));
    T(ptrace(PTRACE_POKEUSER, c, (void *)(sizeof(struct user)), (void *)0));
    T(ptrace(PTRACE_POKEUSER, c, (void *)dr, (void *)0xffff900000000000UL));
    T(ptrace(PTRACE_POKEUSER, c, (void *)(dr + 7 * 8), (void *)0));
    T(ptrace(PTRACE_CONT, c, NULL, NULL));
    waitpid(c, &st, 0);
    say("  exited %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

/* Which mmap flags each kind of mapping accepts (LTP mmap20):
 * MAP_SHARED_VALIDATE refuses unknown flags and MAP_SYNC on a non-DAX file
 * (EOPNOTSUPP) and is for files only; no file mapping grows down; no file
 * here is on hugetlbfs. */
static void mapping_flags(void) {
    int fd = open("mapflags", O_RDWR | O_CREAT | O_TRUNC, 0644);
    T(ftruncate(fd, 8192));
    static const int bits[] = {0, 1 << 10, 0x40, 0x80, 0x80000 /* MAP_SYNC */, 0x100000 /* MAP_FIXED_NOREPLACE */,
                               0x200000, 0x400000, MAP_HUGETLB, MAP_STACK, MAP_POPULATE, MAP_NONBLOCK,
                               MAP_NORESERVE, MAP_LOCKED, MAP_GROWSDOWN, 0x4000000, 0x8000000};
    for (unsigned i = 0; i < sizeof bits / sizeof *bits; i++) {
        void *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | bits[i], fd, 0);
        printf("  0x%x: validate %s", bits[i], p == MAP_FAILED ? ename(errno) : "ok");
        if (p != MAP_FAILED) munmap(p, 8192);
        /* Not compared: plain MAP_SHARED with MAP_SYNC (the host file
         * system's answer) or with MAP_FIXED_NOREPLACE at address 0. */
        if (bits[i] != 0x80000 && bits[i] != 0x100000) {
            p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED | bits[i], fd, 0);
            printf(", shared %s", p == MAP_FAILED ? ename(errno) : "ok");
            if (p != MAP_FAILED) munmap(p, 8192);
        }
        if (bits[i] != MAP_HUGETLB) {
            p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_ANONYMOUS | bits[i], -1, 0);
            printf(", anonymous validate %s", p == MAP_FAILED ? ename(errno) : "ok");
            if (p != MAP_FAILED) munmap(p, 8192);
        }
        printf("\n");
    }
    int ro = open("mapflags", O_RDONLY);
    void *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | (1 << 10), ro, 0);
    say("  read-only fd, writable, unknown flag: %s", p == MAP_FAILED ? ename(errno) : "ok");
    close(ro);
    close(fd);
}

int main(void) {
    debug_registers();
    rights();
    credentials();
    mappings();
    mapping_flags();
    say("end");
    return 0;
}
