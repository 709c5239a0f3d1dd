// A pod's volumes and a container's environment, as the node agent prepares
// them before CreateContainer. The runtime only sees bind mounts (CRI
// Mount: host path, container path, read-only), so every volume becomes a
// host directory or file the agent owns under --root/pods/UID/volumes:
// emptyDir (a directory, or a tmpfs with medium Memory), configMap, secret,
// downwardAPI and projected (files written by the agent, mounted read-only),
// hostPath (the host path itself, created for the *OrCreate types).
// The environment is resolved here too: value (with $(VAR) references),
// valueFrom (configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef) and
// envFrom, in Kubernetes' order (envFrom first, env after, later wins).
//
// Everything that names a path comes from the API, so it is checked before
// use: item paths and keys are relative with no "..", and a subPath must
// resolve (symlinks included) inside its volume, so a container cannot make
// another container mount a host path it chose.

import CRIAPI
import ControlPlane
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A container that cannot be configured (a missing ConfigMap, Secret or key):
/// reported as CreateContainerConfigError, retried on the next sync.
struct ConfigError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

struct PreparedVolume {
    var hostPath: String
    /// Volumes the agent writes are always mounted read-only.
    var readOnly: Bool
}

extension NodeAgent {
    func podDirectory(_ uid: String) -> String { o.root + "/pods/" + uid }

    /// Makes every volume of the pod exist on the host; returns them by name.
    func prepareVolumes(_ pod: JSON, podIP: String) async throws -> [String: PreparedVolume] {
        let uid = pod.uid
        guard Self.safeName(uid) else { throw ConfigError("pod uid \(uid.debugDescription) is not a valid name") }
        var out: [String: PreparedVolume] = [:]
        for v in pod["spec"]["volumes"].array ?? [] {
            let name = v["name"].string ?? ""
            guard Self.safeName(name) else { throw ConfigError("volume name \(name.debugDescription) is not valid") }
            let base = podDirectory(uid) + "/volumes"
            if !v["emptyDir"].isNull {
                let dir = base + "/empty-dir/" + name
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                chmod(dir, 0o777)
                if v["emptyDir"]["medium"].string == "Memory" { try mountTmpfs(dir, sizeLimit: v["emptyDir"]["sizeLimit"]) }
                out[name] = PreparedVolume(hostPath: dir, readOnly: false)
            } else if !v["hostPath"].isNull {
                out[name] = PreparedVolume(hostPath: try hostPath(v["hostPath"]), readOnly: false)
            } else if !v["configMap"].isNull || !v["secret"].isNull || !v["downwardAPI"].isNull || !v["projected"].isNull {
                var files: [(path: String, data: Data, mode: Int)] = []
                if !v["configMap"].isNull {
                    files = try await configMapFiles(pod.namespace, v["configMap"], defaultMode: v["configMap"]["defaultMode"].int ?? 0o644)
                } else if !v["secret"].isNull {
                    var s = v["secret"]; s["name"] = s["secretName"]
                    files = try await secretFiles(pod.namespace, s, defaultMode: s["defaultMode"].int ?? 0o644)
                } else if !v["downwardAPI"].isNull {
                    files = try downwardFiles(pod, v["downwardAPI"], podIP: podIP, defaultMode: v["downwardAPI"]["defaultMode"].int ?? 0o644)
                } else {
                    let mode = v["projected"]["defaultMode"].int ?? 0o644
                    for src in v["projected"]["sources"].array ?? [] {
                        if !src["configMap"].isNull { files += try await configMapFiles(pod.namespace, src["configMap"], defaultMode: mode) }
                        if !src["secret"].isNull { files += try await secretFiles(pod.namespace, src["secret"], defaultMode: mode) }
                        if !src["downwardAPI"].isNull { files += try downwardFiles(pod, src["downwardAPI"], podIP: podIP, defaultMode: mode) }
                    }
                }
                let dir = base + "/files/" + name
                try writeFiles(dir, files)
                out[name] = PreparedVolume(hostPath: dir, readOnly: true)
            } else {
                throw ConfigError("volume \(name): only emptyDir, hostPath, configMap, secret, downwardAPI and projected volumes are supported")
            }
        }
        return out
    }

