#define _GNU_SOURCE
#include "coci.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
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
