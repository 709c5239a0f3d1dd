/* Behaviours the LTP run found different (LTP.md): execveat's dirfd rules,
 * mmap's error order and /dev/zero mappings, a whole read of a large
 * shared-mapped tmpfs file, inotify's event order and MOVE_SELF mask, and
 * epoll_wait's round robin over more ready entries than it may return,
 * which record lock F_GETLK reports, file leases. */
#include "t.h"
#include <signal.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/msg.h>
#include <sys/resource.h>

static void execveat_rules(void) {
    T(mkdir("ex", 0755));
    /* This program itself (a script would see /dev/fd/N names). */
    T(link("/work/prog", "ex/prog.sh"));
    T(symlink("prog.sh", "ex/link"));
    char *argv[] = {"prog", "child", NULL};
    int dir = open("ex", O_DIRECTORY), file = open("ex/prog.sh", O_PATH);
    const struct { int fd; const char *path; int flags; } c[] = {
        {-1, "/work/ex/prog.sh", 0},       /* absolute: dirfd unused */
        {dir, "prog.sh", 0},
        {file, "", AT_EMPTY_PATH},         /* the O_PATH descriptor itself */
        {dir, "link", AT_SYMLINK_NOFOLLOW},
        {dir, "prog.sh", 0x4000},          /* unknown flag */
        {file, "prog.sh", 0},              /* dirfd not a directory */
        {-1, "prog.sh", 0},
    };
    for (unsigned i = 0; i < sizeof c / sizeof c[0]; i++) {
        fflush(stdout);
        pid_t p = fork();
        if (p == 0) {
            syscall(SYS_execveat, c[i].fd, c[i].path, argv, environ, c[i].flags);
            say("execveat case %u: -1 %s", i, ename(errno));
            _exit(0);
        }
        waitpid(p, NULL, 0);
    }
    close(dir); close(file);
}

static void mmap_rules(void) {
    int fd = open("gone", O_RDWR | O_CREAT, 0644);
    close(fd);
    /* EBADF comes before the zero length. */
    say("mmap closed fd, len 0: %s", mmap(NULL, 0, PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED ? ename(errno) : "mapped");
    say("mmap closed fd, bad offset: %s", mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 1) == MAP_FAILED ? ename(errno) : "mapped");
    int z = open("/dev/zero", O_RDONLY);
    char *r = mmap(NULL, 4096, PROT_READ, MAP_SHARED, z, 0);
    say("/dev/zero shared read-only: %s", r == MAP_FAILED ? ename(errno) : (r[100] == 0 ? "zeros" : "junk"));
    close(z);
    z = open("/dev/zero", O_RDWR);
    int *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, z, 0);
    if (w != MAP_FAILED) {
        fflush(stdout);
        if (fork() == 0) { w[0] = 42; _exit(0); }
        wait(NULL);
        say("/dev/zero shared across fork: %d", w[0]);
    } else say("/dev/zero shared rw: %s", ename(errno));
    close(z);

    /* A 1 MB file written through a shared mapping reads back whole. */
    size_t n = 1 << 20;
    fd = open("big", O_RDWR | O_CREAT | O_TRUNC, 0644);
    T(ftruncate(fd, n));
    char *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    for (size_t i = 0; i < n; i++) m[i] = (char)i;
    char *buf = malloc(n);
    T(pread(fd, buf, n, 0));
    say("read back whole: %d", memcmp(buf, m, n) == 0);
    munmap(m, n); free(buf); close(fd);
}

static void show_events(int in) {
    char buf[4096];
    ssize_t len = read(in, buf, sizeof buf);
    for (char *p = buf; len > 0 && p < buf + len;) {
        struct inotify_event *e = (struct inotify_event *)p;
        say("event wd=%d mask=%x name=%s", e->wd, e->mask, e->len ? e->name : "");
        p += sizeof *e + e->len;
    }
}

