/* Capabilities: capget/capset (v1, v2, v3 headers), the prctl calls
 * (bounding set, ambient set, keep-caps, securebits, no_new_privs), the
 * set*id and execve rules of capabilities(7), and what each dropped
 * capability takes away (as root: EACCES on a mode-000 file without
 * CAP_DAC_OVERRIDE, EPERM from chown without CAP_CHOWN, ...).
 *
 * Native root and Moat's root may start with different sets, so the
 * program first cuts both to the same one (BASE: Docker's default set plus
 * CAP_DAC_READ_SEARCH) and drops everything else from the bounding set;
 * every later line depends only on that. */
#include "t.h"
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <signal.h>
#include <grp.h>
#include <sys/auxv.h>
#include <sys/fsuid.h>
#include <sys/sysmacros.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/xattr.h>

#define BIT(c) (1ULL << (c))
#define DOCKER 0xa80425fbULL
#define BASE (DOCKER | BIT(CAP_DAC_READ_SEARCH))

struct caps { unsigned long long eff, prm, inh; };

static long capget3(int pid, struct caps *c) {
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, pid };
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    long r = syscall(SYS_capget, &h, d);
    c->eff = d[0].effective | (unsigned long long)d[1].effective << 32;
    c->prm = d[0].permitted | (unsigned long long)d[1].permitted << 32;
    c->inh = d[0].inheritable | (unsigned long long)d[1].inheritable << 32;
    return r;
}

static long capset3(unsigned long long eff, unsigned long long prm, unsigned long long inh) {
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2] = {
        { (unsigned)eff, (unsigned)prm, (unsigned)inh },
        { (unsigned)(eff >> 32), (unsigned)(prm >> 32), (unsigned)(inh >> 32) },
    };
    return syscall(SYS_capset, &h, d);
}

static void show(const char *label) {
    struct caps c;
    if (capget3(0, &c) != 0) { say("%s: capget -1 %s", label, ename(errno)); return; }
    say("%s: eff=%llx prm=%llx inh=%llx amb13=%d keep=%d", label, c.eff, c.prm, c.inh,
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_RAW, 0, 0),
        prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0));
}

/* Effective set = permitted minus `drop` (allowed without privilege). */
static long drop_eff(unsigned long long drop) {
    struct caps c;
    capget3(0, &c);
    return capset3(c.prm & ~drop, c.prm, c.inh);
}
static long restore_eff(void) {
    struct caps c;
    capget3(0, &c);
    return capset3(c.prm, c.prm, c.inh);
}

static void status_caps(const char *label) {
    char buf[8192];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0) { say("%s: open status -1 %s", label, ename(errno)); return; }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
        if (!strncmp(l, "Cap", 3) || !strncmp(l, "NoNewPrivs", 10) || !strncmp(l, "Uid", 3) || !strncmp(l, "Gid", 3))
            say("%s: %s", label, l);
}

/* ---- exec probe: run as "prog probe LABEL" ---- */
static int probe(const char *label) {
    uid_t r, e, s;
    getresuid(&r, &e, &s);
    say("%s: exec'd uid=%u/%u/%u secure=%lu", label, r, e, s, getauxval(AT_SECURE));
    show(label);
    status_caps(label);
    return 0;
}

static void exec_probe(const char *label, const char *path) {
    char *argv[] = { (char *)path, "probe", (char *)label, NULL };
    char *envp[] = { "PATH=/bin", NULL };
    execve(path, argv, envp);
    say("%s: execve -1 %s", label, ename(errno));
}

