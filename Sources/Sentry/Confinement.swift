// How the Sentry and its stubs give up the host before the application runs.
//
// In order, all of it before any hostile input is read:
//  1. `begin` (first thing, one thread): a private mount namespace, so
//     nothing mounted later reaches the host, and the sandbox's own host id
//     (MOAT_SANDBOX_ID_BASE + the Sentry's host pid) for the master stub.
//     Stubs take that id, drop every capability and keep only the stub page.
//  2. The privileged setup (network namespace, /proc/self/net, name files).
//  3. `finish`: the root becomes an empty read-only tmpfs (the host's tree is
//     detached, for the stubs too), the Sentry becomes the sandbox's id with
//     no capabilities and no-new-privs, then its seccomp allow-list loads.
// Host side effects of the Sentry's own identity on files it writes through
// Gofer-donated fds (set-id bits the host drops on a write) are undone by
// the Sentry, which applies Linux's rules for the application's
// credentials (dropSetIDForWrite in Syscalls/File.swift).
// The result: a Sentry or stub that escapes its filter finds no host file
// to name, holds no host privilege, and shares its uid with no other
// sandbox. `moat debug` shows it.
//
// Why no user namespace of its own (gVisor puts its Sentry in one): the
// point of one would be ids that are unprivileged on the host, and these
// already are, with no capability anywhere, because the launcher runs as
// root and can hand out a host id directly (gVisor's runsc may start
// rootless and needs the mapping). A user namespace would instead make the
// Sentry root with every capability *inside* a namespace it owns, which is
// what opens the kernel paths that need CAP_SYS_ADMIN or CAP_NET_ADMIN "in
// the current user namespace" (new mounts, netfilter tables, overlayfs),
// the usual road from unprivileged user namespaces to host root. The
// seccomp filter blocks those calls too; not having the capabilities at
// all is the second wall. The launcher that stays alive is confined in
// Sandbox.run (CAP_KILL only, its own seccomp filter).

import CMoat
import Glibc
import Platform

enum Confinement {
    /// The host id the sandbox runs as once confined, 0 until `begin`.
    nonisolated(unsafe) static var sandboxID: UInt32 = 0

    /// Step 1. Returns an error message, or nil.
    static func begin() -> String? {
        if threadCount() != 1 { return "the sentry must confine itself before it starts threads" }
        let r = moat_sentry_private_mounts()
        if r != 0 { return "cannot make a private mount namespace: errno \(-r)" }
        // /proc is still the host's here: /proc/self names the host pid.
        var buf = [CChar](repeating: 0, count: 32)
        let n = readlink("/proc/self", &buf, buf.count - 1)
        guard n > 0, let pid = UInt32(String(cString: buf)) else { return "cannot read the sentry's host pid" }
        sandboxID = MOAT_SANDBOX_ID_BASE &+ pid
        moat_set_sandbox_id(sandboxID)
        // While it may, before any stub exists (they inherit it): a stub's
        // nice value can be lowered back to the Sentry's own, never below
        // (Kernel/HostScheduling.swift). Without CAP_SYS_RESOURCE nice values
        // only go up.
        _ = moat_nice_floor_limit()
        return nil
    }

    /// Step 3. Returns an error message, or nil.
    static func finish() -> String? {
        // This thread and the stub factory's, which drops its own privileges
        // below: any other thread started before now would keep them.
        if threadCount() > 2 { return "a thread started before the sentry confined itself" }
        var r = moat_sentry_empty_root()
        if r != 0 { return "cannot empty the sentry's root: errno \(-r)" }
        r = moat_drop_privileges_as(sandboxID)
        if r != 0 { return "cannot drop the sentry's privileges: errno \(-r)" }
        // Ids, capabilities and the bounding set are per thread (the raw
        // calls above change this thread only), and the stub factory's
        // thread started before this: it drops them itself, or it would
        // stay host root with the launcher's capabilities in the Sentry's
        // address space. The seccomp filter below reaches it by TSYNC.
        let id = sandboxID
        r = StubFactory.shared.onFactoryThread { moat_drop_privileges_as(id) }
        if r != 0 { return "cannot drop the stub factory thread's privileges: errno \(-r)" }
        r = moat_sentry_seccomp()
        if r != 0 { return "cannot install the sentry's seccomp filter: errno \(-r)" }
        return nil
    }

    /// Threads of this process, from /proc/self/stat (field 20).
    static func threadCount() -> Int {
        let fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC)
        if fd < 0 { return -1 }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 1024)
        let n = read(fd, &buf, buf.count)
        guard n > 0, let close = buf[..<n].lastIndex(of: UInt8(ascii: ")")) else { return -1 }
        let fields = buf[(close + 2)..<n].split(separator: UInt8(ascii: " "))
        // After the command: state is field 3, num_threads field 20.
        guard fields.count > 17, let t = Int(String(decoding: fields[17], as: UTF8.self)) else { return -1 }
        return t
    }
}
