// Records: what `moat cri` remembers about pods and containers, as one JSON
// file per object under <root>/cri/{pods,containers}. Written atomically
// (temporary file, fsync, rename) so a kill -9 at any moment leaves either
// the old or the new record, never half of one. A lock file held for the
// server's life keeps two servers off the same root.

import Foundation
import Glibc
import Sandbox

struct PortMappingRecord: Codable, Equatable, Sendable {
    var containerPort: Int32
    var hostPort: Int32
    var hostIP: String
    var proto: String
}

struct PodRecord: Codable, Sendable {
    var id: String
    var name: String
    var uid: String
    var namespace: String
    var attempt: UInt32
    var createdAt: Int64
    /// "ready" or "notready".
    var state: String
    var labels: [String: String]
    var annotations: [String: String]
    var hostname: String
    var logDirectory: String
    var runtimeHandler: String
    /// The Sentry's state directory (under --state).
    var stateDir: String
    /// "pod", "node".
    var networkMode: String
    var pidMode: String
    var ipcMode: String
    var ip: String = ""
    var portMappings: [PortMappingRecord] = []
    var dnsServers: [String] = []
    var dnsSearches: [String] = []
    var dnsOptions: [String] = []
    /// The CNI network the pod was added to (so DEL can be called on stop,
    /// even after a restart); empty without CNI.
    var cniNetwork: String = ""
    var cniNetnsPath: String = ""
    /// The pod CIDR a host-local range without a subnet was given on ADD (for DEL after a restart).
    var podCIDR: String? = nil
    var reason: String = ""
}

struct MountRecord: Codable, Equatable, Sendable {
    var containerPath: String
    var hostPath: String
    var readOnly: Bool
    /// An image volume: the image as named, and its id (also its ref).
    var image: String? = nil
    var imageID: String? = nil
}

struct ContainerRecord: Codable, Sendable {
    var id: String
    var podID: String
    var name: String
    var attempt: UInt32
    var image: String
    var imageRef: String
    var imageID: String
    var createdAt: Int64
    var startedAt: Int64 = 0
    var finishedAt: Int64 = 0
    /// "created", "running", "exited".
    var state: String = "created"
    var exitCode: Int32 = 0
    var reason: String = ""
    var message: String = ""
    var labels: [String: String]
    var annotations: [String: String]
    var logPath: String
    var mounts: [MountRecord]
    /// The host file behind the termination-message path ("" for none).
    var terminationMessageHostPath: String
    var stopSignal: Int32
    /// What an exec in this container starts from (the container's env,
    /// working directory and user), as other runtimes do.
    var execDefaults: ExecDefaults? = nil
    /// The memory limit (bytes; nil: none) and whether `moat cri` killed
    /// the container for going over it (its reason is then OOMKilled).
    var memoryLimit: Int64? = nil
    var oomKilled: Bool? = nil

    /// The images this container keeps in use: its own and its volumes'.
    var imagesInUse: [String] { [imageID] + mounts.compactMap(\.imageID) }
}

struct ExecDefaults: Codable, Sendable {
    var env: [String]
    var cwd: String
    var uid: UInt32
    var gid: UInt32
    var additionalGids: [UInt32]
    var capabilities: UInt64?
    var noNewPrivs: Bool

    init(_ p: ContainerProcess) {
        env = p.env; cwd = p.cwd; uid = p.uid; gid = p.gid; additionalGids = p.additionalGids
        capabilities = p.capabilities; noNewPrivs = p.noNewPrivs
    }

    /// The process an exec of `argv` runs.
    static func process(_ argv: [String], in c: ContainerRecord) -> ContainerProcess {
        var p = ContainerProcess(argv: argv)
        guard let d = c.execDefaults else { p.env = [defaultPath]; return p }
        p.env = d.env; p.cwd = d.cwd; p.uid = d.uid; p.gid = d.gid; p.additionalGids = d.additionalGids
        p.capabilities = d.capabilities; p.noNewPrivs = d.noNewPrivs
        return p
    }
}

