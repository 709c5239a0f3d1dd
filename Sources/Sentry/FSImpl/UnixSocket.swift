// socketpair(AF_UNIX): a connected pair of sockets in Sentry memory, each
// direction a Pipe. SOCK_DGRAM and SOCK_SEQPACKET keep message boundaries
// (a short read truncates the message). Names, listen/accept/connect and
// SCM_RIGHTS belong to the networking issue.

import CMoat
import Glibc

final class UnixSocketFD: FileDescription {
    let type: Int32
    /// Our receiving side (reader of the peer's writes) and sending side.
    let rx: PipeFD
    let tx: PipeFD
    var shutRead = false
    var shutWrite = false
    let ino: UInt64

    init(rx: PipeFD, tx: PipeFD, type: Int32, flags: Int32) {
        self.rx = rx; self.tx = tx; self.type = type
        ino = newPipeIno()
        super.init(flags: flags, path: nil)
    }

    static func pair(type: Int32, flags: Int32) -> (UnixSocketFD, UnixSocketFD) {
        let ab = Pipe(), ba = Pipe()
        ab.capacity = 212_992; ba.capacity = 212_992
        let a = UnixSocketFD(rx: PipeFD(pipe: ba, reader: true, flags: O_RDONLY, ino: 0),
                             tx: PipeFD(pipe: ab, reader: false, flags: O_WRONLY, ino: 0), type: type, flags: flags)
        let b = UnixSocketFD(rx: PipeFD(pipe: ab, reader: true, flags: O_RDONLY, ino: 0),
                             tx: PipeFD(pipe: ba, reader: false, flags: O_WRONLY, ino: 0), type: type, flags: flags)
        return (a, b)
    }

    override var seekable: Bool { false }
    override var readable: Bool { true }
    override var writable: Bool { true }
    override func seek(_ off: Int64, _ whence: Int32) -> Int { err(ESPIPE) }

    var messageMode: Bool { type == 2 || type == 5 }

    func recv(_ t: Task, _ buf: UInt64, _ count: Int, dontWait: Bool) -> Int {
        if shutRead { return 0 }
        if messageMode {
            let p = rx.pipe
            while p.messages.isEmpty {
                if p.writers == 0 { return 0 }
                if nonblocking || dontWait { return err(EAGAIN) }
                p.waiters.add(t)
                let r = t.block(deadline: nil)
                p.waiters.remove(t)
                if r == .interrupted && p.messages.isEmpty && p.writers > 0 { return -ERESTARTSYS }
            }
            let size = p.messages.removeFirst()
            let n = min(count, size)
            let ok = p.buf.withUnsafeBytes { t.copyOut(buf, $0.baseAddress! + p.head, n) }
            p.head += size
            if p.head == p.buf.count { p.buf.removeAll(keepingCapacity: true); p.head = 0 }
            else if p.head > 65536 { p.buf.removeSubrange(0..<p.head); p.head = 0 }
            p.notify()
            return ok ? n : err(EFAULT)
        }
        rx.flags = (nonblocking || dontWait) ? O_NONBLOCK : 0
        return rx.read(t, buf, count, nil)
    }

    func send(_ t: Task, _ buf: UInt64, _ count: Int, dontWait: Bool, noSignal: Bool) -> Int {
        if shutWrite {
            if !noSignal { t.sendSignal(SIGPIPE, SigInfo(signo: SIGPIPE)) }
            return err(EPIPE)
        }
        if messageMode {
            let p = tx.pipe
            if count > p.capacity { return err(EMSGSIZE) }
            while true {
                if p.readers == 0 {
                    if !noSignal { t.sendSignal(SIGPIPE, SigInfo(signo: SIGPIPE)) }
                    return err(EPIPE)
                }
                if p.capacity - p.available >= count { break }
                if nonblocking || dontWait { return err(EAGAIN) }
                p.waiters.add(t)
                let r = t.block(deadline: nil)
                p.waiters.remove(t)
                if r == .interrupted && p.capacity - p.available < count && p.readers > 0 { return -ERESTARTSYS }
            }
            guard let bytes = t.copyIn(buf, count) else { return err(EFAULT) }
            if p.head > 0 && p.head == p.buf.count { p.buf.removeAll(keepingCapacity: true); p.head = 0 }
            p.buf.append(contentsOf: bytes)
            p.messages.append(count)
            p.notify()
            return count
        }
        tx.flags = (nonblocking || dontWait) ? O_WRONLY | O_NONBLOCK : O_WRONLY
        tx.suppressSIGPIPE = noSignal
        let r = tx.write(t, buf, count, nil)
        tx.suppressSIGPIPE = false
        return r
    }

    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if off != nil { return err(ESPIPE) }
        return recv(t, buf, count, dontWait: false)
    }
    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if off != nil { return err(ESPIPE) }
        return send(t, buf, count, dontWait: false, noSignal: false)
    }

    func shutdown(_ how: Int32) {
        if how == SHUT_RD || how == SHUT_RDWR { shutRead = true }
        if (how == SHUT_WR || how == SHUT_RDWR) && !shutWrite {
            shutWrite = true
            tx.release() // the peer sees end of file
        }
    }

    override func readiness() -> Int16 {
        var r = rx.readiness() & Int16(POLLIN | POLLHUP)
        if messageMode && rx.pipe.messages.isEmpty { r &= ~Int16(POLLIN) }
        if !shutWrite { r |= tx.readiness() & Int16(POLLOUT) }
        if tx.pipe.readers == 0 { r |= Int16(POLLHUP) }
        if shutRead { r |= Int16(POLLIN) }
        return r
    }
    override func addWaiter(_ t: Task) { rx.addWaiter(t); tx.addWaiter(t) }
    override func removeWaiter(_ t: Task) { rx.removeWaiter(t); tx.removeWaiter(t) }
    override func ioctl(_ t: Task, _ cmd: UInt64, _ arg: UInt64) -> Int { rx.ioctl(t, cmd, arg) }
    override func release() {
        rx.release()
        if !shutWrite { tx.release() }
    }
    override func stat() -> Result<Stat, Errno> {
        var s = Stat(); s.mode = S_IFSOCK_ | 0o777; s.ino = ino; s.dev = 8; s.blksize = 4096
        return .success(s)
    }
    override func linkName(_ k: Kernel) -> [UInt8] { Array("socket:[\(ino)]".utf8) }
}
