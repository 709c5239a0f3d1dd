// Three nodes on one machine, each in a network namespace of the test's, joined to a bridge
// the test made (in a fourth namespace, the "switch"): s1 is `moat server` itself (API server,
// controllers, cluster DNS, its own agent and runtime), n2 and n3 are `moat cri` + `moat node`
// pairs joining through the server's local socket. Each node has a pod CIDR, a bridge CNI
// network for it, and routes to the other nodes' pod CIDRs through their addresses on the switch:
//
//   switch netns: br0 ── p1 ── eth0 10.199.0.1 (s1: pods 10.244.0.0/24, API server, DNS :53)
//                     ├─ p2 ── eth0 10.199.0.2 (n2: pods 10.244.1.0/24)
//                     └─ p3 ── eth0 10.199.0.3 (n3: pods 10.244.2.0/24)
//
// The pod CIDRs come from the NodeIPAM controller: the nodes' CNI configuration names no
// subnet, and each runtime takes its Node's spec.podCIDR, which its agent passes on.
//
// A Deployment of 3 busybox httpd pods on s1 and n2 (nodeSelector) behind a Service is reached
// by its ClusterIP and by its DNS name from a client pod on n3 (all three pods answer); a
// rolling update while the client loops over the ClusterIP fails no request; n2's agent is
// killed and its pods come back on s1 after the eviction timeout, the Service answering from
// them. No address the test uses exists outside its namespaces: the nodes have no default route
// and the pods a route to the cluster CIDR only, so anything else fails locally. Afterwards
// nothing is left: no process, no namespace, no route or firewall rule naming the test's
// addresses (everything the CNI plugins made lived inside the nodes' namespaces).
//
// The same runs on SQLite (the server's default) and on a 3-member etcd cluster (Debian's
// etcd-server, one member in each node's namespace on its switch address; the server is given
// all three, e0 on its own node first). On etcd a writer creates ConfigMaps through kubectl
// during the rolling update, and a few seconds into it e0 (the member the store talks to) is
// killed with SIGKILL: the client still sees no failed request, no write fails, every
// acknowledged ConfigMap is in both surviving members, and the Deployment, its ReplicaSets and
// pods end as they should, the API and both members agreeing on each object's revision. On
// both stores the rollout's end state is checked: the Deployment observed its last generation
// with 3 updated ready replicas, the new ReplicaSet owns the 3 pods, the old one is scaled to 0.

import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

extension MoatServerTests {
    /// `ip` with these arguments; fails the test when it fails.
    @discardableResult
    func ip(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let r = try run("/usr/sbin/ip", args)
        XCTAssertEqual(r.code, 0, "ip \(args.joined(separator: " ")): \(r.out)", file: file, line: line)
        return r.out
    }

    /// A process of the test's (the moat binary) inside a network namespace (nsenter execs it:
    /// the pid is moat's).
    func startInNetns(_ netns: String, _ args: [String], log: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        p.arguments = ["--net=" + netns, "--", Self.repo + "/.build/debug/moat"] + args
        FileManager.default.createFile(atPath: log, contents: nil)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        p.standardOutput = h; p.standardError = h; p.standardInput = FileHandle.nullDevice
        try p.run()
        return p
    }

    /// What of the test could show on the host: namespaces, and routes and firewall rules that
    /// name the test's addresses.
    func hostNetworkTraces(tag: String) throws -> [String] {
        var found: [String] = []
        for l in try run("/usr/sbin/ip", ["netns", "list"]).out.split(separator: "\n") where l.hasPrefix(tag + "-") { found.append("netns " + l) }
        for l in try run("/usr/sbin/ip", ["-4", "route", "show", "table", "all"]).out.split(separator: "\n") where l.contains("10.199.0.") {
            found.append("route " + l)
        }
        for l in try run("/usr/sbin/ip", ["-o", "link"]).out.split(separator: "\n") where l.contains(tag) { found.append("link " + l) }
        if FileManager.default.isExecutableFile(atPath: "/usr/sbin/iptables-save") {
            for l in try run("/usr/sbin/iptables-save", []).out.split(separator: "\n") where l.contains("10.199.0.") || l.contains(tag) {
                found.append("iptables " + l)
            }
        }
        return found
    }

