// Connected AF_UNIX sockets (socketpair, and both ends of a connection made
// by connect/accept), in Sentry memory: each direction is a Pipe.
// SOCK_DGRAM and SOCK_SEQPACKET keep message boundaries (a short read
// truncates the message).
//
// Ancillary data (SCM_RIGHTS, SCM_CREDENTIALS) travels beside the bytes: an
// AncQueue per direction records, at the stream position of the first byte
// of the send that carried it, the open files in flight (each holding a
// reference, so a file survives its sender closing it) and the sender's
// credentials. A read never crosses into a send that carries ancillary data
// after it has read other bytes, as on Linux, so the files arrive with
// exactly the bytes they were sent with.

import CMoat
import Glibc

/// Credentials as SCM_CREDENTIALS and SO_PEERCRED carry them: the pid is
/// the root number (Kernel/PidNamespaces.swift), given to the reader as its
/// own pid namespace numbers it.
struct UnixCred { var pid: Int32; var uid: UInt32; var gid: UInt32 }
func sameWriter(_ a: UnixCred, _ b: UnixCred) -> Bool { a.pid == b.pid && a.uid == b.uid && a.gid == b.gid }
/// Two sends' credentials alike (none on either counts as alike only with none).
func sameCred(_ a: UnixCred?, _ b: UnixCred?) -> Bool {
    switch (a, b) {
    case (nil, nil): return true
    case (let x?, let y?): return sameWriter(x, y)
    default: return false
    }
}

extension Task {
    var unixCred: UnixCred { UnixCred(pid: tg.tgid, uid: creds.euid, gid: creds.egid) }
}

/// What one send carried besides bytes.
final class Ancillary {
    var files: [FileDescription] = []
    var cred: UnixCred?
    /// Streams: where the first piece of the send that carried this ends
    /// (Linux attaches the files to that one skb, and a read that takes
    /// them stops there).
    var streamEnd = Int.max
    /// Streams: where the whole send ends (its credentials cover all of it).
    var credEnd = Int.max
    init(files: [FileDescription], cred: UnixCred?) {
        self.files = files; self.cred = cred
        for f in files { f.refs += 1 } // in flight
    }
    /// Drops the in-flight references of files nobody received.
    func discard() {
        for f in files { FDTable.drop(f) }
        files.removeAll()
    }
}

/// The ancillary data of one direction of a connection, by stream position.
final class AncQueue {
    var written = 0
    var read = 0
    var entries: [(at: Int, anc: Ancillary)] = []
    /// The receiving socket asked for SO_PASSCRED: every send carries the
    /// sender's credentials.
    var passcred = false
    func discardAll() { for e in entries { e.anc.discard() }; entries.removeAll() }
}

final class UnixSocketFD: FileDescription {
    let type: Int32
    /// Our receiving side (reader of the peer's writes) and sending side.
    let rx: PipeFD
    let tx: PipeFD
    let rxAnc: AncQueue
    let txAnc: AncQueue
    var shutRead = false
    var shutWrite = false
    /// Our sending side was let go by shutdown (so not again at close).
    private var txReleased = false
    let ino: UInt64
    /// SO_PEERCRED: the peer's credentials when the connection was made.
    var peerCred = UnixCred(pid: 0, uid: 65534, gid: 65534)
    /// SO_RCVTIMEO / SO_SNDTIMEO (0: wait forever; negative: never wait).
    var rcvTimeoutNs: Int64 = 0
    var sndTimeoutNs: Int64 = 0
    /// SOL_SOCKET options kept for getsockopt (a socket pair's end; a
    /// socket made by socket() keeps its own in its UnixSockFD).
    var opts = UnixSockOpts()

    init(rx: PipeFD, tx: PipeFD, rxAnc: AncQueue, txAnc: AncQueue, type: Int32, flags: Int32) {
        self.rx = rx; self.tx = tx; self.rxAnc = rxAnc; self.txAnc = txAnc; self.type = type
        ino = newPipeIno()
        super.init(flags: flags, path: nil)
    }

