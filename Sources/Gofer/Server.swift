// The Gofer's request loop: receive a packet, check its framing, dispatch it,
// send the reply. Single-threaded; one connection per Server.
//
// Framing violations (short packet, header length != packet length, a packet
// larger than the buffer) and a first request other than `version` end the
// connection. A payload that does not decode exactly gets EINVAL, an unknown
// opcode ENOSYS, an unknown FID EBADF. Nothing a peer sends can make the
// server trap: every read is bounds-checked and every integer is validated
// before it reaches a system call.

import Glibc
import GoferProtocol

/// What a handler produced: 0 or an errno, and optionally an fd to donate.
struct Outcome {
    var status: Int32
    var fd: Int32 = -1

    static let ok = Outcome(status: 0)
    static func err(_ e: Int32) -> Outcome { Outcome(status: e) }
    static func fd(_ fd: Int32) -> Outcome { Outcome(status: 0, fd: fd) }
}

final class Server {
    let sock: Int32
    let readOnly: Bool
    /// With `readOnly`: refuse writes only where the host's mount is
    /// read-only (a non-recursive read-only bind mount: the served root's
    /// own mount is, mounts below it on the host keep their own access).
    let perMountReadOnly: Bool
    let root: Node
    /// A directory fd on a writable clone of the root's mount, where
    /// `scratch` makes its unnamed files; -1: `scratch` is EPERM.
    let scratchDir: Int32
    var fids = FIDTable()
    /// Largest packet we may send (the smaller of ours and the client's).
    private(set) var replyLimit = GoferWire.maxMessage
    private var handshaken = false
    private let recvBuf: UnsafeMutableRawPointer
    private let sendBuf: UnsafeMutableRawPointer
    /// Scratch buffer for getdents64.
    let direntBuf: UnsafeMutableRawPointer
    static let direntBufSize = 32 * 1024

