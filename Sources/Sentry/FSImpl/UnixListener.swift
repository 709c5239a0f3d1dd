// socket(AF_UNIX): unnamed, bound (abstract or path names), listening and
// connected stream/seqpacket sockets. A connection is a socketpair: the
// client keeps one end, the listener queues the other for accept.
// Datagram sockets can be created and connected by socketpair only.

import CMoat
import Glibc

final class UnixSockFD: FileDescription {
    let type: Int32
    /// Set once connected (or accepted).
    var conn: UnixSocketFD?
    var listening = false
    var backlog: [UnixSockFD] = []
    var waiters = WaitQueue()
    /// The name bound to this socket (sun_path bytes; leading 0 = abstract).
    var name: [UInt8]? = nil
    var peerName: [UInt8]? = nil
    var pathKey: UnixNames.PathKey? = nil
    unowned let kernel: Kernel
    let ino: UInt64

    init(kernel: Kernel, type: Int32, flags: Int32, conn: UnixSocketFD? = nil) {
        self.kernel = kernel
        self.type = type
        self.conn = conn
        ino = newPipeIno()
        super.init(flags: flags, path: nil)
    }

    override var seekable: Bool { false }
    override var readable: Bool { true }
    override var writable: Bool { true }
    override func seek(_ off: Int64, _ whence: Int32) -> Int { err(ESPIPE) }
    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        guard let c = conn else { return err(ENOTCONN) }
        c.flags = flags
        return c.read(t, buf, count, off)
    }
    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        guard let c = conn else { return err(ENOTCONN) }
        c.flags = flags
        return c.write(t, buf, count, off)
    }
    override func readiness() -> Int16 {
        if let c = conn { return c.readiness() }
        if listening { return backlog.isEmpty ? 0 : Int16(POLLIN) }
        return Int16(POLLOUT | POLLHUP)
    }
    override func addWaiter(_ t: Task) { waiters.add(t); conn?.addWaiter(t) }
    override func removeWaiter(_ t: Task) { waiters.remove(t); conn?.removeWaiter(t) }
    override func ioctl(_ t: Task, _ cmd: UInt64, _ arg: UInt64) -> Int { conn?.ioctl(t, cmd, arg) ?? err(ENOTTY) }
    override func release() {
        conn?.release()
        for b in backlog { b.release() }
        backlog.removeAll()
        kernel.unixNames.forget(self)
        waiters.notifyAll()
    }
    override func stat() -> Result<Stat, Errno> {
        var s = Stat(); s.mode = S_IFSOCK_ | 0o777; s.ino = ino; s.dev = 8; s.blksize = 4096
        return .success(s)
    }
    override func linkName(_ k: Kernel) -> [UInt8] { Array("socket:[\(ino)]".utf8) }
}

/// The names of bound AF_UNIX sockets: abstract names, and socket files in
/// the sandbox's file systems (by device and inode).
final class UnixNames {
    struct PathKey: Hashable { let dev: UInt64; let ino: UInt64 }
    var abstract: [[UInt8]: UnixSockFD] = [:]
    var paths: [PathKey: UnixSockFD] = [:]

    func forget(_ s: UnixSockFD) {
        if let n = s.name, n.first == 0, abstract[n] === s { abstract[n] = nil }
        if let k = s.pathKey, paths[k] === s { paths[k] = nil }
    }
}
