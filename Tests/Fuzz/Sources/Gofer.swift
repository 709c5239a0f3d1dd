// The Gofer protocol, both directions: requests a compromised Sentry could
// send to the Gofer (gofer-server), and replies a compromised Gofer could
// send to the Sentry (gofer-client). Each input is a short conversation
// over a real SOCK_SEQPACKET pair, after a valid handshake (and attach).

import Foundation
import Glibc
import Gofer
import GoferProtocol

/// Splits an input into records: [tag: u8][length: u16 le][payload].
struct Records: Sequence, IteratorProtocol {
    private var rest: ArraySlice<UInt8>
    init(_ b: ArraySlice<UInt8>) { rest = b }
    mutating func next() -> (tag: UInt8, payload: [UInt8])? {
        guard rest.count >= 3 else { return nil }
        let i = rest.startIndex
        let tag = rest[i]
        let n = Swift.min(Int(rest[i + 1]) | Int(rest[i + 2]) << 8, rest.count - 3)
        let payload = Array(rest[(i + 3)..<(i + 3 + n)])
        rest = rest[(i + 3 + n)...]
        return (tag, payload)
    }
}

/// A packet with a correct header: [len u32][status or op u16][op u16].
func goferPacket(op: UInt16, word: UInt16, _ payload: [UInt8]) -> [UInt8] {
    var p: [UInt8] = []
    let len = UInt32(payload.count)
    p += withUnsafeBytes(of: len.littleEndian, Array.init)
    p += withUnsafeBytes(of: word.littleEndian, Array.init)
    p += withUnsafeBytes(of: op.littleEndian, Array.init)
    return p + payload
}

func sendPacket(_ fd: Int32, _ p: [UInt8]) -> Bool {
    p.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == p.count
}

/// Waits up to `ms` for a packet; nil on hang-up or time-out (`timedOut` set).
/// Any donated fd is closed.
func receivePacket(_ fd: Int32, ms: Int32, timedOut: inout Bool) -> [UInt8]? {
    var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    if poll(&pfd, 1, ms) == 0 { timedOut = true; return nil }
    var buf = [UInt8](repeating: 0, count: GoferWire.maxMessage)
    var fds = MessageSocket.ReceivedFDs()
    let got = buf.withUnsafeMutableBytes {
        MessageSocket.receive(fd, into: $0.baseAddress!, capacity: $0.count, acceptFDs: true, fds: &fds)
    }
    fds.closeAll()
    guard case .message(let n) = got else { return nil }
    return Array(buf[..<n])
}

/// A fresh directory tree for one input, under a scratch directory owned by
/// the unprivileged user the fuzzer runs as (so a Gofer bug that escaped the
/// served root could reach only what `nobody` may write).
enum Scratch {
    nonisolated(unsafe) static var base = ""
    nonisolated(unsafe) static var serial = 0

    static func setUp(_ name: String) {
        let tmp = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(tmp)/moat-fuzz-\(name)-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { fatalError("mkdtemp failed") }
        base = String(cString: template)
        if getuid() == 0 {
            // Drop to nobody: the fuzzed code gets no privilege to misuse.
            _ = chown(base, 65534, 65534)
            guard setgroups(0, nil) == 0, setgid(65534) == 0, setuid(65534) == 0 else {
                fatalError("cannot drop privileges")
            }
        }
        atexit { Scratch.forceRemove(Scratch.base) }
    }