static void inotify_rules(void) {
    T(mkdir("w", 0755));
    T(mkdir("w/sub", 0755));
    int in = inotify_init1(IN_NONBLOCK);
    T(inotify_add_watch(in, "w", IN_ATTRIB));
    T(inotify_add_watch(in, "w/sub", IN_ATTRIB | IN_MOVE_SELF));
    T(chmod("w/sub", 0700));                  /* parent's watch first */
    T(rename("w/sub", "w/sub2"));             /* MOVE_SELF, no IN_ISDIR */
    show_events(in);
    close(in);
}

static void epoll_round_robin(void) {
    int ep = epoll_create1(0), p[6][2];
    for (int i = 0; i < 6; i++) {
        T(pipe(p[i]));
        write(p[i][1], "x", 1);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, p[i][0], &ev);
    }
    int seen[6] = {0};
    for (int round = 0; round < 6; round++) {
        struct epoll_event out[2];
        int r = epoll_wait(ep, out, 2, 0);
        for (int k = 0; k < r; k++) seen[out[k].data.u32]++;
    }
    say("epoll round robin: %d %d %d %d %d %d", seen[0], seen[1], seen[2], seen[3], seen[4], seen[5]);
}

static void wipe_on_fork(void) {
    char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(m, 7, 8192);
    T(madvise(m, 4096, MADV_WIPEONFORK));
    int z = open("/dev/zero", O_RDONLY);
    char *f = mmap(NULL, 4096, PROT_READ, MAP_SHARED, z, 0);
    T(madvise(f, 4096, MADV_WIPEONFORK));     /* not private anonymous */
    fflush(stdout);
    if (fork() == 0) { say("child: wiped %d kept %d", m[0], m[4096]); _exit(0); }
    wait(NULL);
    T(madvise(m, 4096, MADV_KEEPONFORK));
    fflush(stdout);
    if (fork() == 0) { say("child after KEEPONFORK: %d", m[0]); _exit(0); }
    wait(NULL);
    say("parent: %d", m[0]);
}

static void offsets(void) {
    int fd = open("off", O_RDWR | O_CREAT | O_TRUNC, 0644);
    write(fd, "0123456789", 10);
    char b[16];
    struct iovec v = {b, 4};
    T(preadv(fd, &v, 1, -1));
    T(pwritev(fd, &v, 1, -1));
    T(pread(fd, b, 4, -1));
    T(pwrite(fd, b, 4, -1));
    T(pread(-5, b, 4, -1));                  /* the offset before the fd */
    struct iovec neg = {b, (size_t)-1};
    T(preadv(fd, &neg, 1, -1));              /* the vector before the offset */
    int p[2];
    pipe(p);
    T(pwritev2(p[0], &v, 1, 0, 0));          /* ESPIPE before EBADF */
    T(preadv(p[1], &v, 1, 0));
    T(pread(fd, b, 4, 6));
    close(fd); close(p[0]); close(p[1]);
}

/* A blocking connect that succeeded leaves the socket connected: a second
 * connect is EISCONN, even after the peer closed. */
static void connect_twice(void) {
    struct sockaddr_in s = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof s;
    int srv = socket(AF_INET, SOCK_STREAM, 0);
    if (bind(srv, (void *)&s, l) || listen(srv, 4) || getsockname(srv, (void *)&s, &l)) { say("server: %s", ename(errno)); return; }
    int c = socket(AF_INET, SOCK_STREAM, 0);
    T(connect(c, (void *)&s, sizeof s));
    int a = accept(srv, NULL, NULL);
    close(a);
    T(connect(c, (void *)&s, sizeof s));
    T(connect(c, (void *)&s, sizeof s));
    close(c); close(srv);
}