/* ---- capget/capset interface ---- */
static void interface(void) {
    struct __user_cap_header_struct h;
    struct __user_cap_data_struct d[2];

    h.version = _LINUX_CAPABILITY_VERSION_1; h.pid = 0;
    memset(d, 0xee, sizeof d);
    T(syscall(SYS_capget, &h, d));
    say("v1: eff=%x prm=%x inh=%x untouched=%d", d[0].effective, d[0].permitted, d[0].inheritable, d[1].effective == 0xeeeeeeee);
    h.version = _LINUX_CAPABILITY_VERSION_2; h.pid = 0;
    memset(d, 0xee, sizeof d);
    T(syscall(SYS_capget, &h, d));
    say("v2: eff=%x/%x prm=%x/%x", d[0].effective, d[1].effective, d[0].permitted, d[1].permitted);
    h.version = 0x12345678; h.pid = 0;
    T(syscall(SYS_capget, &h, d));
    say("bad version: kernel says %x", h.version);
    h.version = 0x12345678;
    T(syscall(SYS_capget, &h, NULL));
    say("bad version, no data: kernel says %x", h.version);
    h.version = _LINUX_CAPABILITY_VERSION_3; h.pid = 0;
    T(syscall(SYS_capget, &h, NULL));
    h.pid = -1;
    T(syscall(SYS_capget, &h, d));
    h.pid = 999999;
    T(syscall(SYS_capget, &h, d));
    h.pid = getpid();
    T(syscall(SYS_capget, &h, d));
    T(syscall(SYS_capget, NULL, d));

    /* capset's rules */
    struct caps c;
    capget3(0, &c);
    T(capset3(c.eff, c.prm | BIT(CAP_SYS_ADMIN), c.inh));           /* permitted may not grow */
    T(capset3(c.eff | BIT(CAP_SYS_ADMIN), c.prm, c.inh));           /* effective within permitted */
    T(capset3(c.eff, c.prm, c.inh | BIT(CAP_SYS_ADMIN)));           /* inheritable within bounding */
    T(capset3(c.eff, c.prm, c.inh | BIT(CAP_NET_RAW)));             /* from permitted: fine */
    T(capset3(c.eff, c.prm, 0));
    h.version = _LINUX_CAPABILITY_VERSION_3; h.pid = getpid() + 1000;
    memset(d, 0, sizeof d);
    T(syscall(SYS_capset, &h, d));                                   /* another process: EPERM */
    h.version = 0x1; h.pid = 0;
    T(syscall(SYS_capset, &h, d));
    say("capset bad version: kernel says %x", h.version);
    show("after capset checks");
}

/* ---- prctl ---- */
static void prctls(void) {
    T(prctl(PR_CAPBSET_READ, CAP_CHOWN, 0, 0, 0));
    T(prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0));
    T(prctl(PR_CAPBSET_READ, 41, 0, 0, 0));
    T(prctl(PR_CAPBSET_READ, -1L, 0, 0, 0));
    T(prctl(PR_CAPBSET_DROP, 64, 0, 0, 0));
    T(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_RAW, 0, 0));   /* not inheritable: EPERM */
    struct caps c;
    capget3(0, &c);
    T(capset3(c.eff, c.prm, c.inh | BIT(CAP_NET_RAW)));
    T(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_RAW, 0, 0));
    T(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_RAW, 0, 0));
    T(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN, 0, 0));
    T(prctl(PR_CAP_AMBIENT, 9, CAP_NET_RAW, 0, 0));
    T(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, 99, 0, 0));
    T(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 1, 0, 0));
    status_caps("ambient raised");
    /* Dropping inheritable drops ambient. */
    T(capset3(c.eff, c.prm, c.inh));
    T(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_RAW, 0, 0));
    T(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0));
    T(prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0));
    T(prctl(PR_SET_KEEPCAPS, 2, 0, 0, 0));
    T(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0));
    T(prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0));
    T(prctl(PR_GET_SECUREBITS, 0, 0, 0, 0));
    T(prctl(PR_SET_SECUREBITS, 0x100, 0, 0, 0));
    T(prctl(PR_SET_SECUREBITS, 0, 0, 0, 0));
    T(prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0));
    T(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    T(prctl(PR_GET_NO_NEW_PRIVS, 1, 0, 0, 0));
    T(prctl(PR_SET_NO_NEW_PRIVS, 2, 0, 0, 0));
}

/* An allow-everything seccomp filter: installing one needs no_new_privs
 * or CAP_SYS_ADMIN (not in BASE). */
