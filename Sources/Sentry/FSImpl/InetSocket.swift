// Inet sockets (TCP, UDP, ICMP echo, IPv4 and IPv6): each application
// socket is a host socket the Sentry created in the sandbox's network
// namespace (Kernel/Network.swift). The application never holds it: every
// call is decoded and checked here, addresses and option values are copied
// into Sentry memory with bounded sizes, and only then does the Sentry make
// the host call on the application's behalf.
//
// The host socket is always non-blocking. Blocking calls are emulated: the
// task waits for readiness in `Task.hostPoll`, which gives up Kernel.mu, so
// other application threads keep running, and signals interrupt the wait.
//
// Only families AF_INET/AF_INET6, types SOCK_STREAM/SOCK_DGRAM and protocols
// TCP, UDP and ICMP echo are made (the Sentry's seccomp filter allows exactly
// these, see confine.c); raw sockets and other families answer the errors
// Linux gives an unprivileged process.

import CMoat
import Glibc

let SOCK_STREAM_: Int32 = 1
let SOCK_DGRAM_: Int32 = 2
let SOCK_RAW_: Int32 = 3
let SOCK_SEQPACKET_: Int32 = 5
let SOCK_NONBLOCK_: Int32 = 0o4000
let SOCK_CLOEXEC_: Int32 = 0o2000000
let MSG_TRUNC_: Int32 = 0x20
let MSG_CTRUNC_: Int32 = 0x8
let MSG_OOB_: Int32 = 0x1
let MSG_EOR_: Int32 = 0x80
let MSG_MORE_: Int32 = 0x8000
let MSG_CONFIRM_: Int32 = 0x800
let MSG_CMSG_CLOEXEC_: Int32 = 0x40000000
let MSG_ERRQUEUE_: Int32 = 0x2000
let POLLRDHUP_: Int32 = 0x2000
let IPPROTO_ICMP_: Int32 = 1
let IPPROTO_TCP_: Int32 = 6
let IPPROTO_UDP_: Int32 = 17
let IPPROTO_UDPLITE_: Int32 = 136
let IPPROTO_ICMPV6_: Int32 = 58

final class InetSocketFD: FileDescription {
    /// The host socket (O_NONBLOCK, O_CLOEXEC), owned by this description.
    private(set) var fd: Int32
    let family: Int32
    let type: Int32
    let proto: Int32
    /// SO_RCVTIMEO / SO_SNDTIMEO, emulated (0: wait forever; negative: never wait).
    var rcvTimeoutNs: Int64 = 0
    var sndTimeoutNs: Int64 = 0
    private(set) var ino: UInt64
    /// Bound explicitly (then never moved to an egress socket).
    private var bound = false
    /// Options set so far, replayed on an egress socket.
    private var options: [(Int32, Int32, [UInt8])] = []
    /// Calls in progress that may have released Kernel.mu; the host fd is
    /// closed only when the last one is done, so a concurrent close never
    /// makes a waiter use a reused fd number.
    private var users = 0
    private var released = false
    /// Epoll waiters. The host socket's readiness is polled on the host and
    /// the host's wakeups are invisible here; every call that moved data
    /// (or found none: EAGAIN) is a change the Sentry does see, and it
    /// wakes them so that an edge-triggered entry re-arms (see wakeups()):
    /// a request that arrives after a server read all it had, but before
    /// it waits again, is then reported as Linux reports it.
    private var waiters = WaitQueue()

    init(fd: Int32, family: Int32, type: Int32, proto: Int32, flags: Int32) {
        self.fd = fd; self.family = family; self.type = type; self.proto = proto
        var st = Glibc.stat()
        fstat(fd, &st)
        ino = UInt64(st.st_ino)
        super.init(flags: flags, path: nil)
        InetSocketFD.owners[ino] = currentTask?.creds.fsuid ?? 0
    }

    /// The owner of each live socket (its creator's fsuid, as Linux's
    /// socket inode), by host inode: /proc/net/{tcp,udp}[6] show it in
    /// place of the Sentry's own host uid.
    nonisolated(unsafe) static var owners: [UInt64: UInt32] = [:]

    /// socket(2) for the inet families: validates the triple, then asks the
    /// host. Returns the host fd or -errno.
    static func create(family: Int32, type: Int32, proto: Int32) -> Int {
        var p = proto
        switch (type, p) {
        case (SOCK_STREAM_, 0), (SOCK_STREAM_, IPPROTO_TCP_): p = IPPROTO_TCP_
        case (SOCK_DGRAM_, 0), (SOCK_DGRAM_, IPPROTO_UDP_): p = IPPROTO_UDP_
        case (SOCK_DGRAM_, IPPROTO_UDPLITE_): break                           // UDP-Lite (RFC 3828)
        case (SOCK_DGRAM_, IPPROTO_ICMP_) where family == AF_INET: break
        case (SOCK_DGRAM_, IPPROTO_ICMPV6_) where family == AF_INET6: break
        case (SOCK_RAW_, 0): return err(EPROTONOSUPPORT) // a raw socket names its protocol (inet_create)
        case (SOCK_RAW_, _): return err(EPERM)          // needs CAP_NET_RAW
        case (SOCK_STREAM_, _), (SOCK_DGRAM_, _): return err(EPROTONOSUPPORT)
        default: return err(ESOCKTNOSUPPORT)
        }
        let fd = Glibc.socket(family, type | SOCK_NONBLOCK_ | SOCK_CLOEXEC_, p)
        return fd < 0 ? err(errno) : Int(fd)
    }

    override var seekable: Bool { false }
    override var statfsMagic: Int64 { 0x534F434B } // SOCKFS_MAGIC, bound to a name or not
    override var readable: Bool { true }
    override var writable: Bool { true }
    override func seek(_ off: Int64, _ whence: Int32) -> Int { err(ESPIPE) }
    override var pollHostFD: Int32 { released ? -1 : fd }
    override func addWaiter(_ t: Waiter) { waiters.add(t) }
    override func removeWaiter(_ t: Waiter) { waiters.remove(t) }
    override func wakeups() -> UInt64 { waiters.wakeups }
    /// O_ASYNC is accepted; the host socket's changes raise no signal.
    override func registerAsync() -> Bool { true }