/* readahead: a readable regular file only (LTP readahead01). */
static void readahead_rules(void) {
    int fd = open("ra", O_RDWR | O_CREAT | O_TRUNC, 0644), wo = open("ra", O_WRONLY), p[2];
    T(pipe(p));
    T(syscall(SYS_readahead, fd, 0, 4096));
    T(syscall(SYS_readahead, wo, 0, 4096));
    T(syscall(SYS_readahead, p[0], 0, 4096));
    T(syscall(SYS_readahead, -1, 0, 4096));
    int d = open(".", O_RDONLY | O_DIRECTORY);
    T(syscall(SYS_readahead, d, 0, 4096));
    close(fd); close(wo); close(p[0]); close(p[1]); close(d);
}

/* SO_SNDBUFFORCE with a huge size never leaves a negative buffer size
 * (LTP setsockopt04; the size itself is the host's to choose). */
static void sndbufforce(void) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    unsigned v = 0xffffff00, got = 0;
    socklen_t l = sizeof got;
    T(setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v));
    T(getsockopt(s, SOL_SOCKET, SO_SNDBUF, &got, &l));
    say("SO_SNDBUF positive: %d", (int)got > 0);
    close(s);
}

/* GETNCNT/GETZCNT count the tasks asleep on one semaphore (LTP semctl01). */
static void sem_waiters(void) {
    int id = semget(IPC_PRIVATE, 2, 0600);
    pid_t kids[3];
    for (int i = 0; i < 3; i++) {
        fflush(stdout);
        if ((kids[i] = fork()) == 0) {
            struct sembuf op = {.sem_num = 1, .sem_op = -1};
            semop(id, &op, 1);
            _exit(0);
        }
    }
    int n = 0;
    for (int tries = 0; tries < 2000 && (n = semctl(id, 1, GETNCNT)) < 3; tries++) usleep(5000);
    say("GETNCNT: %d, on the other semaphore: %d, GETZCNT: %d", n, semctl(id, 0, GETNCNT), semctl(id, 1, GETZCNT));
    struct sembuf up = {.sem_num = 1, .sem_op = 3};
    T(semop(id, &up, 1));
    for (int i = 0; i < 3; i++) waitpid(kids[i], NULL, 0);
    say("GETNCNT after: %d", semctl(id, 1, GETNCNT));
    T(semctl(id, 0, IPC_RMID));
}

/* A zombie keeps its /proc/PID directory until it is reaped (LTP semctl01
 * waits for state Z there). */
static void zombie_proc(void) {
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) _exit(3);
    char path[64], buf[512] = "", st = '?';
    snprintf(path, sizeof path, "/proc/%d/stat", p);
    for (int tries = 0; tries < 2000 && st != 'Z'; tries++) {
        int fd = open(path, O_RDONLY);
        if (fd < 0) { say("open %s: %s", "stat", ename(errno)); break; }
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        buf[n > 0 ? n : 0] = 0;
        char *e = strrchr(buf, ')');
        if (e) st = e[2];
        if (st != 'Z') usleep(5000);
    }
    say("zombie state: %c, name: %s", st, strstr(buf, "(prog)") ? "prog" : buf);
    snprintf(path, sizeof path, "/proc/%d/cmdline", p);
    int fd = open(path, O_RDONLY);
    say("zombie cmdline: %zd", fd < 0 ? (ssize_t)-1 : read(fd, buf, sizeof buf));
    if (fd >= 0) close(fd);
    int status;
    T(waitpid(p, &status, 0) == p);
    say("exit %d; stat after reaping: %s", WEXITSTATUS(status), access(path, F_OK) ? ename(errno) : "present");
}

/* A shared mapping of a read-only descriptor cannot be made writable
 * (LTP mprotect01); a private one can. */
static void mprotect_rules(void) {
    int fd = open("mp", O_RDWR | O_CREAT | O_TRUNC, 0644);
    T(ftruncate(fd, 4096));
    close(fd);
    fd = open("mp", O_RDONLY);
    char *s = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0), *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    T(mprotect(s, 4096, PROT_WRITE));
    T(mprotect(s, 4096, PROT_READ | PROT_EXEC));
    T(mprotect(p, 4096, PROT_READ | PROT_WRITE));
    munmap(s, 4096); munmap(p, 4096); close(fd);
    fd = open("/dev/zero", O_RDONLY);
    s = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    T(mprotect(s, 4096, PROT_READ | PROT_WRITE));
    munmap(s, 4096); close(fd);
}