    /// Removes a tree the fuzzer may have chmod-ed to 0: directories are
    /// given back their owner's permissions on the way down.
    static func forceRemove(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if st.st_mode & S_IFMT == S_IFDIR {
            chmod(path, 0o700)
            for n in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] { forceRemove(path + "/" + n) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    /// A new root with a file, a directory, a symlink and a symlink that
    /// points out of the root; the previous input's root is removed.
    static func freshRoot() -> Int32 {
        if serial > 0 { forceRemove("\(base)/\(serial - 1)") }
        let root = "\(base)/\(serial)"
        serial += 1
        mkdir(root, 0o755)
        mkdir(root + "/d", 0o755)
        let fd = open(root + "/f", O_CREAT | O_WRONLY, 0o644)
        if fd >= 0 { _ = write(fd, "hello\n", 6); close(fd) }
        symlink("f", root + "/l")
        symlink("../../../..", root + "/up")
        return open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    }
}

enum GoferServerFuzz {
    static let target = FuzzTarget(
        name: "gofer-server",
        summary: "Gofer request decoding and handling: [flags][records: op, length, payload]",
        setUp: { Scratch.setUp("gofer") },
        run: run)

    /// Input: flags byte (bit 0: read-only tree; bit 1: no automatic
    /// handshake and attach), then records; a record's tag is the opcode
    /// (tag >= 0x80: the payload is sent as a raw packet, header and all).
    static func run(_ input: [UInt8]) {
        guard let flags = input.first else { return }
        let rootFD = Scratch.freshRoot()
        guard rootFD >= 0, case .success(let pair) = MessageSocket.socketPair() else { fatalError("setup failed") }
        defer { close(rootFD) }
        let client = pair.0, serverSock = pair.1
        var tid = pthread_t()
        let box = Unmanaged.passRetained(ServeArgs(rootFD: rootFD, sock: serverSock, readOnly: flags & 1 != 0))
        guard pthread_create(&tid, nil, { arg in
            let a = Unmanaged<ServeArgs>.fromOpaque(arg!).takeRetainedValue()
            Gofer.serve(rootFD: a.rootFD, socketFD: a.sock, readOnly: a.readOnly)
            return nil
        }, box.toOpaque()) == 0 else { fatalError("pthread_create") }

        var packets: [(op: UInt16, bytes: [UInt8])] = []
        if flags & 2 == 0 {
            let hello = withUnsafeBytes(of: GoferWire.version.littleEndian, Array.init) + withUnsafeBytes(of: UInt32(GoferWire.maxMessage).littleEndian, Array.init)
            packets.append((GoferOp.version.rawValue, goferPacket(op: 0, word: GoferOp.version.rawValue, hello)))
            packets.append((GoferOp.attach.rawValue, goferPacket(op: 0, word: GoferOp.attach.rawValue, [])))
        }
        for r in Records(input.dropFirst()).prefix(32) {
            if r.tag >= 0x80 {
                let op = r.payload.count >= 6 ? UInt16(r.payload[4]) | UInt16(r.payload[5]) << 8 : 0
                packets.append((op, r.payload))
            } else {
                packets.append((UInt16(r.tag), goferPacket(op: 0, word: UInt16(r.tag), r.payload)))
            }
        }
        for p in packets {
            guard sendPacket(client, p.bytes) else { break }
            if p.op == GoferOp.close.rawValue && p.bytes.count >= 8 { continue } // no reply
            var timedOut = false
            let reply = receivePacket(client, ms: 10_000, timedOut: &timedOut)
            if timedOut { fatalError("the Gofer did not answer a request within 10 s") }
            guard let reply else { break } // it hung up: a protocol violation ends the connection
            guard reply.count >= 8 else { fatalError("short reply from the Gofer") }
            let len = Int(reply[0]) | Int(reply[1]) << 8 | Int(reply[2]) << 16 | Int(reply[3]) << 24
            if len != reply.count - 8 { fatalError("the Gofer framed a reply wrongly") }
        }
        close(client)
        pthread_join(tid, nil)
    }

    final class ServeArgs {
        let rootFD: Int32, sock: Int32, readOnly: Bool
        init(rootFD: Int32, sock: Int32, readOnly: Bool) { self.rootFD = rootFD; self.sock = sock; self.readOnly = readOnly }
    }
}

enum GoferClientFuzz {
    static let target = FuzzTarget(
        name: "gofer-client",
        summary: "the Sentry's decoding of Gofer replies: [flags][records: call, length, reply payload]",
        setUp: {},
        run: run)

    static let ops: [GoferOp] = [.attach, .walk, .stat, .open, .create, .mkdir, .symlink, .link, .mknod, .unlink,
                                 .rename, .readlink, .getdents, .setattr, .statfs, .getxattr, .setxattr, .listxattr,
                                 .removexattr, .tmpfile, .scratch, .walk, .getacl, .setacl]

    /// Input: flags byte (bit 1: no automatic version reply), then records:
    /// the tag picks the client call (its low 5 bits) and whether the
    /// payload is a whole raw reply (bit 7) or the body of a reply with a
    /// correct header, whose status is the payload's first two bytes when
    /// bit 6 is set.
    static func run(_ input: [UInt8]) {
        guard let flags = input.first, case .success(let pair) = MessageSocket.socketPair() else { return }
        let client = GoferClient(socketFD: pair.0)
        let fake = pair.1
        defer { close(fake) }
        if flags & 2 == 0 {
            let ok = withUnsafeBytes(of: GoferWire.version.littleEndian, Array.init) + withUnsafeBytes(of: UInt32(GoferWire.maxMessage).littleEndian, Array.init)
            _ = sendPacket(fake, goferPacket(op: GoferOp.version.rawValue, word: 0, ok))
        }
        // Every reply is queued before the first call and the fake Gofer then
        // stops talking (its write side shut): a call that wants more replies
        // than there are (a getdents that never reaches its end) sees the
        // connection close, as it would if a real Gofer went quiet and died.
        let records = Array(Records(input.dropFirst()).prefix(32))
        var calls: [(op: GoferOp, tag: UInt8)] = []
        for r in records {
            let op = ops[Int(r.tag & 0x1f) % ops.count]
            var reply: [UInt8]
            if r.tag & 0x80 != 0 {
                reply = r.payload
            } else if r.tag & 0x40 != 0 && r.payload.count >= 2 {
                reply = goferPacket(op: op.rawValue, word: UInt16(r.payload[0]) | UInt16(r.payload[1]) << 8, Array(r.payload.dropFirst(2)))
            } else {
                reply = goferPacket(op: op.rawValue, word: 0, r.payload)
            }
            if reply.isEmpty { reply = [0] }
            guard sendPacket(fake, reply) else { break }
            calls.append((op, r.tag))
        }
        shutdown(fake, Int32(SHUT_WR))
        let fid: FID = 1 << 32
        for (op, tag) in calls {
            if client.isDead { break }
            let name: [UInt8] = Array("n".utf8)
            switch op {
            case .attach: _ = client.attach()
            case .walk: _ = tag & 0x20 != 0 ? client.walkMany(fid, [name, name, name]).error : client.walk(fid, name).failureOrNil
            case .stat: _ = client.stat(fid)
            case .open: if case .success(let fd) = client.open(fid, flags: O_RDONLY) { close(fd) }
            case .create: if case .success(let x) = client.create(fid, name, flags: O_RDWR, mode: 0o644, uid: 0, gid: 0) { close(x.2) }
            case .mkdir: _ = client.mkdir(fid, name, mode: 0o755, uid: 0, gid: 0)
            case .symlink: _ = client.symlink(fid, name, target: name, uid: 0, gid: 0)
            case .link: _ = client.link(fid, name, target: fid)
            case .mknod: _ = client.mknod(fid, name, mode: 0o10644, uid: 0, gid: 0)
            case .unlink: _ = client.unlink(fid, name, flags: 0)
            case .rename: _ = client.rename(fid, name, fid, name, flags: 0)
            case .readlink: _ = client.readlink(fid)
            case .getdents: _ = client.getdents(fid)
            case .setattr: var a = GoferSetAttr(); a.mode = 0o600; _ = client.setattr(fid, a)
            case .statfs: _ = client.statfs(fid)
            case .getxattr: _ = client.getxattr(fid, Array("user.x".utf8))
            case .setxattr: _ = client.setxattr(fid, Array("user.x".utf8), [1, 2], flags: 0)
            case .listxattr: _ = client.listxattr(fid)
            case .removexattr: _ = client.removexattr(fid, Array("user.x".utf8))
            case .tmpfile: if case .success(let x) = client.tmpfile(fid, flags: O_RDWR, mode: 0o600, uid: 0, gid: 0) { close(x.2) }
            case .scratch: if case .success(let fd) = client.scratch() { close(fd) }
            case .getacl: _ = client.getacl(fid, tag & 0x20 != 0 ? .default : .access)
            case .setacl: _ = client.setacl(fid, tag & 0x20 != 0 ? .default : .access, [2, 0, 0, 0, 1, 0, 6, 0, 255, 255, 255, 255])
            case .version, .close: break
            }
            // Throw away the requests the client sent.
            while recv(fake, nil, 0, Int32(MSG_DONTWAIT) | Int32(MSG_TRUNC)) > 0 {}
        }
    }
}

extension Result {
    var failureOrNil: Failure? { if case .failure(let e) = self { return e }; return nil }
}