    static func pair(type: Int32, flags: Int32) -> (UnixSocketFD, UnixSocketFD) {
        let ab = Pipe(), ba = Pipe()
        ab.capacity = 212_992; ba.capacity = 212_992
        let qab = AncQueue(), qba = AncQueue()
        let a = UnixSocketFD(rx: PipeFD(pipe: ba, reader: true, flags: O_RDONLY, ino: 0),
                             tx: PipeFD(pipe: ab, reader: false, flags: O_WRONLY, ino: 0),
                             rxAnc: qba, txAnc: qab, type: type, flags: flags)
        let b = UnixSocketFD(rx: PipeFD(pipe: ab, reader: true, flags: O_RDONLY, ino: 0),
                             tx: PipeFD(pipe: ba, reader: false, flags: O_WRONLY, ino: 0),
                             rxAnc: qab, txAnc: qba, type: type, flags: flags)
        return (a, b)
    }

    override var seekable: Bool { false }
    override var statfsMagic: Int64 { 0x534F434B } // SOCKFS_MAGIC, bound to a name or not
    override var readable: Bool { true }
    override var writable: Bool { true }
    override func seek(_ off: Int64, _ whence: Int32) -> Int { err(ESPIPE) }

    var messageMode: Bool { type == SOCK_DGRAM_ || type == SOCK_SEQPACKET_ }
    /// A datagram send found the peer closed and said ECONNREFUSED.
    private var peerRefused = false

    /// Waits on the pipe's queue. Returns 0, or when `stillWaiting` holds:
    /// EAGAIN once the timeout passed, -ERESTARTSYS (EINTR with a timeout
    /// set, as Linux) when a signal came.
    private func wait(_ t: Task, _ p: Pipe, _ timeoutNs: Int64, _ stillWaiting: () -> Bool) -> Int {
        if timeoutNs < 0 { return stillWaiting() ? err(EAGAIN) : 0 }   // a negative timeout set: no wait
        p.waiters.add(t)
        let r = t.block(deadline: timeoutNs > 0 ? Kernel.now(CLOCK_MONOTONIC) &+ timeoutNs : nil)
        p.waiters.remove(t)
        if r == .timedOut && stillWaiting() { return err(EAGAIN) }
        if r == .interrupted && stillWaiting() { return timeoutNs > 0 ? err(EINTR) : -ERESTARTSYS }
        return 0
    }

    // MARK: - Sending

    /// Sends `data` with optional ancillary data. Stream sockets send all of
    /// it unless non-blocking; message sockets send one message.
    func sendBytes(_ t: Task, _ data: [UInt8], anc: Ancillary?, dontWait: Bool, noSignal: Bool) -> Int {
        let p = tx.pipe
        func broken() -> Int {
            if !noSignal { t.sendSelfSignal(SIGPIPE) }
            return err(EPIPE)
        }
        if shutWrite { return broken() }
        // The peer shut its reading side: EPIPE, with SIGPIPE only for a
        // stream (Linux's unix_dgram_sendmsg, seqpacket's too, raises none).
        if p.readShut { anc?.discard(); return messageMode ? err(EPIPE) : broken() }
        var anc = anc
        // The sender's credentials go with every send once either end asked
        // for SO_PASSCRED (Linux's unix_passcred_enabled): the receiver may
        // turn it on after the send and still read who sent it.
        let passcred = txAnc.passcred || rxAnc.passcred
        if anc == nil && passcred { anc = Ancillary(files: [], cred: t.unixCred) }
        if anc != nil && anc!.cred == nil && passcred { anc!.cred = t.unixCred }
        let count = data.count
        if messageMode {
            if count > p.capacity { anc?.discard(); return err(EMSGSIZE) }
            while true {
                if p.readers == 0 {
                    anc?.discard()
                    // The peer is gone. A datagram socket: ECONNREFUSED once,
                    // then ENOTCONN, as Linux's unix_dgram_sendmsg forgets the
                    // dead peer; neither raises SIGPIPE.
                    if type == SOCK_DGRAM_ { defer { peerRefused = true }; return err(peerRefused ? ENOTCONN : ECONNREFUSED) }
                    return err(EPIPE)                                     // seqpacket: no SIGPIPE either
                }
                if p.capacity - p.available >= count { break }
                if nonblocking || dontWait { anc?.discard(); return err(EAGAIN) }
                let w = wait(t, p, sndTimeoutNs) { p.capacity - p.available < count && p.readers > 0 }
                if w < 0 { anc?.discard(); return w }
            }
            if p.head > 0 && p.head == p.buf.count { p.buf.removeAll(keepingCapacity: true); p.head = 0 }
            if let a = anc { txAnc.entries.append((txAnc.written, a)) }
            p.buf.append(contentsOf: data)
            p.messages.append(count)
            txAnc.written += count
            p.notify()
            return count
        }
        // Nothing is queued for an empty send, and what it carried is
        // dropped (Linux's unix_stream_sendmsg loops while bytes remain).
        if count == 0 { anc?.discard(); return 0 }
        var done = 0
        while done < count {
            if p.readers == 0 {
                if done == 0 { anc?.discard() }
                return done > 0 ? done : broken()
            }
            let space = p.capacity - p.available
            if space <= 0 {
                if nonblocking || dontWait {
                    if done == 0 { anc?.discard() }
                    return done > 0 ? done : err(EAGAIN)
                }
                let w = wait(t, p, sndTimeoutNs) { p.capacity - p.available <= 0 && p.readers > 0 }
                if w < 0 {
                    if done == 0 { anc?.discard() }
                    return done > 0 ? done : w
                }
                continue
            }
            let n = min(space, count - done)
            if done == 0, let a = anc {
                a.streamEnd = txAnc.written + n
                txAnc.entries.append((txAnc.written, a))
            }
            if n == 0 { break }
            p.buf.append(contentsOf: data[done..<done + n])
            txAnc.written += n
            anc?.credEnd = txAnc.written
            done += n
            p.notify()
        }
        return done
    }

