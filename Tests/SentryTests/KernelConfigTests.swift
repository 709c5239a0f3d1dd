import Foundation
import XCTest
@testable import Sentry

/// /proc/config.gz: a gzip that the host's gzip reads back to the config
/// text, whose lines have the form a config reader (LTP's tst_kconfig,
/// scripts/extract-ikconfig) parses.
final class KernelConfigTests: XCTestCase {
    /// `gzip -dc` of `data`, by the host's gzip.
    private func gunzip(_ data: [UInt8]) throws -> [UInt8] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("moat-kconfig-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("config.gz")
        try Data(data).write(to: file)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "gzip -dc \"$0\"", file.path]
        let out = Foundation.Pipe()
        p.standardOutput = out
        try p.run()
        let bytes = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "gzip -dc failed (bad CRC, length or block)")
        return Array(bytes)
    }

    func testCRC32OfTheCheckString() {
        XCTAssertEqual(crc32(Array("123456789".utf8)), 0xcbf4_3926)
        XCTAssertEqual(crc32([]), 0)
    }

    func testGzipReadsBackAcrossStoredBlocks() throws {
        // Empty, one block, and three blocks (65535 + 65535 + 1 bytes).
        for n in [0, 1000, 2 * 65535 + 1] {
            let data = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            XCTAssertEqual(try gunzip(gzipStored(data)), data, "\(n) bytes")
        }
    }

    func testConfigTextIsWhatReadersParse() throws {
        let text = String(decoding: try gunzip(kernelConfigGzip(release: "6.0.0-moat")), as: UTF8.self)
        XCTAssertEqual(text, kernelConfigText(release: "6.0.0-moat"))
        var set = Set<String>(), unset = Set<String>()
        for line in text.split(separator: "\n").map(String.init) {
            if line.hasPrefix("# CONFIG_") && line.hasSuffix(" is not set") {
                unset.insert(String(line.dropFirst(2).dropLast(11)))
            } else if line.hasPrefix("CONFIG_"), let eq = line.firstIndex(of: "=") {
                XCTAssertFalse(line[line.index(after: eq)...].isEmpty, line)
                set.insert(String(line[..<eq]))
            } else {
                XCTAssertTrue(line.hasPrefix("#"), "unparsable line: \(line)")
            }
        }
        XCTAssertTrue(set.isDisjoint(with: unset), "set and not set: \(set.intersection(unset))")
        // What Moat implements is set; what it refuses is not.
        for name in ["CONFIG_EVENTFD", "CONFIG_TIMERFD", "CONFIG_SIGNALFD", "CONFIG_EPOLL", "CONFIG_INOTIFY_USER",
                     "CONFIG_SYSVIPC", "CONFIG_FUTEX", "CONFIG_MMU", "CONFIG_TMPFS", "CONFIG_UTS_NS", "CONFIG_DNOTIFY",
                     "CONFIG_IO_URING", "CONFIG_AIO", "CONFIG_POSIX_MQUEUE", "CONFIG_PID_NS", "CONFIG_IPC_NS",
                     "CONFIG_USERFAULTFD", "CONFIG_SECURITY_LANDLOCK", "CONFIG_FANOTIFY", "CONFIG_KEYS",
                     "CONFIG_SECCOMP", "CONFIG_SECCOMP_FILTER", "CONFIG_USER_NS"] {
            XCTAssertTrue(set.contains(name), name)
        }
        for name in ["CONFIG_FANOTIFY_ACCESS_PERMISSIONS", "CONFIG_NET_NS", "CONFIG_TIME_NS"] {
            XCTAssertTrue(unset.contains(name), name)
        }
        // The KVM platform has no userfaultfd.
        XCTAssertTrue(kernelConfigText(release: "6.0.0-moat", userfaultfd: false).contains("# CONFIG_USERFAULTFD is not set\n"))
    }
}
