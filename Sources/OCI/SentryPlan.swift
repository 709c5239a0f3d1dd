// What the launcher tells the Sentry: a SentryConfig serialized as JSON in
// a memfd whose number is passed on the command line (`moat sentry
// --oci-config-fd N`). Any size fits, and the Sentry reads it before it
// confines itself; it never opens the bundle by path.

import COCI
import Glibc
import Sandbox
import Sentry

public enum SentryPlan {
    /// process.capabilities (absent: none at all, as runc gives),
    /// noNewPrivileges, linux.uidMappings/gidMappings and linux.sysctl.
    /// The same for a process `exec` starts: fields of the control request
    /// (Sentry/Kernel/Control.swift), "caps=B,E,P,I,A" in hex, "nnp=0|1".
    static func execCredentialFields(_ p: Spec.Process) -> [String] {
        let c = p.capabilities
        let sets = [c?.bounding, c?.effective, c?.permitted, c?.inheritable, c?.ambient].map { String(Capability.mask($0 ?? []), radix: 16) }
        return ["caps=" + sets.joined(separator: ","), "nnp=\(p.noNewPrivileges ? 1 : 0)"]
    }

    static func applyCredentials(_ spec: Spec, to c: inout SentryConfig) {
        let caps = spec.process?.capabilities
        c.capabilities = CapabilitySets(bounding: Capability.mask(caps?.bounding ?? []), effective: Capability.mask(caps?.effective ?? []),
                                        permitted: Capability.mask(caps?.permitted ?? []),
                                        inheritable: Capability.mask(caps?.inheritable ?? []), ambient: Capability.mask(caps?.ambient ?? []))
        c.noNewPrivileges = spec.process?.noNewPrivileges ?? false
        if let l = spec.linux {
            c.uidMappings = l.uidMappings.map { ($0.containerID, $0.hostID, $0.size) }
            c.gidMappings = l.gidMappings.map { ($0.containerID, $0.hostID, $0.size) }
            c.sysctl = l.sysctl
            c.cgroupFiles = Cgroups.sandboxFiles(l.resources)
        }
    }

    static func encode(_ c: SentryConfig) -> JSON {
        .object([
            ("goferFD", .int(c.goferFD)), ("logFD", .int(c.logFD)), ("debug", .bool(c.debug)), ("strace", .bool(c.strace)),
            ("argv", .array(c.argv.map { .string($0) })), ("env", .array(c.env.map { .string($0) })),
            ("cwd", .string(c.cwd)), ("uid", .int(c.uid)), ("gid", .int(c.gid)), ("hostname", .string(c.hostname)),
            ("overlay", .bool(c.overlay)), ("upperOnDisk", .bool(c.upperOnDisk)), ("readyFD", .int(c.readyFD)), ("startFD", .int(c.startFD)),
            ("controlFD", .int(c.controlFD)), ("groups", .array(c.groups.map { .int($0) })),
            ("umask", c.umask.map { .int($0) } ?? .null),
            ("rlimits", .array(c.rlimits.map { .array([.int($0.0), .number(String($0.1)), .number(String($0.2))]) })),
            ("domainname", c.domainname.map { .string($0) } ?? .null), ("terminal", .bool(c.terminal)),
            ("mounts", .array(c.mounts.map { .object([("type", .string($0.type)), ("destination", .string($0.destination)),
                                                      ("options", .array($0.options.map { .string($0) })),
                                                      ("goferFD", .int($0.goferFD)),
                                                      ("fileName", $0.fileName.map { .string($0) } ?? .null),
                                                      ("source", $0.source.map { .string($0) } ?? .null)]) })),
            ("maskedPaths", .array(c.maskedPaths.map { .string($0) })), ("forwardAllSignals", .bool(c.forwardAllSignals)),
            ("readonlyPaths", .array(c.readonlyPaths.map { .string($0) })),
            ("devices", .array(c.devices.map { .array([.string($0.path), .string($0.type), .number(String($0.major)), .number(String($0.minor)),
                                                       .int($0.mode), .int($0.uid), .int($0.gid)]) })),
            ("extraFDs", .array(c.extraFDs.map { .int($0) })),
            ("capabilities", c.capabilities.map { s in .array([s.bounding, s.effective, s.permitted, s.inheritable, s.ambient].map { .number(String($0)) }) } ?? .null),
            ("noNewPrivileges", .bool(c.noNewPrivileges)),
            ("uidMappings", .array(c.uidMappings.map { .array([.int($0.0), .int($0.1), .int($0.2)]) })),
            ("gidMappings", .array(c.gidMappings.map { .array([.int($0.0), .int($0.1), .int($0.2)]) })),
            ("sysctl", .array(c.sysctl.map { .array([.string($0.0), .string($0.1)]) })),
            ("cgroupFiles", .array(c.cgroupFiles.map { .array([.string($0.0), .string($0.1)]) })),
            ("seccomp", c.seccomp.map { p in .object([
                ("defaultAction", .int(p.defaultAction.rawValue)), ("defaultErrno", .int(p.defaultErrno)),
                ("rules", .array(p.rules.map { r in .object([
                    ("names", .array(r.names.map { .string($0) })), ("action", .int(r.action.rawValue)),
                    ("errno", .int(r.errnoRet)),
                    ("conditions", .array(r.conditions.map { c in .array([.int(c.index), .string(c.op),
                                                                           .number(String(c.value)), .number(String(c.valueTwo))]) })),
                ]) })),
            ]) } ?? .null),
        ])
    }

