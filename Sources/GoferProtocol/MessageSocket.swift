// Packet I/O on the Gofer socket: one sendmsg/recvmsg per message, with
// SCM_RIGHTS fd passing done by hand (the CMSG_* macros are not importable
// into Swift). Linux layout: struct cmsghdr { size_t len; int level; int type; }
// followed by the data, every header aligned to sizeof(size_t).

import Glibc

package enum MessageSocket {
    private static let cmsgHeaderSize = MemoryLayout<Int>.size + 8
    private static let cmsgAlign = MemoryLayout<Int>.size

    @inline(__always)
    private static func align(_ n: Int) -> Int { (n + cmsgAlign - 1) & ~(cmsgAlign - 1) }

    /// Outcome of `receive`.
    package enum Received: Equatable {
        /// A whole packet of this many bytes is in the buffer.
        case message(Int)
        /// The peer hung up (or sent an empty packet, which is never valid).
        case eof
        /// The packet was larger than the buffer (its tail is lost).
        case truncated
        /// recvmsg failed with this errno.
        case failed(Int32)
    }

    /// File descriptors that arrived with a packet. Only the first is kept open;
    /// any further ones are closed on arrival and only counted.
    package struct ReceivedFDs {
        package var first: Int32 = -1
        /// How many arrived (at least); more than one is always a protocol error.
        package var count = 0
        package init() {}
        package mutating func closeAll() {
            if first >= 0 { Glibc.close(first) }
            first = -1; count = 0
        }
    }

    /// Creates a connected SOCK_SEQPACKET pair (close-on-exec) for a client and
    /// a server. Returns an errno on failure.
    package static func socketPair() -> Result<(Int32, Int32), GoferErrno> {
        var sv: (Int32, Int32) = (-1, -1)
        let rc = withUnsafeMutableBytes(of: &sv) { p in
            socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0,
                       p.baseAddress!.assumingMemoryBound(to: Int32.self))
        }
        if rc != 0 { return .failure(GoferErrno(errno)) }
        return .success(sv)
    }

    /// Sends one packet, attaching `fd` with SCM_RIGHTS when it is >= 0.
    /// Returns 0 or an errno. Never raises SIGPIPE.
    package static func send(_ sock: Int32, _ buf: UnsafeRawPointer, _ len: Int, fd: Int32 = -1) -> Int32 {
        var iov = iovec(iov_base: UnsafeMutableRawPointer(mutating: buf), iov_len: len)
        // Room for one cmsghdr carrying one int, 8-aligned.
        var control: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        return withUnsafeMutablePointer(to: &iov) { iovp in
            withUnsafeMutableBytes(of: &control) { cbuf in
                var msg = msghdr()
                msg.msg_iov = iovp
                msg.msg_iovlen = 1
                if fd >= 0 {
                    let c = cbuf.baseAddress!
                    c.storeBytes(of: cmsgHeaderSize + 4, toByteOffset: 0, as: Int.self)
                    c.storeBytes(of: SOL_SOCKET, toByteOffset: MemoryLayout<Int>.size, as: Int32.self)
                    c.storeBytes(of: Int32(SCM_RIGHTS), toByteOffset: MemoryLayout<Int>.size + 4, as: Int32.self)
                    c.storeBytes(of: fd, toByteOffset: cmsgHeaderSize, as: Int32.self)
                    msg.msg_control = c
                    msg.msg_controllen = align(cmsgHeaderSize + 4)
                }
                while true {
                    let n = sendmsg(sock, &msg, Int32(MSG_NOSIGNAL))
                    if n >= 0 { return n == len ? 0 : EIO }
                    let e = errno
                    if e == EINTR { continue }
                    return e
                }
            }
        }
    }

    /// Receives one packet into `buf`. When `acceptFDs` is false no control
    /// buffer is offered, so the kernel discards (closes) any fds sent along.
    /// Received fds are close-on-exec.
    package static func receive(_ sock: Int32, into buf: UnsafeMutableRawPointer, capacity: Int,
                                acceptFDs: Bool, fds: inout ReceivedFDs) -> Received {
        fds = ReceivedFDs()
        var iov = iovec(iov_base: buf, iov_len: capacity)
        // Room for a few fds so an over-generous peer is detected, not silently truncated.
        var control: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        return withUnsafeMutablePointer(to: &iov) { iovp in
            withUnsafeMutableBytes(of: &control) { cbuf in
                var msg = msghdr()
                msg.msg_iov = iovp
                msg.msg_iovlen = 1
                if acceptFDs {
                    msg.msg_control = cbuf.baseAddress
                    msg.msg_controllen = cbuf.count
                }
                var n = 0
                while true {
                    n = recvmsg(sock, &msg, acceptFDs ? Int32(MSG_CMSG_CLOEXEC) : 0)
                    if n >= 0 { break }
                    let e = errno
                    if e == EINTR { continue }
                    return .failed(e)
                }
                if acceptFDs {
                    collectFDs(UnsafeRawBufferPointer(start: cbuf.baseAddress, count: min(msg.msg_controllen, cbuf.count)),
                               into: &fds)
                    if msg.msg_flags & Int32(MSG_CTRUNC) != 0 { fds.count += 1 }
                }
                if msg.msg_flags & Int32(MSG_TRUNC) != 0 { return .truncated }
                if n == 0 { return .eof }
                return .message(n)
            }
        }
    }

    private static func collectFDs(_ c: UnsafeRawBufferPointer, into fds: inout ReceivedFDs) {
        guard let base = c.baseAddress else { return }
        var off = 0
        while off + cmsgHeaderSize <= c.count {
            let len = base.loadUnaligned(fromByteOffset: off, as: Int.self)
            if len < cmsgHeaderSize || len > c.count - off { break }
            let level = base.loadUnaligned(fromByteOffset: off + MemoryLayout<Int>.size, as: Int32.self)
            let type = base.loadUnaligned(fromByteOffset: off + MemoryLayout<Int>.size + 4, as: Int32.self)
            if level == SOL_SOCKET && type == Int32(SCM_RIGHTS) {
                let n = (len - cmsgHeaderSize) / 4
                for i in 0..<n {
                    let fd = base.loadUnaligned(fromByteOffset: off + cmsgHeaderSize + 4 * i, as: Int32.self)
                    if fds.first < 0 { fds.first = fd } else { Glibc.close(fd) }
                    fds.count += 1
                }
            }
            off += align(len)
        }
    }
}