/* /proc/sysvipc lists each kind's objects in Linux's columns, and the
 * *_STAT_ANY commands skip the read check (LTP shmctl04, msgctl06). */
static void sysvipc(void) {
    int shm = shmget(IPC_PRIVATE, 10000, 0600), msg = msgget(IPC_PRIVATE, 0600), sem = semget(IPC_PRIVATE, 3, 0600);
    struct { long type; char text[8]; } m = {1, "hello"};
    T(msgsnd(msg, &m, 5, 0));
    const char *kinds[] = {"shm", "msg", "sem"};
    for (int k = 0; k < 3; k++) {
        char path[64], line[512];
        snprintf(path, sizeof path, "/proc/sysvipc/%s", kinds[k]);
        FILE *f = fopen(path, "r");
        if (!f) { say("%s: %s", path, ename(errno)); continue; }
        int lines = 0;
        while (fgets(line, sizeof line, f)) {
            if (lines++ == 0) { say("%s header: %.40s", kinds[k], line); continue; }
            long a[16] = {0};
            int n = sscanf(line, "%li %li %lo %li %li %li %li %li %li %li %li %li %li %li %li %li",
                           &a[0], &a[1], &a[2], &a[3], &a[4], &a[5], &a[6], &a[7], &a[8], &a[9], &a[10], &a[11], &a[12], &a[13], &a[14], &a[15]);
            if (k == 0) say("shm row: %d fields, id ok %d, perms %lo, size %ld, nattch %ld, rss %ld, swap %ld", n, a[1] == shm, a[2], a[3], a[6], a[14], a[15]);
            if (k == 1) say("msg row: %d fields, id ok %d, perms %lo, cbytes %ld, qnum %ld", n, a[1] == msg, a[2], a[3], a[4]);
            if (k == 2) say("sem row: %d fields, id ok %d, perms %lo, nsems %ld", n, a[1] == sem, a[2], a[3]);
        }
        fclose(f);
    }
    struct shmid_ds sd; struct msqid_ds md; struct semid_ds semd;
    union { int val; struct semid_ds *buf; } arg = {.buf = &semd};
    T(seteuid(65534));
    T(shmctl(shm, IPC_STAT, &sd));
    T(shmctl(shm, SHM_STAT_ANY, &sd) == shm);
    T(msgctl(msg, MSG_STAT_ANY, &md) == msg);
    T(semctl(sem, 0, SEM_STAT_ANY, arg) == sem);
    T(seteuid(0));
    struct shm_info si;
    T(shmctl(0, SHM_INFO, (struct shmid_ds *)&si) == shm);
    say("shm_info: used %d tot %lu rss %lu", si.used_ids, si.shm_tot, si.shm_rss);
    char *p = shmat(shm, NULL, 0);
    p[0] = 1;                                 /* one page touched */
    T(shmctl(0, SHM_INFO, (struct shmid_ds *)&si) == shm);
    say("shm_info after a write: rss %lu", si.shm_rss);
    /* A forked child inherits the attachment; exit and exec end it. */
    int go[2];
    T(pipe(go));
    fflush(stdout);
    pid_t kid = fork();
    if (kid == 0) { char c; read(go[0], &c, 1); _exit(p[0]); }
    T(shmctl(shm, IPC_STAT, &sd));
    say("nattch with a forked child: %lu", (unsigned long)sd.shm_nattch);
    write(go[1], "x", 1);
    int st;
    T(waitpid(kid, &st, 0) == kid);
    T(shmctl(shm, IPC_STAT, &sd));
    say("nattch after it exited (status %d): %lu", WEXITSTATUS(st), (unsigned long)sd.shm_nattch);
    fflush(stdout);
    if ((kid = fork()) == 0) { execl("/bin/true", "true", (char *)0); _exit(9); }
    T(waitpid(kid, &st, 0) == kid);
    T(shmctl(shm, IPC_STAT, &sd));
    say("nattch after a child's exec: %lu", (unsigned long)sd.shm_nattch);
    close(go[0]); close(go[1]);
    T(shmdt(p));
    struct msginfo mi;
    T(msgctl(0, MSG_INFO, (struct msqid_ds *)&mi) == msg);
    say("msg_info: pool %d map %d tql %d", mi.msgpool, mi.msgmap, mi.msgtql);
    shmctl(shm, IPC_RMID, NULL); msgctl(msg, IPC_RMID, NULL); semctl(sem, 0, IPC_RMID);
}