    /// The CRI mounts of one container.
    func containerMounts(_ spec: JSON, _ volumes: [String: PreparedVolume]) throws -> [Runtime_V1_Mount] {
        var mounts: [Runtime_V1_Mount] = []
        for m in spec["volumeMounts"].array ?? [] {
            let name = m["name"].string ?? ""
            guard let v = volumes[name] else { throw ConfigError("volumeMount \(name): no such volume in the pod") }
            var host = v.hostPath
            if let sub = m["subPath"].string, !sub.isEmpty {
                guard Self.safeRelativePath(sub) else { throw ConfigError("volumeMount \(name): subPath \(sub.debugDescription) must be relative without ..") }
                host += "/" + sub
                if !FileManager.default.fileExists(atPath: host) && !v.readOnly {
                    try FileManager.default.createDirectory(atPath: host, withIntermediateDirectories: true)
                }
                // The container may have put a symlink there: the real path must stay inside the volume.
                let real = URL(fileURLWithPath: host).resolvingSymlinksInPath().path
                let root = URL(fileURLWithPath: v.hostPath).resolvingSymlinksInPath().path
                guard real == root || real.hasPrefix(root + "/") else {
                    throw ConfigError("volumeMount \(name): subPath \(sub.debugDescription) leaves the volume")
                }
                host = real
            }
            var x = Runtime_V1_Mount()
            x.containerPath = m["mountPath"].string ?? ""
            x.hostPath = host
            x.readonly = v.readOnly || m["readOnly"].bool == true
            mounts.append(x)
        }
        return mounts
    }

