#define _GNU_SOURCE
#include "coci.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int coci_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int coci_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC); }

int coci_openpty(int *master, int *slave) {
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0) return -errno;
    char name[128];
    if (grantpt(m) != 0 || unlockpt(m) != 0 || ptsname_r(m, name, sizeof name) != 0) {
        int e = errno; close(m); return -e;
    }
    int s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) { int e = errno; close(m); return -e; }
    *master = m; *slave = s;
    return 0;
}

int coci_open_path_dir(const char *path) { return open(path, O_PATH | O_DIRECTORY | O_CLOEXEC); }

int coci_namespace_type(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int t = ioctl(fd, 0xb703 /* NS_GET_NSTYPE */);
    int e = errno;
    close(fd);
    return t < 0 ? -e : t;
}

int coci_join_namespace(const char *path, int nstype) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int r = setns(fd, nstype);
    int e = errno;
    close(fd);
    return r < 0 ? -e : 0;
}

int coci_loopback_up(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -errno;
    struct ifreq req;
    memset(&req, 0, sizeof req);
    strcpy(req.ifr_name, "lo");
    int r = ioctl(s, SIOCGIFFLAGS, &req);
    if (r == 0) {
        req.ifr_flags |= IFF_UP | IFF_RUNNING;
        r = ioctl(s, SIOCSIFFLAGS, &req);
    }
    int e = errno;
    close(s);
    return r < 0 ? -e : 0;
}

int coci_pidfd_open(int pid) {
    long fd = syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -errno : (int)fd;
}
