/* UTS namespaces (session 16, issue 15): clone and clone3 with
 * CLONE_NEWUTS give the child a copy of the caller's names, changed apart
 * from then on (uname, gethostname, /proc/sys/kernel/hostname); without
 * it the names are shared; CAP_SYS_ADMIN is needed (EPERM); the
 * /proc/PID/ns/uts link, its nsfs ioctls (NS_GET_PARENT EINVAL: no
 * hierarchy) and setns by ns fd or pidfd (EINVAL for another type, EPERM
 * without the capability). The program first unshares a UTS namespace of
 * its own, so that natively the host's names never change. */
#include "t.h"
#include "ns.h"
#include <sys/utsname.h>

static void names(const char *label) {
    struct utsname u;
    char host[128] = "", dom[128] = "", proc[128] = "";
    uname(&u);
    gethostname(host, sizeof host);
    getdomainname(dom, sizeof dom);
    int fd = open("/proc/sys/kernel/hostname", O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, proc, sizeof proc - 1);
    if (fd >= 0) close(fd);
    if (n > 0 && proc[n - 1] == '\n') proc[n - 1] = 0;
    say("%s: uname %s/%s, gethostname %s, proc %s", label, u.nodename, u.domainname, host, proc);
    (void)dom;
}

static void set_names(const char *host, const char *dom) {
    Q(sethostname(host, strlen(host)));
    Q(setdomainname(dom, strlen(dom)));
}

static void name_holder(void) { set_names("holder", "holderdom"); }

int main(void) {
    T(unshare(CLONE_NEWUTS));
    set_names("outer", "outerdom");
    names("start");
    char own[64], other[64], path[64];
    link_of("/proc/self/ns/uts", own, sizeof own);
    say("uts link starts with uts:[ : %d", strncmp(own, "uts:[", 5) == 0);

    /* clone(CLONE_NEWUTS): a copy, changed apart. */
    fflush(stdout);
    pid_t p = raw_clone(CLONE_NEWUTS | SIGCHLD);
    if (p == 0) {
        names("clone child, copied");
        link_of("/proc/self/ns/uts", other, sizeof other);
        say("clone child: link differs: %d", strcmp(own, other) != 0);
        set_names("inner", "innerdom");
        names("clone child, changed");
        int fd = open("/proc/sys/kernel/hostname", O_WRONLY);
        T(write(fd, "viaproc\n", 8));
        close(fd);
        names("clone child, by /proc");
        _exit(0);
    }
    say("clone child exit %d", wait_child(p));
    names("after clone child");

    fflush(stdout);
    p = clone3_flags(CLONE_NEWUTS);
    if (p == 0) { set_names("three", "threedom"); names("clone3 child"); _exit(0); }
    say("clone3 child exit %d", wait_child(p));
    names("after clone3 child");

    /* Without CLONE_NEWUTS the namespace is shared. */
    fflush(stdout);
    p = fork();
    if (p == 0) { set_names("shared", "shareddom"); _exit(0); }
    say("fork child exit %d", wait_child(p));
    names("after fork child");

    /* Unprivileged: no new namespace, no names. */
    fflush(stdout);
    p = fork();
    if (p == 0) {
        if (setuid(65534) != 0) _exit(1);
        FAILS(raw_clone(CLONE_NEWUTS | SIGCHLD));
        FAILS(clone3_flags(CLONE_NEWUTS));
        T(unshare(CLONE_NEWUTS));
        T(sethostname("x", 1));
        _exit(0);
    }
    say("unprivileged child exit %d", wait_child(p));

    /* A holder in a namespace of its own, joined by fd and by pidfd. */
    int go_w;
    pid_t holder;
    int nsfd = ns_holder(CLONE_NEWUTS, "uts", name_holder, &go_w, &holder, path, sizeof path);
    if (nsfd < 0) return 1;
    int selffd = ns_fd_checks(nsfd, CLONE_NEWUTS, "uts");

    fflush(stdout);
    p = fork();
    if (p == 0) {
        T(setns(nsfd, CLONE_NEWIPC));
        T(setns(nsfd, CLONE_NEWUTS));
        names("joined by fd");
        char h[64];
        link_of("/proc/self/ns/uts", other, sizeof other);
        link_of(path, h, sizeof h);
        say("joined by fd: link is the holder's: %d", strcmp(h, other) == 0);
        set_names("changed", "changeddom");
        T(setns(selffd, 0));
        names("back");
        int pfd = syscall(SYS_pidfd_open, holder, 0);
        T(setns(pfd, CLONE_NEWUTS | 1));
        T(setns(pfd, 0));
        T(setns(pfd, CLONE_NEWUTS));
        names("joined by pidfd");
        if (setuid(65534) == 0) { T(setns(selffd, CLONE_NEWUTS)); T(setns(pfd, CLONE_NEWUTS)); }
        _exit(0);
    }
    say("joining child exit %d", wait_child(p));
    names("ours after the joins");
    close(go_w);
    say("holder exit %d", wait_child(holder));

    /* The holder is gone; its namespace lives while the fd names it. */
    fflush(stdout);
    p = fork();
    if (p == 0) { T(setns(nsfd, 0)); names("held namespace"); _exit(0); }
    say("held namespace child exit %d", wait_child(p));
    return 0;
}