enum RecordKind: String { case pods, containers }

/// The on-disk side of the records; callers serialize access (the runtime
/// actor).
struct RecordStore {
    let dir: String
    private var lockFD: Int32 = -1

    init(root: String) throws {
        dir = root + "/cri"
        for k in [RecordKind.pods, .containers] { try makeDirectories(dir + "/" + k.rawValue, mode: 0o700) }
        let fd = open(dir + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CRIError.internalError("open \(dir)/lock: \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw CRIError.internalError("another moat cri uses \(root) (\(dir)/lock is held)")
        }
        lockFD = fd
    }

    /// `durable: false` skips the fsync, for a state change whose loss in
    /// a host crash (not a crash of moat cri: the page cache keeps it) is
    /// harmless: a pod turned ready, a container started. After the host
    /// comes back their Sentry is gone either way, and recovery reports the
    /// pod not ready and its containers exited from the record that was
    /// synced when each was made (a write replaces the file by rename, so a
    /// record is the old one or the new one, never a torn one). Each fsync
    /// costs the pod start up to 20 ms when the disk is busy
    /// (bench/results/2026-12-06-pod-start-profile.md).
    func save<T: Encodable>(_ kind: RecordKind, _ id: String, _ value: T, durable: Bool = true) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        try writeAtomically(dir + "/\(kind.rawValue)/\(id).json", try enc.encode(value), sync: durable)
    }

    func delete(_ kind: RecordKind, _ id: String) {
        unlink(dir + "/\(kind.rawValue)/\(id).json")
    }

    /// Every record of a kind; a file that does not decode is set aside
    /// (renamed *.bad) and reported, never silently dropped.
    func loadAll<T: Decodable>(_ kind: RecordKind, _ type: T.Type, problems: inout [String]) -> [T] {
        let d = dir + "/" + kind.rawValue
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: d) else { return [] }
        var out: [T] = []
        for n in names.sorted() where n.hasSuffix(".json") {
            let p = d + "/" + n
            do {
                let data = try Data(contentsOf: URL(fileURLWithPath: p))
                out.append(try JSONDecoder().decode(T.self, from: data))
            } catch {
                problems.append("\(p): \(error); kept as \(p).bad")
                rename(p, p + ".bad")
            }
        }
        return out
    }
}

/// mkdir -p with a mode for the directories it makes.
func makeDirectories(_ path: String, mode: mode_t = 0o755) throws {
    var cur = ""
    for comp in path.split(separator: "/") {
        cur += "/" + comp
        if mkdir(cur, mode) != 0 && errno != EEXIST {
            throw CRIError.internalError("mkdir \(cur): \(String(cString: strerror(errno)))")
        }
    }
}

/// Writes a file so that readers see the old or the new contents, never a
/// mix, even across a crash.
func writeAtomically(_ path: String, _ data: Data, mode: mode_t = 0o600, sync: Bool = true) throws {
    let tmp = path + ".tmp"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { throw CRIError.internalError("open \(tmp): \(String(cString: strerror(errno)))") }
    var ok = true
    data.withUnsafeBytes { raw in
        var off = 0
        while off < raw.count {
            let n = write(fd, raw.baseAddress! + off, raw.count - off)
            if n < 0 { if errno == EINTR { continue }; ok = false; return }
            off += n
        }
    }
    if sync && fsync(fd) != 0 { ok = false }
    close(fd)
    guard ok, rename(tmp, path) == 0 else {
        let e = String(cString: strerror(errno))
        unlink(tmp)
        throw CRIError.internalError("write \(path): \(e)")
    }
}

/// rm -rf, for directories the CRI made itself (a pod's state directory).
func removeTree(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

/// Nanoseconds since the epoch.
func nowNanos() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// A 64-hex-digit id, as other runtimes use (so kubelet and crictl's
/// truncation to 13 characters works as usual).
func newID() -> String {
    var g = SystemRandomNumberGenerator()
    return (0..<4).map { _ in
        let s = String(g.next() as UInt64, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }.joined()
}
