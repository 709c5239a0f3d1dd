// CNI as `moat cri` calls it: a chained configuration (bridge with
// host-local IPAM, then tuning, which must get the bridge's prevResult)
// added to and deleted from a pod network namespace. Everything happens in
// namespaces the test makes: the plugins run inside a "node" namespace of
// its own (through wrapper scripts), so no bridge or route touches the host.

import CRIAPI
import Foundation
import XCTest
@testable import CRI

final class CRICNITests: XCTestCase {
    /// Whether /run/netns was a mount point before the test: iproute2's first `ip netns add`
    /// bind-mounts it onto itself, a mount the test then undoes in `tearDown`.
    var netnsWasMounted = true

    static func netnsDirMounted() -> Bool {
        let info = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        return info.split(separator: "\n").contains { $0.split(separator: " ").dropFirst(4).first == "/run/netns" }
    }

    override func setUp() {
        super.setUp()
        netnsWasMounted = Self.netnsDirMounted()
    }

    override func tearDown() {
        // Only once no namespace is left there (the test's are deleted by then; another's
        // would keep the mount needed).
        if !netnsWasMounted, Self.netnsDirMounted(),
           ((try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? ["?"]).isEmpty {
            XCTAssertEqual(umount("/run/netns"), 0, "undoing iproute2's /run/netns self-bind mount")
        }
        super.tearDown()
    }

    func sh(_ cmd: String) -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", cmd]
        let out = Pipe()
        p.standardOutput = out; p.standardError = out
        do { try p.run() } catch { return (-1, "\(error)") }
        let d = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: d, as: UTF8.self))
    }

    /// A node namespace of the test's own where the plugins run (through
    /// wrapper scripts in dir/bin), and a chained bridge + tuning
    /// configuration in dir/conf. The caller deletes `node` and `dir`.
    /// Without a subnet, the IPAM names none (the runtime fills in the node's pod CIDR).
    func makeTestNetwork(node: String, dir: String, subnet: String?) throws {
        try CRITestEnv.requireRoot()
        for b in ["bridge", "host-local", "tuning"] where !FileManager.default.isExecutableFile(atPath: "/usr/lib/cni/" + b) {
            let _: Void = try CRITestEnv.missing("/usr/lib/cni/\(b) (containernetworking-plugins)")
        }
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") || FileManager.default.isExecutableFile(atPath: "/sbin/ip") else {
            return try CRITestEnv.missing("ip (iproute2)")
        }
        try FileManager.default.createDirectory(atPath: dir + "/bin", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/conf", withIntermediateDirectories: true)
        XCTAssertEqual(sh("ip netns add \(node)").0, 0)
        for b in ["bridge", "host-local", "tuning"] {
            let w = dir + "/bin/" + b
            try "#!/bin/sh\nexec ip netns exec \(node) /usr/lib/cni/\(b) \"$@\"\n".write(toFile: w, atomically: true, encoding: .utf8)
            chmod(w, 0o755)
        }
        let ranges = subnet.map { #", "ranges": [[{"subnet": "\#($0)"}]]"# } ?? ""
        let conf = """
        {"cniVersion": "1.0.0", "name": "moat-test", "plugins": [
          {"type": "bridge", "bridge": "moatbr0", "isGateway": true, "ipMasq": false,
           "ipam": {"type": "host-local", "dataDir": "\(dir)/ipam"\(ranges)}},
          {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.accept_local": "1"}}
        ]}
        """
        try conf.write(toFile: dir + "/conf/10-moat.conflist", atomically: true, encoding: .utf8)
    }

    func testChainedBridgeAddAndDelInANamespaceTheTestMade() throws {
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let node = "moat-cni-node-" + tag, pod = "moat-cni-pod-" + tag
        let dir = NSTemporaryDirectory() + "moat-cni-" + tag
        defer {
            _ = sh("ip netns del \(pod) 2>/dev/null; ip netns del \(node) 2>/dev/null")
            try? FileManager.default.removeItem(atPath: dir)
        }
        try makeTestNetwork(node: node, dir: dir, subnet: "10.99.7.0/24")
        XCTAssertEqual(sh("ip netns add \(pod)").0, 0)

        let net = try CNINetwork.load(confDir: dir + "/conf", binDir: dir + "/bin")
        XCTAssertEqual(net.name, "moat-test")
        XCTAssertEqual(net.plugins.count, 2)
        let r = try net.add(containerID: "c0ffee", netns: "/var/run/netns/" + pod, podName: "p", podNamespace: "default", podUID: "u")
        XCTAssertTrue(r.ip.hasPrefix("10.99.7."), r.ip)
        let shown = sh("ip netns exec \(pod) ip -4 addr show eth0")
        XCTAssertTrue(shown.1.contains(r.ip + "/24"), shown.1)
        // tuning ran after bridge, on the interface bridge made.
        XCTAssertEqual(sh("ip netns exec \(pod) cat /proc/sys/net/ipv4/conf/eth0/accept_local").1.trimmingCharacters(in: .whitespacesAndNewlines), "1")
        // The node side reaches the pod over the bridge, inside the test's namespaces.
        XCTAssertEqual(sh("ip netns exec \(node) busybox ping -c1 -W2 \(r.ip)").0, 0)

        try net.del(containerID: "c0ffee", netns: "/var/run/netns/" + pod)
        XCTAssertNotEqual(sh("ip netns exec \(pod) ip link show eth0").0, 0, "eth0 still there after DEL")
        // The address went back to the pool.
        let leases = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/ipam/moat-test")) ?? []
        XCTAssertFalse(leases.contains(r.ip), "\(leases)")
    }

    /// A host-local IPAM without a subnet takes the node's pod CIDR (UpdateRuntimeConfig's),
    /// on ADD and on DEL; without one it refuses before any plugin runs.
    func testRangeWithoutSubnetTakesThePodCIDR() throws {
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let node = "moat-cni-node-" + tag, pod = "moat-cni-pod-" + tag
        let dir = NSTemporaryDirectory() + "moat-cni-" + tag
        defer {
            _ = sh("ip netns del \(pod) 2>/dev/null; ip netns del \(node) 2>/dev/null")
            try? FileManager.default.removeItem(atPath: dir)
        }
        try makeTestNetwork(node: node, dir: dir, subnet: nil)
        XCTAssertEqual(sh("ip netns add \(pod)").0, 0)
        var net = try CNINetwork.load(confDir: dir + "/conf", binDir: dir + "/bin")
        XCTAssertTrue(net.needsPodCIDR)
        XCTAssertThrowsError(try net.add(containerID: "c0ffee", netns: "/var/run/netns/" + pod, podName: "p", podNamespace: "default", podUID: "u")) { e in
            XCTAssertTrue("\(e)".contains("pod CIDR"), "\(e)")
        }
        XCTAssertNotEqual(sh("ip netns exec \(pod) ip link show eth0").0, 0, "a plugin ran without a pod CIDR")
        net.podCIDR = "10.99.9.0/24"
        let r = try net.add(containerID: "c0ffee", netns: "/var/run/netns/" + pod, podName: "p", podNamespace: "default", podUID: "u")
        XCTAssertTrue(r.ip.hasPrefix("10.99.9."), r.ip)
        try net.del(containerID: "c0ffee", netns: "/var/run/netns/" + pod)
        let leases = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/ipam/moat-test")) ?? []
        XCTAssertFalse(leases.contains(r.ip), "\(leases)")
    }

    func testBrokenConfigurationsAreReported() throws {
        let dir = NSTemporaryDirectory() + "moat-cni-bad-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertThrowsError(try CNINetwork.load(confDir: dir, binDir: "/usr/lib/cni")) { e in
            XCTAssertTrue("\(e)".contains("no CNI network configuration"), "\(e)")
        }
        try "{not json".write(toFile: dir + "/10-a.conflist", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CNINetwork.load(confDir: dir, binDir: "/usr/lib/cni"))
        try #"{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"../../bin/sh"}]}"#.write(toFile: dir + "/10-a.conflist", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CNINetwork.load(confDir: dir, binDir: "/usr/lib/cni")) { e in
            XCTAssertTrue("\(e)".contains("not found"), "\(e)")
        }
    }

    /// The same network through `moat cri`: RunPodSandbox adds the pod's
    /// own network namespace (its Sentry's), PodSandboxStatus reports the
    /// address, the node reaches the pod over the bridge, the pod's host
    /// port reaches portmap (a DNAT rule in the node), and removal gives the
    /// address back and removes the rule.
    func testPodGetsItsAddressFromCNIThroughMoatCRI() async throws {
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let node = "moat-cni-node-" + tag
        let dir = NSTemporaryDirectory() + "moat-cni-" + tag
        defer {
            _ = sh("ip netns del \(node) 2>/dev/null")
            try? FileManager.default.removeItem(atPath: dir)
        }
        try makeTestNetwork(node: node, dir: dir, subnet: "10.99.8.0/24")
        // portmap after the bridge: it must get the pod's host ports.
        guard FileManager.default.isExecutableFile(atPath: "/usr/lib/cni/portmap"),
              FileManager.default.isExecutableFile(atPath: "/usr/sbin/iptables") else {
            return try CRITestEnv.missing("/usr/lib/cni/portmap and iptables")
        }
        try "#!/bin/sh\nexec ip netns exec \(node) /usr/lib/cni/portmap \"$@\"\n".write(toFile: dir + "/bin/portmap", atomically: true, encoding: .utf8)
        chmod(dir + "/bin/portmap", 0o755)
        let confPath = dir + "/conf/10-moat.conflist"
        let portmap = ",\n  {\"type\": \"portmap\", \"capabilities\": {\"portMappings\": true}}\n]}"
        try (try String(contentsOfFile: confPath, encoding: .utf8)).replacingOccurrences(of: "\n]}", with: portmap)
            .write(toFile: confPath, atomically: true, encoding: .utf8)
        guard FileManager.default.fileExists(atPath: CRITestEnv.rootfs + "/bin/busybox") else {
            return try CRITestEnv.missing("the busybox rootfs (bash rootfs/busybox.sh)")
        }
        let cri = try CRIProcess(extraArgs: ["--cni-conf-dir", dir + "/conf", "--cni-bin-dir", dir + "/bin",
                                             "--rootfs-image", "busybox=" + CRITestEnv.rootfs])
        defer { cri.stop(); cri.removeDirectory() }
        try cri.start()
        try await cri.withClient { rt in
            var r = Runtime_V1_RunPodSandboxRequest()
            r.config = podConfig(name: "networked")
            var pm = Runtime_V1_PortMapping(); pm.containerPort = 8080; pm.hostPort = 18080
            r.config.portMappings = [pm]
            let pod = try await rt.runPodSandbox(r).podSandboxID
            let rules = { self.sh("ip netns exec \(node) iptables -w -t nat -S").1 }
            XCTAssertTrue(rules().contains("--dport 18080"), "no DNAT rule for the host port:\n" + rules())
            var ps = Runtime_V1_PodSandboxStatusRequest(); ps.podSandboxID = pod
            let ip = try await rt.podSandboxStatus(ps).status.network.ip
            XCTAssertTrue(ip.hasPrefix("10.99.8."), ip)
            XCTAssertEqual(sh("ip netns exec \(node) busybox ping -c1 -W2 \(ip)").0, 0, "the node cannot reach the pod")
            var rp = Runtime_V1_RemovePodSandboxRequest(); rp.podSandboxID = pod
            _ = try await rt.removePodSandbox(rp)
            XCTAssertFalse(rules().contains("--dport 18080"), "the host port's rule outlived the pod:\n" + rules())
            let leases = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/ipam/moat-test")) ?? []
            XCTAssertFalse(leases.contains(ip), "\(leases)")
        }
    }
}
