// The OCI runtime configuration (config.json), decoded field by field per
// the runtime spec's JSON schemas (schema/config-schema.json, defs.json,
// config-linux.json, defs-linux.json). Platform sections other than
// `linux` (solaris, windows, vm, zos, freebsd) must be objects and are
// otherwise ignored: Moat runs Linux containers only.

import Sandbox

public struct Spec {
    public var ociVersion: String
    public var root: Root?
    public var mounts: [Mount] = []
    public var process: Process?
    public var hostname: String?
    public var domainname: String?
    public var hooks: Hooks?
    public var annotations: [(String, String)] = []
    public var linux: Linux?
    /// The document as read, for tools that want fields verbatim.
    public var raw: JSON = .null

    public struct Root { public var path: String; public var readonly = false }

    public struct Mount {
        public var destination: String
        public var source: String?
        public var type: String?
        public var options: [String] = []
        public var uidMappings: [IDMapping] = []
        public var gidMappings: [IDMapping] = []
    }

    public struct IDMapping { public var containerID: UInt32; public var hostID: UInt32; public var size: UInt32 }

    public struct Process {
        public var terminal = false
        public var consoleSize: (height: UInt64, width: UInt64)?
        public var user = User()
        public var args: [String] = []
        public var commandLine: String?
        public var env: [String] = []
        public var cwd: String = "/"
        public var capabilities: Capabilities?
        public var rlimits: [Rlimit] = []
        public var noNewPrivileges = false
        public var apparmorProfile: String?
        public var oomScoreAdj: Int32?
        public var selinuxLabel: String?
        public var ioPriority: (klass: String, priority: Int32)?
        public var scheduler: Scheduler?
        public var execCPUAffinity: (initial: String?, final: String?)?
    }

    public struct User {
        public var uid: UInt32 = 0
        public var gid: UInt32 = 0
        public var umask: UInt32?
        public var additionalGids: [UInt32] = []
        public var username: String?
    }

    public struct Capabilities {
        public var bounding: [String] = [], effective: [String] = [], inheritable: [String] = []
        public var permitted: [String] = [], ambient: [String] = []
    }

    public struct Rlimit { public var type: String; public var soft: UInt64; public var hard: UInt64 }

    public struct Scheduler {
        public var policy: String
        public var nice: Int32?, priority: Int32?
        public var flags: [String] = []
        public var runtime: UInt64?, deadline: UInt64?, period: UInt64?
    }

    public struct Hook {
        public var path: String
        public var args: [String] = []
        public var env: [String] = []
        public var timeout: Int64?
    }

    public struct Hooks {
        public var prestart: [Hook] = []
        public var createRuntime: [Hook] = []
        public var createContainer: [Hook] = []
        public var startContainer: [Hook] = []
        public var poststart: [Hook] = []
        public var poststop: [Hook] = []
    }
}

// MARK: - Decoding

extension Spec {
    /// Decodes and validates a config.json document.
    public static func decode(_ text: String) throws -> Spec {
        let json: JSON
        do { json = try JSON.parse(text) } catch { throw ConfigError(path: "", "invalid JSON: \(error.message)") }
        var s = try Spec(Node(json))
        s.raw = json
        try s.validate()
        return s
    }

    init(_ n: Node) throws {
        _ = try n.object()
        ociVersion = try n.required("ociVersion").string()
        root = try n.opt("root") { r in Root(path: try r.required("path").string(), readonly: try r.opt("readonly") { try $0.bool() } ?? false) }
        mounts = try n.list("mounts", Mount.init) ?? []
        process = try n.opt("process", Process.init)
        hostname = try n.opt("hostname") { try $0.string() }
        domainname = try n.opt("domainname") { try $0.string() }
        hooks = try n.opt("hooks", Hooks.init)
        annotations = try n.opt("annotations") { try $0.stringMap() } ?? []
        linux = try n.opt("linux", Linux.init)
        for other in ["solaris", "windows", "vm", "zos", "freebsd"] { _ = try n.opt(other) { try $0.object() } }
    }
}

extension Spec.IDMapping {
    init(_ n: Node) throws {
        containerID = try n.required("containerID").u32()
        hostID = try n.required("hostID").u32()
        size = try n.required("size").u32()
    }
}

extension Spec.Mount {
    init(_ n: Node) throws {
        destination = try n.required("destination").string()
        source = try n.opt("source") { try $0.string() }
        type = try n.opt("type") { try $0.string() }
        options = try n.opt("options") { try $0.strings() } ?? []
        uidMappings = try n.list("uidMappings", Spec.IDMapping.init) ?? []
        gidMappings = try n.list("gidMappings", Spec.IDMapping.init) ?? []
    }
}