    /// Opens its own O_PATH handle on `rootFD` (which stays the caller's).
    /// `scratchDir` (-1 for none) becomes the server's.
    init?(rootFD: Int32, sock: Int32, readOnly: Bool, perMountReadOnly: Bool = false, scratchDir: Int32 = -1) {
        let fd = openat(rootFD, ".", HostSys.O_PATH | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { return nil }
        var st = stat()
        if fstat(fd, &st) != 0 || UInt32(st.st_mode) & UInt32(S_IFMT) != UInt32(S_IFDIR) {
            Glibc.close(fd)
            if scratchDir >= 0 { Glibc.close(scratchDir) }
            return nil
        }
        self.scratchDir = scratchDir
        self.root = Node(fd: fd, parent: nil, name: [], st: st)
        self.sock = sock
        self.readOnly = readOnly
        self.perMountReadOnly = perMountReadOnly
        recvBuf = .allocate(byteCount: GoferWire.maxMessage, alignment: 16)
        sendBuf = .allocate(byteCount: GoferWire.maxMessage, alignment: 16)
        direntBuf = .allocate(byteCount: Server.direntBufSize, alignment: 16)
    }

    /// Whether a write to `n` (or to an entry of directory `n`) is refused
    /// with EROFS: always when serving read-only, or, per mount, when the
    /// host mount `n` lives on is read-only (ST_RDONLY in statfs's flags).
    func refusesWrite(_ n: Node) -> Bool {
        guard readOnly else { return false }
        guard perMountReadOnly else { return true }
        let (e, b) = HostSys.fstatfs(n.fd)
        return e != 0 || b[10] & 1 != 0     // ST_RDONLY
    }

    deinit {
        if scratchDir >= 0 { Glibc.close(scratchDir) }
        fids.removeAll()
        recvBuf.deallocate()
        sendBuf.deallocate()
        direntBuf.deallocate()
    }

    /// Serves until the peer hangs up or breaks the protocol.
    func serve() {
        while true {
            var fds = MessageSocket.ReceivedFDs()
            let got = MessageSocket.receive(sock, into: recvBuf, capacity: GoferWire.maxMessage, acceptFDs: false, fds: &fds)
            guard case .message(let n) = got, n >= GoferWire.headerSize else { return }
            let len = Int(UInt32(littleEndian: recvBuf.loadUnaligned(fromByteOffset: 0, as: UInt32.self)))
            let op = UInt16(littleEndian: recvBuf.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
            guard len == n - GoferWire.headerSize else { return }
            var r = WireReader(base: recvBuf, count: n, start: GoferWire.headerSize)

            if !handshaken {
                guard op == GoferOp.version.rawValue else { return }
                let (status, keep) = handshake(&r)
                var w = WireWriter(base: sendBuf, capacity: replyLimit, start: GoferWire.headerSize)
                if status == 0 { w.u32(GoferWire.version); w.u32(UInt32(GoferWire.maxMessage)) }
                guard reply(op, status: status, &w, fd: -1), keep else { return }
                continue
            }
            if op == GoferOp.close.rawValue {
                closeFIDs(&r)
                continue
            }
            var w = WireWriter(base: sendBuf, capacity: replyLimit, start: GoferWire.headerSize)
            var out = dispatch(op, &r, &w)
            if out.status == 0 && w.overflow {
                // A handler produced more than fits; never send a partial reply.
                if out.fd >= 0 { Glibc.close(out.fd) }
                out = .err(EIO)
            }
            if out.status != 0 {
                if out.fd >= 0 { Glibc.close(out.fd) }
                out.fd = -1
                w = WireWriter(base: sendBuf, capacity: replyLimit, start: GoferWire.headerSize)
            }
            let sent = reply(op, status: out.status, &w, fd: out.fd)
            if out.fd >= 0 { Glibc.close(out.fd) }
            if !sent { return }
        }
    }

    /// (status, keep the connection).
    private func handshake(_ r: inout WireReader) -> (Int32, Bool) {
        guard let version = try? r.u32(), let peerMax = try? r.u32(), (try? r.finish()) != nil else {
            return (EINVAL, false)
        }
        guard version == GoferWire.version else { return (EPROTONOSUPPORT, false) }
        guard peerMax >= 64 * 1024 else { return (EINVAL, false) }
        replyLimit = min(Int(peerMax), GoferWire.maxMessage)
        handshaken = true
        return (0, true)
    }

    private func reply(_ op: UInt16, status: Int32, _ w: inout WireWriter, fd: Int32) -> Bool {
        let s = UInt16(clamping: status)
        sendBuf.storeBytes(of: UInt32(w.count - GoferWire.headerSize).littleEndian, toByteOffset: 0, as: UInt32.self)
        sendBuf.storeBytes(of: s.littleEndian, toByteOffset: 4, as: UInt16.self)
        sendBuf.storeBytes(of: op.littleEndian, toByteOffset: 6, as: UInt16.self)
        return MessageSocket.send(sock, sendBuf, w.count, fd: status == 0 ? fd : -1) == 0
    }

    private func dispatch(_ op: UInt16, _ r: inout WireReader, _ w: inout WireWriter) -> Outcome {
        guard let o = GoferOp(rawValue: op) else { return .err(ENOSYS) }
        do {
            switch o {
            case .version: return .err(EINVAL) // only once, first
            case .attach: return try attach(&r, &w)
            case .walk: return try walk(&r, &w)
            case .stat: return try statOp(&r, &w)
            case .open: return try openOp(&r, &w)
            case .create: return try create(&r, &w)
            case .mkdir: return try mkdirOp(&r, &w)
            case .symlink: return try symlinkOp(&r, &w)
            case .link: return try linkOp(&r, &w)
            case .mknod: return try mknodOp(&r, &w)
            case .unlink: return try unlinkOp(&r, &w)
            case .rename: return try renameOp(&r, &w)
            case .readlink: return try readlinkOp(&r, &w)
            case .getdents: return try getdentsOp(&r, &w)
            case .setattr: return try setattrOp(&r, &w)
            case .statfs: return try statfsOp(&r, &w)
            case .getxattr: return try getxattrOp(&r, &w)
            case .setxattr: return try setxattrOp(&r, &w)
            case .listxattr: return try listxattrOp(&r, &w)
            case .removexattr: return try removexattrOp(&r, &w)
            case .tmpfile: return try tmpfileOp(&r, &w)
            case .scratch: return try scratchOp(&r)
            case .getacl: return try getaclOp(&r, &w)
            case .setacl: return try setaclOp(&r, &w)
            case .close: return .ok // handled before dispatch
            }
        } catch {
            return .err(EINVAL)
        }
    }

    /// `close` gets no reply, so a malformed one is simply ignored.
    private func closeFIDs(_ r: inout WireReader) {
        guard let n = try? r.u16(), n >= 1, Int(n) <= GoferWire.maxCloseFIDs,
              r.remaining == Int(n) * 8 else { return }
        for _ in 0..<n {
            guard let fid = try? r.u64() else { return }
            fids.remove(fid)
        }
    }

    // MARK: Shared helpers for the handlers

    /// The node for `fid`, or nil (the handler answers EBADF).
    @inline(__always)
    func node(_ fid: FID) -> Node? { fids.lookup(fid) }

    /// Registers `node` under a new FID and writes {fid, stat}; ENFILE when full.
    func issue(_ node: Node, _ st: stat, _ w: inout WireWriter) -> Int32 {
        guard let fid = fids.insert(node) else { return ENFILE }
        w.u64(fid)
        w.stat(GoferStat(host: st))
        return 0
    }

    /// fstatat(fd, "", AT_EMPTY_PATH|AT_SYMLINK_NOFOLLOW).
    static func statFD(_ fd: Int32, _ st: inout stat) -> Int32 {
        fstatat(fd, "", &st, HostSys.AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 ? 0 : HostSys.lastError
    }
}

extension GoferStat {
    init(host st: stat) {
        self.init(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino), nlink: UInt64(st.st_nlink),
                  mode: UInt32(st.st_mode), uid: UInt32(st.st_uid), gid: UInt32(st.st_gid),
                  rdev: UInt64(st.st_rdev), size: Int64(st.st_size), blksize: Int64(st.st_blksize),
                  blocks: Int64(st.st_blocks),
                  atimeSec: Int64(st.st_atim.tv_sec), atimeNsec: Int64(st.st_atim.tv_nsec),
                  mtimeSec: Int64(st.st_mtim.tv_sec), mtimeNsec: Int64(st.st_mtim.tv_nsec),
                  ctimeSec: Int64(st.st_ctim.tv_sec), ctimeNsec: Int64(st.st_ctim.tv_nsec))
    }
}
