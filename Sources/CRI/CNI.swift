// CNI: the pod network through the standard CNI plugins (Debian's
// containernetworking-plugins in /usr/lib/cni), called the way other
// runtimes call them: the first network configuration (by file name) in the
// configuration directory, each plugin of its chain run with CNI_COMMAND=ADD
// in order (the previous plugin's result passed on as prevResult) and DEL in
// reverse order, CNI_IFNAME=eth0, the pod's network namespace in CNI_NETNS.
// A plugin declaring the portMappings capability (portmap) gets the pod's
// host ports as runtimeConfig.portMappings, on ADD and on DEL. A host-local IPAM without a
// subnet or ranges of its own gets the node's pod CIDR (what the node agent passed in
// UpdateRuntimeConfig: its Node's spec.podCIDR), so one configuration serves every node,
// each handing out addresses from its own range; until the runtime knows the CIDR such a
// network is not ready.

import Foundation
import Glibc

struct CNIResult { var ip: String }

struct CNINetwork {
    var name: String
    var cniVersion: String
    var plugins: [[String: Any]]
    var binDir: String
    /// The node's pod CIDR, for a host-local IPAM without a subnet (empty: not known yet).
    var podCIDR = ""

    /// Whether a plugin's host-local IPAM takes its range from the node's pod CIDR.
    static func wantsPodCIDR(_ plugin: [String: Any]) -> Bool {
        guard let ipam = plugin["ipam"] as? [String: Any], ipam["type"] as? String == "host-local" else { return false }
        return ipam["subnet"] == nil && ipam["ranges"] == nil
    }
    var needsPodCIDR: Bool { plugins.contains(where: Self.wantsPodCIDR) }

    static func load(confDir: String, binDir: String) throws -> CNINetwork {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: confDir)) ?? [])
            .filter { $0.hasSuffix(".conflist") || $0.hasSuffix(".conf") || $0.hasSuffix(".json") }.sorted()
        guard let f = files.first else { throw CRIError.failedPrecondition("no CNI network configuration in \(confDir)") }
        let path = confDir + "/" + f
        guard let data = FileManager.default.contents(atPath: path),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CRIError.failedPrecondition("\(path) is not a JSON object")
        }
        let version = obj["cniVersion"] as? String ?? "1.0.0"
        guard let name = obj["name"] as? String, !name.isEmpty else { throw CRIError.failedPrecondition("\(path) has no name") }
        var plugins: [[String: Any]]
        if let list = obj["plugins"] as? [[String: Any]] { plugins = list } else { plugins = [obj] }
        guard !plugins.isEmpty else { throw CRIError.failedPrecondition("\(path) has no plugins") }
        for p in plugins {
            guard let t = p["type"] as? String, !t.contains("/"), access(binDir + "/" + t, X_OK) == 0 else {
                throw CRIError.failedPrecondition("\(path): plugin \(p["type"] ?? "?") not found in \(binDir)")
            }
        }
        return CNINetwork(name: name, cniVersion: version, plugins: plugins, binDir: binDir)
    }

    func add(containerID: String, netns: String, podName: String, podNamespace: String, podUID: String,
             portMappings: [PortMappingRecord] = []) throws -> CNIResult {
        let args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=\(podNamespace);K8S_POD_NAME=\(podName);K8S_POD_INFRA_CONTAINER_ID=\(containerID);K8S_POD_UID=\(podUID)"
        var prev: Any? = nil
        for (i, p) in plugins.enumerated() {
            do {
                let out = try invoke(p, command: "ADD", containerID: containerID, netns: netns, args: args, prevResult: prev,
                                     portMappings: portMappings)
                prev = try JSONSerialization.jsonObject(with: out)
            } catch {
                // Undo what the earlier plugins did.
                for q in plugins[..<i].reversed() {
                    _ = try? invoke(q, command: "DEL", containerID: containerID, netns: netns, args: args, prevResult: nil,
                                    portMappings: portMappings)
                }
                throw error
            }
        }
        var ip = ""
        if let r = prev as? [String: Any], let ips = r["ips"] as? [[String: Any]],
           let a = ips.first?["address"] as? String {
            ip = String(a.split(separator: "/")[0])
        }
        return CNIResult(ip: ip)
    }

    func del(containerID: String, netns: String, portMappings: [PortMappingRecord] = []) throws {
        var first: Error? = nil
        for p in plugins.reversed() {
            do {
                _ = try invoke(p, command: "DEL", containerID: containerID, netns: netns, args: "IgnoreUnknown=1", prevResult: nil,
                               portMappings: portMappings)
            } catch {
                if first == nil { first = error }
            }
        }
        if let first { throw first }
    }

    private func invoke(_ plugin: [String: Any], command: String, containerID: String, netns: String,
                        args: String, prevResult: Any?, portMappings: [PortMappingRecord]) throws -> Data {
        var conf = plugin
        if let caps = plugin["capabilities"] as? [String: Any], caps["portMappings"] as? Bool == true {
            // Only mappings with a host port are the plugin's business.
            let maps: [[String: Any]] = portMappings.filter { $0.hostPort > 0 }.map { m in
                var d: [String: Any] = ["hostPort": Int(m.hostPort), "containerPort": Int(m.containerPort), "protocol": m.proto.lowercased()]
                if !m.hostIP.isEmpty { d["hostIP"] = m.hostIP }
                return d
            }
            if !maps.isEmpty { conf["runtimeConfig"] = ["portMappings": maps] }
        }
        if Self.wantsPodCIDR(plugin), var ipam = plugin["ipam"] as? [String: Any] {
            guard !podCIDR.isEmpty else {
                throw CRIError.failedPrecondition("the CNI network \(name) takes the node's pod CIDR, and the runtime has none yet (UpdateRuntimeConfig)")
            }
            ipam["ranges"] = [[["subnet": podCIDR]]]
            conf["ipam"] = ipam
        }
        conf["name"] = name
        conf["cniVersion"] = cniVersion
        if let prevResult { conf["prevResult"] = prevResult }
        let input = try JSONSerialization.data(withJSONObject: conf)
        let type = plugin["type"] as! String
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binDir + "/" + type)
        p.environment = [
            "CNI_COMMAND": command, "CNI_CONTAINERID": containerID, "CNI_NETNS": netns, "CNI_IFNAME": "eth0",
            "CNI_PATH": binDir, "CNI_ARGS": args, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        ]
        let inPipe = Pipe(), outPipe = Pipe(), errPipe = Pipe()
        p.standardInput = inPipe; p.standardOutput = outPipe; p.standardError = errPipe
        try p.run()
        inPipe.fileHandleForWriting.write(input)
        try? inPipe.fileHandleForWriting.close()
        let out = outPipe.fileHandleForReading.readDataToEndOfFile()
        let err = errPipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            var msg = String(decoding: err, as: UTF8.self)
            if let o = try? JSONSerialization.jsonObject(with: out) as? [String: Any], let m = o["msg"] as? String { msg = m }
            throw CRIError.internalError("CNI plugin \(type) \(command) failed (status \(p.terminationStatus)): \(msg)")
        }
        return out
    }
}
