/* statfs of the container's own files (its image): the file system that
 * holds them has blocks in use, the way shutil.disk_usage reads it
 * (used = (f_blocks - f_bfree) * f_frsize > 0, CPython's test_shutil
 * test_disk_usage), and its counts are consistent: free never exceeds the
 * total, what unprivileged users may take never exceeds what is free.
 * Same answers through a path, a file in the image, and an open fd. */
#include "t.h"
#include <sys/statfs.h>
#include <sys/statvfs.h>

static void show(const char *label, const struct statvfs *v) {
    unsigned long long fr = v->f_frsize;
    say("%s: frsize>0=%d used>0=%d total>=free=%d free>=avail=%d total>free=%d files>0=%d ffree<=files=%d",
        label, fr > 0, (v->f_blocks - v->f_bfree) * fr > 0, v->f_blocks >= v->f_bfree,
        v->f_bfree >= v->f_bavail, v->f_blocks > v->f_bfree, v->f_files > 0, v->f_ffree <= v->f_files);
}

int main(void) {
    struct statvfs v;
    if (T(statvfs("/", &v)) == 0) show("/", &v);
    if (T(statvfs("/bin", &v)) == 0) show("/bin", &v);
    if (T(statvfs("/work/prog", &v)) == 0) show("/work/prog", &v);
    int fd = T(open("/bin", O_RDONLY | O_DIRECTORY));
    if (T(fstatvfs(fd, &v)) == 0) show("fd /bin", &v);
    struct statfs sf;
    if (T(fstatfs(fd, &sf)) == 0)
        say("fstatfs /bin: used>0=%d bsize>0=%d", sf.f_blocks > sf.f_bfree, sf.f_bsize > 0);
    close(fd);
    return 0;
}
