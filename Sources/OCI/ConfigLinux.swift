// The `linux` section of config.json (schema/config-linux.json and
// defs-linux.json): every property is decoded and type-checked, whether or
// not Moat acts on it (runtime-spec/CONFORMANCE.md says which it does).

extension Spec {
    public struct Linux {
        public var devices: [Device] = []
        public var netDevices: [(String, String?)] = []
        public var uidMappings: [IDMapping] = []
        public var gidMappings: [IDMapping] = []
        public var namespaces: [Namespace] = []
        public var resources: Resources?
        public var cgroupsPath: String?
        public var rootfsPropagation: String?
        public var seccomp: Seccomp?
        public var sysctl: [(String, String)] = []
        public var maskedPaths: [String] = []
        public var readonlyPaths: [String] = []
        public var mountLabel: String?
        public var intelRdt: IntelRdt?
        public var memoryPolicy: MemoryPolicy?
        public var personality: (domain: String?, flags: [String])?
        public var timeOffsets: [(String, Int64?, UInt32?)] = []
    }

    public struct Device {
        public var type: String, path: String
        public var fileMode: UInt32?, major: Int64?, minor: Int64?, uid: UInt32?, gid: UInt32?
    }

    public struct Namespace { public var type: String; public var path: String? }

    public struct DeviceRule { public var allow: Bool; public var type: String?; public var major: Int64?; public var minor: Int64?; public var access: String? }

    public struct Resources {
        public var devices: [DeviceRule] = []
        public var memory: Memory?
        public var cpu: CPU?
        public var pids: Int64?
        public var blockIO: BlockIO?
        public var hugepageLimits: [(String, UInt64)] = []
        public var network: (classID: UInt32?, priorities: [(String, UInt32)])?
        public var rdma: [(String, UInt32?, UInt32?)] = []
        public var unified: [(String, String)] = []
    }

    public struct Memory {
        public var limit: Int64?, reservation: Int64?, swap: Int64?, kernel: Int64?, kernelTCP: Int64?
        public var swappiness: UInt64?
        public var disableOOMKiller: Bool?, useHierarchy: Bool?, checkBeforeUpdate: Bool?
    }

    public struct CPU {
        public var shares: UInt64?, quota: Int64?, burst: UInt64?, period: UInt64?
        public var realtimeRuntime: Int64?, realtimePeriod: UInt64?
        public var cpus: String?, mems: String?
        public var idle: Int64?
    }

    public struct BlockIO {
        public var weight: UInt16?, leafWeight: UInt16?
        public var weightDevice: [(major: Int64, minor: Int64, weight: UInt16?, leafWeight: UInt16?)] = []
        public var throttleReadBpsDevice: [(Int64, Int64, UInt64)] = []
        public var throttleWriteBpsDevice: [(Int64, Int64, UInt64)] = []
        public var throttleReadIOPSDevice: [(Int64, Int64, UInt64)] = []
        public var throttleWriteIOPSDevice: [(Int64, Int64, UInt64)] = []
    }

    public struct Seccomp {
        public var defaultAction: String
        public var defaultErrnoRet: UInt32?
        public var architectures: [String] = []
        public var flags: [String] = []
        public var listenerPath: String?, listenerMetadata: String?
        public var syscalls: [Syscall] = []
    }

    public struct Syscall {
        public var names: [String]
        public var action: String
        public var errnoRet: UInt32?
        public var args: [(index: UInt32, value: UInt64, valueTwo: UInt64?, op: String)] = []
    }

    public struct IntelRdt {
        public var closID: String?, l3CacheSchema: String?, memBwSchema: String?
        public var schemata: [String] = []
        public var enableMonitoring: Bool?
    }

    public struct MemoryPolicy { public var mode: String; public var nodes: String?; public var flags: [String] = [] }
}

enum LinuxEnums {
    static let namespaceTypes = ["mount", "pid", "network", "uts", "ipc", "user", "cgroup", "time"]
    static let seccompActions = ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
                                 "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"]
    static let seccompFlags = ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                               "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
    static let seccompArches = ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
                                "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64",
                                "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32",
                                "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390",
                                "SCMP_ARCH_S390X", "SCMP_ARCH_SH", "SCMP_ARCH_SHEB", "SCMP_ARCH_PARISC",
                                "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64"]
    static let seccompOps = ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
                             "SCMP_CMP_MASKED_EQ"]
    static let propagation = ["private", "shared", "slave", "unbindable"]
    static let mpolModes = ["MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE", "MPOL_PREFERRED",
                            "MPOL_PREFERRED_MANY", "MPOL_LOCAL"]
    static let mpolFlags = ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"]
}