    override func readiness() -> Int16 {
        if released { return Int16(POLLNVAL) }
        var p = pollfd(fd: fd, events: Int16(pollReadable | pollWritable | POLLRDBAND_ | POLLWRBAND_ | POLLPRI | POLLRDHUP_), revents: 0)
        _ = poll(&p, 1, 0)
        return p.revents
    }

    /// The last fd is gone. A call still blocked in it (another thread's)
    /// goes on as on Linux, where close does not touch a socket some call
    /// still holds: it ends by its data, its timeout or a signal, and the
    /// host socket is closed after it (blocking()).
    override func release() {
        released = true
        InetSocketFD.owners[ino] = nil
        if users == 0 { close(fd) }
    }

    override func stat() -> Result<Stat, Errno> {
        var s = Stat(); s.mode = S_IFSOCK_ | 0o777; s.ino = ino; s.dev = 8; s.blksize = 4096
        return .success(s)
    }
    override func linkName(_ k: Kernel) -> [UInt8] { Array("socket:[\(ino)]".utf8) }

    // MARK: - Waiting

    /// Runs `op` (a non-blocking host call on the host socket it is given,
    /// returning a value or -errno) until it answers something other than
    /// EAGAIN; in between the task waits for `events` with mu released,
    /// unless the call must not block. `unlocked`: `op` itself runs with
    /// mu given up too (`withoutKernelLock`), for the calls that move data
    /// (see `unlockedIO`).
    func blocking(_ t: Task, _ events: Int32, dontWait: Bool, timeoutNs: Int64, unlocked: Bool = false,
                  _ op: (Int32) -> Int) -> Int {
        users += 1
        defer {
            users -= 1
            if users == 0 {
                for old in retired { close(old) }
                retired = []
                if released { close(fd) }
            }
        }
        let deadline = timeoutNs > 0 ? Kernel.now(CLOCK_MONOTONIC) + timeoutNs : nil
        while true {
            let h = fd
            let r = unlocked ? unlockedIO(t) { op(h) } : op(h)
            waiters.notifyAll()
            if r != err(EAGAIN) || nonblocking || dontWait || timeoutNs < 0 { return r }
            // A datagram socket shut down for reading (shutdown() works on
            // an unconnected one too): Linux's blocking receive returns 0
            // at once, where a non-blocking one says EAGAIN.
            if events == POLLIN && type != SOCK_STREAM_ {
                var q = pollfd(fd: fd, events: Int16(POLLRDHUP_), revents: 0)
                if poll(&q, 1, 0) == 1 && q.revents & Int16(POLLRDHUP_) != 0 { return 0 }
            }
            var ms: Int32 = -1
            if let d = deadline {
                let left = d - Kernel.now(CLOCK_MONOTONIC)
                if left <= 0 { return err(EAGAIN) }
                ms = Int32(clamping: (left + 999_999) / 1_000_000)
            }
            var p = [pollfd(fd: fd, events: Int16(events), revents: 0)]
            let (w, _) = t.hostPoll(&p, timeoutMs: ms)
            // With a timeout set Linux answers EINTR rather than restarting.
            if w == .interrupted { return deadline != nil ? err(EINTR) : -ERESTARTSYS }
        }
    }

    /// Runs `body`, a data call's copies of application memory and its host
    /// call on a host fd the caller read under mu, with Kernel.mu given up
    /// (Task.withoutKernelLock). A send on loopback wakes the peer's driver
    /// from its poll inside the host call; with mu held throughout, that
    /// driver woke only to wait for mu, and the sender's own next call
    /// waited for the receiver's copy-out in turn (the chain is in
    /// bench/results/2026-12-07-perf14-tcp.md). What it relies on: the
    /// body touches only its own locals, the task's own stub memory and
    /// the host fd it was given, which stays open meanwhile (`users` keeps
    /// release() and adopt() from closing it). Every socket call already
    /// gives mu up when it waits (hostPoll), so its callers expect shared
    /// state to move across it, except where a caller changed shared
    /// state for one call that cannot block (`Task.keepsKernelLock`: a
    /// file made O_NONBLOCK for io_uring, RWF_NOWAIT or splice, which no
    /// other task may see). Not for a Sentry-internal transfer (sendfile,
    /// splice: its bounce buffer is filled and drained under mu), nor on
    /// KVM (withoutKernelLock keeps the lock there).
    @inline(__always) private func unlockedIO<R>(_ t: Task, _ body: () -> R) -> R {
        t.bounce == nil && t.keepsKernelLock == 0 ? t.withoutKernelLock(body) : body()
    }

    /// Host sockets adopt() replaced while a call still held them: closed
    /// when the last such call is done (blocking()). Guarded by mu.
    private var retired: [Int32] = []

