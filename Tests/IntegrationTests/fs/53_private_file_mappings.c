/* MAP_PRIVATE file mappings after MADV_DONTNEED (issue 15, mmap edge
 * cases). Linux drops the private copy of each page in the range: the next
 * read faults the page in again from the file, so it shows the file's
 * current bytes (including a write(2) made after the copy was taken), never
 * zeros and never the discarded private changes. Checked for a file the
 * program creates (in Moat's overlay an in-memory upper file; with
 * --no-overlay a host file), one the image has (a lower file), one in
 * /dev/shm and a memfd, each read-only and copy-on-write, with a partial
 * last page, and in a forked child (whose private copies are its own). */
#include "t.h"

#define PG 4096

/* One line: the first bytes of the first three of the `n` pages at `p`,
 * and whether the tail of the last page past the file's end reads zero. */
static void show(const char *what, const unsigned char *p, int n, size_t size) {
    printf("  %s:", what);
    for (int i = 0; i < n && i < 3; i++) printf(" [%.6s]", (const char *)p + i * PG);
    int tailzero = 1;
    for (size_t o = size; o < (size_t)n * PG; o++) if (p[o]) tailzero = 0;
    printf(" tail %s\n", tailzero ? "zero" : "NONZERO");
    fflush(stdout);
}

static void fill(int fd, size_t size) {
    char *b = malloc(size);
    for (size_t i = 0; i < size; i++) b[i] = 'a' + (i / PG) % 26;
    for (size_t o = 0; o < size; o += PG) memcpy(b + o, o / PG == 0 ? "page-0" : o / PG == 1 ? "page-1" : "page-2", 6);
    Q(pwrite(fd, b, size, 0));
    free(b);
}

static void check(const char *name, int fd, size_t size) {
    say("%s (%zu bytes)", name, size);
    int n = (size + PG - 1) / PG;
    unsigned char *p = mmap(NULL, n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) { say("  mmap = -1 %s", ename(errno)); return; }
    show("mapped", p, n, size);
    memcpy(p, "PRIV-0", 6);
    memcpy(p + PG, "PRIV-1", 6);
    show("written", p, n, size);
    T(madvise(p, PG, MADV_DONTNEED));
    show("page 0 dropped", p, n, size);
    /* The file changes under the still-private page 1 and the clean page 2. */
    Q(pwrite(fd, "FILE-1", 6, PG));
    if (n > 2) Q(pwrite(fd, "FILE-2", 6, 2 * PG));
    show("file rewritten", p, n, size);
    T(madvise(p, n * PG, MADV_DONTNEED));
    show("all dropped", p, n, size);
    Q(pwrite(fd, "page-1", 6, PG));
    if (n > 2) Q(pwrite(fd, "page-2", 6, 2 * PG));

    /* A child's private pages are its own; dropping them re-reads the file. */
    memcpy(p, "PARENT", 6);
    pid_t c = fork();
    if (c == 0) {
        show("child sees", p, n, size);
        memcpy(p, "CHILD!", 6);
        madvise(p, PG, MADV_DONTNEED);
        show("child dropped", p, n, size);
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
    show("parent after child", p, n, size);
    T(munmap(p, n * PG));

    /* Read-only private mapping: dropping clean pages changes nothing. */
    p = mmap(NULL, n * PG, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) { say("  mmap ro = -1 %s", ename(errno)); return; }
    T(madvise(p, n * PG, MADV_DONTNEED));
    show("read-only dropped", p, n, size);
    T(munmap(p, n * PG));

    /* mprotect to read-only after a private write, then dropped. */
    p = mmap(NULL, n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    memcpy(p, "PRIV-0", 6);
    T(mprotect(p, n * PG, PROT_READ));
    T(madvise(p, n * PG, MADV_DONTNEED));
    show("protected dropped", p, n, size);
    T(munmap(p, n * PG));
}

int main(void) {
    int fd = T(open("/work/private-map", O_RDWR | O_CREAT | O_TRUNC, 0644));
    fill(fd, 3 * PG - 100);
    check("new file in /work", fd, 3 * PG - 100);
    close(fd);

    /* A file the image has: the first page of /work/prog (an ELF). */
    fd = T(open("/work/prog", O_RDONLY));
    unsigned char *p = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    say("image file: [%.4s]", p + 1);
    memcpy(p, "XXXXXXXX", 8);
    T(madvise(p, PG, MADV_DONTNEED));
    say("image file dropped: [%.4s]", p + 1);
    munmap(p, PG);
    close(fd);

    mkdir("/dev/shm", 01777);
    fd = T(open("/dev/shm/private-map", O_RDWR | O_CREAT | O_TRUNC, 0600));
    fill(fd, 2 * PG + 10);
    check("file in /dev/shm", fd, 2 * PG + 10);
    close(fd);
    T(unlink("/dev/shm/private-map"));

    fd = T(memfd_create("private-map", 0));
    fill(fd, 3 * PG);
    T(ftruncate(fd, 3 * PG));
    check("memfd", fd, 3 * PG);
    close(fd);

    /* An in-memory file big enough to be kept outside the file's own buffer. */
    fd = T(open("/work/private-big", O_RDWR | O_CREAT | O_TRUNC, 0644));
    fill(fd, (1 << 20) + 3 * PG);
    check("big file in /work", fd, (1 << 20) + 3 * PG);
    close(fd);
    T(unlink("/work/private-big"));
    return 0;
}
