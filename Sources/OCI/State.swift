// Container state under --root: one directory per container,
//   <root>/<id>/state.json   what `state` reports plus Moat's own fields
//   <root>/<id>/config.json  the config as created (hooks for delete)
//   <root>/<id>/exec.fifo    exists while the container is "created"
//   <root>/<id>/control      the Sentry's control socket (exec)
// Every command that reads or changes a container holds an exclusive flock
// on its directory; writes go to a temporary file renamed into place, so a
// crash leaves the old or the new state, never a torn one.

import COCI
import Glibc

public struct ContainerState {
    public var id: String
    public var bundle: String
    public var pid: Int32 = 0
    /// The Sentry's start time (clock ticks since boot, /proc/PID/stat field 22),
    /// so a recycled pid is not taken for the container.
    public var pidStart: UInt64 = 0
    public var goferPid: Int32 = 0
    public var goferStart: UInt64 = 0
    public var created: String = ""
    public var owner: String = ""
    public var ociVersion: String = "1.0.2"
    public var annotations: [(String, String)] = []
    public var cgroups: [String] = []
    public var paused = false
    public var rootfs: String = ""
    public var terminal = false

    public init(id: String, bundle: String) { self.id = id; self.bundle = bundle }

    var json: JSON {
        .object([
            ("id", .string(id)), ("bundle", .string(bundle)), ("pid", .int(pid)), ("pidStart", .number(String(pidStart))),
            ("goferPid", .int(goferPid)), ("goferStart", .number(String(goferStart))),
            ("created", .string(created)), ("owner", .string(owner)), ("ociVersion", .string(ociVersion)),
            ("annotations", .object(annotations.map { ($0.0, .string($0.1)) })),
            ("cgroups", .array(cgroups.map { .string($0) })), ("paused", .bool(paused)),
            ("rootfs", .string(rootfs)), ("terminal", .bool(terminal)),
        ])
    }

    init(json j: JSON) throws {
        let n = Node(j, document: "state.json")
        id = try n.required("id").string()
        bundle = try n.required("bundle").string()
        pid = try n.opt("pid") { try $0.i32() } ?? 0
        pidStart = try n.opt("pidStart") { try $0.u64() } ?? 0
        goferPid = try n.opt("goferPid") { try $0.i32() } ?? 0
        goferStart = try n.opt("goferStart") { try $0.u64() } ?? 0
        created = try n.opt("created") { try $0.string() } ?? ""
        owner = try n.opt("owner") { try $0.string() } ?? ""
        ociVersion = try n.opt("ociVersion") { try $0.string() } ?? "1.0.2"
        annotations = try n.opt("annotations") { try $0.stringMap() } ?? []
        cgroups = try n.opt("cgroups") { try $0.strings() } ?? []
        paused = try n.opt("paused") { try $0.bool() } ?? false
        rootfs = try n.opt("rootfs") { try $0.string() } ?? ""
        terminal = try n.opt("terminal") { try $0.bool() } ?? false
    }
}

public enum Status: String { case creating, created, running, stopped, paused }

/// A runtime error: a message for stderr and the log, and an exit status.
public struct RuntimeError: Error, CustomStringConvertible {
    public let message: String
    public let code: Int32
    public init(_ message: String, code: Int32 = 1) { self.message = message; self.code = code }
    public var description: String { message }
}

/// One container's directory, locked for the lifetime of this value.
public final class ContainerDir {
    public let id: String
    public let path: String
    let fd: Int32

    /// Locks an existing container's directory. Throws "does not exist" if
    /// there is none (or it was deleted while we waited for the lock).
    public init(root: String, id: String) throws {
        try ContainerDir.checkID(id)
        self.id = id
        path = root + "/" + id
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw RuntimeError("container \"\(id)\" does not exist") }
        while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        if faccessat(fd, "state.json", F_OK, 0) != 0 {
            close(fd)
            throw RuntimeError("container \"\(id)\" does not exist")
        }
    }

    /// Makes and locks a new container directory; fails if the id is taken.
    init(creating root: String, id: String) throws {
        try ContainerDir.checkID(id)
        self.id = id
        try mkdirAll(root, mode: 0o711)
        path = root + "/" + id
        if mkdir(path, 0o711) != 0 {
            if errno == EEXIST { throw RuntimeError("container with id \"\(id)\" already exists") }
            throw RuntimeError("cannot create \(path): \(String(cString: strerror(errno)))")
        }
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw RuntimeError("cannot open \(path): \(String(cString: strerror(errno)))") }
        _ = flock(fd, LOCK_EX)
    }

    deinit { close(fd) }

    static func checkID(_ id: String) throws {
        let ok = !id.isEmpty && id != "." && id != ".." && id.utf8.count <= 1024 &&
            id.unicodeScalars.allSatisfy { $0.properties.isAlphabetic && $0.isASCII || ("0"..."9").contains($0) || "_+-.".unicodeScalars.contains($0) }
        if !ok { throw RuntimeError("invalid container id \"\(id)\": use letters, digits, _ + - and .") }
    }

    public func file(_ name: String) -> String { path + "/" + name }

    public func read(_ name: String) -> [UInt8]? { readFile(file(name)) }

    /// Writes a file atomically: a temporary file, fsync, rename.
    public func writeAtomically(_ name: String, _ bytes: [UInt8]) throws {
        let tmp = ".\(name).tmp"
        let f = openat(fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        if f < 0 { throw RuntimeError("cannot write \(file(name)): \(String(cString: strerror(errno)))") }
        let ok = writeAll(f, bytes) && fsync(f) == 0
        close(f)
        if !ok || renameat(fd, tmp, fd, name) != 0 {
            unlinkat(fd, tmp, 0)
            throw RuntimeError("cannot write \(file(name)): \(String(cString: strerror(errno)))")
        }
    }

    public func loadState() throws -> ContainerState {
        guard let b = read("state.json") else { throw RuntimeError("container \"\(id)\" does not exist") }
        do { return try ContainerState(json: try JSON.parse(bytes: b)) } catch {
            throw RuntimeError("corrupt state for container \"\(id)\": \(error)")
        }
    }

    public func saveState(_ s: ContainerState) throws {
        try writeAtomically("state.json", Array(s.json.serialized().utf8))
    }

    public func loadSpec() -> Spec? {
        guard let b = read("config.json") else { return nil }
        return try? Spec.decode(String(decoding: b, as: UTF8.self))
    }

    /// Removes the directory and everything in it (files only, one level).
    public func remove() {
        if let d = fdopendir(dup(fd)) {
            var names: [String] = []
            while let e = readdir(d) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(d)
            for n in names { unlinkat(fd, n, 0) }
        }
        rmdir(path)
    }

    /// The status as engines see it, derived from the live system.
    public func status(_ s: ContainerState) -> Status {
        if s.pid <= 0 { return .creating }
        if !processAlive(s.pid, start: s.pidStart) { return .stopped }
        if faccessat(fd, "exec.fifo", F_OK, 0) == 0 { return .created }
        return s.paused ? .paused : .running
    }
}

