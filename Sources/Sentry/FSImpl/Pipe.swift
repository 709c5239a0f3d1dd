// Pipes and FIFOs, in Sentry memory.

import CMoat
import Glibc

final class Pipe {
    var buf: [UInt8] = []
    var head = 0
    var capacity = 65536
    var readers = 0
    var writers = 0
    var waiters = WaitQueue()
    var hadWriter = false
    /// A socket's receiving end shut down for reading (shutdown SHUT_RD):
    /// the sender's writes fail with EPIPE.
    var readShut = false
    /// A stream or seqpacket socket's reader closed with bytes unread: its
    /// peer's next receive that finds nothing queued fails once with
    /// ECONNRESET (Linux's sk_err from unix_release_sock).
    var connReset = false
    /// Opens of each end so far: a FIFO opener waits for the other end to
    /// have been opened, even if it was closed again since (Linux's
    /// r_counter/w_counter).
    var readerOpens = 0
    var writerOpens = 0
    /// Message boundaries (datagram and seqpacket sockets): sizes of the
    /// queued messages, in order.
    var messages: [Int] = []
    /// Packet mode (pipe2 O_DIRECT): sizes of the queued packets, oldest
    /// first, and how many bytes of ordinary data precede the first one.
    /// Empty when no packet is queued.
    var packets: [Int] = []
    var bytesBeforePackets = 0
    var available: Int { buf.count - head }
    /// The storage of a drained chunk that a big write filled whole
    /// (PipeFD.write): the next such write hands it to its task as the
    /// scratch buffer in exchange for the chunk it staged there, so a
    /// staged chunk goes into the pipe without a copy.
    var spare: [UInt8] = []
    /// pipe2's pipe: its inode, owned by the creator (FileDescription.ownInode).
    var ownInode: Inode?
    /// Linux keeps each packet in its own page: a packet uses a whole page
    /// of the capacity however short it is.
    var used: Int { available + packets.reduce(0) { $0 + (4096 - $1 % 4096) % 4096 } }
    func notify() { waiters.notifyAll() }
    /// Wakeups about data arriving (a write) and about room made (a read),
    /// for edge-triggered epoll entries of one direction (PipeFD.wakeups(for:)).
    var dataWakeups: UInt64 = 0, roomWakeups: UInt64 = 0
    func notifyData() { dataWakeups &+= 1; notify() }
    func notifyRoom() { roomWakeups &+= 1; notify() }

    /// F_SETPIPE_SZ: the capacity rounded up to a power-of-two number of
    /// pages, at least one page; EBUSY when the data would not fit.
    /// `maxSize`: fs.pipe-max-size, the most without CAP_SYS_RESOURCE.
    func resize(_ want: UInt64, privileged: Bool, maxSize: Int) -> Int {
        guard let size = Pipe.roundedSize(want) else { return err(EINVAL) }
        if size > maxSize && size > capacity && !privileged { return err(EPERM) }
        // Occupancy counts pages, as Linux's ring of page buffers does.
        if (used + 4095) / 4096 > size / 4096 { return err(EBUSY) }
        capacity = size
        notify()
        return size
    }
}

extension Pipe {
    /// A pipe size as Linux rounds one (F_SETPIPE_SZ, fs.pipe-max-size):
    /// a power-of-two number of pages, at least one; nil past 2 GiB.
    static func roundedSize(_ want: UInt64) -> Int? {
        if want > 1 << 31 { return nil }
        var size = 4096
        while size < Int(want) { size <<= 1 }
        return size
    }
}

final class PipeFD: FileDescription {
    let pipe: Pipe
    let isReader: Bool
    let ino: UInt64
    /// send(MSG_NOSIGNAL) on a socket built from pipes.
    var suppressSIGPIPE = false
    /// A FIFO opened O_RDWR: the reader end that is also a writer.
    var alsoWriter = false

    init(pipe: Pipe, reader: Bool, flags: Int32, ino: UInt64) {
        self.pipe = pipe
        self.isReader = reader
        self.ino = ino
        super.init(flags: flags, path: nil)
        if reader { pipe.readers += 1; pipe.readerOpens += 1 } else { pipe.writers += 1; pipe.writerOpens += 1; pipe.hadWriter = true }
    }