    // MARK: - Data

    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if off != nil { return err(ESPIPE) }
        return recv(t, [(buf, count)], flags: 0).ret
    }

    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if off != nil { return err(ESPIPE) }
        return send(t, [(buf, count)], to: nil, flags: 0)
    }

    static let sendFlags: Int32 = MSG_OOB_ | MSG_DONTWAIT_ | MSG_EOR_ | MSG_NOSIGNAL_ | MSG_MORE_ | MSG_CONFIRM_
    static let recvFlags: Int32 = MSG_OOB_ | MSG_PEEK_ | MSG_DONTWAIT_ | MSG_WAITALL_ | MSG_TRUNC_ | MSG_ERRQUEUE_

    /// Sends the bytes of the application iovecs, in chunks of at most
    /// 256 KiB; a blocking stream socket sends them all (as Linux does),
    /// others stop at the first short send.
    func send(_ t: Task, _ iov: [(UInt64, Int)], to: [UInt8]?, flags: Int32, control: [UInt8] = []) -> Int {
        // A datagram longer than any IP packet is still handed to the host,
        // cut to 64 KiB (as long as one can be and too long all the same),
        // so that the host fails it and, for IPv6 with IPV6_RECVERR, queues
        // the error MSG_ERRQUEUE then reads.
        // Its bytes are not read (zeros go): Linux fails it on its length
        // before copying, so a buffer shorter than the length it claims
        // is EMSGSIZE, not EFAULT.
        let total = min(iov.reduce(0) { $0 + $1.1 }, type == SOCK_STREAM_ ? Int.max : 65536)
        let oversize = type != SOCK_STREAM_ && total > 65535
        let dontWait = flags & MSG_DONTWAIT_ != 0
        let hostFlags = (flags & InetSocketFD.sendFlags) | MSG_DONTWAIT_ | MSG_NOSIGNAL_
        let chunk = type == SOCK_STREAM_ ? 256 << 10 : total
        if type == SOCK_DGRAM_, let a = to, egressCandidate, SentryNetwork.isOutside(a) {
            // A datagram out of the sandbox: an unconnected egress socket.
            switch SentryNetwork.egress(family: family, type: type, a, connect: false) {
            case .success(let (newFD, _)): adopt(newFD)
            case .failure(let x): return x.ret
            }
        }
        var done = 0
        var iovIdx = 0, iovOff = 0
        repeat {
            // Gather the next chunk from the iovecs.
            let n = min(chunk, total - done)
            var data = [UInt8](repeating: 0, count: n)
            var filled = 0
            while filled < n {
                let (base, len) = iov[iovIdx]
                let take = min(len - iovOff, n - filled)
                if take > 0 && !oversize {
                    let got = unlockedIO(t) { data.withUnsafeMutableBytes { t.memRead(base &+ UInt64(iovOff), $0.baseAddress! + filled, take) } }
                    if got != take { return done > 0 ? done : err(EFAULT) }
                }
                filled += take; iovOff += take
                if iovOff == len { iovIdx += 1; iovOff = 0 }
            }
            var sent = 0
            while sent < n || n == 0 {
                let r = blocking(t, POLLOUT, dontWait: dontWait, timeoutNs: sndTimeoutNs, unlocked: true) { h in
                    data.withUnsafeBytes { b -> Int in
                        let p = b.baseAddress.map { $0 + sent }
                        let r: Int
                        if !control.isEmpty {
                            // Ancillary data (IP_TOS, IP_TTL, IP_PKTINFO, IPV6_TCLASS, ...):
                            // one sendmsg carrying the Sentry's copy; the host checks it.
                            var to = to ?? []
                            var ctl = control
                            var iv = iovec(iov_base: UnsafeMutableRawPointer(mutating: p), iov_len: n - sent)
                            r = to.withUnsafeMutableBytes { ab in
                                ctl.withUnsafeMutableBytes { cb in
                                    withUnsafeMutablePointer(to: &iv) { ivp in
                                        var mh = msghdr()
                                        mh.msg_name = ab.count > 0 ? ab.baseAddress : nil
                                        mh.msg_namelen = socklen_t(ab.count)
                                        mh.msg_iov = ivp
                                        mh.msg_iovlen = 1
                                        mh.msg_control = cb.baseAddress
                                        mh.msg_controllen = cb.count
                                        return Glibc.sendmsg(h, &mh, hostFlags)
                                    }
                                }
                            }
                        } else if let a = to {
                            r = a.withUnsafeBytes { ab in
                                Glibc.sendto(h, p, n - sent, hostFlags, ab.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(a.count))
                            }
                        } else {
                            r = Glibc.sendto(h, p, n - sent, hostFlags, nil, 0)
                        }
                        return r < 0 ? err(errno) : r
                    }
                }
                if r < 0 {
                    if r == err(EPIPE) && flags & MSG_NOSIGNAL_ == 0 { t.sendSelfSignal(SIGPIPE) }
                    return done + sent > 0 ? done + sent : r
                }
                sent += r
                if n == 0 || type != SOCK_STREAM_ || nonblocking || dontWait { break }
            }
            done += sent
            if sent < n { break }
        } while done < total
        return done
    }

    struct Received { var ret: Int; var from: [UInt8]? = nil; var msgFlags: Int32 = 0; var control: [UInt8] = [] }

    /// Receives into the application iovecs; `from` is the source address
    /// the host reported (datagram sockets).
    /// `controlCap`: the room the application gave for ancillary data; the
    /// host's own (IP_PKTINFO, IP_TOS, IP_TTL, IP_ORIGDSTADDR, their IPv6
    /// twins, SO_TIMESTAMP, TCP_INQ, IP_RECVERR's queue) is returned as the
    /// host wrote it, cut where the host cut it (MSG_CTRUNC).
    func recv(_ t: Task, _ iov: [(UInt64, Int)], flags: Int32, controlCap: Int = 0) -> Received {
        let total = iov.reduce(0) { $0 + $1.1 }
        let cap = min(total, type == SOCK_STREAM_ ? 256 << 10 : 65536)
        // The error queue is read without waiting (Linux: EAGAIN when empty).
        let dontWait = flags & (MSG_DONTWAIT_ | MSG_ERRQUEUE_) != 0
        var ctl = [UInt8](repeating: 0, count: min(max(controlCap, 0), optmemMax))
        var ctlLen = 0
        let hostFlags = (flags & InetSocketFD.recvFlags & ~MSG_WAITALL_) | MSG_DONTWAIT_
        var buf = [UInt8](repeating: 0, count: max(cap, 1))
        var name = [UInt8](repeating: 0, count: 128)
        var nameLen = 0
        var mflags: Int32 = 0
        var got = 0
        let waitAll = flags & MSG_WAITALL_ != 0 && type == SOCK_STREAM_ && flags & MSG_PEEK_ == 0
        while true {
            let r = blocking(t, POLLIN, dontWait: dontWait || got > 0 && !waitAll, timeoutNs: rcvTimeoutNs, unlocked: true) { h in
                buf.withUnsafeMutableBytes { b -> Int in
                    name.withUnsafeMutableBytes { nb -> Int in
                        ctl.withUnsafeMutableBytes { cb -> Int in
                            var iv = iovec(iov_base: b.baseAddress! + got, iov_len: cap - got)
                            var mh = msghdr()
                            mh.msg_name = nb.baseAddress
                            mh.msg_namelen = 128
                            // Ancillary data of the first call only (MSG_WAITALL loops).
                            mh.msg_control = got == 0 && cb.count > 0 ? cb.baseAddress : nil
                            mh.msg_controllen = got == 0 ? cb.count : 0
                            return withUnsafeMutablePointer(to: &iv) { ivp -> Int in
                                mh.msg_iov = ivp
                                mh.msg_iovlen = 1
                                let n = Glibc.recvmsg(h, &mh, hostFlags)
                                if n < 0 { return err(errno) }
                                if got == 0 { mflags = mh.msg_flags; ctlLen = min(Int(mh.msg_controllen), cb.count) }
                                nameLen = Int(mh.msg_namelen)
                                return n
                            }
                        }
                    }
                }
            }
            if r < 0 {
                if got > 0 { break }
                return Received(ret: r)
            }
            got += r
            if !waitAll || r == 0 || got >= cap || nonblocking || dontWait { break }
        }
        // Scatter what fits (a truncated datagram may report more).
        let copied = unlockedIO(t) { () -> Bool in
            var left = min(got, cap), off = 0
            for (base, len) in iov where left > 0 {
                let n = min(len, left)
                if !buf.withUnsafeBytes({ t.copyOut(base, $0.baseAddress! + off, n) }) { return false }
                off += n; left -= n
            }
            return true
        }
        if !copied { return Received(ret: err(EFAULT)) }
        let from = type == SOCK_STREAM_ || nameLen == 0 ? nil : Array(name.prefix(min(nameLen, 128)))
        // SIOCGSTAMP's: a datagram taken without SO_TIMESTAMP(NS) set
        // leaves a time to be read (Linux: the packet's, or when the ioctl
        // first asks).
        if type != SOCK_STREAM_ && flags & (MSG_PEEK_ | MSG_ERRQUEUE_) == 0 && !rcvTimestamps { stampNs = 0 }
        return Received(ret: got, from: from, msgFlags: mflags & (MSG_TRUNC_ | MSG_CTRUNC_ | MSG_OOB_ | MSG_EOR_ | MSG_ERRQUEUE_),
                        control: hostControl(Array(ctl.prefix(ctlLen))))
    }

    /// The host's ancillary data for the application: every message but
    /// file descriptors and credentials (which an inet socket never
    /// receives; dropped should the host ever send them).
    private func hostControl(_ b: [UInt8]) -> [UInt8] {
        guard case .success(let msgs) = decodeControl(b) else { return [] }
        if msgs.allSatisfy({ !($0.level == SOL_SOCKET && ($0.type == SCM_RIGHTS_ || $0.type == SCM_CREDENTIALS_)) }) { return b }
        return encodeControl(msgs.filter { !($0.level == SOL_SOCKET && ($0.type == SCM_RIGHTS_ || $0.type == SCM_CREDENTIALS_)) })
    }

    // MARK: - Connection management

    /// Checks an application sockaddr for this socket: bounded length and a
    /// family the host call may see. The host then checks the rest exactly
    /// as Linux does (it is Linux).
    func checkAddr(_ a: [UInt8], allowUnspec: Bool) -> Int {
        if a.count < 2 { return err(EINVAL) }
        let fam = Int32(UInt16(a[0]) | UInt16(a[1]) << 8)
        if fam == AF_UNSPEC && allowUnspec { return 0 }
        if fam != AF_INET && fam != AF_INET6 { return err(EAFNOSUPPORT) }
        return 0
    }

    /// Landlock's TCP rights (ABI 4): the port of a bind or connect of a
    /// TCP socket, checked before the stack looks at the address (Linux's
    /// socket_bind/socket_connect hooks). A short address is EINVAL; an
    /// AF_UNSPEC connect (a disconnect) is not checked, an AF_UNSPEC bind of
    /// an IPv4 socket is checked as AF_INET; other families are the stack's.
    private func landlockPortCheck(_ t: Task, _ a: [UInt8], _ right: UInt64) -> Errno? {
        guard t.creds.landlock != nil, type == SOCK_STREAM_, proto == 0 || proto == IPPROTO_TCP_ else { return nil }
        var fam = Int32(UInt16(a[0]) | UInt16(a[1]) << 8)
        if fam == AF_UNSPEC {
            if right == Landlock.connectTCP || family != AF_INET { return nil }
            fam = AF_INET
        }
        if fam != AF_INET && fam != AF_INET6 || fam != family { return nil }
        if a.count < (fam == AF_INET ? 16 : 24) { return Errno(EINVAL) }
        return t.landlockDeniesPort(UInt16(a[2]) << 8 | UInt16(a[3]), right) ? Errno(EACCES) : nil
    }

    func bind(_ t: Task, _ a: [UInt8]) -> Int {
        let c = checkAddr(a, allowUnspec: family == AF_INET)
        if c < 0 { return c }
        if let e = landlockPortCheck(t, a, Landlock.bindTCP) { return e.ret }
        // Privileged ports: the Sentry may bind them in the sandbox's own
        // namespace (ip_unprivileged_port_start is 0 there); the emulated
        // credentials decide.
        if a.count >= 4 {
            let port = Int(a[2]) << 8 | Int(a[3])
            if port > 0 && port < t.kernel.sysctl.unprivilegedPortStart && !t.creds.has(Cap.netBindService) { return err(EACCES) }
        }
        let r = a.withUnsafeBytes { Glibc.bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(a.count)) }
        if r == 0 { bound = true }
        return r < 0 ? err(errno) : 0
    }

    func listen(_ backlog: Int32) -> Int {
        if type != SOCK_STREAM_ { return err(EOPNOTSUPP) }
        let r = Glibc.listen(fd, max(0, min(backlog, 4096)))
        return r < 0 ? err(errno) : 0
    }

    func connect(_ t: Task, _ a: [UInt8]) -> Int {
        let c = checkAddr(a, allowUnspec: true)
        if c < 0 { return c }
        if let e = landlockPortCheck(t, a, Landlock.connectTCP) { return e.ret }
        var r: Int32
        var e: Int32 = 0
        if egressCandidate && SentryNetwork.isOutside(a) {
            // Out of the sandbox: through the launcher's egress broker.
            switch SentryNetwork.egress(family: family, type: type, a) {
            case .success(let (newFD, ce)):
                adopt(newFD)
                r = ce == 0 ? 0 : -1
                e = ce
            case .failure(let x): return x.ret
            }
        } else {
            r = a.withUnsafeBytes { Glibc.connect(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(a.count)) }
            if r != 0 { e = errno }
        }
        if r == 0 { return 0 }
        if e != EINPROGRESS || type != SOCK_STREAM_ { return err(e) }
        if nonblocking { return err(EINPROGRESS) }
        // A blocking connect: wait until the handshake ends, then report it.
        let w = blocking(t, POLLOUT, dontWait: false, timeoutNs: sndTimeoutNs) { h in
            var p = pollfd(fd: h, events: Int16(POLLOUT), revents: 0)
            _ = poll(&p, 1, 0)
            return p.revents != 0 ? 0 : err(EAGAIN)
        }
        if w == err(EAGAIN) { return err(EINPROGRESS) } // SO_SNDTIMEO expired
        if w < 0 { return w }
        var soerr: Int32 = 0
        var len = socklen_t(4)
        if Glibc.getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 { return err(errno) }
        // The host socket stays "connecting" until connect is called once
        // more; do it now, so that the application's next connect is EISCONN
        // as after a blocking connect on Linux, or, after a failure (the
        // host then answers ECONNABORTED and forgets the attempt), a new
        // attempt as after Linux's failed blocking connect.
        if soerr != 0 {
            _ = a.withUnsafeBytes { Glibc.connect(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(a.count)) }
            return err(soerr)
        }
        _ = a.withUnsafeBytes { Glibc.connect(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(a.count)) }
        return 0
    }

    /// Whether this socket may still move to an egress socket: --network
    /// sandbox, TCP or UDP, not bound by the application, not moved yet.
    private var egressCandidate: Bool {
        SentryNetwork.egressFD >= 0 && !bound && !egressed && (proto == 0 || proto == IPPROTO_TCP_ || proto == IPPROTO_UDP_)
            && (type == SOCK_STREAM_ || type == SOCK_DGRAM_)
    }
    private var egressed = false

    /// Replaces the host socket by `newFD` (an egress socket), with the
    /// options the application set on the old one.
    private func adopt(_ newFD: Int32) {
        for (level, name, v) in options {
            _ = v.withUnsafeBytes { Glibc.setsockopt(newFD, level, name, $0.baseAddress!, socklen_t(v.count)) }
        }
        if users > 0 { retired.append(fd) } else { close(fd) }
        fd = newFD
        egressed = true
        var st = Glibc.stat()
        fstat(fd, &st)
        InetSocketFD.owners[UInt64(st.st_ino)] = InetSocketFD.owners.removeValue(forKey: ino)
        ino = UInt64(st.st_ino)
        waiters.notifyAll() // epoll entries register the new host fd
    }

    /// accept4: a new description around the host's new socket.
    func accept(_ t: Task, flags: Int32) -> (Int, InetSocketFD?, [UInt8]) {
        if type != SOCK_STREAM_ { return (err(EOPNOTSUPP), nil, []) }
        var name = [UInt8](repeating: 0, count: 128)
        var nameLen = socklen_t(128)
        let r = blocking(t, POLLIN, dontWait: false, timeoutNs: rcvTimeoutNs) { h in
            name.withUnsafeMutableBytes { nb -> Int in
                nameLen = 128
                let n = moat_accept4(h, nb.baseAddress!, &nameLen, SOCK_NONBLOCK_ | SOCK_CLOEXEC_)
                return n < 0 ? err(errno) : Int(n)
            }
        }
        if r < 0 { return (r == err(EINVAL) && released ? err(EBADF) : r, nil, []) }
        let s = InetSocketFD(fd: Int32(r), family: family, type: type, proto: proto, flags: O_RDWR | (flags & O_NONBLOCK))
        return (0, s, Array(name.prefix(Int(nameLen))))
    }

    func shutdown(_ how: Int32) -> Int {
        Glibc.shutdown(fd, how) < 0 ? err(errno) : 0
    }

    /// getsockname / getpeername.
    func name(peer: Bool) -> Result<[UInt8], Errno> {
        var b = [UInt8](repeating: 0, count: 128)
        var len = socklen_t(128)
        let r = b.withUnsafeMutableBytes { p in
            peer ? getpeername(fd, p.baseAddress!.assumingMemoryBound(to: sockaddr.self), &len)
                 : getsockname(fd, p.baseAddress!.assumingMemoryBound(to: sockaddr.self), &len)
        }
        if r < 0 { return .failure(Errno(errno)) }
        return .success(Array(b.prefix(Int(len))))
    }

    // MARK: - Options

    /// The options passed to the host, by level, with the largest value
    /// the Sentry copies (the host checks sizes and contents itself).
    /// Everything else is ENOPROTOOPT, as Linux answers unknown options.
    static let passedOptions: [Int32: [Int32: Int]] = [
        SOL_SOCKET: [
            2: 4, 15: 4, 9: 4, 8: 4, 7: 4, 13: 8, 4: 4, 3: 4, 39: 4, 38: 4, 30: 4, // REUSEADDR REUSEPORT KEEPALIVE RCVBUF SNDBUF LINGER ERROR TYPE DOMAIN PROTOCOL ACCEPTCONN
            6: 4, 10: 4, 18: 4, 19: 4, 12: 4, 25: 16, 49: 4, 1: 4,                 // BROADCAST OOBINLINE RCVLOWAT SNDLOWAT PRIORITY BINDTODEVICE INCOMING_CPU DEBUG
            16: 4, 11: 4, 29: 4, 35: 4, 27: 4, 40: 4, 42: 4,                       // PASSCRED NO_CHECK TIMESTAMP TIMESTAMPNS DETACH_FILTER RXQ_OVFL PEEK_OFF
        ],
        IPPROTO_TCP_: [
            1: 4, 2: 4, 3: 4, 4: 4, 5: 4, 6: 4, 7: 4, 8: 4, 9: 4, 10: 4,             // NODELAY MAXSEG CORK KEEPIDLE KEEPINTVL KEEPCNT SYNCNT LINGER2 DEFER_ACCEPT WINDOW_CLAMP
            11: 232, 12: 4, 13: 16, 18: 4, 23: 4, 25: 4, 30: 4,                   // INFO QUICKACK CONGESTION USER_TIMEOUT FASTOPEN NOTSENT_LOWAT FASTOPEN_CONNECT
            36: 4, 16: 4, 17: 4,                                                    // INQ THIN_LINEAR_TIMEOUTS THIN_DUPACK
        ],
        IPPROTO_UDP_: [1: 4, 100: 4, 101: 4, 102: 4],                              // UDP_CORK, UDP_ENCAP is refused below, NO_CHECK6_TX/RX
        IPPROTO_UDPLITE_: [1: 4, 10: 4, 11: 4],                                     // UDP_CORK, UDPLITE_SEND_CSCOV, UDPLITE_RECV_CSCOV
        0 /* IPPROTO_IP */: [
            1: 4, 2: 4, 10: 4, 14: 4, 15: 4, 24: 4, 32: 12, 33: 4, 34: 4, 35: 12, 36: 12, // TOS TTL MTU_DISCOVER MTU FREEBIND BIND_ADDRESS_NO_PORT MULTICAST_IF/TTL/LOOP ADD/DROP_MEMBERSHIP
            11: 4,                                                                  // RECVERR: glibc's resolver gives up on a server without it
            8: 4, 12: 4, 13: 4, 20: 4, 4: 40, 6: 4, 7: 4, 49: 4, 50: 4,             // PKTINFO RECVTTL RECVTOS RECVORIGDSTADDR OPTIONS RECVOPTS RETOPTS MULTICAST_ALL UNICAST_IF
        ],
        41 /* IPPROTO_IPV6 */: [
            26: 4, 16: 4, 17: 4, 18: 4, 19: 4, 20: 20, 21: 20, 23: 4, 24: 4, 67: 4, // V6ONLY UNICAST_HOPS MULTICAST_IF/HOPS/LOOP JOIN/LEAVE_GROUP MTU_DISCOVER MTU TCLASS
            25: 4,                                                                  // RECVERR (likewise)
            49: 4, 50: 20, 51: 4, 66: 4, 74: 4, 76: 4, 29: 4, 60: 4, 62: 4, 70: 4,  // RECVPKTINFO PKTINFO RECVHOPLIMIT RECVTCLASS RECVORIGDSTADDR UNICAST_IF MULTICAST_ALL RECVPATHMTU DONTFRAG AUTOFLOWLABEL
        ],
    ]

    func setsockopt(_ t: Task, level: Int32, name: Int32, addr: UInt64, len: Int) -> Int {
        if level == SOL_SOCKET && (name == SO_RCVTIMEO_OLD || name == SO_SNDTIMEO_OLD) {
            if len < 16 { return err(EINVAL) }
            guard let b = t.copyIn(addr, 16) else { return err(EFAULT) }
            let sec = Int64(bitPattern: get64(b, 0)), usec = Int64(bitPattern: get64(b, 8))
            if usec < 0 || usec >= 1_000_000 { return err(EDOM) }
            let ns = sec < 0 ? -1 : sec &* 1_000_000_000 &+ usec * 1000   // negative: never wait (Linux: timeo 0)
            if name == SO_RCVTIMEO_OLD { rcvTimeoutNs = ns } else { sndTimeoutNs = ns }
            return 0
        }
        if level == IPPROTO_UDP_ && name == 100 { return err(ENOPROTOOPT) } // UDP_ENCAP: tunnels are not offered
        if level == SOL_SOCKET && name == 26 { return attachFilter(t, addr: addr, len: len) }
        if level == SOL_SOCKET && name == 27 && keptFilter != nil {
            // SO_DETACH_FILTER of a filter the Sentry kept (attachFilter).
            if hostFilterLocked() { return err(EPERM) }
            keptFilter = nil
            return 0
        }
        if level == IPPROTO_TCP_ && name == 13 && type == SOCK_STREAM_ {
            // TCP_CONGESTION. Linux lets a process with CAP_NET_ADMIN in its
            // network namespace pick any available algorithm, others only
            // the allowed ones (tcp_allowed_congestion_control, a host-wide
            // list). The capability-less Sentry meets the second rule on the
            // host, so for the sandbox's privileged process a choice the
            // host refuses with EPERM (the algorithm exists: unknown ones
            // are ENOENT first) is recorded and reported by getsockopt
            // while the host socket keeps the algorithm it has.
            if len < 0 { return err(EINVAL) }
            guard let v = t.copyIn(addr, min(len, 15)) else { return err(EFAULT) }
            var b = v + [0]
            let r = b.withUnsafeMutableBytes { Glibc.setsockopt(fd, level, name, $0.baseAddress!, socklen_t(v.count)) }
            if r == 0 { congestion = nil; options.append((level, name, v)); return 0 }
            if errno == EPERM && t.creds.has(Cap.netAdmin) {
                congestion = Array((v.firstIndex(of: 0).map { v[..<$0] } ?? v[...]))
                return 0
            }
            return err(errno)
        }
        var name = name
        if level == SOL_SOCKET && (name == 32 || name == 33) {
            // SO_SNDBUFFORCE, SO_RCVBUFFORCE: CAP_NET_ADMIN in the sandbox,
            // then the host's SO_SNDBUF/SO_RCVBUF (which keep the size
            // within the host's limits, never negative).
            if !t.creds.has(Cap.netAdmin) { return err(EPERM) }
            if len < 4 { return err(EINVAL) }
            name = name == 32 ? SO_SNDBUF : SO_RCVBUF
        }
        guard let max = InetSocketFD.passedOptions[level]?[name] else { return err(ENOPROTOOPT) }
        if len < 0 { return err(EINVAL) }
        let n = min(len, max)
        guard let v = t.copyIn(addr, n) else { return err(EFAULT) }
        var b = v
        if b.isEmpty { b = [0] }
        let r = b.withUnsafeBytes { Glibc.setsockopt(fd, level, name, $0.baseAddress!, socklen_t(n)) }
        if r == 0 && options.count < 64 { options.append((level, name, Array(b.prefix(n)))) }
        if r == 0 && level == SOL_SOCKET && (name == 29 || name == 35) {  // SO_TIMESTAMP, SO_TIMESTAMPNS
            var on: Int32 = 0
            var l = socklen_t(4)
            _ = Glibc.getsockopt(fd, SOL_SOCKET, name, &on, &l)
            if name == 29 { timestampOn = on != 0 } else { timestampNsOn = on != 0 }
        }
        return r < 0 ? err(errno) : 0
    }

    func getsockopt(_ t: Task, level: Int32, name: Int32, addr: UInt64, lenAddr: UInt64) -> Int {
        guard let len = t.readI32(lenAddr) else { return err(EFAULT) }
        if len < 0 { return err(EINVAL) }
        if level == SOL_SOCKET && (name == SO_RCVTIMEO_OLD || name == SO_SNDTIMEO_OLD) {
            return copyOutSocketTimeout(t, name == SO_RCVTIMEO_OLD ? rcvTimeoutNs : sndTimeoutNs, addr: addr, lenAddr: lenAddr, len: len)
        }
        if level == IPPROTO_TCP_ && name == 13, let c = congestion {
            // The recorded TCP_CONGESTION (setsockopt): its name, zero-filled to TCP_CA_NAME_MAX.
            let n = min(Int(len), 16)
            let b = Array((c + [UInt8](repeating: 0, count: 16)).prefix(n))
            return t.copyOut(addr, b) && t.writeI32(lenAddr, Int32(n)) ? 0 : err(EFAULT)
        }
        guard let max = InetSocketFD.passedOptions[level]?[name] else {
            // Not an option Moat passes. The host socket, of the same
            // family and protocol, says which error: EOPNOTSUPP for a level
            // that is neither SOL_SOCKET, IP nor the socket's protocol's
            // (an IPv4 socket asked a UDP option), else ENOPROTOOPT.
            var b = [UInt8](repeating: 0, count: 64)
            var l = socklen_t(64)
            let r = b.withUnsafeMutableBytes { Glibc.getsockopt(fd, level, name, $0.baseAddress!, &l) }
            return r < 0 && errno == EOPNOTSUPP ? err(EOPNOTSUPP) : err(ENOPROTOOPT)
        }
        var b = [UInt8](repeating: 0, count: max)
        var l = socklen_t(min(Int(len), max))
        let r = b.withUnsafeMutableBytes { Glibc.getsockopt(fd, level, name, $0.baseAddress!, &l) }
        if r < 0 { return err(errno) }
        return t.copyOut(addr, Array(b.prefix(Int(l)))) && t.writeI32(lenAddr, Int32(l)) ? 0 : err(EFAULT)
    }

    /// SIOCGSTAMP: nil until a datagram is received, 0 when one was and
    /// no time was read yet, else the time (CLOCK_REALTIME, ns). The
    /// Sentry's seccomp filter keeps the host's ioctl from it.
    private var stampNs: Int64? = nil
    private var timestampOn = false, timestampNsOn = false
    private var rcvTimestamps: Bool { timestampOn || timestampNsOn }

    /// TCP_CONGESTION chosen by a privileged process where the host refused it (setsockopt).
    private var congestion: [UInt8]? = nil

    /// SO_ATTACH_FILTER: the classic BPF program (struct sock_fprog: a
    /// length and a pointer to it) is copied into Sentry memory and the host
    /// gets a sock_fprog pointing at that copy; the host checks the program
    /// as for any unprivileged process. Not replayed on an egress socket.
    private func attachFilter(_ t: Task, addr: UInt64, len: Int) -> Int {
        if len < 16 { return err(EINVAL) }
        guard let h = t.copyIn(addr, 16) else { return err(EFAULT) }
        let count = Int(UInt16(h[0]) | UInt16(h[1]) << 8)
        if count == 0 || count > 4096 { return err(EINVAL) } // BPF_MAXINSNS
        guard var prog = t.copyIn(get64(h, 8), count * 8) else { return err(EFAULT) }
        let r = prog.withUnsafeMutableBytes { pb -> Int32 in
            var fp = [UInt8](repeating: 0, count: 16)   // struct sock_fprog { u16 len; struct sock_filter *filter; }
            fp[0] = UInt8(count & 0xff); fp[1] = UInt8(count >> 8)
            put64(&fp, 8, UInt64(UInt(bitPattern: pb.baseAddress!)))
            return fp.withUnsafeBytes { Glibc.setsockopt(fd, SOL_SOCKET, 26, $0.baseAddress!, 16) }
        }
        if r == 0 { keptFilter = nil; return 0 }
        // This host (Linux 6.18, BPF JIT always on) refuses every socket
        // filter to a process without capabilities, the Sentry included
        // (EPERM; so does uid 65534 outside any sandbox), where Linux's
        // socket filters need no privilege. A valid program is then kept here
        // and the call succeeds; the filter is not applied to what the
        // socket receives (the host socket filters nothing). A locked
        // filter (SO_LOCK_FILTER) stays EPERM, an invalid program EINVAL.
        if errno != EPERM || hostFilterLocked() { return err(errno) }
        if ClassicBPF(prog, use: .socket) == nil { return err(EINVAL) }   // Kernel/ClassicBPF.swift
        if !InetSocketFD.keptFilterLogged {   // once; Kernel.mu is held
            InetSocketFD.keptFilterLogged = true
            Log.shared.info("SO_ATTACH_FILTER refused by the host (EPERM): the socket filter is kept, not applied")
        }
        keptFilter = prog
        return 0
    }

    /// A socket filter the host refused and the Sentry kept (attachFilter).
    private var keptFilter: [UInt8]? = nil
    nonisolated(unsafe) private static var keptFilterLogged = false

    /// SO_LOCK_FILTER set on the host socket.
    private func hostFilterLocked() -> Bool {
        var on: Int32 = 0
        var l = socklen_t(4)
        return Glibc.getsockopt(fd, SOL_SOCKET, 44, &on, &l) == 0 && on != 0
    }

    // MARK: - ioctl

    override func ioctl(_ t: Task, _ cmd: UInt64, _ arg: UInt64) -> Int {
        switch cmd {
        case 0x541B, 0x5411, 0x8905: // FIONREAD (SIOCINQ), TIOCOUTQ (SIOCOUTQ), SIOCATMARK
            var n: Int32 = 0
            if Glibc.ioctl(fd, UInt(cmd), &n) != 0 { return err(errno) }
            return t.writeI32(arg, n) ? 0 : err(EFAULT)
        case 0x8906, 0x8907: // SIOCGSTAMP, SIOCGSTAMPNS: the last datagram's receive time
            guard var ns = stampNs else { return err(ENOENT) }
            if ns == 0 { ns = Kernel.now(CLOCK_REALTIME); stampNs = ns }
            var b = [UInt8](repeating: 0, count: 16)
            put64(&b, 0, UInt64(ns / 1_000_000_000))
            put64(&b, 8, UInt64(cmd == 0x8906 ? ns % 1_000_000_000 / 1000 : ns % 1_000_000_000))
            return t.copyOut(arg, b) ? 0 : err(EFAULT)
        default:
            return interfaceIoctl(t, fd, cmd, arg)
        }
    }
}