    static func decode(_ j: JSON) throws -> SentryConfig {
        let n = Node(j, document: "sentry plan")
        var c = SentryConfig()
        c.goferFD = try n.required("goferFD").i32()
        c.logFD = try n.required("logFD").i32()
        c.debug = try n.required("debug").bool()
        c.strace = try n.required("strace").bool()
        c.argv = try n.required("argv").strings()
        c.env = try n.required("env").strings()
        c.cwd = try n.required("cwd").string()
        c.uid = try n.required("uid").u32()
        c.gid = try n.required("gid").u32()
        c.hostname = try n.required("hostname").string()
        c.overlay = try n.required("overlay").bool()
        c.upperOnDisk = try n.opt("upperOnDisk") { try $0.bool() } ?? false
        c.readyFD = try n.required("readyFD").i32()
        c.startFD = try n.required("startFD").i32()
        c.controlFD = try n.required("controlFD").i32()
        c.groups = try n.required("groups").array().map { try $0.u32() }
        c.umask = try n.opt("umask") { try $0.u32() }
        c.rlimits = try n.required("rlimits").array().map { r in
            let a = try r.array()
            guard a.count == 3 else { throw r.fail("expected [resource, soft, hard]") }
            return (Int(try a[0].i32()), try a[1].u64(), try a[2].u64())
        }
        c.domainname = try n.opt("domainname") { try $0.string() }
        c.terminal = try n.required("terminal").bool()
        c.mounts = try n.required("mounts").array().map {
            var m = SentryMount(type: try $0.required("type").string(), destination: try $0.required("destination").string(),
                                options: try $0.required("options").strings())
            m.goferFD = try $0.opt("goferFD") { try $0.i32() } ?? -1
            m.fileName = try $0.opt("fileName") { try $0.string() }
            m.source = try $0.opt("source") { try $0.string() }
            return m
        }
        c.maskedPaths = try n.required("maskedPaths").strings()
        c.readonlyPaths = try n.opt("readonlyPaths") { try $0.strings() } ?? []
        c.devices = try n.opt("devices") { try $0.array().map { d in
            let a = try d.array()
            guard a.count == 7 else { throw d.fail("expected [path, type, major, minor, mode, uid, gid]") }
            return SentryDevice(path: try a[0].string(), type: try a[1].string(), major: try a[2].i64(), minor: try a[3].i64(),
                                mode: try a[4].u32(), uid: try a[5].u32(), gid: try a[6].u32())
        } } ?? []
        c.forwardAllSignals = try n.required("forwardAllSignals").bool()
        c.extraFDs = try n.required("extraFDs").array().map { try $0.i32() }
        c.capabilities = try n.opt("capabilities") { s in
            let a = try s.array().map { try $0.u64() }
            guard a.count == 5 else { throw s.fail("expected 5 capability sets") }
            return CapabilitySets(bounding: a[0], effective: a[1], permitted: a[2], inheritable: a[3], ambient: a[4])
        }
        c.noNewPrivileges = try n.opt("noNewPrivileges") { try $0.bool() } ?? false
        func mappings(_ key: String) throws -> [(UInt32, UInt32, UInt32)] {
            try n.opt(key) { m in
                try m.array().map { e in
                    let a = try e.array()
                    guard a.count == 3 else { throw e.fail("expected [container, host, size]") }
                    return (try a[0].u32(), try a[1].u32(), try a[2].u32())
                }
            } ?? []
        }
        c.uidMappings = try mappings("uidMappings")
        c.gidMappings = try mappings("gidMappings")
        func pairs(_ key: String) throws -> [(String, String)] {
            try n.opt(key) { s in
                try s.array().map { e in
                    let a = try e.array()
                    guard a.count == 2 else { throw e.fail("expected [key, value]") }
                    return (try a[0].string(), try a[1].string())
                }
            } ?? []
        }
        c.sysctl = try pairs("sysctl")
        c.cgroupFiles = try pairs("cgroupFiles")
        c.seccomp = try n.opt("seccomp") { p in
            func act(_ n: Node) throws -> AppSeccompProfile.Action {
                guard let a = AppSeccompProfile.Action(rawValue: Int(try n.i32())) else { throw n.fail("bad action") }
                return a
            }
            return AppSeccompProfile(
                defaultAction: try act(try p.required("defaultAction")), defaultErrno: try p.required("defaultErrno").i32(),
                rules: try p.required("rules").array().map { r in
                    AppSeccompProfile.Rule(names: try r.required("names").strings(), action: try act(try r.required("action")),
                                           errnoRet: try r.required("errno").i32(),
                                           conditions: try r.required("conditions").array().map { c in
                                               let a = try c.array()
                                               guard a.count == 4 else { throw c.fail("bad condition") }
                                               return AppSeccompProfile.Condition(index: Int(try a[0].i32()), op: try a[1].string(),
                                                                                  value: try a[2].u64(), valueTwo: try a[3].u64())
                                           })
                })
        }
        return c
    }

