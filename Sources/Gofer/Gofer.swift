// The Gofer: a file server that gives the Sentry access to one directory tree
// of the host (the container root) and to nothing else.
//
// THREAT MODEL. The Sentry runs untrusted application code in its own address
// space's neighbourhood and must be assumed compromised. The Gofer is the
// Sentry's only way to reach host files, so it trusts nothing it receives:
//   - Every message is length-checked against fixed bounds before it is
//     decoded; a decode that does not consume the payload exactly is EINVAL;
//     framing errors end the connection. Nothing a peer sends can trap the
//     process (no force unwraps / unchecked arithmetic on peer data).
//   - Files are named only by FIDs the Gofer issued (generation-tagged, so a
//     forged or stale FID is EBADF) plus single path components that are
//     never "", ".", "..", and never contain "/" or NUL.
//   - The Gofer never resolves a multi-component path. Each FID holds an
//     O_PATH|O_NOFOLLOW fd; every operation is one *at() call relative to a
//     held directory fd with O_NOFOLLOW / AT_SYMLINK_NOFOLLOW / AT_EMPTY_PATH,
//     so "..", absolute symlinks and symlink-swap races cannot leave the tree.
//     Reopening a file for I/O re-checks that it is still the same inode.
//   - Only regular files and directories are ever opened; FIFOs, sockets and
//     device nodes (which a root filesystem image may contain) are refused,
//     and new device nodes cannot be created.
//   - fds flow only Gofer -> Sentry; fds sent to the Gofer are discarded by
//     the kernel because it never offers a control buffer.
//   - `run` additionally confines the process itself (Confinement.swift):
//     private mount namespace, pivot_root into the served tree, no_new_privs,
//     a minimal capability set and no inherited fds, so even a Gofer subverted
//     through a bug here sees only the container root.
// Out of scope: the served tree's own contents (set-id files or device nodes
// placed there by the image), and denial of service by the Sentry against
// its own Gofer (it can always hang up).
//
// Last, `run` installs a seccomp allow-list (moat_gofer_seccomp in CMoat's
// confine.c): the *at file calls, the socket's sendmsg/recvmsg and what the
// Swift runtime needs; nothing else reaches the host.

import CMoat
import Glibc
import GoferProtocol

public enum Gofer {
    /// Confines the current process to `root` and serves `socketFD` until the
    /// peer closes it. Never returns: exit code 0 when the peer hung up,
    /// nonzero (with a message on stderr) when a confinement step failed.
    /// `progress` hears each start-up phase as it ends (the start-up
    /// profile, on stderr, which is closed before the first request).
    /// `recursive` false with `readOnly`: only the root's own mount is
    /// read-only; host mounts below it keep their access (a non-recursive
    /// read-only bind mount, as the CRI's readonly without recursive_read_only).
    /// `scratch`: answer the `scratch` request (unnamed files for the
    /// overlay's upper layer, in the root's host file system).
    public static func run(root: String, socketFD: Int32, readOnly: Bool, recursive: Bool = true, scratch: Bool = false,
                           progress: (String) -> Void = { _ in }) -> Never {
        let rootFD: Int32, scratchFD: Int32
        switch Confinement.confine(root: root, socketFD: socketFD, readOnly: readOnly, scratch: scratch) {
        case .success(let fds):
            (rootFD, scratchFD) = fds
        case .failure(let error):
            fail(error.message)
        }
        guard let server = Server(rootFD: rootFD, sock: socketFD, readOnly: readOnly, perMountReadOnly: !recursive,
                                  scratchDir: scratchFD) else {
            fail("cannot open the served root")
        }
        Glibc.close(rootFD)
        progress("confined (mount namespace, pivot_root, capabilities)")
        // The allow-list of host syscalls goes on last, before any request
        // is read (fail closed).
        let sc = moat_gofer_seccomp()
        if sc != 0 { fail("cannot install the seccomp filter: errno \(-sc)") }
        progress("seccomp filter installed; serving")
        // stderr was the last inherited fd; nothing may reach the host tty now.
        Glibc.close(2)
        server.serve()
        exit(0)
    }

    /// Serves `rootFD` (an open directory fd, which stays the caller's) on
    /// `socketFD` without any confinement, on the calling thread, until the
    /// peer hangs up or breaks the protocol. Closes `socketFD` when done.
    /// For tests and for callers that confine the process themselves.
    /// `scratch`: answer `scratch` with files made in `rootFD`'s directory.
    public static func serve(rootFD: Int32, socketFD: Int32, readOnly: Bool, recursive: Bool = true, scratch: Bool = false) {
        let scratchFD = scratch ? fcntl(rootFD, F_DUPFD_CLOEXEC, 0) : -1
        if let server = Server(rootFD: rootFD, sock: socketFD, readOnly: readOnly, perMountReadOnly: !recursive,
                               scratchDir: scratchFD) {
            server.serve()
        }
        Glibc.close(socketFD)
    }

    private static func fail(_ message: String) -> Never {
        let text = "moat gofer: \(message)\n"
        _ = text.withCString { Glibc.write(2, $0, strlen($0)) }
        exit(1)
    }
}