/// SIOCGIF* on a socket with no host fd (AF_UNIX, in Sentry memory): Linux
/// answers them on any socket, from its network namespace, so a host UDP
/// socket opened for the call in the sandbox's namespace asks. Anything
/// else is ENOTTY, as before.
func interfaceIoctlWithoutSocket(_ t: Task, _ cmd: UInt64, _ arg: UInt64, net: NetNamespace? = nil) -> Int {
    if cmd & ~0xff != 0x8900 { return err(ENOTTY) }
    // A namespace made inside the sandbox answers for itself (Kernel/NetNamespaces.swift).
    if let n = net ?? t.ownNet, !n.isRoot { return n.ifaceIoctl(t, cmd, arg) }
    // The one triple kind the Sentry's seccomp filter lets it make (confine.c).
    let fd = Glibc.socket(AF_INET, SOCK_DGRAM_ | SOCK_NONBLOCK_ | SOCK_CLOEXEC_, IPPROTO_UDP_)
    if fd < 0 { return err(ENOTTY) }
    defer { close(fd) }
    return interfaceIoctl(t, fd, cmd, arg)
}

/// The read-only interface queries (struct ifreq in, struct ifreq out, or
/// SIOCGIFCONF's list), answered by the host for the sandbox's namespace.
func interfaceIoctl(_ t: Task, _ fd: Int32, _ cmd: UInt64, _ arg: UInt64) -> Int {
    let ifreqQueries: Set<UInt64> = [0x8910, 0x8913, 0x8915, 0x8917, 0x8919, 0x891b, 0x8921, 0x8927, 0x8933, 0x8942]
    // SIOCGIFNAME FLAGS ADDR DSTADDR BRDADDR NETMASK MTU HWADDR INDEX TXQLEN
    if ifreqQueries.contains(cmd) {
        guard var b = t.copyIn(arg, 40) else { return err(EFAULT) }
        let r = b.withUnsafeMutableBytes { Glibc.ioctl(fd, UInt(cmd), $0.baseAddress!) }
        if r != 0 { return err(errno) }
        return t.copyOut(arg, b) ? 0 : err(EFAULT)
    }
    // The SIOCSIF* that change an interface: the struct ifreq is read first
    // (EFAULT), as Linux's dev_ioctl does; then EPERM, whatever the caller's
    // capabilities: the interfaces are the sandbox namespace's, which the
    // confined Sentry may not change (only addresses, through netlink's
    // RTM_NEWADDR and RTM_DELADDR and the address helper, CMoat/netconf.c).
    let ifreqChanges: Set<UInt64> = [0x8914, 0x8916, 0x8918, 0x891a, 0x891c, 0x8922, 0x8923, 0x8924, 0x8931, 0x8932, 0x8934]
    // SIOCSIFFLAGS ADDR DSTADDR BRDADDR NETMASK MTU NAME HWADDR, SIOCADDMULTI DELMULTI, SIOCSIFPFLAGS
    if ifreqChanges.contains(cmd) {
        if t.copyIn(arg, 40) == nil { return err(EFAULT) }
        return err(EPERM)
    }
    if cmd == 0x8912 { // SIOCGIFCONF: struct ifconf { int len; char *buf; }
        guard let h = t.copyIn(arg, 16) else { return err(EFAULT) }
        let len = Int32(bitPattern: get32(h, 0))
        let ubuf = get64(h, 8)
        if len < 0 { return err(EINVAL) }
        let n = min(Int(len), 64 * 40)
        var list = [UInt8](repeating: 0, count: max(n, 1))
        var ifc = ifconf()
        ifc.ifc_len = Int32(n)
        let r: Int32 = list.withUnsafeMutableBytes { lb in
            ifc.ifc_ifcu.ifcu_buf = ubuf == 0 ? nil : lb.baseAddress!.assumingMemoryBound(to: CChar.self)
            return Glibc.ioctl(fd, UInt(cmd), &ifc)
        }
        if r != 0 { return err(errno) }
        if ubuf != 0 && !t.copyOut(ubuf, Array(list.prefix(Int(ifc.ifc_len)))) { return err(EFAULT) }
        var out = h
        put32(&out, 0, ifc.ifc_len)
        return t.copyOut(arg, out) ? 0 : err(EFAULT)
    }
    return err(ENOTTY)
}

