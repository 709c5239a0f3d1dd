/* remap_file_pages(2), which Linux >= 3.16 emulates with a new mapping of
 * the file over the range: pages of a shared file mapping show other pages
 * of the file, in reverse; its EINVAL cases (prot, flags, a private
 * mapping, a range past the mapping, no mapping). mseal(2) (Linux 6.10):
 * its errors, and what a sealed range refuses with EPERM (mprotect,
 * munmap, mremap, mmap over it, discarding madvise on read-only memory)
 * while the unsealed rest of the mapping still changes. */
#include "t.h"

#define PG 4096L
#ifndef SYS_mseal
#define SYS_mseal 462
#endif

int main(void) {
    int fd = open("/tmp/rfp", O_RDWR | O_CREAT | O_TRUNC, 0600);
    for (int i = 0; i < 8; i++) { char b[PG]; memset(b, '0' + i, PG); write(fd, b, PG); }
    char *m = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *priv = mmap(NULL, PG, PROT_READ, MAP_PRIVATE, fd, 0);
    for (int i = 0; i < 4; i++) T(remap_file_pages(m + i * PG, PG, 0, 7 - i, 0));
    say("pages now: %c %c %c %c", m[0], m[PG], m[2 * PG], m[3 * PG]);
    m[PG + 1] = 'w';                                    /* writes reach the file at page 6 */
    char b;
    pread(fd, &b, 1, 6 * PG + 1);
    say("file page 6 byte 1: %c", b);
    T(remap_file_pages(m, 2 * PG, 0, 2, 0));
    say("pages now: %c %c", m[0], m[PG]);
    T(remap_file_pages(m, PG, PROT_READ, 1, 0));        /* prot must be 0 */
    T(remap_file_pages(m, PG, 0, 1, MAP_FIXED));        /* flags: MAP_NONBLOCK only */
    T(remap_file_pages(priv, PG, 0, 1, 0));             /* not shared */
    T(remap_file_pages(m + 3 * PG, 2 * PG, 0, 1, 0));   /* past the mapping */
    T(remap_file_pages(m + 4 * PG, PG, 0, 1, 0));       /* no mapping there */
    T(remap_file_pages(m, PG, 0, 1, MAP_NONBLOCK));
    say("page 0 now: %c", m[0]);
    munmap(m, 4 * PG);
    munmap(priv, PG);
    close(fd);
    unlink("/tmp/rfp");

    char *a = mmap(NULL, 6 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(a + 5 * PG, PG);
    T(syscall(SYS_mseal, a, PG, 1));                    /* flags */
    T(syscall(SYS_mseal, a + 1, PG, 0));                /* alignment */
    T(syscall(SYS_mseal, a, -PG + 2, 0));               /* wraps */
    T(syscall(SYS_mseal, a + 4 * PG, 2 * PG, 0));       /* runs into a hole */
    T(syscall(SYS_mseal, a, 0, 0));
    T(syscall(SYS_mseal, a + PG, 2 * PG, 0));           /* pages 1-2 */
    T(mprotect(a, 4 * PG, PROT_READ | PROT_WRITE));
    T(mprotect(a + 3 * PG, PG, PROT_READ | PROT_WRITE)); /* unsealed: fine */
    T(munmap(a + PG, PG));
    T(munmap(a, 2 * PG));
    T(madvise(a + PG, PG, MADV_DONTNEED));              /* read-only anonymous */
    T(madvise(a + PG, PG, MADV_WILLNEED));
    T(mremap(a + PG, PG, 2 * PG, MREMAP_MAYMOVE) == MAP_FAILED ? -1 : 0);
    T(mremap(a + 3 * PG, PG, PG, MREMAP_MAYMOVE | MREMAP_FIXED, a + 2 * PG) == MAP_FAILED ? -1 : 0);
    T(mmap(a + PG, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED ? -1 : 0);
    T(syscall(SYS_mseal, a + PG, PG, 0));               /* again: fine */
    T(munmap(a + 3 * PG, PG));                          /* the unsealed rest */
    T(munmap(a, PG));
    pid_t p = fork();                                   /* a child's copy stays sealed */
    if (p == 0) { T(munmap(a + PG, PG)); _exit(0); }
    int st;
    waitpid(p, &st, 0);
    return 0;
}
