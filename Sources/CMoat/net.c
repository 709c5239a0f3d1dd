// Networking shims: glibc declares these only under _GNU_SOURCE, which the
// Swift importer does not define.
#define _GNU_SOURCE
#include "cmoat.h"
#include <sched.h>
#include <sys/socket.h>

int moat_accept4(int fd, void *addr, unsigned *len, int flags) {
    return accept4(fd, (struct sockaddr *)addr, (socklen_t *)len, flags);
}

int moat_setns(int fd, int nstype) { return setns(fd, nstype); }