extension Spec.Linux {
    init(_ n: Node) throws {
        _ = try n.object()
        devices = try n.list("devices") { d in
            let type = try d.required("type").string()
            guard ["c", "b", "u", "p"].contains(type) else { throw ConfigError(path: d.child("type"), "invalid device type \"\(type)\" (expected c, b, u or p)") }
            return Spec.Device(type: type, path: try d.required("path").string(), fileMode: try d.opt("fileMode") { try $0.u32() },
                               major: try d.opt("major") { try $0.i64() }, minor: try d.opt("minor") { try $0.i64() },
                               uid: try d.opt("uid") { try $0.u32() }, gid: try d.opt("gid") { try $0.u32() })
        } ?? []
        netDevices = try n.opt("netDevices") { nd in try nd.object().map { ($0.0, try $0.1.opt("name") { try $0.string() }) } } ?? []
        uidMappings = try n.list("uidMappings", Spec.IDMapping.init) ?? []
        gidMappings = try n.list("gidMappings", Spec.IDMapping.init) ?? []
        namespaces = try n.list("namespaces") { ns in
            Spec.Namespace(type: try ns.required("type").oneOf(LinuxEnums.namespaceTypes), path: try ns.opt("path") { try $0.string() })
        } ?? []
        resources = try n.opt("resources", Spec.Resources.init)
        cgroupsPath = try n.opt("cgroupsPath") { try $0.string() }
        rootfsPropagation = try n.opt("rootfsPropagation") { try $0.oneOf(LinuxEnums.propagation) }
        seccomp = try n.opt("seccomp", Spec.Seccomp.init)
        sysctl = try n.opt("sysctl") { try $0.stringMap() } ?? []
        maskedPaths = try n.opt("maskedPaths") { try $0.strings() } ?? []
        readonlyPaths = try n.opt("readonlyPaths") { try $0.strings() } ?? []
        mountLabel = try n.opt("mountLabel") { try $0.string() }
        intelRdt = try n.opt("intelRdt") { r in
            Spec.IntelRdt(closID: try r.opt("closID") { try $0.string() }, l3CacheSchema: try r.opt("l3CacheSchema") { try $0.string() },
                          memBwSchema: try r.opt("memBwSchema") { try $0.string() }, schemata: try r.opt("schemata") { try $0.strings() } ?? [],
                          enableMonitoring: try r.opt("enableMonitoring") { try $0.bool() })
        }
        memoryPolicy = try n.opt("memoryPolicy") { m in
            Spec.MemoryPolicy(mode: try m.required("mode").oneOf(LinuxEnums.mpolModes), nodes: try m.opt("nodes") { try $0.string() },
                              flags: try m.list("flags") { try $0.oneOf(LinuxEnums.mpolFlags) } ?? [])
        }
        personality = try n.opt("personality") { p in
            (try p.opt("domain") { try $0.oneOf(["LINUX", "LINUX32"]) }, try p.opt("flags") { try $0.strings() } ?? [])
        }
        timeOffsets = try n.opt("timeOffsets") { t in
            try t.object().map { (k, v) in
                guard k == "boottime" || k == "monotonic" else { throw v.fail("unknown clock (expected boottime or monotonic)") }
                return (k, try v.opt("secs") { try $0.i64() }, try v.opt("nanosecs") { try $0.u32() })
            }
        } ?? []
    }
}

