// What an application hands the Sentry as syscall arguments: the structs
// it copies in and decodes before any handler acts on them. Each decoder
// here is the pure part of a syscall (the copy-in stays in the syscall):
// iovec arrays (readv/writev, sendmsg/recvmsg, process_vm_readv/writev),
// struct msghdr, control messages, struct clone_args (clone3), AF_UNIX
// names, and the egress decision on an inet address. The first byte picks
// the decoder; each result is checked against what the decoder promises,
// so a wrong answer traps as surely as an overflow does.

@testable import Sentry
import Glibc

enum SyscallArgsFuzz {
    static let target = FuzzTarget(
        name: "syscall-args",
        summary: "the Sentry's syscall argument decoders (iovec, msghdr, cmsg, clone_args, sockaddr): [kind][struct bytes]",
        setUp: {},
        run: run)

    static func run(_ input: [UInt8]) {
        guard let kind = input.first else { return }
        let body = Array(input.dropFirst())
        switch kind % 6 {
        case 0: iovecs(body)
        case 1: control(body)
        case 2: msghdr(body)
        case 3: clone3(body)
        case 4: unixNames(body)
        default: egress(body)
        }
    }

    static func iovecs(_ b: [UInt8]) {
        let count = min(b.count / 16, 1024)
        guard case .success(let v) = decodeIovecs(b, count: count) else { return }
        if v.count != count { fatalError("\(count) iovecs decoded as \(v.count)") }
        var total = 0
        for (i, (_, len)) in v.enumerated() {
            if len < 0 { fatalError("iovec \(i) has a negative length \(len)") }
            total += len
            if total > maxRWCount { fatalError("iovecs total \(total) beyond MAX_RW_COUNT") }
            let asked = Int64(bitPattern: get64(b, i * 16 + 8))
            if Int64(len) > asked { fatalError("iovec \(i) grew from \(asked) to \(len)") }
            if Int64(len) < asked && total != maxRWCount { fatalError("iovec \(i) shortened below MAX_RW_COUNT") }
        }
    }

    static func control(_ b: [UInt8]) {
        guard case .success(let msgs) = decodeControl(b) else { return }
        // Each message costs its 16-byte header and data, 8-aligned between them.
        var used = 0
        for m in msgs {
            if used > 0 { used = (used + 7) & ~7 }
            used += 16 + m.data.count
        }
        if used > b.count { fatalError("control messages of \(used) bytes decoded from \(b.count)") }
    }

    static func msghdr(_ b: [UInt8]) {
        guard b.count >= 56 else { return }
        let h = decodeMsgHdr(Array(b.prefix(56)), iov: [])
        if h.controlLen < 0 || h.controlLen > Int(Int32.max) { fatalError("msg_controllen \(h.controlLen) out of range") }
        if h.nameLen < 0 || h.nameLen > Int(UInt32.max) { fatalError("msg_namelen \(h.nameLen) out of range") }
        if b.count > 56 { iovecs(Array(b.dropFirst(56))) }
    }

    static func clone3(_ b: [UInt8]) {
        guard case .success(let c) = decodeClone3(b) else { return }
        let f = c.flags
        if c.exitSignal > 64 { fatalError("clone3 accepted exit signal \(c.exitSignal)") }
        if f & (CLONE_THREAD_ | CLONE_PARENT_) != 0 && c.exitSignal != 0 { fatalError("clone3 accepted an exit signal for a thread or sibling") }
        if f & CLONE_SIGHAND_ != 0 && f & CLONE_CLEAR_SIGHAND_ != 0 { fatalError("clone3 accepted CLONE_SIGHAND with CLONE_CLEAR_SIGHAND") }
        if f & (CLONE_NEWTIME_ | CLONE_DETACHED_) != 0 { fatalError("clone3 accepted flags \(String(f, radix: 16))") }
        // CLONE_INTO_CGROUP (the cgroup file system, session 18) needs the
        // struct's cgroup field: at least 88 bytes, as Linux's
        // CLONE_ARGS_SIZE_VER2, and a descriptor number that fits an int.
        if f & CLONE_INTO_CGROUP_ != 0 && (b.count < 88 || c.cgroupFD == nil) { fatalError("clone3 accepted CLONE_INTO_CGROUP without its cgroup field") }
        if f & 0xff != 0 { fatalError("clone3 accepted a signal in its flags: \(String(f, radix: 16))") }
        if b.count > 88 && b[88...].contains(where: { $0 != 0 }) { fatalError("clone3 accepted non-zero bytes past the struct it knows") }
    }

    static func unixNames(_ b: [UInt8]) {
        guard case .success(let path) = unixName(b) else { return }
        if path.isEmpty || path.count > 108 { fatalError("an AF_UNIX name of \(path.count) bytes was accepted") }
        if path.first != 0 && path.contains(0) { fatalError("a path name kept its NUL terminator") }
        // What the Sentry reports back for the name decodes to the same name
        // (a 108-byte path is reported with a NUL past sun_path, 111 bytes,
        // as Linux does, which no call takes back).
        if path.first != 0 && path.count == 108 { return }
        guard case .success(let again) = unixName(unixSockaddr(path)), again == path else {
            fatalError("an AF_UNIX name does not survive a round trip: \(path)")
        }
    }

    /// The egress broker carries a destination off the machine only when
    /// `isOutside` says so. The same IPv4 address must get the same answer
    /// as a sockaddr_in and as an IPv4-mapped sockaddr_in6, and loopback or
    /// unspecified addresses never go out.
    static func egress(_ b: [UInt8]) {
        guard b.count >= 4 else { return }
        let ip4 = Array(b.prefix(4))
        var sin = [UInt8](repeating: 0, count: 16)
        sin[0] = UInt8(AF_INET); sin[2] = 0; sin[3] = 80
        sin.replaceSubrange(4..<8, with: ip4)
        var sin6 = [UInt8](repeating: 0, count: 28)
        sin6[0] = UInt8(AF_INET6); sin6[3] = 80
        sin6[18] = 0xff; sin6[19] = 0xff
        sin6.replaceSubrange(20..<24, with: ip4)
        let v4 = SentryNetwork.isOutside(sin), mapped = SentryNetwork.isOutside(sin6)
        if v4 != mapped { fatalError("\(ip4) is \(v4 ? "outside" : "inside") as IPv4 but \(mapped ? "outside" : "inside") as IPv4-mapped IPv6") }
        if (ip4[0] == 127 || ip4 == [0, 0, 0, 0]) && v4 { fatalError("\(ip4) would leave the sandbox") }
        var lo6 = [UInt8](repeating: 0, count: 28)
        lo6[0] = UInt8(AF_INET6); lo6[23] = 1
        if SentryNetwork.isOutside(lo6) { fatalError("::1 would leave the sandbox") }
        // Arbitrary bytes: never a trap, whatever the length.
        _ = SentryNetwork.isOutside(b)
    }
}