    // MARK: - Receiving

    struct Received {
        var ret: Int
        var data: [UInt8] = []
        var anc: Ancillary? = nil
        var truncated = false
        /// Message sockets: the whole message's length (what MSG_TRUNC returns).
        var full = 0
    }

    /// Receives at most `max` bytes. The ancillary data returned is owned
    /// by the caller (its in-flight references), unless `peek`.
    func recvBytes(_ t: Task, max: Int, peek: Bool, dontWait: Bool, waitAll: Bool) -> Received {
        let p = rx.pipe
        let q = rxAnc
        if messageMode {
            while p.messages.isEmpty {
                if p.connReset { p.connReset = false; return Received(ret: err(ECONNRESET)) }
                // A datagram pair's closed peer ends nothing (Linux shuts
                // only a stream or seqpacket peer): EAGAIN, or wait.
                let dgram = type == SOCK_DGRAM_
                if shutRead || (p.writers == 0 && !dgram) { return Received(ret: 0) }
                if nonblocking || dontWait { return Received(ret: err(EAGAIN)) }
                let w = wait(t, p, rcvTimeoutNs) { p.messages.isEmpty && (p.writers > 0 || dgram) }
                if w < 0 { return Received(ret: w) }
            }
            let size = p.messages[0]
            let n = min(max, size)
            var r = Received(ret: n, data: Array(p.buf[p.head..<p.head + n]), truncated: n < size, full: size)
            while let e = q.entries.first, e.at < q.read { e.anc.discard(); q.entries.removeFirst() }
            if let e = q.entries.first, e.at == q.read {
                r.anc = e.anc
                if !peek { q.entries.removeFirst() }
            }
            if !peek {
                p.messages.removeFirst()
                p.head += size
                q.read += size
                compact(p)
                p.notify()
            }
            return r
        }
        var out: [UInt8] = []
        var anc: Ancillary? = nil
        var firstCred: UnixCred? = nil
        while out.count < max || max == 0 {
            while p.available == 0 {
                if p.connReset && out.isEmpty { p.connReset = false; return Received(ret: err(ECONNRESET)) }
                if shutRead || p.writers == 0 || !out.isEmpty && !waitAll { return Received(ret: out.count, data: out, anc: anc) }
                if nonblocking || dontWait { return out.isEmpty ? Received(ret: err(EAGAIN)) : Received(ret: out.count, data: out, anc: anc) }
                let w = wait(t, p, rcvTimeoutNs) { p.available == 0 && p.writers > 0 }
                if w < 0 { return out.isEmpty ? Received(ret: w) : Received(ret: out.count, data: out, anc: anc) }
            }
            while let e = q.entries.first, e.at < q.read { e.anc.discard(); q.entries.removeFirst() }
            if max == 0 {
                // A zero-length read still takes the files of the send at
                // the head (its bytes stay, the files come once), as Linux.
                if !peek, let e = q.entries.first, e.at == q.read, !e.anc.files.isEmpty {
                    let a = Ancillary(files: [], cred: e.anc.cred)
                    a.files = e.anc.files          // the in-flight references move with them
                    e.anc.files.removeAll()
                    return Received(ret: 0, anc: a)
                }
                return Received(ret: 0)
            }
            var limit = p.available
            if !peek {
                // Linux's unix_stream_read_generic: a read runs on across
                // sends, takes the files of the first send that carries
                // some and stops after that send; with SO_PASSCRED it never
                // joins sends of different writers.
                var carriesFiles = false
                var took: Ancillary? = nil
                // A send without an entry here carried no credentials: it
                // does not join one that did, nor the other way round.
                let here = q.entries.first.flatMap { $0.at == q.read ? $0 : nil }
                if !out.isEmpty && q.passcred && !sameCred(here?.anc.cred, firstCred) { break }
                if out.isEmpty { firstCred = here?.anc.cred }
                if let e = here {
                    q.entries.removeFirst()
                    took = e.anc
                    carriesFiles = !e.anc.files.isEmpty
                    if let a = anc {
                        a.files += e.anc.files
                        e.anc.files.removeAll()
                    } else {
                        anc = e.anc
                    }
                    if carriesFiles { limit = min(limit, e.anc.streamEnd - q.read) }
                    // Credentials asked for: this send's end is a boundary
                    // (what follows may carry none).
                    if q.passcred && e.anc.cred != nil { limit = min(limit, e.anc.credEnd - q.read) }
                }
                if let next = q.entries.first { limit = min(limit, next.at - q.read) }
                let n = min(max - out.count, limit)
                out.append(contentsOf: p.buf[p.head..<p.head + n])
                p.head += n
                q.read += n
                // Part of a send is left: its credentials stay with the
                // rest (the files went with this read), as on Linux's skb.
                if let a = took, let c = a.cred, q.read < a.credEnd {
                    let rest = Ancillary(files: [], cred: c)
                    rest.credEnd = a.credEnd
                    q.entries.insert((q.read, rest), at: 0)
                }
                compact(p)
                p.notify()
                if carriesFiles { break }
                continue
            }
            // MSG_PEEK: one stretch up to the next send with ancillary data.
            if let e = q.entries.first {
                if e.at == q.read && out.isEmpty {
                    anc = e.anc
                    if !peek { q.entries.removeFirst() }
                    if let next = (peek ? q.entries.dropFirst().first : q.entries.first) { limit = min(limit, next.at - q.read) }
                } else if e.at == q.read {
                    break
                } else {
                    limit = min(limit, e.at - q.read)
                }
            }
            let n = min(max - out.count, limit)
            out.append(contentsOf: p.buf[p.head..<p.head + n])
            if peek { break }
            p.head += n
            q.read += n
            compact(p)
            p.notify()
            if !waitAll || anc != nil { break }
        }
        return Received(ret: out.count, data: out, anc: anc)
    }