extension Spec.Process {
    static let rlimitTypes = ["RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
                              "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
                              "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME"]

    init(_ n: Node) throws {
        terminal = try n.opt("terminal") { try $0.bool() } ?? false
        consoleSize = try n.opt("consoleSize") { c in (try c.required("height").u64(), try c.required("width").u64()) }
        user = try n.opt("user", Spec.User.init) ?? Spec.User()
        args = try n.opt("args") { try $0.strings() } ?? []
        commandLine = try n.opt("commandLine") { try $0.string() }
        env = try n.opt("env") { try $0.strings() } ?? []
        cwd = try n.required("cwd").string()
        capabilities = try n.opt("capabilities", Spec.Capabilities.init)
        rlimits = try n.list("rlimits") { r in
            Spec.Rlimit(type: try r.required("type").oneOf(Self.rlimitTypes),
                        soft: try r.required("soft").u64(), hard: try r.required("hard").u64())
        } ?? []
        noNewPrivileges = try n.opt("noNewPrivileges") { try $0.bool() } ?? false
        apparmorProfile = try n.opt("apparmorProfile") { try $0.string() }
        oomScoreAdj = try n.opt("oomScoreAdj") { o in
            let v = try o.i32()
            if v < -1000 || v > 1000 { throw o.fail("must be between -1000 and 1000") }
            return v
        }
        selinuxLabel = try n.opt("selinuxLabel") { try $0.string() }
        ioPriority = try n.opt("ioPriority") { p in
            (try p.required("class").oneOf(["IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE"]),
             try p.opt("priority") { try $0.i32() } ?? 0)
        }
        scheduler = try n.opt("scheduler") { s in
            Spec.Scheduler(
                policy: try s.required("policy").oneOf(["SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH", "SCHED_ISO", "SCHED_IDLE", "SCHED_DEADLINE"]),
                nice: try s.opt("nice") { try $0.i32() }, priority: try s.opt("priority") { try $0.i32() },
                flags: try s.list("flags") { try $0.oneOf(["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_RECLAIM", "SCHED_FLAG_DL_OVERRUN",
                                                           "SCHED_FLAG_KEEP_POLICY", "SCHED_FLAG_KEEP_PARAMS",
                                                           "SCHED_FLAG_UTIL_CLAMP_MIN", "SCHED_FLAG_UTIL_CLAMP_MAX"]) } ?? [],
                runtime: try s.opt("runtime") { try $0.u64() }, deadline: try s.opt("deadline") { try $0.u64() },
                period: try s.opt("period") { try $0.u64() })
        }
        execCPUAffinity = try n.opt("execCPUAffinity") { a in
            (try a.opt("initial") { try $0.string() }, try a.opt("final") { try $0.string() })
        }
    }
}

extension Spec.User {
    init(_ n: Node) throws {
        uid = try n.required("uid").u32()
        gid = try n.required("gid").u32()
        umask = try n.opt("umask") { try $0.u32() }
        additionalGids = try n.list("additionalGids") { try $0.u32() } ?? []
        username = try n.opt("username") { try $0.string() }
    }
}

extension Spec.Capabilities {
    init(_ n: Node) throws {
        func caps(_ key: String) throws -> [String] {
            try n.list(key) { c in
                let s = try c.string()
                guard Capability.number(s) != nil else { throw c.fail("unknown capability \"\(s)\"") }
                return s
            } ?? []
        }
        bounding = try caps("bounding"); effective = try caps("effective"); inheritable = try caps("inheritable")
        permitted = try caps("permitted"); ambient = try caps("ambient")
    }
}

extension Spec.Hooks {
    init(_ n: Node) throws {
        func hooks(_ key: String) throws -> [Spec.Hook] {
            try n.list(key) { h in
                Spec.Hook(path: try h.required("path").string(), args: try h.opt("args") { try $0.strings() } ?? [],
                          env: try h.opt("env") { try $0.strings() } ?? [],
                          timeout: try h.opt("timeout") { t in
                              let v = try t.i64()
                              if v < 1 { throw t.fail("must be at least 1") }
                              return v
                          })
            } ?? []
        }
        prestart = try hooks("prestart"); createRuntime = try hooks("createRuntime")
        createContainer = try hooks("createContainer"); startContainer = try hooks("startContainer")
        poststart = try hooks("poststart"); poststop = try hooks("poststop")
    }
}
