// A hostile or broken peer: raw packets that break framing, malformed
// payloads, unknown opcodes, donated fds, seeded fuzzing — and a broken Gofer
// as seen from the client. The server must answer with an error or hang up,
// never crash, and always end its thread cleanly.

import Foundation
import Glibc
import XCTest
import GoferProtocol

/// Little-endian packet builder for hand-made requests.
struct Packet {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func name(_ s: [UInt8]) { u16(UInt16(s.count)); bytes.append(contentsOf: s) }

    static func request(_ op: UInt16, _ payload: [UInt8], lengthField: UInt32? = nil) -> [UInt8] {
        var p = Packet()
        p.u32(lengthField ?? UInt32(payload.count)); p.u16(op); p.u16(0)
        return p.bytes + payload
    }
}

/// Deterministic PRNG so a failing fuzz run can be reproduced.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

final class HostileTests: XCTestCase {
    var tree: TempTree!
    var rootFD: Int32 = -1
    var sock: Int32 = -1
    var server: ServerThread!

    override func setUpWithError() throws {
        tree = try TempTree()
        rootFD = open(tree.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        let (c, s) = try GoferClient.socketPair().get()
        sock = c
        server = ServerThread(rootFD: rootFD, socketFD: s, readOnly: false)
    }

    override func tearDownWithError() throws {
        if sock >= 0 { close(sock) }
        XCTAssertTrue(server.waitForExit(), "server thread did not exit")
        close(rootFD)
        tree.remove()
    }

    // MARK: Raw I/O

    func send(_ bytes: [UInt8], fd: Int32 = -1) {
        let rc = bytes.withUnsafeBytes { MessageSocket.send(sock, $0.baseAddress!, $0.count, fd: fd) }
        XCTAssertEqual(rc, 0, "send")
    }

    /// One reply (status, echo, payload), or nil if the server hung up. Donated fds are closed.
    func receive(timeout: Int32 = 10_000) -> (status: UInt16, echo: UInt16, payload: [UInt8])? {
        var pfd = pollfd(fd: sock, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, timeout) == 1 else {
            XCTFail("no reply within \(timeout) ms")
            return nil
        }
        let buf = UnsafeMutableRawPointer.allocate(byteCount: GoferWire.maxMessage, alignment: 8)
        defer { buf.deallocate() }
        var fds = MessageSocket.ReceivedFDs()
        let got = MessageSocket.receive(sock, into: buf, capacity: GoferWire.maxMessage, acceptFDs: true, fds: &fds)
        fds.closeAll()
        guard case .message(let n) = got else { return nil }
        XCTAssertGreaterThanOrEqual(n, 8)
        let bytes = [UInt8](UnsafeRawBufferPointer(start: buf, count: n))
        let len = Int(bytes[0]) | Int(bytes[1]) << 8 | Int(bytes[2]) << 16 | Int(bytes[3]) << 24
        XCTAssertEqual(len, n - 8, "reply length field")
        let status = UInt16(bytes[4]) | UInt16(bytes[5]) << 8
        XCTAssertLessThanOrEqual(status, 4095)
        if status != 0 { XCTAssertEqual(len, 0, "error replies carry no payload") }
        return (status, UInt16(bytes[6]) | UInt16(bytes[7]) << 8, Array(bytes[8...]))
    }

    func call(_ op: UInt16, _ payload: [UInt8]) -> (status: UInt16, payload: [UInt8])? {
        send(Packet.request(op, payload))
        guard let r = receive() else { return nil }
        XCTAssertEqual(r.echo, op, "reply echoes the opcode")
        return (r.status, r.payload)
    }

    func handshake() {
        var p = Packet()
        p.u32(GoferWire.version); p.u32(UInt32(GoferWire.maxMessage))
        let r = call(GoferOp.version.rawValue, p.bytes)
        XCTAssertEqual(r?.status, 0)
    }

    func attach() -> UInt64 {
        guard let r = call(GoferOp.attach.rawValue, []), r.status == 0, r.payload.count == 8 + GoferWire.statSize else {
            XCTFail("attach failed")
            return 0
        }
        return r.payload[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    func expectHangUp(_ why: String) {
        var pfd = pollfd(fd: sock, events: Int16(POLLIN), revents: 0)
        XCTAssertEqual(poll(&pfd, 1, 10_000), 1, why)
        var byte: UInt8 = 0
        XCTAssertEqual(recv(sock, &byte, 1, 0), 0, "\(why): expected EOF")
        XCTAssertTrue(server.waitForExit(), "\(why): server thread must end")
    }

    func assertAlive(file: StaticString = #filePath, line: UInt = #line) {
        let r = call(GoferOp.attach.rawValue, [])
        XCTAssertEqual(r?.status, 0, "server must still answer", file: file, line: line)
    }

    // MARK: Framing

    func testGarbageBeforeHandshakeHangsUp() {
        var rng = SplitMix64(state: 1)
        send((0..<37).map { _ in UInt8.random(in: 0...255, using: &rng) })
        expectHangUp("garbage first packet")
    }

    func testFirstRequestMustBeVersion() {
        send(Packet.request(GoferOp.attach.rawValue, []))
        expectHangUp("attach before version")
    }

    func testVersionMismatch() {
        var p = Packet()
        p.u32(99); p.u32(UInt32(GoferWire.maxMessage))
        let r = call(GoferOp.version.rawValue, p.bytes)
        XCTAssertEqual(r?.status, UInt16(EPROTONOSUPPORT))
        expectHangUp("version mismatch")
    }

    func testMalformedVersionHangsUp() {
        send(Packet.request(GoferOp.version.rawValue, [1, 0, 0]))
        XCTAssertEqual(receive()?.status, UInt16(EINVAL))
        expectHangUp("short version payload")
    }

    func testShortPacketHangsUp() {
        handshake()
        send([1, 2, 3, 4, 5])
        expectHangUp("5-byte packet")
    }

    func testLengthFieldMismatchHangsUp() {
        handshake()
        send(Packet.request(GoferOp.stat.rawValue, [1, 2, 3, 4, 5, 6, 7, 8], lengthField: 1_000_000))
        expectHangUp("length field lies")
    }

    func testOversizedPacketHangsUp() {
        handshake()
        send(Packet.request(GoferOp.stat.rawValue, [UInt8](repeating: 0xAA, count: GoferWire.maxMessage + 100)))
        expectHangUp("packet larger than maxMessage")
    }

    // MARK: Payloads

    func testUnknownOpcodesAreENOSYS() {
        handshake()
        for op: UInt16 in [0, 26, 999, 0xFFFF] {
            XCTAssertEqual(call(op, [1, 2, 3])?.status, UInt16(ENOSYS), "op \(op)")
        }
        XCTAssertEqual(call(GoferOp.version.rawValue, [])?.status, UInt16(EINVAL), "second version")
        assertAlive()
    }

    func testMalformedPayloadsAreEINVAL() {
        handshake()
        let root = attach()
        func walk(_ names: [[UInt8]], count: UInt16? = nil, lengths: [UInt16]? = nil) -> [UInt8] {
            var p = Packet()
            p.u64(root); p.u16(count ?? UInt16(names.count))
            for (i, n) in names.enumerated() {
                p.u16(lengths?[i] ?? UInt16(n.count)); p.bytes += n
            }
            return p.bytes
        }
        let cases: [(String, UInt16, [UInt8])] = [
            ("walk ..", GoferOp.walk.rawValue, walk([b("..")])),
            ("walk .", GoferOp.walk.rawValue, walk([b(".")])),
            ("walk empty name", GoferOp.walk.rawValue, walk([[]])),
            ("walk slash", GoferOp.walk.rawValue, walk([b("a/b")])),
            ("walk absolute", GoferOp.walk.rawValue, walk([b("/etc")])),
            ("walk NUL", GoferOp.walk.rawValue, walk([[0x61, 0, 0x62]])),
            ("walk 256-byte name", GoferOp.walk.rawValue, walk([[UInt8](repeating: 0x61, count: 256)])),
            ("walk zero names", GoferOp.walk.rawValue, walk([], count: 0)),
            ("walk too many names", GoferOp.walk.rawValue, walk(Array(repeating: b("a"), count: 129))),
            ("walk count lies", GoferOp.walk.rawValue, walk([b("a")], count: 5)),
            ("walk name length lies", GoferOp.walk.rawValue, walk([b("a")], lengths: [200])),
            ("stat short", GoferOp.stat.rawValue, [1, 2, 3]),
            ("stat trailing", GoferOp.stat.rawValue, [UInt8](repeating: 0, count: 9)),
            ("attach trailing", GoferOp.attach.rawValue, [0]),
            ("open short", GoferOp.open.rawValue, [UInt8](repeating: 0, count: 10)),
            ("symlink NUL target", GoferOp.symlink.rawValue, {
                var p = Packet(); p.u64(root); p.u32(0); p.u32(0); p.name(b("x")); p.name([0x61, 0]); return p.bytes
            }()),
            ("rename dotdot", GoferOp.rename.rawValue, {
                var p = Packet(); p.u64(root); p.u64(root); p.u32(0); p.name(b("..")); p.name(b("x")); return p.bytes
            }()),
            ("setattr short", GoferOp.setattr.rawValue, [UInt8](repeating: 0, count: 20)),
            ("getdents short", GoferOp.getdents.rawValue, [UInt8](repeating: 0, count: 12)),
            ("getxattr outside user.*", GoferOp.getxattr.rawValue, {
                var p = Packet(); p.u64(root); p.name(b("trusted.x")); return p.bytes
            }()),
            ("setxattr value length lies", GoferOp.setxattr.rawValue, {
                var p = Packet(); p.u64(root); p.u32(0); p.name(b("user.x")); p.u32(100); p.bytes += [1]; return p.bytes
            }()),
            ("setxattr value too big", GoferOp.setxattr.rawValue, {
                var p = Packet(); p.u64(root); p.u32(0); p.name(b("user.x")); p.u32(65537)
                p.bytes += [UInt8](repeating: 0, count: 65537); return p.bytes
            }()),
            ("removexattr NUL in name", GoferOp.removexattr.rawValue, {
                var p = Packet(); p.u64(root); p.name([0x75, 0x73, 0x65, 0x72, 0x2E, 0x61, 0]); return p.bytes
            }()),
            ("listxattr trailing", GoferOp.listxattr.rawValue, [UInt8](repeating: 0, count: 9)),
            ("tmpfile short", GoferOp.tmpfile.rawValue, [UInt8](repeating: 0, count: 20)),
            ("scratch with a payload", GoferOp.scratch.rawValue, [0]),
        ]
        for (what, op, payload) in cases {
            XCTAssertEqual(call(op, payload)?.status, UInt16(EINVAL), what)
        }
        // Well-formed requests with hostile values.
        var p = Packet()
        p.u64(0xDEAD_0000_0001)
        XCTAssertEqual(call(GoferOp.stat.rawValue, p.bytes)?.status, UInt16(EBADF), "forged fid")
        p = Packet(); p.u64(root); p.u32(UInt32(bitPattern: O_RDONLY | O_CREAT))
        XCTAssertEqual(call(GoferOp.open.rawValue, p.bytes)?.status, UInt16(EINVAL), "O_CREAT on open")
        p = Packet(); p.u64(root); p.u32(0xFFFF_FFFF); p.u32(0); p.u32(0); p.u32(0)
        p.u64(0); p.u64(0); p.u64(0); p.u64(0); p.u64(0)
        XCTAssertEqual(call(GoferOp.setattr.rawValue, p.bytes)?.status, UInt16(EINVAL), "unknown setattr bits")
        // A malformed close gets no reply and changes nothing.
        send(Packet.request(GoferOp.close.rawValue, [5, 0, 1]))
        assertAlive()
        XCTAssertFalse(tree.exists("x"))
    }

    /// setacl values a hostile Sentry might send: each is EINVAL before the
    /// host sees it, for both kinds, and the served root keeps no ACL and
    /// its mode. (The client refuses them itself; these are raw packets.)
    func testMalformedACLsNeverReachTheHost() {
        handshake()
        let root = attach()
        let before = tree.lstat("")?.st_mode
        let obj = GoferACL.undefinedID
        func acl(_ es: [(UInt16, UInt16, UInt32)], version: UInt32 = 2) -> [UInt8] {
            var p = Packet()
            p.u32(version)
            for e in es { p.u16(e.0); p.u16(e.1); p.u32(e.2) }
            return p.bytes
        }
        func setacl(_ kind: UInt8, _ value: [UInt8]) -> [UInt8] {
            var p = Packet()
            p.u64(root); p.u8(kind); p.u32(UInt32(value.count)); p.bytes += value
            return p.bytes
        }
        let base: [(UInt16, UInt16, UInt32)] = [(1, 7, obj), (4, 5, obj), (0x20, 5, obj)]
        let cases: [(String, [UInt8])] = [
            ("short header", [2, 0, 0]),
            ("bare header", [2, 0, 0, 0]),
            ("partial entry", Array(acl(base).dropLast())),
            ("version 3", acl(base, version: 3)),
            ("unknown tag", acl([(1, 7, obj), (4, 5, obj), (0x40, 5, obj), (0x20, 5, obj)])),
            ("permission beyond rwx", acl([(1, 0o17, obj), (4, 5, obj), (0x20, 5, obj)])),
            ("named user without a mask", acl([(1, 7, obj), (2, 7, 1000), (4, 5, obj), (0x20, 5, obj)])),
            ("named group with the undefined id", acl([(1, 7, obj), (4, 5, obj), (8, 7, obj), (0x10, 7, obj), (0x20, 5, obj)])),
            ("out of order", acl([(4, 5, obj), (1, 7, obj), (0x20, 5, obj)])),
            ("USER_OBJ twice", acl([(1, 7, obj), (1, 7, obj), (4, 5, obj), (0x20, 5, obj)])),
            ("MASK twice", acl([(1, 7, obj), (2, 7, 1000), (4, 5, obj), (0x10, 7, obj), (0x10, 7, obj), (0x20, 5, obj)])),
            ("no OTHER", acl([(1, 7, obj), (4, 5, obj)])),
            ("entry after OTHER", acl(base + [(2, 7, 1000)])),
            ("base entries missing", acl([(0x20, 5, obj)])),
        ]
        for (what, value) in cases {
            XCTAssertEqual(GoferACL.validate(value), EINVAL, what)
            for kind: UInt8 in [0, 1] {
                XCTAssertEqual(call(GoferOp.setacl.rawValue, setacl(kind, value))?.status, UInt16(EINVAL), "\(what), kind \(kind)")
            }
        }
        XCTAssertEqual(call(GoferOp.setacl.rawValue, setacl(2, acl(base)))?.status, UInt16(EINVAL), "unknown kind")
        var g = Packet(); g.u64(root); g.u8(7)
        XCTAssertEqual(call(GoferOp.getacl.rawValue, g.bytes)?.status, UInt16(EINVAL), "getacl unknown kind")
        XCTAssertNil(HostXattr.get(tree.root, "system.posix_acl_access"))
        XCTAssertNil(HostXattr.get(tree.root, "system.posix_acl_default"))
        XCTAssertEqual(tree.lstat("")?.st_mode, before, "mode untouched")
        // A valid one does reach the host.
        let good = acl([(1, 7, obj), (2, 5, 1000), (4, 5, obj), (0x10, 5, obj), (0x20, 0, obj)])
        XCTAssertEqual(GoferACL.validate(good), 0)
        XCTAssertEqual(call(GoferOp.setacl.rawValue, setacl(1, good))?.status, 0)
        XCTAssertEqual(HostXattr.bytes(tree.root, "system.posix_acl_default"), good)
        assertAlive()
    }

    func testFDsSentToTheGoferAreDiscarded() {
        handshake()
        var fds: [Int32] = [-1, -1]
        XCTAssertEqual(pipe(&fds), 0)
        send(Packet.request(GoferOp.attach.rawValue, []), fd: fds[1])
        close(fds[1])
        XCTAssertEqual(receive()?.status, 0)
        // If the server had kept the write end, this read would block; EOF proves it is gone.
        var pfd = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
        XCTAssertEqual(poll(&pfd, 1, 5_000), 1)
        var byte: UInt8 = 0
        XCTAssertEqual(read(fds[0], &byte, 1), 0)
        close(fds[0])
    }

    func testSeededFuzzNeverKillsTheServer() throws {
        tree.mkdir("d")
        tree.write("d/f", "x")
        tree.symlink("l", "/")
        handshake()
        var fids = [attach()]
        var rng = SplitMix64(state: 0x5EED)
        let names: [[UInt8]] = [b("d"), b("f"), b("l"), b("x"), b(".."), b("."), [], b("a/b"), [0]]
        for _ in 0..<3000 {
            let op = UInt16.random(in: 1...18, using: &rng)
            var p = Packet()
            // Mostly structured garbage (real fids and names), sometimes pure noise.
            if Int.random(in: 0..<4, using: &rng) == 0 {
                p.bytes = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                for _ in 0..<Int.random(in: 0...6, using: &rng) {
                    switch Int.random(in: 0..<5, using: &rng) {
                    case 0: p.u64(fids.randomElement(using: &rng)!)
                    case 1: p.u32(UInt32.random(in: 0...0o777, using: &rng))
                    case 2: p.name(names.randomElement(using: &rng)!)
                    case 3: p.u16(UInt16.random(in: 0...3, using: &rng))
                    default: p.u8(UInt8.random(in: 0...255, using: &rng))
                    }
                }
            }
            if op == GoferOp.close.rawValue {
                send(Packet.request(op, p.bytes))
                continue
            }
            guard let r = call(op, p.bytes) else {
                XCTFail("server hung up on a well-framed request (op \(op))")
                return
            }
            // Remember any FID the server handed out so later requests can use it.
            if r.status == 0 && [2, 6, 7, 8, 9, 10].contains(op) && r.payload.count >= 8 {
                fids.append(r.payload[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
            }
        }
        assertAlive()
        // Nothing escaped the tree.
        let outside = try FileManager.default.contentsOfDirectory(atPath: tree.outside)
        XCTAssertEqual(outside, ["secret"])
        XCTAssertEqual(try String(contentsOfFile: tree.outside + "/secret", encoding: .utf8), "secret")
    }
}

/// The client facing a broken Gofer: every call must become EIO and the
/// client must report itself dead, never hang or crash.
final class BrokenGoferTests: XCTestCase {
    /// Runs `fake` on the server end of a pair while the test drives a client.
    func withFakeGofer(_ fake: @escaping @Sendable (Int32) -> Void, _ body: (GoferClient) -> Void) throws {
        let (c, s) = try GoferClient.socketPair().get()
        let done = DispatchSemaphore(value: 0)
        Thread {
            fake(s)
            close(s)
            done.signal()
        }.start()
        var client: GoferClient? = GoferClient(socketFD: c)
        body(client!)
        client = nil // hang up so the fake Gofer's last read ends
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
    }

    fileprivate static func readPacket(_ s: Int32) -> [UInt8]? {
        var buf = [UInt8](repeating: 0, count: GoferWire.maxMessage)
        let n = recv(s, &buf, buf.count, 0)
        return n > 0 ? Array(buf[0..<n]) : nil
    }

    fileprivate static func reply(_ s: Int32, status: UInt16, echo: UInt16, _ payload: [UInt8]) {
        var p = Packet()
        p.u32(UInt32(payload.count)); p.u16(status); p.u16(echo)
        let bytes = p.bytes + payload
        _ = bytes.withUnsafeBytes { Glibc.send(s, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    fileprivate static func answerVersion(_ s: Int32) {
        guard BrokenGoferTests.readPacket(s) != nil else { return }
        var p = Packet()
        p.u32(GoferWire.version); p.u32(UInt32(GoferWire.maxMessage))
        BrokenGoferTests.reply(s, status: 0, echo: GoferOp.version.rawValue, p.bytes)
    }

    func testGoferGoneMeansEIO() throws {
        try withFakeGofer({ _ in }) { client in
            if case .failure(let e) = client.attach() { XCTAssertEqual(e.rawValue, EIO) } else { XCTFail() }
            XCTAssertTrue(client.isDead)
            if case .failure(let e) = client.stat(1) { XCTAssertEqual(e.rawValue, EIO) } else { XCTFail() }
            client.close(1) // must not crash
        }
    }

    func testWrongEchoKillsConnection() throws {
        try withFakeGofer({ s in
            BrokenGoferTests.answerVersion(s)
            _ = BrokenGoferTests.readPacket(s)
            BrokenGoferTests.reply(s, status: 0, echo: GoferOp.walk.rawValue, [UInt8](repeating: 0, count: 128))
            _ = BrokenGoferTests.readPacket(s) // wait for the client to hang up
        }) { client in
            if case .failure(let e) = client.attach() { XCTAssertEqual(e.rawValue, EIO) } else { XCTFail() }
            XCTAssertTrue(client.isDead)
        }
    }

    func testTruncatedStatKillsConnection() throws {
        try withFakeGofer({ s in
            BrokenGoferTests.answerVersion(s)
            _ = BrokenGoferTests.readPacket(s)
            BrokenGoferTests.reply(s, status: 0, echo: GoferOp.stat.rawValue, [1, 2, 3])
            _ = BrokenGoferTests.readPacket(s)
        }) { client in
            if case .failure(let e) = client.stat(7) { XCTAssertEqual(e.rawValue, EIO) } else { XCTFail() }
            XCTAssertTrue(client.isDead)
        }
    }

    func testOpenReplyWithoutFDKillsConnection() throws {
        try withFakeGofer({ s in
            BrokenGoferTests.answerVersion(s)
            _ = BrokenGoferTests.readPacket(s)
            BrokenGoferTests.reply(s, status: 0, echo: GoferOp.open.rawValue, [])
            _ = BrokenGoferTests.readPacket(s)
        }) { client in
            if case .failure(let e) = client.open(7, flags: O_RDONLY) { XCTAssertEqual(e.rawValue, EIO) } else { XCTFail() }
            XCTAssertTrue(client.isDead)
        }
    }

    func testErrnoReplyKeepsConnection() throws {
        try withFakeGofer({ s in
            BrokenGoferTests.answerVersion(s)
            _ = BrokenGoferTests.readPacket(s)
            BrokenGoferTests.reply(s, status: UInt16(ENOENT), echo: GoferOp.stat.rawValue, [])
            _ = BrokenGoferTests.readPacket(s)
        }) { client in
            if case .failure(let e) = client.stat(7) { XCTAssertEqual(e.rawValue, ENOENT) } else { XCTFail() }
            XCTAssertFalse(client.isDead)
        }
    }

    func testEndlessGetdentsIsRejected() throws {
        try withFakeGofer({ s in
            BrokenGoferTests.answerVersion(s)
            _ = BrokenGoferTests.readPacket(s)
            // Not EOF and no entries: a client that trusted this would loop forever.
            var p = Packet()
            p.u64(0); p.u8(0); p.u8(0); p.u16(0)
            BrokenGoferTests.reply(s, status: 0, echo: GoferOp.getdents.rawValue, p.bytes)
            _ = BrokenGoferTests.readPacket(s)
        }) { client in
            if case .failure(let e) = client.getdents(7) { XCTAssertEqual(e.rawValue, EIO) } else { XCTFail() }
            XCTAssertTrue(client.isDead)
        }
    }
}

/// Releasing a FID at the end of a very deep chain of otherwise unreferenced
/// ancestors must not recurse (the server thread gets a small stack here).
final class DeepChainTests: GoferTestCase {
    override var serverStackSize: Int { 64 * 1024 }

    func testDeepChainReleaseDoesNotOverflowTheStack() throws {
        let depth = 2000
        var fds: [Int32] = [rootFD]
        for _ in 0..<depth {
            XCTAssertEqual(mkdirat(fds.last!, "d", 0o755), 0)
            let fd = openat(fds.last!, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            XCTAssertGreaterThanOrEqual(fd, 0)
            fds.append(fd)
        }
        defer {
            // Remove the chain bottom-up through fds (its path is longer than PATH_MAX).
            for i in stride(from: depth - 1, through: 0, by: -1) {
                unlinkat(fds[i], "d", AT_REMOVEDIR)
                close(fds[i + 1])
            }
        }
        var cur = try attachRoot()
        for _ in 0..<depth {
            let next = try ok(client.walk(cur, b("d"))).0
            client.close(cur)
            cur = next
        }
        client.close(cur) // frees the whole chain
        XCTAssertNotEqual(try attachRoot(), 0, "server still alive")
        // And once more, leaving the chain for connection teardown to free
        // (before the directories go: freeing deleted inodes is slow).
        cur = try attachRoot()
        for _ in 0..<depth {
            let next = try ok(client.walk(cur, b("d"))).0
            client.close(cur)
            cur = next
        }
        client = nil
        XCTAssertTrue(server.waitForExit(), "server thread must end cleanly")
    }
}