    private func compact(_ p: Pipe) {
        if p.head == p.buf.count { p.buf.removeAll(keepingCapacity: true); p.head = 0 }
        else if p.head > 65536 { p.buf.removeSubrange(0..<p.head); p.head = 0 }
    }

    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if off != nil { return err(ESPIPE) }
        let r = recvBytes(t, max: min(count, 1 << 20), peek: false, dontWait: false, waitAll: false)
        r.anc?.discard() // read(2) drops passed files, as Linux does
        if r.ret <= 0 { return r.ret }
        return t.copyOut(buf, r.data) ? r.ret : err(EFAULT)
    }

    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if off != nil { return err(ESPIPE) }
        if count == 0 && !messageMode { return 0 }
        if messageMode && count > tx.pipe.capacity { return err(EMSGSIZE) }
        // Streams in bounded pieces, so a huge write never needs a huge copy.
        var done = 0
        repeat {
            let n = messageMode ? count : min(count - done, 1 << 20)   // a message goes whole
            guard let data = t.copyIn(buf &+ UInt64(done), n) else { return done > 0 ? done : err(EFAULT) }
            let r = sendBytes(t, data, anc: nil, dontWait: done > 0 && nonblocking, noSignal: false)
            if r < 0 { return done > 0 ? done : r }
            done += r
            if r < n || messageMode { break }
        } while done < count
        return done
    }

    /// SO_SNDBUF: sends wait while the peer holds that much of ours unread
    /// (Linux's sk_wmem_alloc against sk_sndbuf); a smaller value than what
    /// is queued already makes the next send wait (EAGAIN when it may not).
    func setSndbuf(_ n: Int) {
        tx.pipe.capacity = n
        tx.pipe.notify()
    }

    func shutdown(_ how: Int32) {
        if how == SHUT_RD || how == SHUT_RDWR { shutRead = true; rx.pipe.readShut = true; rx.pipe.notify() }
        if (how == SHUT_WR || how == SHUT_RDWR) && !shutWrite {
            shutWrite = true
            // The peer sees end of file, except on a datagram pair: Linux's
            // unix_shutdown tells a stream or seqpacket peer only.
            if type != SOCK_DGRAM_ { tx.release(); txReleased = true }
        }
    }

    override func readiness() -> Int16 {
        var r = rx.readiness() & Int16(pollReadable)
        if messageMode && rx.pipe.messages.isEmpty { r &= ~Int16(pollReadable) }
        // A writable Unix socket also says POLLWRBAND (Linux's unix_poll).
        // Writable while the send buffer has room, shut or not (Linux's
        // unix_poll and unix_dgram_poll look at nothing else; a send after
        // SHUT_WR is EPIPE all the same).
        if tx.readiness() & Int16(POLLOUT) != 0 { r |= Int16(pollWritable | POLLWRBAND_) }
        // Linux's unix_poll: HUP once both directions are shut (the peer
        // gone, or each side shut by either end: a peer's SHUT_RD shuts our
        // sending side), not for one alone.
        if (rx.pipe.writers == 0 || shutRead) && (tx.pipe.readers == 0 || shutWrite || tx.pipe.readShut) { r |= Int16(POLLHUP) }
        if rx.pipe.writers == 0 { r |= Int16(pollReadable | POLLRDHUP_) }
        if shutRead { r |= Int16(pollReadable | POLLRDHUP_) }
        if rx.pipe.connReset { r |= Int16(POLLERR) }                       // unix_poll: sk_err
        return r
    }
    override func addWaiter(_ t: Waiter) { rx.addWaiter(t); tx.addWaiter(t) }
    override func wakeups() -> UInt64 { rx.wakeups() &+ tx.wakeups() }
    override func registerAsync() -> Bool { rx.pipe.waiters.addAsync(self); tx.pipe.waiters.addAsync(self); return true }
    override func removeWaiter(_ t: Waiter) { rx.removeWaiter(t); tx.removeWaiter(t) }
    override func ioctl(_ t: Task, _ cmd: UInt64, _ arg: UInt64) -> Int {
        if cmd == 0x5411 { return t.writeI32(arg, Int32(tx.pipe.available)) ? 0 : err(EFAULT) } // SIOCOUTQ
        if cmd == 0x541B && messageMode { return t.writeI32(arg, Int32(rx.pipe.messages.first ?? 0)) ? 0 : err(EFAULT) }
        if cmd == 0x541B { return rx.ioctl(t, cmd, arg) }
        return interfaceIoctlWithoutSocket(t, cmd, arg)
    }
    /// The peer's next receive is ECONNRESET (then end of file), its poll
    /// says POLLERR and SO_ERROR reports it once: Linux's sk_err.
    func resetPeer() { if type != SOCK_DGRAM_ { tx.pipe.connReset = true; tx.pipe.notify() } }
    /// A pending ECONNRESET, taken (SO_ERROR).
    func takeReset() -> Bool { defer { rx.pipe.connReset = false }; return rx.pipe.connReset }
    override func release() {
        if type != SOCK_DGRAM_ && rx.pipe.available > 0 { tx.pipe.connReset = true }
        rx.release()
        if !txReleased { tx.release() }
        // Files still in flight towards us will never be received.
        rxAnc.discardAll()
    }
    override func stat() -> Result<Stat, Errno> {
        var s = Stat(); s.mode = S_IFSOCK_ | 0o777; s.ino = ino; s.dev = 8; s.blksize = 4096
        return .success(s)
    }
    override func linkName(_ k: Kernel) -> [UInt8] { Array("socket:[\(ino)]".utf8) }
}