extension Spec.Resources {
    init(_ n: Node) throws {
        devices = try n.list("devices") { d in
            let type = try d.opt("type") { try $0.string() }
            if let t = type, !["a", "b", "c"].contains(t) { throw ConfigError(path: d.child("type"), "invalid device type \"\(t)\" (expected a, b or c)") }
            let access = try d.opt("access") { try $0.string() }
            if let a = access, a.contains(where: { !"rwm".contains($0) }) { throw ConfigError(path: d.child("access"), "invalid access \"\(a)\" (letters r, w, m)") }
            return Spec.DeviceRule(allow: try d.required("allow").bool(), type: type, major: try d.opt("major") { try $0.i64() },
                                   minor: try d.opt("minor") { try $0.i64() }, access: access)
        } ?? []
        memory = try n.opt("memory") { m in
            Spec.Memory(limit: try m.opt("limit") { try $0.i64() }, reservation: try m.opt("reservation") { try $0.i64() },
                        swap: try m.opt("swap") { try $0.i64() }, kernel: try m.opt("kernel") { try $0.i64() },
                        kernelTCP: try m.opt("kernelTCP") { try $0.i64() },
                        swappiness: try m.opt("swappiness") { s in
                            let v = try s.u64()
                            if v > 100 { throw s.fail("must be between 0 and 100") }
                            return v
                        },
                        disableOOMKiller: try m.opt("disableOOMKiller") { try $0.bool() },
                        useHierarchy: try m.opt("useHierarchy") { try $0.bool() },
                        checkBeforeUpdate: try m.opt("checkBeforeUpdate") { try $0.bool() })
        }
        cpu = try n.opt("cpu") { c in
            Spec.CPU(shares: try c.opt("shares") { try $0.u64() }, quota: try c.opt("quota") { try $0.i64() },
                     burst: try c.opt("burst") { try $0.u64() }, period: try c.opt("period") { try $0.u64() },
                     realtimeRuntime: try c.opt("realtimeRuntime") { try $0.i64() },
                     realtimePeriod: try c.opt("realtimePeriod") { try $0.u64() },
                     cpus: try c.opt("cpus") { try $0.string() }, mems: try c.opt("mems") { try $0.string() },
                     idle: try c.opt("idle") { try $0.i64() })
        }
        pids = try n.opt("pids") { try $0.required("limit").i64() }
        blockIO = try n.opt("blockIO") { b in
            func throttle(_ key: String) throws -> [(Int64, Int64, UInt64)] {
                try b.list(key) { d in (try d.required("major").i64(), try d.required("minor").i64(), try d.required("rate").u64()) } ?? []
            }
            return Spec.BlockIO(
                weight: try b.opt("weight") { try $0.u16() }, leafWeight: try b.opt("leafWeight") { try $0.u16() },
                weightDevice: try b.list("weightDevice") { d in
                    (try d.required("major").i64(), try d.required("minor").i64(), try d.opt("weight") { try $0.u16() },
                     try d.opt("leafWeight") { try $0.u16() })
                } ?? [],
                throttleReadBpsDevice: try throttle("throttleReadBpsDevice"), throttleWriteBpsDevice: try throttle("throttleWriteBpsDevice"),
                throttleReadIOPSDevice: try throttle("throttleReadIOPSDevice"), throttleWriteIOPSDevice: try throttle("throttleWriteIOPSDevice"))
        }
        hugepageLimits = try n.list("hugepageLimits") { h in (try h.required("pageSize").string(), try h.required("limit").u64()) } ?? []
        network = try n.opt("network") { nw in
            (try nw.opt("classID") { try $0.u32() },
             try nw.list("priorities") { p in (try p.required("name").string(), try p.required("priority").u32()) } ?? [])
        }
        rdma = try n.opt("rdma") { r in
            try r.object().map { (k, v) in (k, try v.opt("hcaHandles") { try $0.u32() }, try v.opt("hcaObjects") { try $0.u32() }) }
        } ?? []
        unified = try n.opt("unified") { try $0.stringMap() } ?? []
    }
}

extension Spec.Seccomp {
    init(_ n: Node) throws {
        defaultAction = try n.required("defaultAction").oneOf(LinuxEnums.seccompActions)
        defaultErrnoRet = try n.opt("defaultErrnoRet") { try $0.u32() }
        architectures = try n.list("architectures") { try $0.oneOf(LinuxEnums.seccompArches) } ?? []
        flags = try n.list("flags") { try $0.oneOf(LinuxEnums.seccompFlags) } ?? []
        listenerPath = try n.opt("listenerPath") { try $0.string() }
        listenerMetadata = try n.opt("listenerMetadata") { try $0.string() }
        syscalls = try n.list("syscalls") { s in
            let names = try s.required("names").strings()
            if names.isEmpty { throw ConfigError(path: s.child("names"), "must name at least one syscall") }
            return Spec.Syscall(names: names, action: try s.required("action").oneOf(LinuxEnums.seccompActions),
                                errnoRet: try s.opt("errnoRet") { try $0.u32() },
                                args: try s.list("args") { a in
                                    (try a.required("index").u32(), try a.required("value").u64(),
                                     try a.opt("valueTwo") { try $0.u64() }, try a.required("op").oneOf(LinuxEnums.seccompOps))
                                } ?? [])
        } ?? []
    }
}
