// The Sentry's host epoll instances (Syscalls/Epoll.swift): one per
// application epoll instance that watches host-backed files, holding only
// the Sentry's own fds. Swift's Glibc module has no sys/epoll.h, and the
// packed struct epoll_event is best left to C.
#define _GNU_SOURCE
#include "cmoat.h"
#include <errno.h>
#include <sys/epoll.h>

int moat_hostep_create(void) {
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int moat_hostep_ctl(int ep, int op, int fd, uint32_t events, uint64_t key) {
    int hop = op == 1 ? EPOLL_CTL_ADD : op == 2 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    struct epoll_event ev = { .events = events, .data.u64 = key };
    return epoll_ctl(ep, hop, fd, &ev) < 0 ? -errno : 0;
}

int moat_hostep_take(int ep, uint64_t *keys, int max) {
    struct epoll_event ev[64];
    if (max > 64) max = 64;
    int n = epoll_wait(ep, ev, max, 0);
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) keys[i] = ev[i].data.u64;
    return n;
}