static long allow_all_filter(void) {
    struct sock_filter f[] = { BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) };
    struct sock_fprog prog = { 1, f };
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}

static void nnp_child(void) {
    T(allow_all_filter());
    T(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    T(allow_all_filter());
    T(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    status_caps("nnp");
}

static void bounding_child(void) {
    T(prctl(PR_CAPBSET_DROP, CAP_NET_RAW, 0, 0, 0));
    T(prctl(PR_CAPBSET_READ, CAP_NET_RAW, 0, 0, 0));
    struct caps c;
    capget3(0, &c);
    T(capset3(c.eff, c.prm, c.inh | BIT(CAP_NET_RAW)));   /* not in bounding any more: EPERM */
    T(drop_eff(BIT(CAP_SETPCAP)));
    T(prctl(PR_CAPBSET_DROP, CAP_KILL, 0, 0, 0));          /* needs CAP_SETPCAP */
    T(prctl(PR_SET_SECUREBITS, 0, 0, 0, 0));
    status_caps("bounding");
}

/* ---- permissions ---- */
static void dac_child(void) {
    T(drop_eff(BIT(CAP_DAC_OVERRIDE)));
    T(open("f000", O_RDONLY) >= 0);                    /* CAP_DAC_READ_SEARCH reads it */
    T(open("f000", O_WRONLY));
    T(open("f000", O_RDWR));
    T(access("f000", W_OK));                           /* real root: the permitted set */
    T(faccessat(AT_FDCWD, "f000", W_OK, AT_EACCESS));
    T(open("d700/inner", O_RDONLY) >= 0);
    T(open("d700/inner", O_WRONLY) >= 0);
    T(drop_eff(BIT(CAP_DAC_OVERRIDE) | BIT(CAP_DAC_READ_SEARCH)));
    T(open("f000", O_RDONLY));
    T(open("d700/inner", O_RDONLY));
    T(opendir("d700") != NULL);
    T(access("f000", R_OK));
    T(faccessat(AT_FDCWD, "f000", R_OK, AT_EACCESS));
    T(access("d700/inner", R_OK));                    /* the walk too uses the real ids' capabilities */
    T(faccessat(AT_FDCWD, "d700/inner", R_OK, AT_EACCESS));
    T(unlink("d700/inner"));
    T(restore_eff());
    T(open("f000", O_RDWR) >= 0);
    T(access("f000x", X_OK));                         /* nobody may execute: not even root */
    T(access("f000", X_OK));
}

static void owner_child(void) {
    T(drop_eff(BIT(CAP_CHOWN)));
    T(chown("fown", 1000, -1));
    T(chown("fown", 0, -1));                          /* the owner "changing" to itself */
    T(chown("fown", -1, 1234));                       /* a group root is not in */
    T(chown("fown", -1, 0));
    T(chown("f1000", 1000, -1));                      /* not the owner, even to the same uid */
    T(restore_eff());
    T(chown("fown", 1000, 1234));
    stat_path("fown");
    T(drop_eff(BIT(CAP_FOWNER)));
    T(chmod("fown", 0640));
    struct timeval tv[2] = { { 1000, 0 }, { 2000, 0 } };
    T(utimes("fown", tv));
    T(utimes("fown", NULL));                          /* "now": write permission (DAC_OVERRIDE) suffices */
    T(unlink("sticky/byother"));                      /* sticky dir of someone else */
    T(restore_eff());
    T(chmod("fown", 0640));
    T(utimes("fown", tv));
    /* CAP_FSETID: chmod g+s of a file whose group the caller is not in. */
    T(chown("fsgid", 0, 1234));
    T(drop_eff(BIT(CAP_FSETID)));
    T(chmod("fsgid", 02755));
    stat_path("fsgid");
    T(restore_eff());
    T(chmod("fsgid", 02755));
    stat_path("fsgid");
    T(restore_eff());
}

/* Writing or truncating a set-id file drops its set-id bits, unless the
 * writer has CAP_FSETID. */
static void setid_write_child(void) {
    int fd;
    put("sw", "#\n"); chmod("sw", 04755);
    fd = open("sw", O_WRONLY | O_APPEND);
    T(write(fd, "a\n", 2));
    stat_path("sw");
    T(drop_eff(BIT(CAP_FSETID)));
    T(write(fd, "b\n", 2));
    stat_path("sw");
    T(write(fd, "c\n", 0));
    close(fd);
    T(restore_eff());
    put("sg", "#\n"); chown("sg", 0, 1234); chmod("sg", 06755);
    put("sgl", "#\n"); chown("sgl", 0, 1234); chmod("sgl", 02745);   /* no group execute */
    put("sgm", "#\n"); chmod("sgm", 02745);                          /* ... in the caller's group */
    T(drop_eff(BIT(CAP_FSETID)));
    fd = open("sg", O_RDWR);
    T(ftruncate(fd, 1));
    close(fd);
    stat_path("sg");
    fd = open("sgl", O_WRONLY);
    struct iovec v = { "x", 1 };
    T(writev(fd, &v, 1));
    close(fd);
    stat_path("sgl");
    fd = open("sgm", O_WRONLY);
    T(pwrite(fd, "y", 1, 0));
    close(fd);
    stat_path("sgm");
    T(restore_eff());
}

static void misc_child(void) {
    T(drop_eff(BIT(CAP_SYS_CHROOT)));
    T(chroot("."));
    T(restore_eff());
    T(sethostname("x", 1));                           /* no CAP_SYS_ADMIN in BASE */
    T(mount("none", "/tmp", "tmpfs", 0, NULL));
    T(umount("/proc"));
    /* With CAP_MKNOD Linux makes the node; the sandbox has no devices and
     * refuses: only the refusal without the capability is compared. */
    T(drop_eff(BIT(CAP_MKNOD)));
    T(mknod("node", S_IFCHR | 0600, makedev(1, 3)));
    T(mknod("fifo", S_IFIFO | 0600, 0));
    unlink("fifo");
    T(restore_eff());
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_max = rl.rlim_cur;
    T(setrlimit(RLIMIT_NOFILE, &rl));
    rl.rlim_max += 1;
    T(setrlimit(RLIMIT_NOFILE, &rl));                 /* no CAP_SYS_RESOURCE */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(81), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    T(drop_eff(BIT(CAP_NET_BIND_SERVICE)));
    T(bind(s, (struct sockaddr *)&a, sizeof a));
    close(s);
    T(restore_eff());
    /* security.* attributes: CAP_SETFCAP for file capabilities, CAP_SYS_ADMIN
     * (not in BASE) for the rest. */
    T(drop_eff(BIT(CAP_SETFCAP)));
    unsigned fcap[5] = { 0x02000000, BIT(CAP_NET_RAW), 0, 0, 0 };   /* VFS_CAP_REVISION_2 */
    T(setxattr("fown", "security.capability", fcap, sizeof fcap, 0));
    T(removexattr("fown", "security.capability"));
    T(restore_eff());
    T(setxattr("fown", "security.moat", "x", 1, 0));
    T(removexattr("fown", "security.moat"));
    T(setgroups(0, NULL));
    T(drop_eff(BIT(CAP_SETGID)));
    T(setgroups(0, NULL));
    T(setgid(1234));
    T(setfsgid(1234));
    T(setfsgid(-1));
    T(restore_eff());
}

static void kill_child(void) {
    int p[2];
    pipe(p);
    pid_t c = fork();
    if (c == 0) {
        setresuid(1000, 1000, 1000);
        write(p[1], "x", 1);
        for (;;) pause();
    }
    char x;
    read(p[0], &x, 1);
    struct rlimit rl;
    T(prlimit(c, RLIMIT_NOFILE, NULL, &rl));          /* other ids, no CAP_SYS_RESOURCE */
    T(prlimit(getpid(), RLIMIT_NOFILE, NULL, &rl));
    T(drop_eff(BIT(CAP_KILL)));
    T(kill(c, 0));
    T(kill(c, SIGTERM));
    T(restore_eff());
    T(kill(c, SIGTERM));
    int st;
    waitpid(c, &st, 0);
    say("killed child: signaled=%d sig=%d", WIFSIGNALED(st), WTERMSIG(st));
}

static void setuid_child(void) {
    T(drop_eff(BIT(CAP_SETUID)));
    T(setuid(1000));
    T(setresuid(-1, 1000, -1));
    T(setfsuid(1000));
    T(setfsuid(-1));                                  /* still 0: not allowed above */
    T(restore_eff());
    /* seteuid: effective goes and comes back; permitted stays. */
    T(seteuid(1000));
    show("euid 1000");
    T(seteuid(0));
    show("euid 0 again");
    /* setfsuid: the file-system capabilities follow fsuid. */
    T(setfsuid(1000));
    show("fsuid 1000");
    T(open("f000", O_RDONLY));
    T(setfsuid(0));
    show("fsuid 0");
    /* keep-caps across setresuid to non-root. */
    T(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0));
    T(setresuid(1000, 1000, 1000));
    show("keepcaps, uid 1000");
    status_caps("keepcaps, uid 1000");
    T(chown("fown", 0, -1));                          /* effective is empty */
    T(restore_eff());
    show("raised again");
    T(setresuid(0, 0, 0));                            /* CAP_SETUID allows it */
    show("back to root");
}

static void plain_setuid_child(void) {
    T(setresuid(1000, 1000, 1000));
    show("uid 1000");
    T(setuid(0));
    T(setreuid(-1, 0));
    T(setresuid(1000, 1000, 1000));
    T(setreuid(1000, 1000));
    T(capset3(0, 0, 0));
    T(capset3(0, BIT(CAP_CHOWN), 0));
}

static void exec_root(void) { exec_probe("exec as root", "/work/prog"); }
static void exec_root_inh(void) {
    struct caps c;
    capget3(0, &c);
    capset3(c.eff, c.prm, BIT(CAP_NET_RAW));
    T(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_RAW, 0, 0));
    T(drop_eff(BIT(CAP_CHOWN)));
    T(prctl(PR_CAPBSET_DROP, CAP_CHOWN, 0, 0, 0));
    exec_probe("exec as root with ambient, no CHOWN in bounding", "/work/prog");
}
static void exec_user(void) {
    setresuid(1000, 1000, 1000);
    exec_probe("exec as 1000", "/work/prog");
}
static void exec_keepcaps(void) {
    prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
    setresuid(1000, 1000, 1000);
    show("before exec, keepcaps");
    exec_probe("exec as 1000 with keepcaps", "/work/prog");
}
static void exec_ambient(void) {
    prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
    T(setresuid(1000, 1000, 1000));
    struct caps c;
    capget3(0, &c);
    T(capset3(0, c.prm, BIT(CAP_NET_RAW)));
    T(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_RAW, 0, 0));
    exec_probe("exec as 1000 with ambient NET_RAW", "/work/prog");
}
static void exec_euid(void) {
    T(seteuid(1000));
    exec_probe("exec with uid 0, euid 1000", "/work/prog");
}
static void exec_nnp(void) {
    T(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    exec_probe("exec as root under no_new_privs", "/work/prog");
}
static void exec_suid_user(void) {
    T(setresgid(2000, 2000, 2000));
    T(setresuid(2000, 2000, 2000));
    exec_probe("exec set-uid 1000 as 2000", "/work/suid1000");
}
static void exec_suid_root(void) {
    T(setresuid(2000, 2000, 2000));
    exec_probe("exec set-uid root as 2000", "/work/suidroot");
}
static void exec_suid_root_nnp(void) {
    T(setresuid(2000, 2000, 2000));
    T(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    exec_probe("exec set-uid root as 2000 under no_new_privs", "/work/suidroot");
}

static void *thread_caps(void *arg) {
    (void)arg;
    T(drop_eff(BIT(CAP_CHOWN)));
    show("thread");
    return NULL;
}
#include <pthread.h>
static volatile int got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }
static pid_t main_tid;
static void *thread_raw_setuid(void *arg) {
    (void)arg;
    /* The raw call changes this thread only (glibc's wrapper would change all). */
    T(syscall(SYS_setresuid, 1000, 1000, 1000));
    show("thread after raw setresuid");
    T(syscall(SYS_tgkill, getpid(), main_tid, SIGUSR1));   /* same process: allowed */
    return NULL;
}

static int gate[2];
static void *thread_after_setuid(void *arg) {
    (void)arg;
    char x;
    read(gate[0], &x, 1);
    uid_t r, e, s;
    getresuid(&r, &e, &s);
    say("other thread: uid=%u/%u/%u", r, e, s);
    show("other thread after main's setresuid");
    return NULL;
}
static void threads_child(void) {
    pthread_t th;
    pthread_create(&th, NULL, thread_caps, NULL);
    pthread_join(th, NULL);
    show("main thread after the thread dropped CHOWN");
    signal(SIGUSR1, on_usr1);
    main_tid = gettid();
    pthread_create(&th, NULL, thread_raw_setuid, NULL);
    pthread_join(th, NULL);
    say("main got SIGUSR1: %d", got_usr1);
    show("main after the thread's raw setresuid");
    status_caps("main after the thread's raw setresuid");
    /* glibc makes set*id process-wide by running the call in every thread. */
    pipe(gate);
    pthread_create(&th, NULL, thread_after_setuid, NULL);
    T(setresuid(1000, 1000, 1000));
    show("main after setresuid");
    write(gate[1], "x", 1);
    pthread_join(th, NULL);
}

static void copy(const char *from, const char *to) {
    char buf[65536];
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0) write(out, buf, n);
    close(in); close(out);
}