// MARK: - Small host helpers

func readFile(_ path: String) -> [UInt8]? {
    let f = open(path, O_RDONLY | O_CLOEXEC)
    if f < 0 { return nil }
    defer { close(f) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { Glibc.read(f, $0.baseAddress, $0.count) }
        if n < 0 { if errno == EINTR { continue }; return nil }
        if n == 0 { return out }
        out.append(contentsOf: buf[0..<n])
    }
}

func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, bytes.count - off) }
        if n < 0 { if errno == EINTR { continue }; return false }
        off += n
    }
    return true
}

func writeFile(_ path: String, _ s: String) -> Bool {
    let f = open(path, O_WRONLY | O_CLOEXEC)
    if f < 0 { return false }
    defer { close(f) }
    return writeAll(f, Array(s.utf8))
}

func mkdirAll(_ path: String, mode: mode_t) throws {
    var cur = ""
    for comp in path.split(separator: "/") {
        cur += "/" + comp
        if mkdir(cur, mode) != 0 && errno != EEXIST {
            throw RuntimeError("cannot create \(cur): \(String(cString: strerror(errno)))")
        }
    }
}

/// Field 22 of /proc/PID/stat: the start time in clock ticks, or nil.
func processStartTime(_ pid: Int32) -> UInt64? {
    guard let b = readFile("/proc/\(pid)/stat") else { return nil }
    let s = String(decoding: b, as: UTF8.self)
    // The comm field may contain spaces and parentheses: split after the last ')'.
    guard let close = s.lastIndex(of: ")") else { return nil }
    let rest = s[s.index(after: close)...].split(separator: " ")
    // rest[0] is the state (field 3); field 22 is rest[19].
    guard rest.count > 19 else { return nil }
    if rest[0] == "Z" || rest[0] == "X" { return nil }
    return UInt64(rest[19])
}

func processAlive(_ pid: Int32, start: UInt64) -> Bool {
    guard let st = processStartTime(pid) else { return false }
    return start == 0 || st == start
}

/// Waits until each process (pid, start time as processAlive takes them)
/// has exited, or `timeout` seconds have passed. Not our children: a pidfd
/// becomes readable when its process exits (a zombie whose parent has not
/// reaped it yet counts as exited); without pidfds, a 5 ms poll.
func waitGone(_ procs: [(pid: Int32, start: UInt64)], timeout: Double) {
    func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
    let deadline = now() + timeout
    for (pid, start) in procs where pid > 0 {
        let fd = coci_pidfd_open(pid)
        defer { if fd >= 0 { close(fd) } }
        // Checked after the open: the pidfd is then this process's, not a reuse's.
        while processAlive(pid, start: start) {
            let left = deadline - now()
            if left <= 0 { return }
            if fd < 0 { usleep(5000); continue }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&p, 1, Int32(left * 1000) + 1)
            if r > 0 { break }
            if r < 0 && errno != EINTR { usleep(5000) }
        }
    }
}

/// RFC 3339 with nanoseconds, UTC (the form runc writes in "created").
func rfc3339Now() -> String {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    var t = ts.tv_sec
    var tmv = tm()
    gmtime_r(&t, &tmv)
    var buf = [CChar](repeating: 0, count: 64)
    strftime(&buf, 64, "%Y-%m-%dT%H:%M:%S", &tmv)
    let ns = String(ts.tv_nsec)
    return String(cString: buf) + "." + String(repeating: "0", count: 9 - ns.count) + ns + "Z"
}
