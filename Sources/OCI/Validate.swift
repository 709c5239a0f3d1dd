// Checks on a decoded config.json that the schema alone does not express
// but the runtime spec requires (config.md, config-linux.md).

extension Spec {
    func validate() throws {
        let v = ociVersion.split(separator: ".")
        guard v.count >= 2, v[0] == "1", v.allSatisfy({ !$0.isEmpty }) else {
            throw ConfigError(path: "ociVersion", "unsupported version \"\(ociVersion)\" (Moat implements runtime-spec 1.x)")
        }
        if let r = root, r.path.isEmpty { throw ConfigError(path: "root.path", "must not be empty") }
        for (i, m) in mounts.enumerated() {
            if !m.destination.hasPrefix("/") {
                throw ConfigError(path: "mounts[\(i)].destination", "must be an absolute path, got \"\(m.destination)\"")
            }
        }
        if let p = process {
            if !p.cwd.hasPrefix("/") { throw ConfigError(path: "process.cwd", "must be an absolute path, got \"\(p.cwd)\"") }
            for (i, e) in p.env.enumerated() where !e.contains("=") || e.hasPrefix("=") {
                throw ConfigError(path: "process.env[\(i)]", "expected KEY=VALUE, got \"\(e)\"")
            }
            var seen = Set<String>()
            for (i, r) in p.rlimits.enumerated() {
                if !seen.insert(r.type).inserted { throw ConfigError(path: "process.rlimits[\(i)].type", "duplicate limit \(r.type)") }
                if r.soft > r.hard { throw ConfigError(path: "process.rlimits[\(i)]", "soft limit exceeds the hard limit") }
            }
            if let u = p.user.umask, u > 0o777 { throw ConfigError(path: "process.user.umask", "must be at most 0777") }
        }
        if let h = hooks {
            for (name, list) in [("prestart", h.prestart), ("createRuntime", h.createRuntime), ("createContainer", h.createContainer),
                                 ("startContainer", h.startContainer), ("poststart", h.poststart), ("poststop", h.poststop)] {
                for (i, hook) in list.enumerated() where !hook.path.hasPrefix("/") {
                    throw ConfigError(path: "hooks.\(name)[\(i)].path", "must be an absolute path, got \"\(hook.path)\"")
                }
            }
        }
        if let l = linux {
            var seen = Set<String>()
            for (i, ns) in l.namespaces.enumerated() {
                if !seen.insert(ns.type).inserted { throw ConfigError(path: "linux.namespaces[\(i)].type", "duplicate namespace \(ns.type)") }
                if let p = ns.path, !p.hasPrefix("/") { throw ConfigError(path: "linux.namespaces[\(i)].path", "must be an absolute path") }
            }
            if (!l.uidMappings.isEmpty || !l.gidMappings.isEmpty) && !seen.contains("user") {
                throw ConfigError(path: "linux.uidMappings", "mappings need a user namespace in linux.namespaces")
            }
            for (i, d) in l.devices.enumerated() {
                if !d.path.hasPrefix("/") { throw ConfigError(path: "linux.devices[\(i)].path", "must be an absolute path") }
                if d.type != "p" && (d.major == nil || d.minor == nil) {
                    throw ConfigError(path: "linux.devices[\(i)]", "major and minor are required for device type \(d.type)")
                }
            }
            for (k, _) in l.sysctl where k.isEmpty { throw ConfigError(path: "linux.sysctl", "empty key") }
            if let c = l.cgroupsPath, c.isEmpty { throw ConfigError(path: "linux.cgroupsPath", "must not be empty") }
        }
    }
}
