// Signal-driven I/O: O_ASYNC (fcntl F_SETFL or ioctl FIOASYNC), the owner
// set by F_SETOWN / F_SETOWN_EX and the signal chosen by F_SETSIG, as
// fcntl(2) describes. A description with O_ASYNC set is registered with
// the wait queue of the object it reads or writes (a pipe, a socket pair's
// two pipes, a pty); every wakeup of that queue sends the owner SIGIO (or
// the F_SETSIG signal, with si_code POLL_IN/POLL_OUT/POLL_HUP, si_band and
// si_fd) when the description is then readable, writable or hung up, as
// Linux does on each state change of such a file. Host-backed inet sockets
// keep the flag but raise no signal (the host tells the Sentry nothing).

import CMoat
import Glibc

let FIOASYNC_: UInt64 = 0x5452
let F_SETSIG_: Int32 = 10, F_GETSIG_: Int32 = 11
let F_SETOWN_EX_: Int32 = 15, F_GETOWN_EX_: Int32 = 16

/// Who gets a description's I/O signals and which signal it is.
struct AsyncOwner {
    enum Kind: Int32 { case thread = 0, process = 1, group = 2 } // F_OWNER_TID, F_OWNER_PID, F_OWNER_PGRP
    var kind: Kind = .process
    var id: Int32 = 0
    /// F_SETSIG: 0 means SIGIO without the extra siginfo.
    var signal: Int32 = 0
    /// The fd number given when O_ASYNC was set: si_fd.
    var fd: Int32 = -1
    /// Writable at the last wakeup (POLL_OUT is sent when it comes back).
    var writable = true
}

/// A weak link from a wait queue to a description that wants I/O signals.
final class AsyncLink {
    weak var file: FileDescription?
    init(_ f: FileDescription) { file = f }
}

extension WaitQueue {
    /// Registers `f` for I/O signals on this queue's wakeups (once).
    mutating func addAsync(_ f: FileDescription) {
        asyncLinks.removeAll { $0.file == nil }
        if !asyncLinks.contains(where: { $0.file === f }) { asyncLinks.append(AsyncLink(f)) }
    }
    func signalAsync() {
        for l in asyncLinks { l.file?.raiseIOSignal() }
    }
}

extension FileDescription {
    /// O_ASYNC was set on the description (F_SETFL or FIOASYNC) through `fd`.
    /// Returns false for a file without signal-driven I/O.
    @discardableResult
    func asyncEnabled(_ t: Task, fd: Int32) -> Bool {
        if asyncOwner == nil { asyncOwner = AsyncOwner() }
        asyncOwner!.fd = fd
        return registerAsync()
    }

    /// Sends the owner its I/O signal if the description is ready now.
    /// Requires: Kernel.mu held.
    func raiseIOSignal() {
        guard flags & O_ASYNC != 0, let o = asyncOwner, o.id != 0, let k = Kernel.shared else { return }
        let r = Int32(readiness())
        // Readable, hung up or failed: on every wakeup, as Linux signals
        // each arrival. Writable: only when it was not (space came back).
        let canWrite = r & POLLOUT != 0 && writable
        let wasWritable = o.writable
        asyncOwner!.writable = canWrite
        var band: Int64 = 0, code: Int32 = 0
        if r & POLLIN != 0 && readable { band = Int64(POLLIN | 0x40); code = 1 }    // POLL_IN
        else if r & POLLHUP != 0 { band = Int64(POLLHUP); code = 6 }                     // POLL_HUP
        else if r & POLLERR != 0 { band = Int64(POLLERR); code = 4 }                     // POLL_ERR
        else if canWrite && !wasWritable { band = Int64(POLLOUT | 0x100); code = 2 } // POLL_OUT
        guard code != 0 else { return }
        let sig = o.signal != 0 ? o.signal : SIGIO
        var info = SigInfo(signo: sig)
        if o.signal != 0 {
            info.code = code
            info.pollBand = band
            info.pollFD = o.fd
        } else {
            info.code = 0x80 // SI_KERNEL
        }
        switch o.kind {
        case .thread:
            k.tasks[o.id]?.sendSignal(sig, info)
        case .process:
            k.threadGroup(o.id)?.sendSignal(sig, info)
        case .group:
            for tg in k.threadGroups.values where tg.pgid == o.id { tg.sendSignal(sig, info) }
        }
    }
}

/// The fcntl commands about I/O signal owners; nil when `cmd` is not one.
func asyncFcntl(_ t: Task, _ f: FileDescription, _ cmd: Int32, _ arg: UInt64) -> Int? {
    switch cmd {
    case F_SETOWN:
        let v = Int32(truncatingIfNeeded: arg)
        if v == Int32.min { return err(EINVAL) }        // -v would overflow (Linux checks it)
        // Owners are kept as the root namespace numbers them (PidNamespaces.swift).
        let id = v == 0 ? 0 : t.gpid(v < 0 ? -v : v)
        if id != 0 && !pidInUse(t.kernel, id) { return err(ESRCH) }
        var o = f.asyncOwner ?? AsyncOwner()
        o.kind = v < 0 ? .group : .process; o.id = id
        f.asyncOwner = o
        return 0
    case F_GETOWN:
        guard let o = f.asyncOwner else { return 0 }
        return Int(o.kind == .group ? -t.vpid(o.id) : t.vpid(o.id))
    case F_SETOWN_EX_:
        guard let b = t.copyIn(arg, 8) else { return err(EFAULT) }
        guard let kind = AsyncOwner.Kind(rawValue: Int32(bitPattern: get32(b, 0))) else { return err(EINVAL) }
        let local = Int32(bitPattern: get32(b, 4))
        // Any pid in use will do whatever the type (Linux looks the number
        // up once); a negative one names none.
        let id = local <= 0 ? 0 : t.gpid(local)
        if local < 0 || local > 0 && !pidInUse(t.kernel, id) { return err(ESRCH) }
        var o = f.asyncOwner ?? AsyncOwner()
        o.kind = kind; o.id = id
        f.asyncOwner = o
        return 0
    case F_GETOWN_EX_:
        let o = f.asyncOwner ?? AsyncOwner()
        var b = [UInt8](repeating: 0, count: 8)
        put32(&b, 0, o.kind.rawValue); put32(&b, 4, t.vpid(o.id))
        return t.copyOut(arg, b) ? 0 : err(EFAULT)
    case F_SETSIG_:
        let s = Int32(truncatingIfNeeded: arg)
        if s < 0 || s > 64 { return err(EINVAL) }
        var o = f.asyncOwner ?? AsyncOwner()
        o.signal = s
        f.asyncOwner = o
        return 0
    case F_GETSIG_:
        return Int(f.asyncOwner?.signal ?? 0)
    default:
        return nil
    }
}

/// Whether a pid number (as the root namespace numbers it) is in use, as
/// Linux's find_vpid sees it: a thread, a process not yet reaped, or a
/// process group or session some process still belongs to.
private func pidInUse(_ k: Kernel, _ id: Int32) -> Bool {
    if k.tasks[id] != nil { return true }
    if let tg = k.threadGroups[id], !tg.reaped { return true }
    return k.threadGroups.values.contains { !$0.reaped && ($0.pgid == id || $0.sid == id) }
}
