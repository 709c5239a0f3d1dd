// Test harness: a temporary tree (served root + a sibling "outside" directory
// that must stay unreachable), a Gofer.serve thread on one end of a socket
// pair and a GoferClient on the other.

import Foundation
import Glibc
import XCTest
@testable import Gofer
import GoferProtocol

func b(_ s: String) -> [UInt8] { Array(s.utf8) }

/// A fresh directory under /tmp, removed by `remove()`.
final class TempTree {
    let base: String
    var root: String { base + "/root" }
    var outside: String { base + "/outside" }

    init() throws {
        var template = Array("/tmp/moat-gofer-test.XXXXXX".utf8CString)
        guard let p = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw POSIXError(.EIO)
        }
        base = String(cString: p)
        try FileManager.default.createDirectory(atPath: base + "/root", withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: base + "/outside", withIntermediateDirectories: false)
        try "secret".write(toFile: base + "/outside/secret", atomically: false, encoding: .utf8)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: base)
    }

    func path(_ rel: String) -> String { root + "/" + rel }

    func write(_ rel: String, _ content: String) {
        _ = FileManager.default.createFile(atPath: path(rel), contents: Data(content.utf8))
    }

    func read(_ rel: String) -> String? {
        FileManager.default.contents(atPath: path(rel)).map { String(decoding: $0, as: UTF8.self) }
    }

    func mkdir(_ rel: String) {
        _ = Glibc.mkdir(path(rel), 0o755)
    }

    func symlink(_ rel: String, _ target: String) {
        _ = Glibc.symlink(target, path(rel))
    }

    func lstat(_ rel: String) -> stat? {
        var st = stat()
        return Glibc.lstat(path(rel), &st) == 0 ? st : nil
    }

    func exists(_ rel: String) -> Bool { lstat(rel) != nil }
}

/// Runs Gofer.serve on its own pthread (with an exact stack size);
/// `waitForExit` joins it with a timeout.
final class ServerThread: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let rootFD: Int32
    private let socketFD: Int32
    private let readOnly: Bool
    private let recursive: Bool

    init(rootFD: Int32, socketFD: Int32, readOnly: Bool, recursive: Bool = true, stackSize: Int = 8 << 20) {
        self.rootFD = rootFD
        self.socketFD = socketFD
        self.readOnly = readOnly
        self.recursive = recursive
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        defer { pthread_attr_destroy(&attr) }
        precondition(pthread_attr_setstacksize(&attr, stackSize) == 0)
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        var tid = pthread_t()
        let ctx = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&tid, &attr, { ctx in
            let me = Unmanaged<ServerThread>.fromOpaque(ctx!).takeRetainedValue()
            Gofer.serve(rootFD: me.rootFD, socketFD: me.socketFD, readOnly: me.readOnly, recursive: me.recursive)
            me.done.signal()
            return nil
        }, ctx)
        precondition(rc == 0, "pthread_create")
    }

    /// True once the thread has finished (may be asked repeatedly).
    func waitForExit(timeout: Double = 10) -> Bool {
        guard done.wait(timeout: .now() + timeout) == .success else { return false }
        done.signal() // keep answering true for later callers
        return true
    }
}

/// Base class: every test gets its own tree, server thread and client.
class GoferTestCase: XCTestCase {
    var tree: TempTree!
    var client: GoferClient!
    var server: ServerThread!
    var rootFD: Int32 = -1
    var serveReadOnly: Bool { false }
    /// With serveReadOnly: false refuses writes only on read-only host mounts.
    var serveRecursive: Bool { true }
    var serverStackSize: Int { 8 << 20 }

    override func setUpWithError() throws {
        tree = try TempTree()
        rootFD = open(tree.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        XCTAssertGreaterThanOrEqual(rootFD, 0)
        let (c, s) = try GoferClient.socketPair().get()
        server = ServerThread(rootFD: rootFD, socketFD: s, readOnly: serveReadOnly, recursive: serveRecursive, stackSize: serverStackSize)
        client = GoferClient(socketFD: c)
    }

    override func tearDownWithError() throws {
        client = nil // closes the socket: the server sees EOF and returns
        if let server { XCTAssertTrue(server.waitForExit(), "server thread did not exit") }
        if rootFD >= 0 { close(rootFD) }
        tree?.remove()
        if let tree { XCTAssertFalse(FileManager.default.fileExists(atPath: tree.base), "temp tree left behind") }
    }

    /// Unwraps a success or fails the test (and throws to stop it).
    func ok<T>(_ r: Result<T, GoferErrno>, _ what: String = "", file: StaticString = #filePath, line: UInt = #line) throws -> T {
        switch r {
        case .success(let v): return v
        case .failure(let e):
            XCTFail("\(what) failed with errno \(e.rawValue)", file: file, line: line)
            throw e
        }
    }

    /// Asserts a failure with `errno`.
    func fails<T>(_ r: Result<T, GoferErrno>, _ errno: Int32, _ what: String = "", file: StaticString = #filePath, line: UInt = #line) {
        switch r {
        case .success:
            XCTFail("\(what) succeeded; expected errno \(errno)", file: file, line: line)
        case .failure(let e):
            XCTAssertEqual(e.rawValue, errno, "\(what): wrong errno", file: file, line: line)
        }
    }

    func attachRoot(file: StaticString = #filePath, line: UInt = #line) throws -> FID {
        try ok(client.attach(), "attach", file: file, line: line).0
    }

    /// Reads everything from `fd` starting at offset 0.
    func readAll(_ fd: Int32) -> String {
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        var off: off_t = 0
        while true {
            let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off) }
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<n])
            off += off_t(n)
        }
        return String(decoding: out, as: UTF8.self)
    }

    func writeString(_ fd: Int32, _ s: String) -> Int {
        Array(s.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }
}
