/* The container's own big and mapped files (in Moat's overlay, kept in
 * unnamed host files of the rootfs's file system since session 21; before,
 * in memfds): written 1 MiB at a time, read back, mapped shared and
 * private (across a fork), grown and shrunk, holes punched, made unnamed
 * with O_TMPFILE and named later, renamed and hard-linked, a copied
 * program run from there, and st_blocks against the bytes held. The same
 * lines natively (ext4 here), with --no-overlay and with the overlay. */
#include "t.h"
#include <linux/falloc.h>

#define MIB (1 << 20)
static char buf[4 * MIB];

/* A checksum of `n` bytes of `fd` from `off`, read `chunk` at a time. */
static unsigned long sum(int fd, off_t off, size_t n, size_t chunk) {
    unsigned long s = 0;
    while (n > 0) {
        size_t want = n < chunk ? n : chunk;
        ssize_t r = pread(fd, buf, want, off);
        if (r <= 0) { say("pread at %lld: %zd %s", (long long)off, r, r < 0 ? ename(errno) : "EOF"); return 0; }
        for (ssize_t i = 0; i < r; i++) s = s * 31 + (unsigned char)buf[i];
        off += r; n -= r;
    }
    return s;
}

static void fill(size_t n, int seed) { for (size_t i = 0; i < n; i++) buf[i] = (char)(seed + i * 7 + i / 4096); }

static void blocks(const char *label, int fd, long long atLeast, long long below) {
    struct stat st;
    fstat(fd, &st);
    long long b = (long long)st.st_blocks * 512;
    say("%s: size %lld, holds >= %lld: %s, < %lld: %s", label, (long long)st.st_size, atLeast,
        b >= atLeast ? "yes" : "no", below, b < below ? "yes" : "no");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1) { say("copied program ran: %s", argv[1]); return 7; }

    /* Sequential 1 MiB writes into a new file, then read back in other sizes. */
    int fd = T(open("big", O_RDWR | O_CREAT | O_TRUNC, 0600));
    unsigned long want = 0;
    for (int i = 0; i < 6; i++) {
        fill(MIB, i);
        for (int j = 0; j < MIB; j++) want = want * 31 + (unsigned char)buf[j];
        if (write(fd, buf, MIB) != MIB) say("write %d: %s", i, ename(errno));
    }
    say("6 MiB written, offset %lld", (long long)lseek(fd, 0, SEEK_CUR));
    say("read back 1 MiB at a time: %s", sum(fd, 0, 6 * MIB, MIB) == want ? "same" : "DIFFERENT");
    say("read back 300 KiB at a time: %s", sum(fd, 0, 6 * MIB, 300 << 10) == want ? "same" : "DIFFERENT");
    blocks("big", fd, 6LL * MIB, 7LL * MIB);

    /* A shared mapping sees writes and its stores reach read(); a private
     * one keeps its own copy, across a fork too. */
    char *m = mmap(NULL, 2 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, MIB);
    char *p = mmap(NULL, 2 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, MIB);
    if (m == MAP_FAILED || p == MAP_FAILED) { say("mmap: %s", ename(errno)); return 1; }
    T(pwrite(fd, "written", 7, MIB + 4096));
    say("shared mapping sees the write: %.7s", m + 4096);
    say("private mapping, untouched page, sees it too: %.7s", p + 4096);
    p[8192] = 'P';
    pid_t c = fork();
    if (c == 0) { memcpy(m + 12288, "child", 5); p[8192] = 'C'; _exit(0); }
    waitpid(c, NULL, 0);
    char got[6] = {0};
    T(pread(fd, got, 5, MIB + 12288));
    say("child's store through the shared mapping, read(): %s", got);
    say("private page after the child's copy-on-write: %c", p[8192]);
    T(msync(m, 2 * MIB, MS_SYNC));
    munmap(m, 2 * MIB); munmap(p, 2 * MIB);

    /* Shrink, grow (zeros), punch a hole. */
    T(ftruncate(fd, 3 * MIB + 5));
    T(ftruncate(fd, 5 * MIB));
    memset(buf, 1, 16);
    T(pread(fd, buf, 16, 4 * MIB));
    say("grown part reads zeros: %s", buf[0] == 0 && buf[15] == 0 ? "yes" : "no");
    /* Punching a hole: silent when it works (Moat's write-through files
     * have no FALLOC_FL_PUNCH_HOLE yet: EOPNOTSUPP, which callers fall back
     * from); a punched range must read zeros. */
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, MIB, MIB) == 0) {
        memset(buf, 1, 16);
        if (pread(fd, buf, 16, MIB + 4096) != 16 || buf[0] != 0 || buf[15] != 0) say("punched range does NOT read zeros");
    }
    blocks("after truncate (and punch)", fd, 2LL * MIB, 4LL * MIB);
    close(fd);

    /* Sparse: one page far out. */
    fd = T(open("sparse", O_RDWR | O_CREAT | O_TRUNC, 0600));
    T(pwrite(fd, "far", 3, 64LL * MIB));
    blocks("sparse", fd, 3, 64 * 1024);
    char far[4] = {0};
    T(pread(fd, far, 3, 64LL * MIB));
    say("far bytes: %s", far);
    close(fd);
    T(unlink("sparse"));

    /* An unnamed file, written big, then given a name. */
    fd = T(open(".", O_TMPFILE | O_RDWR, 0640));
    fill(2 * MIB, 9);
    T(write(fd, buf, 2 * MIB));
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    T(linkat(AT_FDCWD, proc, AT_FDCWD, "named", AT_SYMLINK_FOLLOW));
    close(fd);
    stat_path("named");

    /* Rename and hard links keep the bytes. */
    T(rename("named", "moved"));
    T(link("moved", "second"));
    T(unlink("moved"));
    stat_path("second");
    fd = T(open("second", O_RDONLY));
    fill(2 * MIB, 9);
    unsigned long s2 = 0;
    for (int j = 0; j < 2 * MIB; j++) s2 = s2 * 31 + (unsigned char)buf[j];
    say("second's bytes: %s", sum(fd, 0, 2 * MIB, MIB) == s2 ? "same" : "DIFFERENT");
    close(fd);
    T(unlink("second"));

    /* This program copied with one big write, then run from the copy. */
    int in = open(argv[0], O_RDONLY);
    struct stat st;
    fstat(in, &st);
    ssize_t n = read(in, buf, sizeof buf);
    close(in);
    say("program read whole: %s", n == st.st_size ? "yes" : "no");
    int out = T(open("copy", O_WRONLY | O_CREAT | O_TRUNC, 0755));
    say("copied in one write: %s", write(out, buf, n) == n ? "yes" : "no");
    close(out);
    c = fork();
    if (c == 0) { execl("./copy", "copy", "from the copy", (char *)NULL); _exit(99); }
    int status = 0;
    waitpid(c, &status, 0);
    say("copy exit status %d", WEXITSTATUS(status));
    T(unlink("copy"));

    fd = T(open("big", O_RDONLY));
    blocks("big again", fd, 2LL * MIB, 4LL * MIB);
    close(fd);
    T(unlink("big"));
    return 0;
}