    override var seekable: Bool { false }
    override var statfsMagic: Int64 { inode?.fsMagic ?? 0x50495045 } // PIPEFS_MAGIC
    override func seek(_ off: Int64, _ whence: Int32) -> Int { err(ESPIPE) }

    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if !isReader { return err(EBADF) }
        if off != nil { return err(ESPIPE) }
        if count == 0 { return 0 }
        // A read in progress holds the description, as Linux's fdget in a
        // shared table: another thread's close() of the descriptor leaves
        // the pipe a reader until this read returns (a write then succeeds
        // and this read gets its bytes instead of waiting for ever).
        var held = false
        defer { if held { FDTable.drop(self) } }
        while pipe.available == 0 {
            if pipe.writers == 0 { return 0 }
            if nonblocking { return err(EAGAIN) }
            if !held { refs += 1; held = true }
            pipe.waiters.add(t)
            let r = t.block(deadline: nil)
            pipe.waiters.remove(t)
            // The condition wins over a signal that arrived with it.
            if r == .interrupted && pipe.available == 0 && pipe.writers > 0 { return -ERESTARTSYS }
        }
        // A packet is read whole: what does not fit in `count` is dropped.
        let atPacket = !pipe.packets.isEmpty && pipe.bytesBeforePackets == 0
        let limit = atPacket ? pipe.packets[0] : pipe.packets.isEmpty ? pipe.available : pipe.bytesBeforePackets
        let n = min(count, limit)
        if PipeFD.unlockedCopies && !atPacket && pipe.packets.isEmpty && pipe.head == 0 && n == pipe.buf.count && n >= PipeFD.unlockedReadMin
            && buf < Task.bounceBase && t.keepsKernelLock == 0 && t.thread?.hasStub == true
            && t.mm.fullyMapped(buf, buf &+ UInt64(n), prot: PROT_WRITE) {
            return takeAll(t, buf, n, held: &held)
        }
        let ok = pipe.buf.withUnsafeBytes { t.copyOut(buf, $0.baseAddress! + pipe.head, n) }
        if !ok { return err(EFAULT) }
        if atPacket { pipe.head += pipe.packets.removeFirst() }
        else {
            pipe.head += n
            if !pipe.packets.isEmpty { pipe.bytesBeforePackets -= n }
        }
        if pipe.head == pipe.buf.count {
            if PipeFD.unlockedCopies && pipe.buf.count == t.scratch.count { pipe.spare = pipe.buf; pipe.buf = [] }
            else { pipe.buf.removeAll(keepingCapacity: true) }
            pipe.head = 0
        } else if pipe.head > 65536 { pipe.buf.removeSubrange(0..<pipe.head); pipe.head = 0 }
        pipe.notifyRoom()
        return n
    }

    /// False with MOAT_PIPE_COPY=locked in the Sentry's environment: every
    /// copy between a pipe and the application under Kernel.mu, as before
    /// perf22, for measuring one build against itself.
    static let unlockedCopies = getenv("MOAT_PIPE_COPY").map { String(cString: $0) } != "locked"

    /// Reads that empty the pipe of at least this much copy it out with
    /// Kernel.mu given up (`takeAll`).
    static let unlockedReadMin = 16 << 10

    /// A read of everything the pipe holds, [0, n) of `pipe.buf`: the
    /// bytes leave the pipe at once (it is empty to every other caller,
    /// and a blocked writer may fill it again) and are copied to the
    /// application with Kernel.mu given up, so that the writer's copy in
    /// and this copy out run side by side. The caller checked that the
    /// whole destination is mapped writable; should the copy still fail
    /// (an unmap meanwhile), the bytes go back in front of whatever came
    /// since and the read fails with EFAULT, as when they never left.
    /// Requires: mu held, on the ptrace platform.
    private func takeAll(_ t: Task, _ buf: UInt64, _ n: Int, held: inout Bool) -> Int {
        var chunk: [UInt8] = []
        swap(&chunk, &pipe.buf)
        pipe.head = 0
        if !held { refs += 1; held = true }
        pipe.notifyRoom()
        let ok = t.withoutKernelLock { chunk.withUnsafeBytes { t.copyOut(buf, $0.baseAddress!, n) } }
        if !ok {
            if !pipe.packets.isEmpty { pipe.bytesBeforePackets += n }
            chunk.append(contentsOf: pipe.buf[pipe.head...])
            pipe.buf = chunk
            pipe.head = 0
            pipe.notifyData()
            return err(EFAULT)
        }
        if chunk.count == t.scratch.count { pipe.spare = chunk }
        return n
    }

    /// Writes with more than this left copy their next chunk from the
    /// application with Kernel.mu given up (`write`).
    static let stagedWriteMin = 16 << 10

    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if isReader && !alsoWriter { return err(EBADF) }
        if off != nil { return err(ESPIPE) }
        if count == 0 { return 0 }
        var done = 0
        var held = false  // as in read: a blocked write keeps its end open
        defer { if held { FDTable.drop(self) } }
        // A big write stages its next chunk in the task's scratch buffer
        // before it looks for room, with Kernel.mu given up: the reader
        // drains the pipe meanwhile instead of waiting for the copy (on a
        // full pipe the two copies, in and out, ran one after the other).
        // [stagedAt, stagedAt+staged) of scratch holds buf[done...].
        // Nothing is in the pipe until appended under mu, so the bytes
        // still go in whole chunks, in order; a write of at most PIPE_BUF
        // bytes never stages and stays atomic.
        var staged = 0, stagedAt = 0
        while done < count {
            if pipe.readers == 0 {
                if !suppressSIGPIPE { t.sendSelfSignal(SIGPIPE) }
                return done > 0 ? done : err(EPIPE)
            }
            let packet = flags & O_DIRECT != 0
            let remaining = count - done
            if PipeFD.unlockedCopies && staged == 0 && !packet && remaining > PipeFD.stagedWriteMin && buf < Task.bounceBase
                && t.keepsKernelLock == 0 && t.thread?.hasStub == true {
                if !held { refs += 1; held = true }
                let want = min(remaining, t.scratch.count)
                let r = t.withoutKernelLock {
                    t.scratch.withUnsafeMutableBytes { t.memRead(buf &+ UInt64(done), $0.baseAddress!, want) }
                }
                // A fault part-way stages the bytes before it; one at the
                // start ends the write (its short count, or EFAULT).
                if r <= 0 { return done > 0 ? done : err(EFAULT) }
                staged = r; stagedAt = 0
                continue  // the pipe may have changed meanwhile
            }
            let space = pipe.capacity - pipe.used
            // Writes of at most PIPE_BUF bytes are atomic; a packet needs a free page.
            let need = packet ? min(remaining, 4096) : remaining <= 4096 ? remaining : 1
            if space < need {
                if nonblocking { return done > 0 ? done : err(EAGAIN) }
                if !held { refs += 1; held = true }
                pipe.waiters.add(t)
                let r = t.block(deadline: nil)
                pipe.waiters.remove(t)
                // The same measure as the wait (`used`: packets take whole
                // pages), or a pending signal would spin here for ever.
                if r == .interrupted && pipe.capacity - pipe.used < need && pipe.readers > 0 {
                    return done > 0 ? done : -ERESTARTSYS
                }
                continue
            }
            if staged > 0 {
                let n = min(space, staged)
                if !pipe.packets.isEmpty { pipe.packets.append(n) }  // as below
                else { pipe.bytesBeforePackets = pipe.available }
                if n == t.scratch.count && pipe.buf.isEmpty && pipe.spare.count == n {
                    // A whole scratch buffer into an empty pipe: exchanged, not copied.
                    swap(&pipe.buf, &t.scratch)
                    swap(&t.scratch, &pipe.spare)
                    pipe.head = 0
                } else {
                    t.scratch.withUnsafeBytes {
                        pipe.buf.append(contentsOf: UnsafeBufferPointer(rebasing: $0.bindMemory(to: UInt8.self)[stagedAt..<stagedAt + n]))
                    }
                }
                done += n; staged -= n; stagedAt += n
                pipe.notifyData()
                continue
            }
            let n = packet ? min(remaining, 4096) : min(space, remaining)
            // Read through the task's scratch buffer (mapped, in cache) and
            // appended from there: a fresh array per chunk (copyIn) cost an
            // allocation and a zeroing pass per 64 KiB besides the copies.
            var bytes: [UInt8]? = nil
            if n > t.scratch.count {
                bytes = t.copyIn(buf &+ UInt64(done), n)
                if bytes == nil { return done > 0 ? done : err(EFAULT) }
            } else if t.scratch.withUnsafeMutableBytes({ t.memRead(buf &+ UInt64(done), $0.baseAddress!, n) }) != n {
                return done > 0 ? done : err(EFAULT)
            }
            if packet { pipe.packets.append(n) }
            else if !pipe.packets.isEmpty {
                // Ordinary data after a packet: Linux would give it a page of its own.
                pipe.packets.append(n)
            }
            if pipe.packets.isEmpty || packet && pipe.packets.count == 1 { pipe.bytesBeforePackets = pipe.available }
            if let b = bytes { pipe.buf.append(contentsOf: b) }
            else { t.scratch.withUnsafeBytes { pipe.buf.append(contentsOf: UnsafeBufferPointer(rebasing: $0.bindMemory(to: UInt8.self)[0..<n])) } }
            done += n
            pipe.notifyData()
        }
        return done
    }

    override func readiness() -> Int16 {
        var r: Int32 = 0
        if isReader {
            if pipe.available > 0 { r |= pollReadable }
            if pipe.writers == 0 && pipe.hadWriter { r |= POLLHUP }
        }
        if !isReader || alsoWriter {
            if pipe.capacity - pipe.used >= 4096 { r |= pollWritable }
            if pipe.readers == 0 { r |= POLLERR }
        }
        return Int16(r)
    }

    override func ioctl(_ t: Task, _ cmd: UInt64, _ arg: UInt64) -> Int {
        if cmd == 0x541B { return t.writeI32(arg, Int32(pipe.available)) ? 0 : err(EFAULT) }
        return err(ENOTTY)
    }

    override func addWaiter(_ t: Waiter) { pipe.waiters.add(t) }
    override func wakeups() -> UInt64 { pipe.waiters.wakeups }
    /// Every wakeup but those about the other direction only: a read's
    /// (room made) does not re-arm an entry for input, a write's (data)
    /// not one for output.
    override func wakeups(for events: UInt32) -> UInt64 {
        let input: UInt32 = 0x1 | 0x2 | 0x40 | 0x80, output: UInt32 = 0x4 | 0x100 | 0x200
        var n = pipe.waiters.wakeups
        if events & input == 0 { n &-= pipe.dataWakeups }
        if events & output == 0 { n &-= pipe.roomWakeups }
        return n
    }
    override func registerAsync() -> Bool { pipe.waiters.addAsync(self); return true }
    override func removeWaiter(_ t: Waiter) { pipe.waiters.remove(t) }

    override func release() {
        if isReader { pipe.readers -= 1 }
        if !isReader || alsoWriter { pipe.writers -= 1 }
        if pipe.readers == 0 && pipe.writers == 0 {
            // A FIFO with nobody on either end forgets its data.
            pipe.buf.removeAll(); pipe.spare = []; pipe.head = 0; pipe.hadWriter = false
            pipe.packets.removeAll(); pipe.bytesBeforePackets = 0
        }
        pipe.notify()
    }

    override var ownInode: Inode? { pipe.ownInode }
    override func stat() -> Result<Stat, Errno> {
        if let i = inode { return i.stat() }
        if let i = pipe.ownInode, case .success(var s) = i.stat() { s.blksize = 4096; return .success(s) }
        var s = Stat()
        s.mode = S_IFIFO_ | 0o600; s.ino = ino; s.dev = 12; s.blksize = 4096
        return .success(s)
    }

    override func linkName(_ k: Kernel) -> [UInt8] {
        if let p = path { return k.vfs.pathString(p) }
        return Array("pipe:[\(ino)]".utf8)
    }
}

