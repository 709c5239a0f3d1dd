// The standalone sandboxes' records under ROOT/standalone: creating one with
// a unique name and id, finding one by name or id (prefix), reading and
// updating a record under its file lock, and the truth about its state
// (a record says "running", but the supervisor or the Sentry may have been
// killed: pid + start time checks decide).
//
// Locks: ROOT/standalone/.lock (flock) while a name is taken or a sandbox
// directory goes; ID/lock while a record is read-modified-written. Never
// both in the other order.

import Foundation
import Glibc

public final class StandaloneStore: @unchecked Sendable {
    public let dir: String

    /// `root` is Moat's state root (/var/lib/moat): records go in ROOT/standalone.
    public init(root: String) throws {
        dir = root + "/standalone"
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw StandaloneError.failed("cannot make \(dir): \(error.localizedDescription)")
        }
    }

    /// Records' JSON: dates in RFC 3339 with fractions of a second (two
    /// sandboxes made in the same second still list in order).
    public static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .custom { date, enc in
            var c = enc.singleValueContainer()
            try c.encode(dateFormatter(fractions: true).string(from: date))
        }
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return e
    }

    static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .custom { dec in
            let s = try dec.singleValueContainer().decode(String.self)
            guard let date = dateFormatter(fractions: true).date(from: s) ?? dateFormatter(fractions: false).date(from: s) else {
                throw DecodingError.dataCorrupted(.init(codingPath: dec.codingPath, debugDescription: "not an RFC 3339 time: \(s)"))
            }
            return date
        }
        return d
    }

    static func dateFormatter(fractions: Bool) -> ISO8601DateFormatter {
        let f = ISO8601DateFormatter()
        f.formatOptions = fractions ? [.withInternetDateTime, .withFractionalSeconds] : [.withInternetDateTime]
        return f
    }

    func paths(_ id: String) -> SandboxPaths { SandboxPaths(dir: dir + "/" + id) }

    /// Runs `body` holding the flock on `path` (made when missing).
    func withLock<T>(_ path: String, _ body: () throws -> T) throws -> T {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if fd < 0 { throw StandaloneError.failed("cannot open the lock \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { throw StandaloneError.failed("cannot lock \(path): \(String(cString: strerror(errno)))") }
        }
        return try body()
    }

    /// Makes the record of a new sandbox: a fresh id, and `name` (or a
    /// generated one) when no other sandbox has it.
    public func create(name: String?, spec: SandboxSpec) throws -> SandboxRecord {
        if let n = name {
            guard !n.isEmpty, n.utf8.count <= 64, n.first!.isLetter || n.first!.isNumber,
                  n.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) }) else {
                throw StandaloneError.invalid("--name \(n): use letters, digits, '_', '.' and '-' (at most 64), starting with a letter or digit")
            }
        }
        return try withLock(dir + "/.lock") {
            let existing = try list()
            var id = ""
            repeat { id = (0..<4).map { _ in String(format: "%08x", UInt32.random(in: 0...UInt32.max)) }.joined() }
            while existing.contains { $0.id.hasPrefix(id.prefix(12)) }
            let chosen = name ?? Self.generatedName(taken: Set(existing.map { $0.name }))
            if let other = existing.first(where: { $0.name == chosen }) {
                throw StandaloneError.conflict("the name \(chosen) is in use by sandbox \(other.id.prefix(12)): remove it (moat rm \(chosen)) or choose another --name")
            }
            let r = SandboxRecord(id: id, name: chosen, created: Date(), spec: spec)
            let p = paths(id)
            guard mkdir(p.dir, 0o700) == 0 else { throw StandaloneError.failed("cannot make \(p.dir): \(String(cString: strerror(errno)))") }
            try write(r)
            return r
        }
    }

    static func generatedName(taken: Set<String>) -> String {
        let adjectives = ["brave", "calm", "eager", "fond", "gentle", "keen", "lucid", "merry", "quiet", "swift", "tidy", "wise"]
        let nouns = ["otter", "heron", "badger", "lynx", "marten", "newt", "osprey", "plover", "stoat", "tern", "vole", "wren"]
        while true {
            let n = adjectives.randomElement()! + "_" + nouns.randomElement()! + "_" + String(Int.random(in: 1...999))
            if !taken.contains(n) { return n }
        }
    }

    /// Every record, oldest first; unreadable directories are skipped.
    public func list() throws -> [SandboxRecord] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { !$0.hasPrefix(".") }.compactMap { try? read($0) }.sorted { $0.created < $1.created }
    }

    /// The sandbox named `ref`, or whose id starts with `ref`.
    public func find(_ ref: String) throws -> SandboxRecord {
        let all = try list()
        if let r = all.first(where: { $0.name == ref || $0.id == ref }) { return r }
        if !ref.contains("/"), !ref.hasPrefix("."), access(paths(ref).dir, F_OK) == 0 {
            throw StandaloneError.notFound("the record of sandbox \(ref) cannot be read: moat rm -f \(ref) removes what is left of it")
        }
        let byID = ref.count >= 3 ? all.filter { $0.id.hasPrefix(ref) } : []
        if byID.count == 1 { return byID[0] }
        if byID.count > 1 { throw StandaloneError.invalid("\(ref) names more than one sandbox: give more of the id") }
        throw StandaloneError.notFound("no such sandbox: \(ref) (moat ps -a lists them)")
    }

    func read(_ id: String) throws -> SandboxRecord {
        let data = try Data(contentsOf: URL(fileURLWithPath: paths(id).record))
        return try Self.decoder.decode(SandboxRecord.self, from: data)
    }

    func write(_ r: SandboxRecord) throws {
        let e = Self.encoder
        let p = paths(r.id)
        let tmp = p.record + ".tmp"
        do {
            try e.encode(r).write(to: URL(fileURLWithPath: tmp))
            guard rename(tmp, p.record) == 0 else { throw StandaloneError.failed(String(cString: strerror(errno))) }
        } catch {
            throw StandaloneError.failed("cannot write the record of \(r.name): \(error)")
        }
    }

    /// Reads, changes and writes a record under its lock; returns it changed.
    @discardableResult
    public func update(_ id: String, _ change: (inout SandboxRecord) throws -> Void) throws -> SandboxRecord {
        try withLock(paths(id).lock) {
            var r = try read(id)
            try change(&r)
            try write(r)
            return r
        }
    }

    /// Removes a sandbox's directory (its record, logs and state).
    public func remove(_ id: String) throws {
        try withLock(dir + "/.lock") {
            let p = paths(id)
            guard !id.isEmpty, !id.contains("/"), access(p.dir, F_OK) == 0 else { return }
            try? FileManager.default.removeItem(atPath: p.dir)
        }
    }

    /// The record as it is: a "running" record whose Sentry is gone (killed,
    /// or its supervisor killed) reads as exited, with 137 when nobody
    /// recorded a status.
    public func live(_ r: SandboxRecord) -> SandboxRecord {
        var r = r
        guard r.state == .running else {
            if r.state == .created, r.supervisorPid > 0, !isAlive(r.supervisorPid, r.supervisorStart) {
                r.state = .exited; r.exitCode = r.exitCode ?? 125
            }
            return r
        }
        if isAlive(r.sentryPid, r.sentryStart) {
            // Unsupervised (its supervisor was killed): the pod Sentry outlives
            // the application, so ask it whether the application still runs.
            if !supervisorAlive(r), let st = try? pod(r)?.containerStatus(Supervisor.container), st.state == .exited {
                r.state = .exited; r.exitCode = st.exitCode
            }
            return r
        }
        // The supervisor may be recording the exit right now; read again.
        if let again = try? read(r.id), again.state != .running { return again }
        r.state = .exited
        r.exitCode = r.exitCode ?? 137
        return r
    }

    public func isRunning(_ r: SandboxRecord) -> Bool { live(r).state == .running }

    public func supervisorAlive(_ r: SandboxRecord) -> Bool { isAlive(r.supervisorPid, r.supervisorStart) }

    /// Paths for the CLI (logs).
    public func logPath(_ r: SandboxRecord) -> String { paths(r.id).log }
    public func podDir(_ r: SandboxRecord) -> String { paths(r.id).pod }
}