/* A locked mapping refuses msync(MS_INVALIDATE) (LTP msync03); mlockall
 * honours RLIMIT_MEMLOCK without CAP_IPC_LOCK (mlockall03). */
static long vmlck(void) {
    char l[256]; long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(l, sizeof l, f)) if (!strncmp(l, "VmLck:", 6)) kb = atol(l + 6);
    if (f) fclose(f);
    return kb;
}

static void locked_mappings(void) {
    int fd = open("lk", O_RDWR | O_CREAT | O_TRUNC, 0644);
    T(ftruncate(fd, 8192));
    char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, fd, 0);
    T(msync(m, 8192, MS_INVALIDATE));
    T(msync(m, 8192, MS_SYNC));
    T(munlock(m, 8192));
    T(msync(m, 8192, MS_INVALIDATE));
    T(mlock(m, 8192));
    T(msync(m, 4096, MS_INVALIDATE));
    T(munlockall());
    T(msync(m, 8192, MS_INVALIDATE));
    munmap(m, 8192); close(fd);
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        struct rlimit r = {0, 0};
        T(setrlimit(RLIMIT_MEMLOCK, &r));
        T(setuid(65534));
        T(mlockall(MCL_CURRENT));
        r.rlim_cur = r.rlim_max = 0;
        fflush(stdout);
        _exit(0);
    }
    waitpid(p, NULL, 0);
    /* /proc/self/status counts MAP_LOCKED memory in VmLck (LTP mmap14). */
    char *a = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
    say("VmLck after MAP_LOCKED: %ld kB", vmlck());
    T(munlock(a, 1 << 19));
    say("VmLck after munlock of half: %ld kB", vmlck());
    munmap(a, 1 << 20);
    say("VmLck after munmap: %ld kB", vmlck());
}

/* F_GETLK reports the first conflicting record lock in Linux's order (an
 * owner's locks by start, adjacent locks of one type merged), as LTP's
 * fcntl11 and fcntl21 check: asked from another process. */
static void getlk_order(void) {
    int fd = open("lkorder", O_RDWR | O_CREAT | O_TRUNC, 0644);
    T(ftruncate(fd, 100));
    struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 5};
    T(fcntl(fd, F_SETLK, &l));
    l = (struct flock){.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 1, .l_len = 5};
    T(fcntl(fd, F_SETLK, &l));
    l = (struct flock){.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 20, .l_len = 5};
    T(fcntl(fd, F_SETLK, &l));
    l = (struct flock){.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 25, .l_len = 5};
    T(fcntl(fd, F_SETLK, &l));
    l = (struct flock){.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 40, .l_len = 20};
    T(fcntl(fd, F_SETLK, &l));
    l = (struct flock){.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 45, .l_len = 5};
    T(fcntl(fd, F_SETLK, &l));
    fflush(stdout);
    pid_t parent = getpid();
    pid_t p = fork();
    if (p == 0) {
        static const int from[] = {0, 6, 15, 26, 31, 47, 50, 60};
        for (int i = 0; i < 8; i++) {
            struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = from[i], .l_len = 0};
            if (fcntl(fd, F_GETLK, &q) < 0) { say("F_GETLK from %d = -1 %s", from[i], ename(errno)); continue; }
            say("F_GETLK from %d: %s start %ld len %ld %s", from[i],
                q.l_type == F_RDLCK ? "F_RDLCK" : q.l_type == F_WRLCK ? "F_WRLCK" : "F_UNLCK",
                (long)q.l_start, (long)q.l_len, q.l_type == F_UNLCK ? "" : q.l_pid == parent ? "parent" : "other");
        }
        _exit(0);
    }
    waitpid(p, NULL, 0);
    close(fd);
}