    /// What the Sentry process does on the host before it becomes the Sentry
    /// (OCI linux.namespaces): namespaces to join by path, and whether to bring
    /// up loopback in the network namespace made for it.
    struct HostNamespaces {
        var join: [(path: String, type: Int32)] = []
        var loopbackUp = false
    }

    /// Writes the plan into a memfd positioned at 0.
    static func memfd(_ c: SentryConfig, _ ns: HostNamespaces = HostNamespaces()) throws -> Int32 {
        let fd = coci_memfd("moat-sentry-plan")
        if fd < 0 { throw RuntimeError("memfd_create: \(String(cString: strerror(errno)))") }
        var plan = encode(c)
        if case .object(var kv) = plan {
            kv.append(("joinNamespaces", .array(ns.join.map { .array([.string($0.path), .int($0.type)]) })))
            kv.append(("loopbackUp", .bool(ns.loopbackUp)))
            plan = .object(kv)
        }
        if !writeAll(fd, Array(plan.serialized().utf8)) || lseek(fd, 0, SEEK_SET) != 0 {
            close(fd)
            throw RuntimeError("cannot write the sentry plan")
        }
        return fd
    }

    /// For `moat sentry --oci-config-fd N`: reads the plan (and closes it).
    /// Also stops the Sentry from dying with the launcher: `create` returns
    /// while the sandbox lives on (the launcher set PR_SET_PDEATHSIG).
    public static func read(fd: Int32) throws -> SentryConfig {
        _ = moatPrctl(1 /* PR_SET_PDEATHSIG */, 0)
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes.append(contentsOf: buf[0..<n])
        }
        close(fd)
        let plan = try JSON.parse(bytes: bytes)
        let n = Node(plan, document: "sentry plan")
        // Joined first, while this process is still single-threaded (setns
        // of a mount namespace requires it).
        for j in try n.opt("joinNamespaces", { try $0.array() }) ?? [] {
            let a = try j.array()
            guard a.count == 2 else { throw j.fail("expected [path, type]") }
            let path = try a[0].string()
            let r = coci_join_namespace(path, try a[1].i32())
            if r < 0 { throw RuntimeError("cannot join the namespace \(path): \(String(cString: strerror(-r)))") }
        }
        if try n.opt("loopbackUp", { try $0.bool() }) == true {
            let r = coci_loopback_up()
            if r < 0 { throw RuntimeError("cannot bring up loopback: \(String(cString: strerror(-r)))") }
        }
        return try decode(plan)
    }

    /// `moat gofer --detached`: the Gofer outlives `create` too; it exits
    /// when its Sentry's end of the socket closes.
    public static func detachFromLauncher() { _ = moatPrctl(1, 0) }
}
