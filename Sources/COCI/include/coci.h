// COCI: GNU and XSI calls the OCI runtime needs that Glibc's Swift module
// does not export (it is built without _GNU_SOURCE). Thin wrappers only.
#ifndef COCI_H
#define COCI_H

/// pipe2(fds, O_CLOEXEC). 0 or -1 with errno.
int coci_pipe_cloexec(int fds[2]);
/// memfd_create(name, MFD_CLOEXEC). fd or -1 with errno.
int coci_memfd(const char *name);
/// A new pty: *master and *slave (both O_CLOEXEC, the slave O_NOCTTY).
/// 0 or -errno.
int coci_openpty(int *master, int *slave);
/// open(path, O_PATH | O_DIRECTORY | O_CLOEXEC).
int coci_open_path_dir(const char *path);
/// The CLONE_NEW* type of the namespace file at path (ioctl NS_GET_NSTYPE),
/// or -errno.
int coci_namespace_type(const char *path);
/// Joins the namespace at path, which must be of type nstype. 0 or -errno.
int coci_join_namespace(const char *path, int nstype);
/// Brings the loopback interface of the current network namespace up.
/// 0 or -errno.
int coci_loopback_up(void);
/// pidfd_open(pid, 0): an fd that polls readable once the process exits
/// (any process, not only a child). fd or -errno.
int coci_pidfd_open(int pid);

#endif