private var pipeInoCounter: UInt64 = 5000
func newPipeIno() -> UInt64 { pipeInoCounter += 1; return pipeInoCounter }

/// FIFOs in tmpfs: one Pipe per inode, opened per POSIX rules.
/// Keyed by (device, inode) so every path to the FIFO meets the same pipe.
private struct FifoKey: Hashable { let dev: UInt64; let ino: UInt64 }
private var fifoPipes: [FifoKey: Pipe] = [:]
func fifoOpen(_ node: Inode, _ t: Task, _ flags: Int32) -> Result<FileDescription, Errno> {
    let key = FifoKey(dev: node.dev, ino: node.ino)
    let p = fifoPipes[key] ?? Pipe()
    fifoPipes[key] = p
    return pipeOpen(p, ino: node.ino, t, flags)
}

/// An open of an existing pipe by name: a FIFO, or any pipe through
/// /proc/[pid]/fd/N (Linux opens both with fifo_open: a new description of
/// the same pipe, with the access mode asked for).
/// Only a named FIFO waits for the other end; a pipe reopened through /proc
/// never does (Linux's fifo_open checks for pipefs), or `diff <(a) <(b)`
/// would wait for ever once `a` had finished writing.
func pipeOpen(_ p: Pipe, ino: UInt64, _ t: Task, _ flags: Int32, named: Bool = true) -> Result<FileDescription, Errno> {
    let acc = flags & O_ACCMODE
    if acc == O_RDWR {
        // Linux allows it: the opener is both ends; model as a reader that keeps a writer.
        p.writers += 1; p.writerOpens += 1; p.hadWriter = true
        let fd = PipeFD(pipe: p, reader: true, flags: flags, ino: ino)
        fd.alsoWriter = true
        p.notify()
        return .success(fd)
    }
    let reader = acc == O_RDONLY
    let fd = PipeFD(pipe: p, reader: reader, flags: flags, ino: ino)
    p.notify()
    if flags & O_NONBLOCK == 0 && named {
        let seen = reader ? p.writerOpens : p.readerOpens
        func waiting() -> Bool { reader ? (p.writers == 0 && p.writerOpens == seen) : (p.readers == 0 && p.readerOpens == seen) }
        while waiting() {
            p.waiters.add(t)
            let r = t.block(deadline: nil)
            p.waiters.remove(t)
            if r == .interrupted && waiting() { fd.release(); return .failure(Errno(Int32(ERESTARTSYS))) }
        }
    } else if flags & O_NONBLOCK != 0 && !reader && p.readers == 0 {
        fd.release()
        return .failure(Errno(ENXIO))
    }
    return .success(fd)
}