/// Lays out control messages as the kernel reads them (cmsghdr: 8-byte
/// length, level, type, then the data; each message 8-aligned), the
/// inverse of decodeControl.
func encodeControl(_ msgs: [Cmsg]) -> [UInt8] {
    var out: [UInt8] = []
    for m in msgs {
        var h = [UInt8](repeating: 0, count: 16)
        put64(&h, 0, UInt64(16 + m.data.count)); put32(&h, 8, m.level); put32(&h, 12, m.type)
        out += h + m.data
        while out.count % 8 != 0 { out.append(0) }
    }
    return out
}

/// getsockopt of SO_RCVTIMEO/SO_SNDTIMEO (old struct timeval) for the sockets
/// that keep their timeouts in the Sentry (inet, netlink): a negative timeout
/// reads as 0, the struct cut to the caller's length.
func copyOutSocketTimeout(_ t: Task, _ timeoutNs: Int64, addr: UInt64, lenAddr: UInt64, len: Int32) -> Int {
    let ns = max(0, timeoutNs)
    var b = [UInt8](repeating: 0, count: 16)
    put64(&b, 0, UInt64(ns / 1_000_000_000)); put64(&b, 8, UInt64(ns % 1_000_000_000 / 1000))
    let n = min(Int(len), 16)
    return t.copyOut(addr, Array(b.prefix(n))) && t.writeI32(lenAddr, Int32(n)) ? 0 : err(EFAULT)
}