    /// Unmounts and removes the volumes of a pod that is gone.
    func removePodDirectory(_ uid: String) {
        guard Self.safeName(uid) else { return }
        let empty = podDirectory(uid) + "/volumes/empty-dir"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: empty)) ?? [] {
            if Self.isMountPoint(empty + "/" + name) { umount2(empty + "/" + name, Int32(MNT_DETACH)) }
        }
        try? FileManager.default.removeItem(atPath: podDirectory(uid))
    }

    /// Pod directories with no pod: a pod deleted while the agent was down, or one just torn down.
    func removeStalePodDirectories(keep: Set<String>) {
        for uid in (try? FileManager.default.contentsOfDirectory(atPath: o.root + "/pods")) ?? [] where !keep.contains(uid) {
            removePodDirectory(uid)
        }
    }

    // MARK: volume sources

    func hostPath(_ h: JSON) throws -> String {
        let path = h["path"].string ?? ""
        guard path.hasPrefix("/"), !path.split(separator: "/").contains("..") else {
            throw ConfigError("hostPath \(path.debugDescription) must be absolute without ..")
        }
        var isDir: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
        switch h["type"].string ?? "" {
        case "DirectoryOrCreate" where !exists:
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        case "FileOrCreate" where !exists:
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o644]) else {
                throw ConfigError("hostPath \(path): cannot create the file")
            }
        case "Directory" where !(exists && isDir.boolValue), "File" where !(exists && !isDir.boolValue):
            throw ConfigError("hostPath \(path) is not a \(h["type"].string == "File" ? "file" : "directory")")
        case "Socket", "CharDevice", "BlockDevice":
            guard exists else { throw ConfigError("hostPath \(path) does not exist") }
        default: break
        }
        return path
    }

    /// A ConfigMap or Secret's key→bytes, or nil when it is missing and optional.
    func keyedData(_ rt: ResourceType, _ namespace: String, _ name: String, optional: Bool) async throws -> [String: Data]? {
        guard let obj = try await api.getIfExists(rt, namespace: namespace, name: name) else {
            if optional { return nil }
            throw ConfigError("\(rt.kind.lowercased()) \(name.debugDescription) not found")
        }
        var out: [String: Data] = [:]
        if rt == .secrets {
            for (k, v) in obj["data"].object ?? [:] {
                guard let d = Data(base64Encoded: v.string ?? "") else { throw ConfigError("secret \(name): key \(k) is not base64") }
                out[k] = d
            }
            for (k, v) in obj["stringData"].object ?? [:] { out[k] = Data((v.string ?? "").utf8) }
        } else {
            for (k, v) in obj["data"].object ?? [:] { out[k] = Data((v.string ?? "").utf8) }
            for (k, v) in obj["binaryData"].object ?? [:] { out[k] = Data(base64Encoded: v.string ?? "") ?? Data() }
        }
        return out
    }

    func configMapFiles(_ ns: String, _ src: JSON, defaultMode: Int) async throws -> [(path: String, data: Data, mode: Int)] {
        try await keyFiles(.configmaps, ns, src, defaultMode: defaultMode)
    }

    func secretFiles(_ ns: String, _ src: JSON, defaultMode: Int) async throws -> [(path: String, data: Data, mode: Int)] {
        try await keyFiles(.secrets, ns, src, defaultMode: defaultMode)
    }

    /// Files from a ConfigMap or Secret: every key, or the listed items (key, path, mode).
    func keyFiles(_ rt: ResourceType, _ ns: String, _ src: JSON, defaultMode: Int) async throws -> [(path: String, data: Data, mode: Int)] {
        let name = src["name"].string ?? ""
        guard let data = try await keyedData(rt, ns, name, optional: src["optional"].bool == true) else { return [] }
        guard let items = src["items"].array else {
            return data.keys.sorted().map { ($0, data[$0]!, defaultMode) }
        }
        var out: [(path: String, data: Data, mode: Int)] = []
        for it in items {
            let key = it["key"].string ?? ""
            guard let d = data[key] else {
                if src["optional"].bool == true { continue }
                throw ConfigError("\(rt.kind.lowercased()) \(name): no key \(key.debugDescription)")
            }
            out.append((it["path"].string ?? key, d, it["mode"].int ?? defaultMode))
        }
        return out
    }

    func downwardFiles(_ pod: JSON, _ src: JSON, podIP: String, defaultMode: Int) throws -> [(path: String, data: Data, mode: Int)] {
        try (src["items"].array ?? []).map { it in
            let value: String
            if !it["fieldRef"].isNull {
                value = try Self.fieldValue(pod, it["fieldRef"]["fieldPath"].string ?? "", podIP: podIP, hostIP: hostIP)
            } else {
                let c = (pod["spec"]["containers"].array ?? []).first { $0["name"].string == it["resourceFieldRef"]["containerName"].string }
                value = try resourceValue(c ?? [:], it["resourceFieldRef"])
            }
            return (it["path"].string ?? "", Data(value.utf8), it["mode"].int ?? defaultMode)
        }
    }

    /// Makes `dir` hold exactly these files. The directory itself stays (running containers
    /// have it bind-mounted, so it must not be replaced), and a changed file is rewritten in
    /// place: a sandbox keeps the file it looked up, so a new file renamed over the name would
    /// not be seen. (The price: a reader racing an update may read it half-written, where
    /// kubelet's symlink swap is atomic.)
    func writeFiles(_ dir: String, _ files: [(path: String, data: Data, mode: Int)]) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        var keep = Set<String>()
        for f in files {
            guard Self.safeRelativePath(f.path) else { throw ConfigError("file path \(f.path.debugDescription) must be relative without ..") }
            let full = dir + "/" + f.path
            keep.insert(f.path)
            let parent = (full as NSString).deletingLastPathComponent
            try fm.createDirectory(atPath: parent, withIntermediateDirectories: true)
            let mode = f.mode & 0o777
            if fm.contents(atPath: full) == f.data, let a = try? fm.attributesOfItem(atPath: full), (a[.posixPermissions] as? Int) == mode { continue }
            let fd = open(full, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode_t(mode))
            guard fd >= 0 else { throw ConfigError("cannot write \(full): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            let n = f.data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n == f.data.count else { throw ConfigError("cannot write \(full)") }
            fchmod(fd, mode_t(mode))
        }
        // Keys that went away.
        for case let rel as String in fm.enumerator(atPath: dir)?.allObjects ?? [] {
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: dir + "/" + rel, isDirectory: &isDir), !isDir.boolValue, !keep.contains(rel) {
                try? fm.removeItem(atPath: dir + "/" + rel)
            }
        }
    }

    func mountTmpfs(_ dir: String, sizeLimit: JSON) throws {
        if Self.isMountPoint(dir) { return }
        var opts = "mode=0777"
        if let b = Quantity.parse(sizeLimit), b > 0 { opts += ",size=\(Int64(b))" }
        guard mount("tmpfs", dir, "tmpfs", UInt(MS_NOSUID | MS_NODEV), opts) == 0 else {
            throw NodeAgentError("emptyDir medium Memory: mount tmpfs on \(dir): \(String(cString: strerror(errno)))")
        }
    }

    static func isMountPoint(_ path: String) -> Bool {
        var a = stat(), b = stat()
        guard stat(path, &a) == 0, stat(path + "/..", &b) == 0 else { return false }
        return a.st_dev != b.st_dev
    }

    static func safeName(_ s: String) -> Bool {
        !s.isEmpty && s != "." && s != ".." && s.count <= 253 && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-._".contains($0)) }
    }

    static func safeRelativePath(_ p: String) -> Bool {
        !p.isEmpty && !p.hasPrefix("/") && !p.split(separator: "/", omittingEmptySubsequences: false).contains { $0 == ".." || $0.isEmpty }
    }

    // MARK: environment

    /// The container's environment, with $(VAR) references expanded.
    func environment(_ pod: JSON, _ spec: JSON, podIP: String) async throws -> [(String, String)] {
        var env: [(String, String)] = []
        func set(_ k: String, _ v: String) {
            if let i = env.firstIndex(where: { $0.0 == k }) { env[i].1 = v } else { env.append((k, v)) }
        }
        for src in spec["envFrom"].array ?? [] {
            let prefix = src["prefix"].string ?? ""
            let (rt, ref) = src["configMapRef"].isNull ? (ResourceType.secrets, src["secretRef"]) : (.configmaps, src["configMapRef"])
            guard let data = try await keyedData(rt, pod.namespace, ref["name"].string ?? "", optional: ref["optional"].bool == true) else { continue }
            for k in data.keys.sorted() { set(prefix + k, String(decoding: data[k]!, as: UTF8.self)) }
        }
        for e in spec["env"].array ?? [] {
            let name = e["name"].string ?? ""
            let from = e["valueFrom"]
            if from.isNull {
                let vars = Dictionary(env, uniquingKeysWith: { $1 })
                set(name, Self.expand(e["value"].string ?? "", vars))
            } else if !from["fieldRef"].isNull {
                set(name, try Self.fieldValue(pod, from["fieldRef"]["fieldPath"].string ?? "", podIP: podIP, hostIP: hostIP))
            } else if !from["resourceFieldRef"].isNull {
                set(name, try resourceValue(spec, from["resourceFieldRef"]))
            } else {
                let (rt, ref) = from["configMapKeyRef"].isNull ? (ResourceType.secrets, from["secretKeyRef"]) : (.configmaps, from["configMapKeyRef"])
                let optional = ref["optional"].bool == true
                guard let data = try await keyedData(rt, pod.namespace, ref["name"].string ?? "", optional: optional) else { continue }
                let key = ref["key"].string ?? ""
                guard let d = data[key] else {
                    if optional { continue }
                    throw ConfigError("couldn't find key \(key) in \(rt.kind) \(pod.namespace)/\(ref["name"].string ?? "")")
                }
                set(name, String(decoding: d, as: UTF8.self))
            }
        }
        return env
    }

    /// $(NAME) becomes NAME's value when it is defined, and stays as written when not; $$ is a literal $.
    static func expand(_ s: String, _ vars: [String: String]) -> String {
        guard s.contains("$") else { return s }
        var out = "", i = s.startIndex
        while i < s.endIndex {
            let c = s[i], n = s.index(after: i)
            if c == "$", n < s.endIndex, s[n] == "$" {
                out.append("$"); i = s.index(after: n); continue
            }
            if c == "$", n < s.endIndex, s[n] == "(", let close = s[n...].firstIndex(of: ")") {
                let name = String(s[s.index(after: n)..<close])
                if let v = vars[name] { out += v } else { out += s[i...close] }
                i = s.index(after: close); continue
            }
            out.append(c); i = n
        }
        return out
    }

    static func fieldValue(_ pod: JSON, _ path: String, podIP: String, hostIP: String) throws -> String {
        func mapValue(_ m: String, _ prefix: String) -> String? {
            guard path.hasPrefix(prefix + "['"), path.hasSuffix("']") else { return nil }
            let key = String(path.dropFirst(prefix.count + 2).dropLast(2))
            return pod["metadata"][m][key].string ?? ""
        }
        func all(_ m: String) -> String {
            (pod["metadata"][m].object ?? [:]).keys.sorted().map { "\($0)=\"\(pod["metadata"][m][$0].string ?? "")\"" }.joined(separator: "\n")
        }
        switch path {
        case "metadata.name": return pod.name
        case "metadata.namespace": return pod.namespace
        case "metadata.uid": return pod.uid
        case "metadata.labels": return all("labels")
        case "metadata.annotations": return all("annotations")
        case "spec.nodeName": return pod["spec"]["nodeName"].string ?? ""
        case "spec.serviceAccountName": return pod["spec"]["serviceAccountName"].string ?? "default"
        case "status.podIP", "status.podIPs": return podIP
        case "status.hostIP", "status.hostIPs": return hostIP
        default:
            if let v = mapValue("labels", "metadata.labels") ?? mapValue("annotations", "metadata.annotations") { return v }
            throw ConfigError("fieldRef \(path.debugDescription) is not supported")
        }
    }

    /// limits.cpu, limits.memory, requests.* (and ephemeral-storage) divided by the divisor, rounded up;
    /// a limit that is not set is the node's capacity.
    func resourceValue(_ spec: JSON, _ ref: JSON) throws -> String {
        let res = ref["resource"].string ?? ""
        let parts = res.split(separator: ".", maxSplits: 1).map(String.init)
        guard parts.count == 2, ["limits", "requests"].contains(parts[0]), ["cpu", "memory", "ephemeral-storage"].contains(parts[1]) else {
            throw ConfigError("resourceFieldRef \(res.debugDescription) is not supported")
        }
        var value = Quantity.parse(spec["resources"][parts[0]][parts[1]])
        if value == nil && parts[0] == "requests" { value = Quantity.parse(spec["resources"]["limits"][parts[1]]) }
        if value == nil {
            value = parts[0] == "requests" ? 0 : Quantity.parse(nodeStatus(ready: true)["capacity"][parts[1]])
        }
        let divisor = Quantity.parse(ref["divisor"]).flatMap { $0 > 0 ? $0 : nil } ?? 1
        return String(Int64(((value ?? 0) / divisor).rounded(.up)))
    }
}