/* File leases (LTP fcntl23, fcntl27): who may take which lease, and a
 * conflicting open by another process signals the holder, which gives
 * the lease up in its SIGIO handler. */
static volatile sig_atomic_t lease_signals;
static int lease_fd = -1;
static void on_lease_break(int sig) {
    (void)sig;
    lease_signals++;
    fcntl(lease_fd, F_SETLEASE, F_UNLCK);  /* gone already in Moat: not printed */
}
static void leases(void) {
    int w = Q(open("leased", O_RDWR | O_CREAT | O_TRUNC, 0644));
    T(fcntl(w, F_SETLEASE, F_RDLCK));       /* open for writing: EAGAIN */
    T(fcntl(w, F_SETLEASE, F_WRLCK));       /* the only open: granted */
    T(fcntl(w, F_GETLEASE));
    T(fcntl(w, F_SETLEASE, F_UNLCK));
    T(fcntl(w, F_SETLEASE, F_UNLCK));       /* no lease: EAGAIN */
    T(fcntl(w, F_SETLEASE, 7));
    int r = Q(open("leased", O_RDONLY));
    T(fcntl(r, F_SETLEASE, F_WRLCK));       /* open elsewhere: EAGAIN */
    T(fcntl(r, F_SETLEASE, F_RDLCK));       /* w is open for writing */
    close(w);
    T(fcntl(r, F_SETLEASE, F_RDLCK));
    T(fcntl(r, F_GETLEASE));
    int d = open(".", O_RDONLY | O_DIRECTORY);
    T(fcntl(d, F_SETLEASE, F_RDLCK));       /* not a regular file */
    close(d);
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        T(setuid(65534));
        int o = open("leased", O_RDONLY);
        T(fcntl(o, F_SETLEASE, F_RDLCK));   /* not the owner: EACCES */
        _exit(0);
    }
    waitpid(p, NULL, 0);
    /* Reading does not break a read lease; writing does. */
    struct sigaction sa = {0};
    sa.sa_handler = on_lease_break;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGIO, &sa, NULL);
    lease_fd = r;
    fflush(stdout);
    p = fork();
    if (p == 0) {
        int o = open("leased", O_RDONLY | O_NONBLOCK);
        say("reader opens: %s", o >= 0 ? "ok" : ename(errno));
        o = open("leased", O_WRONLY | O_NONBLOCK);
        say("non-blocking writer opens: %s", o >= 0 ? "ok" : ename(errno));
        o = open("leased", O_WRONLY);
        say("writer opens: %s", o >= 0 ? "ok" : ename(errno));
        _exit(0);
    }
    while (waitpid(p, NULL, 0) < 0 && errno == EINTR) {}
    say("lease broken, holder signalled: %s", lease_signals > 0 ? "yes" : "no");
    T(fcntl(r, F_GETLEASE));
    signal(SIGIO, SIG_DFL);
    close(r);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "child")) { say("exec ran"); return 0; }
    execveat_rules();
    mmap_rules();
    inotify_rules();
    epoll_round_robin();
    offsets();
    wipe_on_fork();
    connect_twice();
    readahead_rules();
    sndbufforce();
    sem_waiters();
    zombie_proc();
    mprotect_rules();
    sysvipc();
    locked_mappings();
    getlk_order();
    leases();
    return 0;
}