int main(int argc, char **argv) {
    if (argc > 2 && !strcmp(argv[1], "probe")) return probe(argv[2]);

    /* Normalise: both sides to BASE, bounding included. */
    T(capset3(BASE, BASE, 0));
    for (int c = 0; c <= 40; c++)
        if (!(BASE & BIT(c))) Q(prctl(PR_CAPBSET_DROP, c, 0, 0, 0));
    show("start");
    status_caps("start");
    for (int c = 0; c <= 41; c++) printf("%ld", (long)prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1 ? 1L : 0L);
    printf("\n");

    interface();
    in_child("prctl", prctls);
    in_child("nnp", nnp_child);
    in_child("bounding", bounding_child);

    put("f000", "secret\n"); chmod("f000", 0);
    put("f000x", "x\n"); chmod("f000x", 0);
    mkdir("d700", 0700);
    put("d700/inner", "inner\n");
    chown("d700", 1000, 1000);
    put("fown", "o\n");
    put("f1000", "o\n"); chown("f1000", 1000, 1000);
    put("fsgid", "g\n");
    mkdir("sticky", 01777); chown("sticky", 1000, 1000);
    put("sticky/byother", "b\n"); chown("sticky/byother", 1000, 1000);
    in_child("dac", dac_child);
    in_child("owner", owner_child);
    in_child("misc", misc_child);
    in_child("set-id write", setid_write_child);
    in_child("kill", kill_child);
    in_child("setuid", setuid_child);
    in_child("plain setuid", plain_setuid_child);
    in_child("threads", threads_child);

    copy("/work/prog", "/work/suid1000"); chown("/work/suid1000", 1000, 1000); chmod("/work/suid1000", 04755);
    copy("/work/prog", "/work/suidroot"); chmod("/work/suidroot", 04755);
    in_child("exec root", exec_root);
    in_child("exec root inh", exec_root_inh);
    in_child("exec user", exec_user);
    in_child("exec keepcaps", exec_keepcaps);
    in_child("exec ambient", exec_ambient);
    in_child("exec euid", exec_euid);
    in_child("exec nnp", exec_nnp);
    in_child("exec suid user", exec_suid_user);
    in_child("exec suid root", exec_suid_root);
    in_child("exec suid root nnp", exec_suid_root_nnp);
    show("end");
    unlink("suid1000"); unlink("suidroot");
    return 0;
}