    /// Whether `/run/netns` is a mount point. iproute2's first `ip netns add` bind-mounts the
    /// directory onto itself (and makes it shared) so that the namespaces' own bind mounts
    /// propagate; that mount outlives the namespaces unless whoever caused it undoes it.
    static func runNetnsIsMounted() -> Bool {
        let info = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        return info.split(separator: "\n").contains { $0.split(separator: " ").dropFirst(4).first == "/run/netns" }
    }

    /// Undoes iproute2's self-bind mount of /run/netns when this test caused it (it was not a
    /// mount point before) and no namespace is left in it (none of the test's or anyone's).
    static func undoRunNetnsMount(ifMadeBy wasMounted: Bool) {
        guard !wasMounted, runNetnsIsMounted(),
              ((try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? ["?"]).isEmpty else { return }
        _ = umount("/run/netns")
    }

    func testThreeNodesInNetworkNamespaces() throws { try threeNodes(onEtcd: false) }

    func testThreeNodesInNetworkNamespacesOnAThreeMemberEtcd() throws { try threeNodes(onEtcd: true) }

    /// The Deployment, its ReplicaSets and pods as the API shows them, and on etcd the same
    /// objects' mod revisions in `survivors`: once the rollout to `version` is over, the
    /// Deployment observed its last generation and has 3 updated, ready replicas; the
    /// ReplicaSet of `version` has 3 and owns every pod, each older one is scaled to 0.
    func checkRolloutEndState(version: String, etcd: (prefix: String, survivors: [String], netns: String)?) throws {
        let deployment = "jsonpath={.metadata.generation}/{.status.observedGeneration} {.status.replicas} {.status.updatedReplicas} {.status.readyReplicas} {.status.availableReplicas}"
        var seen = ""
        try waitFor("the Deployment's status to settle", timeout: 60) {
            seen = try kubectl(["get", "deployment", "web", "-o", deployment]).out
            let f = seen.split(separator: " ")
            let gen = f.first?.split(separator: "/") ?? []
            return f.count == 5 && gen.count == 2 && gen[0] == gen[1] && f.dropFirst().allSatisfy { $0 == "3" }
        }
        var sets: [String] = [], owners: [String] = []
        try waitFor("one ReplicaSet of \(version) with 3 replicas owning every pod, the others at 0", timeout: 60) {
            sets = try kubectl(["get", "replicasets", "-l", "app=web", "-o",
                                "jsonpath={range .items[*]}{.metadata.name}={.spec.template.spec.containers[0].env[0].value}={.spec.replicas}={.status.replicas} {end}"])
                .out.split(separator: " ").map(String.init)
            owners = try kubectl(["get", "pods", "-l", "app=web", "-o", "jsonpath={range .items[*]}{.metadata.ownerReferences[0].name}={.status.phase} {end}"])
                .out.split(separator: " ").map(String.init)
            // name, version, spec.replicas, status.replicas (left out when 0)
            let rs = sets.map { $0.split(separator: "=", omittingEmptySubsequences: false).map(String.init) }
            let current = rs.filter { $0.count == 4 && $0[1] == version }
            guard current.count == 1, current[0][2...] == ["3", "3"] else { return false }
            return rs.count >= 2 && rs.allSatisfy { $0 == current[0] || ($0.count == 4 && $0[2] == "0" && ["0", ""].contains($0[3])) }
                && owners == Array(repeating: "\(current[0][0])=Running", count: 3)
        }
        print("rollout end state: deployment \(seen); replicasets \(sets); pods \(owners)")
        guard let etcd else { return }
        // The API's objects and revisions are the members' (read from each, not through Moat;
        // read again while a late status write lands between the reads).
        for resource in ["deployments.apps", "replicasets.apps", "pods"] {
            let kind = String(resource.split(separator: ".")[0])
            var listed: Set<String> = [], stored: [String: Set<String>] = [:]
            for _ in 0..<20 {
                let api = try kubectl(["get", kind, "-o", "jsonpath={range .items[*]}{.metadata.name}={.metadata.resourceVersion} {end}"])
                XCTAssertEqual(api.code, 0, api.out)
                listed = Set(api.out.split(separator: " ").map(String.init))
                for e in etcd.survivors {
                    let base = "\(etcd.prefix)/\(resource)/default/"
                    stored[e] = Set(try etcdKeys(e, prefix: base, netns: etcd.netns).map { "\($0.key.dropFirst(base.count))=\($0.value.revision)" })
                }
                if stored.values.allSatisfy({ $0 == listed }) { break }
                usleep(500_000)
            }
            XCTAssertFalse(listed.isEmpty, "no \(kind) through the API")
            for e in etcd.survivors { XCTAssertEqual(stored[e], listed, "\(resource) in \(e) and through the API") }
        }
    }

    func threeNodes(onEtcd: Bool) throws {
        if onEtcd {
            try require(FileManager.default.isExecutableFile(atPath: "/usr/bin/etcd"), "etcd (Debian's etcd-server; .ci/setup installs it)")
        }
        for tool in ["/usr/sbin/ip", "/usr/bin/nsenter", "/usr/lib/cni/bridge", "/usr/lib/cni/host-local"] {
            try require(FileManager.default.isExecutableFile(atPath: tool), "\(tool) (.ci/setup installs iproute2, util-linux, containernetworking-plugins)")
        }
        let tag = "mt\(getpid() % 100000)"
        let names = ["s1", "n2", "n3"]
        let sw = "\(tag)-sw"
        func path(_ n: String) -> String { "/run/netns/\(tag)-\(n)" }
        func nodeIP(_ i: Int) -> String { "10.199.0.\(i + 1)" }
        func podCIDR(_ i: Int) -> String { "10.244.\(i).0/24" }
        let busybox = "busybox=" + Self.repo + "/.cache/rootfs/busybox"
        XCTAssertEqual(try hostNetworkTraces(tag: tag), [], "traces before the test")

        var server: Process? = nil
        var runtimes: [Process] = [], agents: [String: Process] = [:]
        var members: EtcdMembers? = nil, writer: ConfigMapWriter? = nil
        let etcdRoot = dir + "/etcd"
        let netnsWasMounted = Self.runNetnsIsMounted()
        addTeardownBlock { [self] in
            writer?.stop()
            // The server first (it stops its agent's pods, its runtime and the API server), then
            // the other nodes' agents (they stop their pods), the pods of a killed agent, the
            // runtimes, and last the namespaces, once nothing runs in them.
            if let s = server, s.isRunning {
                s.terminate()
                let deadline = Date().addingTimeInterval(150)
                while s.isRunning && Date() < deadline { usleep(100_000) }
                if s.isRunning { kill(s.processIdentifier, SIGKILL) }
            }
            for a in agents.values where a.isRunning { a.terminate(); a.waitUntilExit() }
            for n in names.dropFirst() {
                let pods = dir + "/\(n)/run/pods"
                for id in (try? FileManager.default.contentsOfDirectory(atPath: pods)) ?? [] {
                    let t = (try? String(contentsOfFile: "\(pods)/\(id)/pod.state", encoding: .utf8)) ?? ""
                    for l in t.split(separator: "\n") where l.hasPrefix("pid=") { if let pid = pid_t(l.dropFirst(4)) { kill(pid, SIGKILL) } }
                }
            }
            for r in runtimes where r.isRunning { r.terminate(); r.waitUntilExit() }
            // The etcd members last (the server and the agents talk to them until they stop).
            if let m = members {
                m.stop()
                for i in 0..<3 {
                    XCTAssertFalse(FileManager.default.fileExists(atPath: "\(etcdRoot)/e\(i)/data"), "member e\(i)'s data left")
                    if (testRun?.totalFailureCount ?? 0) > 0 { print("--- etcd e\(i)\n" + String(m.log(i).suffix(2000))) }
                }
            }
            if (testRun?.totalFailureCount ?? 0) > 0 {
                for n in names.dropFirst() {
                    for f in ["node", "cri"] {
                        print("--- \(n)/\(f).log\n" + String(((try? String(contentsOfFile: dir + "/\(n)/\(f).log", encoding: .utf8)) ?? "").suffix(3000)))
                    }
                }
            }
            for pid in processes(mentioning: dir) { kill(pid, SIGKILL) }
            usleep(300_000)
            for n in names + ["sw"] { _ = try? run("/usr/sbin/ip", ["netns", "delete", "\(tag)-\(n)"]) }
            Self.undoRunNetnsMount(ifMadeBy: netnsWasMounted)
            if !netnsWasMounted, ((try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []).isEmpty {
                XCTAssertFalse(Self.runNetnsIsMounted(), "iproute2's /run/netns self-bind mount left")
            }
            let left = (try? hostNetworkTraces(tag: tag)) ?? ["(could not list)"]
            XCTAssertEqual(left, [], "host state left")
            XCTAssertEqual(processes(mentioning: dir), [], "processes naming the test's directory")
        }

        // The switch and the nodes' namespaces, each node's eth0 on the switch's bridge.
        try ip(["netns", "add", sw])
        for n in names { try ip(["netns", "add", "\(tag)-\(n)"]) }
        try ip(["-n", sw, "link", "add", "br0", "type", "bridge"])
        try ip(["-n", sw, "link", "set", "br0", "up"])
        for (i, n) in names.enumerated() {
            let ns = "\(tag)-\(n)"
            try ip(["-n", sw, "link", "add", "p\(i + 1)", "type", "veth", "peer", "name", "eth0", "netns", ns])
            try ip(["-n", sw, "link", "set", "p\(i + 1)", "master", "br0", "up"])
            try ip(["-n", ns, "link", "set", "lo", "up"])
            try ip(["-n", ns, "addr", "add", nodeIP(i) + "/24", "dev", "eth0"])
            try ip(["-n", ns, "link", "set", "eth0", "up"])
            XCTAssertEqual(try run("/usr/bin/nsenter", ["--net=" + path(n), "--", "/usr/sbin/sysctl", "-qw", "net.ipv4.ip_forward=1"]).code, 0)
            // The node's pod network: a bridge (cni0, in the node's namespace) for its pod CIDR
            // (no subnet here: the runtime fills in its Node's); pods get routes to the cluster
            // CIDR and to the nodes' network (the service proxies connect from their node's
            // address), nothing else. Address bookkeeping stays in the test's directory.
            let conf = """
                {"cniVersion": "1.0.0", "name": "\(tag)-\(n)", "plugins": [{"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
                 "ipam": {"type": "host-local", "routes": [{"dst": "10.244.0.0/16"}, {"dst": "10.199.0.0/24"}], "dataDir": "\(dir)/ipam-\(n)"}}]}
                """
            try FileManager.default.createDirectory(atPath: dir + "/cni-\(n)", withIntermediateDirectories: true)
            try conf.write(toFile: dir + "/cni-\(n)/10-pods.conflist", atomically: true, encoding: .utf8)
        }
        // The nodes see each other across the switch.
        let ping = try run("/usr/bin/nsenter", ["--net=" + path("n3"), "--", "/bin/busybox", "ping", "-c", "1", "-W", "5", nodeIP(0)])
        XCTAssertEqual(ping.code, 0, ping.out)

        // On etcd: a member on each node's switch address, in the node's namespace.
        var store: [String] = []
        let prefix = "/moat-\(getpid())"
        if onEtcd {
            let m = try EtcdMembers(root: etcdRoot, ports: freePort, hosts: names.indices.map(nodeIP), netns: names.map(path))
            members = m
            try waitForMembers(m, netns: path("s1"))
            store = ["--store", "etcd", "--etcd-endpoints", m.endpoints.joined(separator: ","), "--etcd-prefix", prefix]
        }

        // s1: `moat server` in its namespace; the API server on its loopback, the cluster DNS on its switch address.
        kubectlNetns = path("s1")
        let port = freePort()
        server = try startInNetns(path("s1"), ["server", "--data-dir", data, "--listen", "127.0.0.1:\(port)", "--node-name", "s1",
                                               "--eviction-hard", testEvictionHard,
                                               "--cluster-dns", nodeIP(0), "--rootfs-image", busybox, "--cni-conf-dir", dir + "/cni-s1",
                                               "--join-node", "n2", "--join-node", "n3", "--node-grace-period", "20", "--pod-eviction-timeout", "5"] + store,
                                  log: dir + "/server.log")
        self.server = server
        try waitFor("the kubeconfig", timeout: 90) { FileManager.default.fileExists(atPath: data + "/kubeconfig") }
        try waitFor("node s1 Ready", timeout: 60) { try kubectl(["get", "node", "s1"]).out.contains(" Ready ") }
        try waitFor("s1's pod CIDR from the controller", timeout: 30) { try kubectl(["get", "node", "s1", "-o", "jsonpath={.spec.podCIDR}"]).out == podCIDR(0) }
        if let m = members {
            XCTAssertNotNil(try etcdKeys(m.endpoints[1], prefix: prefix + "/", netns: path("s1")).keys.first { $0 == prefix + "/nodes//s1" },
                            "node s1 is not in etcd")
        }

        // n2 and n3: a runtime (its streaming server on the node's address, for kubectl exec)
        // and an agent each, in the node's namespace.
        for (i, n) in names.enumerated().dropFirst() {
            let d = dir + "/" + n
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
            runtimes.append(try startInNetns(path(n), ["cri", "--listen", "unix://\(d)/cri.sock", "--root", d + "/cri", "--state", d + "/run",
                                                        "--rootfs-image", busybox, "--cni-conf-dir", dir + "/cni-\(n)",
                                                        "--streaming-address", nodeIP(i) + ":0"], log: d + "/cri.log"))
            try waitFor("\(n)'s runtime socket", timeout: 60) { FileManager.default.fileExists(atPath: d + "/cri.sock") }
            agents[n] = try startInNetns(path(n), ["node", "--server", "unix://\(data)/api.sock", "--token-file", data + "/pki/node-\(n).token",
                                                    "--cri", "unix://\(d)/cri.sock", "--name", n, "--root", d + "/node", "--log-directory", d + "/logs",
                                                    "--address", nodeIP(i), "--port", "0", "--stop-pods-on-exit",
                                                    "--cluster-dns", "10.96.0.10", "--service-cidr", "10.96.0.0/12", "--dns-upstream", nodeIP(0) + ":53",
                                                    "--eviction-hard", testEvictionHard],
                                         log: d + "/node.log")
            try waitFor("node \(n) Ready", timeout: 60) { try kubectl(["get", "node", n]).out.contains(" Ready ") }
            try waitFor("\(n)'s pod CIDR from the controller", timeout: 30) { try kubectl(["get", "node", n, "-o", "jsonpath={.spec.podCIDR}"]).out == podCIDR(i) }
        }
        // Routes between the nodes: each other node's pod CIDR through its address.
        for (i, n) in names.enumerated() {
            for j in names.indices where j != i { try ip(["-n", "\(tag)-\(n)", "route", "add", podCIDR(j), "via", nodeIP(j)]) }
        }
        XCTAssertEqual(try kubectl(["label", "node", "s1", "n2", "web=yes"]).code, 0)

        func manifests(_ version: String) -> String {
            """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web}
            spec:
              replicas: 3
              selector: {matchLabels: {app: web}}
              strategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}
              template:
                metadata: {labels: {app: web}}
                spec:
                  nodeSelector: {web: "yes"}
                  terminationGracePeriodSeconds: 10
                  containers:
                  - name: http
                    image: busybox
                    env: [{name: VERSION, value: "\(version)"}]
                    command: [sh, -c, 'mkdir -p /www && echo -n "$VERSION/$(hostname)" > /www/index.html && exec httpd -f -p 8080 -h /www']
                    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
                    lifecycle: {preStop: {exec: {command: [sleep, "4"]}}}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec: {type: NodePort, selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: web-hl}
            spec: {clusterIP: None, selector: {app: web}, ports: [{port: 8080}]}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: client}
            spec: {nodeName: n3, containers: [{name: c, image: busybox, command: [sleep, "3600"]}]}
            """
        }
        try manifests("v1").write(toFile: dir + "/web.yaml", atomically: true, encoding: .utf8)
        let applied = try kubectl(["apply", "-f", dir + "/web.yaml"])
        XCTAssertEqual(applied.code, 0, applied.out)
        func webPods() throws -> [String] {
            try kubectl(["get", "pods", "-l", "app=web", "-o", "jsonpath={range .items[*]}{.metadata.name}@{.spec.nodeName}@{.status.podIP}={.status.phase} {end}"])
                .out.split(separator: " ").map(String.init).sorted()
        }
        func readyEndpoints() throws -> [String] {
            try kubectl(["get", "endpoints", "web", "-o", "jsonpath={.subsets[*].addresses[*].targetRef.name}"]).out.split(separator: " ").map(String.init).sorted()
        }
        try waitFor("3 ready web endpoints", timeout: 180) { try readyEndpoints().count == 3 }
        try waitFor("the client pod Running on n3", timeout: 90) { try kubectl(["get", "pod", "client", "-o", "jsonpath={.spec.nodeName}={.status.phase}"]).out == "n3=Running" }
        let pods = try webPods()
        print("web pods: \(pods)")
        // Pod IPs from each node's own CIDR; none on the client's node.
        for p in pods {
            let f = p.split(separator: "@").map(String.init)
            XCTAssertTrue(f.count == 3 && ((f[1] == "s1" && f[2].hasPrefix("10.244.0.")) || (f[1] == "n2" && f[2].hasPrefix("10.244.1."))), p)
        }
        let clientIP = try kubectl(["get", "pod", "client", "-o", "jsonpath={.status.podIP}"]).out
        XCTAssertTrue(clientIP.hasPrefix("10.244.2."), "the client's IP \(clientIP) from n3's pod CIDR")
        let ip = try kubectl(["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"]).out

        /// Each URL fetched `times` times from the client pod on n3: the answers or ERR. A host
        /// name is looked up first with nslookup (through the kube-dns ClusterIP in the pod), so
        /// an address it did not get shows as such. (Not wget -T: Debian's busybox 1.35 crashes on it.)
        func fetch(_ urls: [String], times: Int) throws -> [String] {
            let script = """
                for u in "$@"; do
                  h=${u#http://}; h=${h%%/*}; h=${h%%:*}
                  case "$h" in *[a-z]*) a=$(nslookup "$h" 2>/dev/null | awk '/^Name:/ {n=1} n && /^Address/ {print $2; exit}'); u=$(echo "$u" | sed "s|//$h|//$a|");; esac
                  i=0; while [ $i -lt \(times) ]; do i=$((i+1)); timeout 10 wget -q -O - "$u" 2>/dev/null || echo -n ERR; echo; done
                done
                """
            let r = try kubectl(["exec", "client", "--", "sh", "-c", script, "sh"] + urls)
            return r.code == 0 ? r.out.split(separator: "\n").map(String.init) : ["ERR:exec:" + r.out]
        }
        let names1 = Set(try kubectl(["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}"]).out.split(separator: " ").map { "v1/" + $0 })
        XCTAssertEqual(names1.count, 3)
        // By ClusterIP and by the DNS name: all three pods answer (round robin), each from
        // another node than the client's.
        let urls = ["http://\(ip)/", "http://web.default.svc.cluster.local/"]
        var got: [String] = []
        try waitFor("all 3 pods answering the client on n3", timeout: 90) { got = try fetch(urls, times: 3); return Set(got) == names1 }
        for u in urls { XCTAssertEqual(Set(try fetch([u], times: 3)), names1, "each pod answers \(u)") }
        // A pod IP on another node, directly (the routes between nodes), and an address nothing
        // serves (no default route anywhere: it fails at once, inside the test's namespaces).
        let direct = pods.first { $0.contains("@n2@") }.map { String($0.split(separator: "@")[2].split(separator: "=")[0]) } ?? ""
        XCTAssertTrue(names1.contains(try fetch(["http://\(direct):8080/"], times: 1).first ?? ""), "pod \(direct) on n2 directly from n3")
        XCTAssertEqual(try fetch(["http://192.0.2.1:8080/"], times: 1), ["ERR"])
        // The headless Service's name: the pods' own addresses, reached across nodes.
        let podIPs = pods.map { String($0.split(separator: "@")[2].split(separator: "=")[0]) }.sorted()
        let looked = try kubectl(["exec", "client", "--", "nslookup", "web-hl.default.svc.cluster.local"]).out
        let answered = looked.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).filter { $0.hasPrefix("10.244.") }.map(String.init).sorted()
        XCTAssertEqual(answered, podIPs, looked)
        XCTAssertEqual(Set(try fetch(["http://web-hl.default.svc.cluster.local:8080/"], times: 1)).isSubset(of: names1), true)
        // The NodePort (from the range) on n2 and on s1, from n3's own namespace.
        let nodePort = Int(try kubectl(["get", "service", "web", "-o", "jsonpath={.spec.ports[0].nodePort}"]).out) ?? 0
        XCTAssertTrue((30000...32767).contains(nodePort), "node port \(nodePort)")
        for i in [0, 1] {
            let r = try run("/usr/bin/nsenter", ["--net=" + path("n3"), "--", "/bin/busybox", "timeout", "10", "/bin/busybox", "wget", "-q", "-O", "-", "http://\(nodeIP(i)):\(nodePort)/"])
            XCTAssertTrue(names1.contains(r.out), "NodePort on \(names[i]): \(r.out)")
        }

        // A rolling update while the client loops over the ClusterIP: no failed request.
        let loop = """
            ok=0; failed=0; streak=0; v1=0; v2=0; errs=""; end=$(( $(date +%s) + 180 ))
            while [ $(date +%s) -lt $end ] && [ $streak -lt 20 ]; do
              if v=$(timeout 10 wget -q -O - http://\(ip)/ 2>&1); then
                ok=$((ok+1))
                case "$v" in v2/*) v2=1; streak=$((streak+1));; v1/*) v1=1; streak=0;; *) streak=0;; esac
              else failed=$((failed+1)); streak=0; errs="$errs|$v"; fi
              sleep 0.05
            done
            echo "ok=$ok failed=$failed v1=$v1 v2=$v2 errors=$errs"
            """
        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        client.arguments = ["--net=" + path("s1"), "--", "/usr/bin/kubectl", "--kubeconfig", data + "/kubeconfig", "exec", "client", "--", "sh", "-c", loop]
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = dir; env["KUBECONFIG"] = nil
        client.environment = env
        let out = Pipe()
        client.standardOutput = out; client.standardError = out; client.standardInput = FileHandle.nullDevice
        try client.run()
        // On etcd: ConfigMaps written throughout, and e0 killed a few seconds into the update.
        if members != nil { writer = ConfigMapWriter(kubectl: { [self] in try kubectl($0) }) }
        sleep(3)
        try manifests("v2").write(toFile: dir + "/web.yaml", atomically: true, encoding: .utf8)
        XCTAssertEqual(try kubectl(["apply", "-f", dir + "/web.yaml"]).code, 0)
        var killedAt = 0
        if let m = members, let w = writer {
            sleep(3)
            killedAt = killMember(m, 0, writer: w)
        }
        let report = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        client.waitUntilExit()
        print("rolling update across nodes, client on n3: " + report)
        XCTAssertTrue(report.contains("failed=0 ") && report.contains("v1=1 v2=1"), report)
        let ok = Int(report.split(separator: " ").first { $0.hasPrefix("ok=") }?.dropFirst(3) ?? "") ?? 0
        XCTAssertGreaterThan(ok, 20, report)
        try waitFor("3 ready v2 endpoints", timeout: 120) {
            try readyEndpoints().count == 3 && (try webPods()).count == 3
        }
        if let m = members, let w = writer {
            XCTAssertFalse(alive(m.pid(0)), "member e0 still running")
            try checkAcknowledgedWrites(w, killedAt: killedAt, survivors: Array(m.endpoints.dropFirst()), prefix: prefix, netns: path("s1"))
        }
        try checkRolloutEndState(version: "v2", etcd: members.map { (prefix, Array($0.endpoints.dropFirst()), path("s1")) })

        // n2's agent dies: once n2 is not ready and the eviction timeout passed, its web pods
        // come back on s1 (the only other node with web=yes), and answer through the Service.
        let before = try webPods()
        let onN2 = before.filter { $0.contains("@n2@") }
        XCTAssertFalse(onN2.isEmpty, "no web pod on n2 to move: \(before)")
        print("web pods before n2's agent is killed: \(before)")
        if let a = agents["n2"] { kill(a.processIdentifier, SIGKILL); a.waitUntilExit() }
        try waitFor("node n2 not ready", timeout: 90) { !(try kubectl(["get", "node", "n2"]).out.contains(" Ready ")) }
        try waitFor("every web pod Running on s1", timeout: 150) {
            let p = try webPods()
            return p.count == 3 && p.allSatisfy { $0.contains("@s1@") && $0.hasSuffix("=Running") }
        }
        print("web pods after n2's agent died: \(try webPods())")
        let names2 = Set(try kubectl(["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}"]).out.split(separator: " ").map { "v2/" + $0 })
        try waitFor("the moved pods answering the client on n3", timeout: 90) { Set(try fetch(["http://\(ip)/"], times: 6)) == names2 }
    }
}
