// Helpers for the image tests: a tiny tar writer for hand-made layers,
// shell commands, the test registry harness (Tests/Support/registry.sh) and
// prerequisites that skip on a developer machine but fail under CI=true.

import Foundation
import Glibc
@testable import Images
import XCTest

let repoRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

func requireTools(_ tools: [String]) throws {
    for t in tools {
        let ok = (try? sh("command -v \(t)")) != nil
        if !ok {
            let msg = "\(t) is missing (bash .ci/setup installs it)"
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail(msg); throw XCTSkip(msg) }
            throw XCTSkip(msg)
        }
    }
}

/// Runs a bash command; its stdout (trimmed), or an error with its stderr.
/// Output goes through files, not pipes: a daemon the command starts must
/// not keep the test waiting for an end of file.
@discardableResult
func sh(_ command: String) throws -> String {
    let base = "/tmp/moat-sh-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    defer { unlink(base + ".out"); unlink(base + ".err"); unlink(base + ".sh") }
    FileManager.default.createFile(atPath: base + ".sh", contents: Data(command.utf8))
    let status = system("/bin/bash \(base).sh >\(base).out 2>\(base).err </dev/null")
    let out = readText(base + ".out") ?? "", err = readText(base + ".err") ?? ""
    let code = (status >> 8) & 0xff
    guard status == 0 else {
        throw NSError(domain: "sh", code: Int(code), userInfo: [NSLocalizedDescriptionKey: "\(command): exit \(code): \(err)"])
    }
    return out.trimmingCharacters(in: .whitespacesAndNewlines)
}

func tempDir(_ tag: String = "images") throws -> String {
    var t = Array("/tmp/moat-\(tag)-XXXXXX".utf8CString)
    guard mkdtemp(&t) != nil else { throw ImageError.system("mkdtemp", errno) }
    return String(cString: t)
}

func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: a.sin_port))
}

/// A registry started by the harness; `stop()` on every exit path.
final class TestRegistry {
    let dir: String
    let port: Int
    let auth: String?
    var host: String { "127.0.0.1:\(port)" }
    static let script = repoRoot + "/Tests/Support/registry.sh"

    init(auth: String? = nil) throws {
        try requireTools(["docker-registry", "skopeo", "umoci", "curl"] + (auth == nil ? [] : ["htpasswd"]))
        dir = try tempDir("registry")
        port = freePort()
        self.auth = auth
        let a = auth.map { " --auth '\($0)'" } ?? ""
        do {
            try sh("'\(Self.script)' start '\(dir)' \(port)\(a)")
            try sh("'\(Self.script)' seed \(port)\(a)")
        } catch { stop(); throw error }
    }

    func stop() {
        _ = try? sh("'\(Self.script)' stop '\(dir)'")
        _ = try? sh("rm -rf '\(dir)'")
    }

    static func layout() throws -> String {
        try requireTools(["umoci", "python3"])
        return try sh("'\(script)' images 2>/dev/null")
    }
}

/// Builds tar archives entry by entry (ustar; names up to 100 bytes).
struct TarWriter {
    var bytes: [UInt8] = []

    mutating func entry(_ name: String, type: Character, mode: Int = 0o644, data: [UInt8] = [], link: String = "") {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ s: String, _ off: Int, _ len: Int) { for (i, b) in s.utf8.prefix(len).enumerated() { h[off + i] = b } }
        func octal(_ v: Int, _ off: Int, _ len: Int) {
            let o = String(v, radix: 8)
            put(String(repeating: "0", count: max(0, len - 1 - o.count)) + o, off, len - 1)
        }
        put(name, 0, 100)
        octal(mode, 100, 8); octal(0, 108, 8); octal(0, 116, 8)
        octal(data.count, 124, 12); octal(1_700_000_000, 136, 12)
        h[156] = type.asciiValue!
        put(link, 157, 100)
        put("ustar", 257, 6); put("00", 263, 2)
        for i in 148..<156 { h[i] = 32 }
        let sum = h.reduce(0) { $0 + Int($1) }
        octal(sum, 148, 7)
        bytes += h
        bytes += data
        bytes += [UInt8](repeating: 0, count: (512 - data.count % 512) % 512)
    }
    mutating func file(_ name: String, _ text: String, mode: Int = 0o644) { entry(name, type: "0", mode: mode, data: Array(text.utf8)) }
    mutating func dir(_ name: String) { entry(name, type: "5", mode: 0o755) }
    mutating func symlink(_ name: String, to target: String) { entry(name, type: "2", mode: 0o777, link: target) }
    mutating func hardlink(_ name: String, to target: String) { entry(name, type: "1", link: target) }
    func finished() -> [UInt8] { bytes + [UInt8](repeating: 0, count: 1024) }
}

/// Reads an in-memory byte array.
final class BytesReader: ByteReader {
    let bytes: [UInt8]
    var pos = 0
    init(_ b: [UInt8]) { bytes = b }
    func read(_ buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, bytes.count - pos)
        bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + pos, byteCount: n) }
        pos += n
        return n
    }
}

func readText(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }
