/* File handles: name_to_handle_at gives a handle (EOVERFLOW with the size
 * needed when the room is short), the same one for the same file, and
 * open_by_handle_at opens the file again through a descriptor on its file
 * system (ESTALE through another), with openat's rules (ELOOP for a
 * symlink, O_PATH); procfs gives handles only with AT_HANDLE_FID. Handle
 * bytes are the kernel's own business: only their sizes and equality are
 * printed. */
#include "t.h"

#ifndef AT_HANDLE_FID
#define AT_HANDLE_FID 0x200
#endif

static struct file_handle *fh(unsigned room) {
    struct file_handle *h = calloc(1, sizeof *h + 128);
    h->handle_bytes = room;
    return h;
}

static void reopen(const char *what, int mount_fd, struct file_handle *h, int flags) {
    int fd = open_by_handle_at(mount_fd, h, flags);
    if (fd < 0) { say("%s: open_by_handle_at %s", what, ename(errno)); return; }
    char b[32] = {0};
    ssize_t n = read(fd, b, sizeof b - 1);
    say("%s: opened, read %zd \"%s\"", what, n, n > 0 ? b : "");
    close(fd);
}

int main(void) {
    int mnt = 0;
    put("f", "file contents");
    put("/tmp/g", "in tmp");
    T(symlink("f", "l"));

    struct file_handle *h = fh(0);
    T(name_to_handle_at(AT_FDCWD, "f", h, &mnt, 0));
    unsigned need = h->handle_bytes;
    say("needed bytes > 0: %s", need > 0 ? "yes" : "no");
    h->handle_bytes = 129;
    T(name_to_handle_at(AT_FDCWD, "f", h, &mnt, 0));
    h->handle_bytes = 128;
    T(name_to_handle_at(AT_FDCWD, "f", h, &mnt, 0));
    say("bytes as told: %s", h->handle_bytes == need ? "yes" : "no");

    struct file_handle *h2 = fh(128);
    T(name_to_handle_at(AT_FDCWD, "/work/f", h2, &mnt, 0));
    say("same file, same handle: %s", h2->handle_bytes == h->handle_bytes && h2->handle_type == h->handle_type &&
        !memcmp(h2->f_handle, h->f_handle, h->handle_bytes) ? "yes" : "no");

    struct file_handle *hl = fh(128), *hf = fh(128);
    T(name_to_handle_at(AT_FDCWD, "l", hl, &mnt, 0));
    T(name_to_handle_at(AT_FDCWD, "l", hf, &mnt, AT_SYMLINK_FOLLOW));
    say("through the link, the file's: %s", !memcmp(hf->f_handle, h->f_handle, h->handle_bytes) ? "yes" : "no");

    int dir = T(open(".", O_RDONLY | O_DIRECTORY));
    reopen("f", dir, h, O_RDONLY);
    reopen("f at cwd", AT_FDCWD, h, O_RDONLY);
    reopen("symlink", dir, hl, O_RDONLY);
    reopen("symlink O_PATH", dir, hl, O_PATH);
    reopen("f O_DIRECTORY", dir, h, O_RDONLY | O_DIRECTORY);

    int proc = T(open("/proc", O_RDONLY | O_DIRECTORY));
    reopen("f through /proc", proc, h, O_RDONLY);
    int p[2];
    T(pipe(p));
    reopen("f through a pipe", p[0], h, O_RDONLY);

    struct file_handle *hz = fh(0);
    reopen("size 0", dir, hz, O_RDONLY);
    hz->handle_bytes = 129;
    reopen("size 129", dir, hz, O_RDONLY);

    /* procfs: no handle, but an identifying one with AT_HANDLE_FID */
    struct file_handle *hp = fh(128);
    T(name_to_handle_at(AT_FDCWD, "/proc/filesystems", hp, &mnt, 0));
    T(name_to_handle_at(AT_FDCWD, "/proc/filesystems", hp, &mnt, AT_HANDLE_FID));
    T(name_to_handle_at(AT_FDCWD, "f", hp, &mnt, 0x4000));

    /* a removed file's handle */
    struct file_handle *hg = fh(128);
    T(name_to_handle_at(AT_FDCWD, "/tmp/g", hg, &mnt, 0));
    int tmp = T(open("/tmp", O_RDONLY | O_DIRECTORY));
    reopen("g", tmp, hg, O_RDONLY);
    T(unlink("l"));
    T(unlink("f"));
    T(unlink("/tmp/g"));
    return 0;
}
