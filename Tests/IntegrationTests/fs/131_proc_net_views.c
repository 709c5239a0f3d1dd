/* /proc/net and /proc/sys/net as Linux shows them (session 18; gVisor's
 * proc_net, proc_net_tcp, proc_net_udp and proc_net_unix programs):
 * - /proc/net is a symlink to self/net (mode 0777), a directory through it;
 * - /proc/net/unix lists every AF_UNIX socket: both ends of a socketpair,
 *   an unbound one, a listener (flag 00010000, state 01) and the socket
 *   accept returns, under the listener's name, connected (state 03);
 * - the uid column of /proc/net/tcp and /proc/net/udp is the socket's
 *   owner (root's, then uid 1000's in a child);
 * - /proc/sys/net/ipv4/{tcp_sack,ip_forward} and the ipv6 files exist; a
 *   pread after a pwrite on the same fd reads the written value;
 * - ip_local_port_range is the namespace's: a UDP bind to port 0 takes the
 *   one port of a range of one, a second one finds none (EADDRINUSE), a
 *   range upside down is EINVAL.
 * The sysctls are the namespace's: natively the program first moves to a
 * new network namespace; in Moat it stays in the sandbox's own, whose one
 * interface is loopback (ns.h's own_network_namespace). */
#include "t.h"
#include "ns.h"
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

static unsigned long ino_of(int fd) { struct stat st; fstat(fd, &st); return st.st_ino; }

/* The /proc/net/unix line of inode `ino`: its flags, type, state and path. */
static void unix_line(const char *what, unsigned long ino) {
    FILE *f = fopen("/proc/net/unix", "r");
    char line[512];
    int found = 0;
    while (f && fgets(line, sizeof line, f)) {
        char num[32], path[256] = "";
        unsigned refs, proto, flags, type, st;
        unsigned long i;
        int n = sscanf(line, "%31s %x %x %x %x %x %lu %255s", num, &refs, &proto, &flags, &type, &st, &i, path);
        if (n >= 7 && i == ino) {
            say("%s: flags %08x type %04x state %02x path '%s'", what, flags, type, st, path);
            found = 1;
        }
    }
    if (f) fclose(f);
    if (!found) say("%s: not listed", what);
}

/* The uid column of the /proc/net/<file> line of inode `ino`. */
static void inet_uid(const char *file, unsigned long ino) {
    char p[64];
    snprintf(p, sizeof p, "/proc/net/%s", file);
    FILE *f = fopen(p, "r");
    char line[512];
    int found = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned uid; unsigned long i;
        if (sscanf(line, "%*s %*s %*s %*s %*s %*s %*s %u %*s %lu", &uid, &i) == 2 && i == ino) {
            say("%s: uid %u", file, uid);
            found = 1;
        }
    }
    if (f) fclose(f);
    if (!found) say("%s: not listed", file);
}

static void sysctl_flip(const char *path) {
    int fd = open(path, O_RDWR);
    if (fd < 0) { say("%s: %s", path, ename(errno)); return; }
    char was = 0, now = 0;
    pread(fd, &was, 1, 0);
    char want = was == '1' ? '0' : '1';
    long w = pwrite(fd, &want, 1, 0);
    pread(fd, &now, 1, 0);
    say("%s: wrote %ld, reads back the written value: %d", path, w, now == want);
    pwrite(fd, &was, 1, 0);
    close(fd);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (own_network_namespace() != 0) return 1;
    struct stat st;
    char buf[64] = "";
    T(lstat("/proc/net", &st));
    say("lstat: link %d mode %o", S_ISLNK(st.st_mode), st.st_mode & 0777);
    T(readlink("/proc/net", buf, sizeof buf - 1));
    say("target: %s", buf);
    T(stat("/proc/net", &st));
    say("stat: dir %d mode %o", S_ISDIR(st.st_mode), st.st_mode & 0777);

    int sv[2];
    T(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    unix_line("socketpair end 0", ino_of(sv[0]));
    unix_line("socketpair end 1", ino_of(sv[1]));
    int unbound = socket(AF_UNIX, SOCK_DGRAM, 0);
    unix_line("unbound datagram", ino_of(unbound));
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    strcpy(a.sun_path + 1, "moat-131");
    socklen_t alen = offsetof(struct sockaddr_un, sun_path) + 1 + strlen("moat-131");
    T(bind(l, (struct sockaddr *)&a, alen));
    T(listen(l, 4));
    unix_line("listener", ino_of(l));
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    T(connect(c, (struct sockaddr *)&a, alen));
    int acc = accept(l, NULL, NULL);
    unix_line("accepted", ino_of(acc));
    unix_line("connected client", ino_of(c));
    unsigned long gone = ino_of(sv[0]);
    close(sv[0]); close(sv[1]);
    unix_line("closed socketpair end", gone);

    int t4 = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    T(bind(t4, (struct sockaddr *)&in, sizeof in));
    T(listen(t4, 1));
    inet_uid("tcp", ino_of(t4));
    int u4 = socket(AF_INET, SOCK_DGRAM, 0);
    T(bind(u4, (struct sockaddr *)&in, sizeof in));
    inet_uid("udp", ino_of(u4));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (setresuid(1000, 1000, 1000) != 0) _exit(2);
        int u = socket(AF_INET, SOCK_DGRAM, 0);
        bind(u, (struct sockaddr *)&in, sizeof in);
        inet_uid("udp", ino_of(u));
        _exit(0);
    }
    int wst = 0;
    waitpid(pid, &wst, 0);
    say("child: %d", WIFEXITED(wst) ? WEXITSTATUS(wst) : 128 + WTERMSIG(wst));

    /* ip_local_port_range is honoured: ephemeral ports come from it, and a
     * range of one port is exhausted by a second socket. */
    int pr = open("/proc/sys/net/ipv4/ip_local_port_range", O_RDWR);
    char was[32] = "";
    pread(pr, was, sizeof was - 1, 0);
    T(pwrite(pr, "40000 40000", 11, 0));
    int e1 = socket(AF_INET, SOCK_DGRAM, 0), e2 = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in any = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen2 = sizeof any;
    T(bind(e1, (struct sockaddr *)&any, sizeof any));
    getsockname(e1, (struct sockaddr *)&any, &alen2);
    say("ephemeral port: %d", ntohs(any.sin_port));
    any.sin_port = 0;
    T(bind(e2, (struct sockaddr *)&any, sizeof any));
    T(pwrite(pr, "5 2", 3, 0));
    pwrite(pr, was, strlen(was), 0);
    close(pr); close(e1); close(e2);

    sysctl_flip("/proc/sys/net/ipv4/tcp_sack");
    sysctl_flip("/proc/sys/net/ipv4/ip_forward");
    const char *v6[] = { "auto_flowlabels", "bindv6only", "ip6frag_time", "ip_nonlocal_bind" };
    for (unsigned i = 0; i < 4; i++) {
        char p[80];
        snprintf(p, sizeof p, "/proc/sys/net/ipv6/%s", v6[i]);
        int fd = open(p, O_RDONLY);
        say("%s: %s", p, fd >= 0 ? "opens" : ename(errno));
        if (fd >= 0) close(fd);
    }
    T(stat("/proc/sys/net/ipv6", &st));
    say("ipv6: dir %d mode %o", S_ISDIR(st.st_mode), st.st_mode & 0777);
    return 0;
}
