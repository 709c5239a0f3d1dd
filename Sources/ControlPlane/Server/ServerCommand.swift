// `moat server`: a one-machine cluster from one command, the way k3s starts one.
//
// Secure by default: the API server serves HTTPS only (to the network), with a CA and
// certificates made on the first start under DATA/pki (PKI.swift); kubectl authenticates with
// the admin client certificate in DATA/kubeconfig (DATA/pki/viewer.kubeconfig: read-only;
// DATA/pki/node-NAME.kubeconfig: the node's identity). The node agent talks to the API server
// over DATA/api.sock (plain HTTP on a Unix socket in the 0700 data directory) with its own
// bearer token, as system:node:NAME, limited to its own Node, Lease and pods.
//
// Services: ClusterIPs from --service-cidr; the cluster DNS (ClusterDNS.swift) on
// --cluster-dns:53 (the node's namespace); pods' resolv.conf names the kube-dns Service's
// ClusterIP (10.96.0.10 by default, with NAMESPACE.svc.cluster.local first), which the node
// agent's service proxy (Sources/NodeAgent/ServiceProxy.swift) serves inside each pod.
//
// It runs `moat controlplane` (API server, controllers, scheduler; SQLite under DATA/store),
// `moat cri` (the CRI runtime on DATA/cri.sock, pods' state under DATA/cri and DATA/run) and
// `moat node` (the node agent, which stops its pods when it exits) as children (Supervisor),
// and writes DATA/kubeconfig for the stock kubectl. SIGTERM or SIGINT stops them in order:
// the agent first (its pods' sandboxes are stopped and removed), then the runtime, then the
// control plane; nothing keeps running. A child that dies on its own stops the server with
// its log's tail on stderr.
//
// Runs on the main thread (a synchronous command): it only starts, watches and stops processes.

import ArgumentParser
import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct ServerCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Run a one-machine cluster: API server, controllers, scheduler, node agent and CRI runtime.",
        discussion: """
            State (SQLite database, images, pods, logs) lives under --data-dir; DATA/kubeconfig is written \
            for kubectl: kubectl --kubeconfig DATA/kubeconfig get nodes. Components log to DATA/logs/. \
            SIGTERM or ^C stops the pods and then every component.
            """)

    @Option(name: .customLong("data-dir"), help: "Directory for all state; created when missing.")
    public var dataDir: String = "/var/lib/moat/server"

    @Option(help: "Address for the API server, host:port.")
    public var listen: String = "127.0.0.1:6443"

    @Option(name: .customLong("node-name"), help: "This machine's Node name (default: the host name).")
    public var nodeName: String?

    @Option(name: .customLong("rootfs-image"), help: "Serve a root file system directory as an image: REF=DIR; repeatable.")
    public var rootfsImage: [String] = []

    @Option(name: .customLong("registry-mirror"), help: "Pull images of REGISTRY from URL instead: REGISTRY=URL; repeatable.")
    public var registryMirror: [String] = []

    @Option(name: .customLong("cni-conf-dir"), help: "CNI network configuration directory (none: pods get loopback only).")
    public var cniConfDir: String?

    @Option(name: .customLong("cni-bin-dir"), help: "CNI plugin directory.")
    public var cniBinDir: String?

    @Option(name: .customLong("pod-eviction-timeout"), help: "Seconds a node stays not ready before its pods are evicted.")
    public var podEvictionTimeout: Double = 300

    @Option(name: .customLong("cluster-dns"), help: "Address (IPv4, port 53) of the cluster DNS server, written to pods' resolv.conf.")
    public var clusterDNS: String = "127.0.0.10"

    @Option(name: .customLong("service-cidr"), help: "The range Services' ClusterIPs come from (IPv4).")
    public var serviceCIDR: String = "10.96.0.0/12"

    @Option(name: .customLong("join-node"), help: "Make an identity for another node NAME (DATA/pki/node-NAME.token) that joins with `moat node --server unix://DATA/api.sock --token-file ...`; repeatable.")
    public var joinNode: [String] = []

    @Option(name: .customLong("cluster-cidr"), help: "The range Nodes' pod CIDRs (a /24 each) come from (IPv4).")
    public var clusterCIDR: String = "10.244.0.0/16"

    @Option(name: .customLong("node-grace-period"), help: "Seconds without a heartbeat before a node is marked not ready.")
    public var nodeGracePeriod: Double = 40

    @Option(name: .customLong("event-ttl"), help: "How long Events are kept after their last update (like 1h, 30m, 90s).")
    public var eventTTL: String = "1h"

    @Option(name: .customLong("eviction-hard"), help: "The node agent's hard eviction thresholds (see `moat node --help`; default: kubelet's).")
    public var evictionHard: String?

    @Option(help: "Storage backend: sqlite (embedded, under DATA/store) or etcd (--etcd-endpoints).")
    public var store: String = "sqlite"

    @Option(name: .customLong("etcd-endpoints"), help: "Comma-separated client URLs of the etcd cluster's members (http:// or https://), for --store etcd; requests fail over between them.")
    public var etcdEndpoints: String?

    @Option(name: .customLong("etcd-prefix"), help: "Key prefix under which objects are kept in etcd.")
    public var etcdPrefix: String?

    @Option(name: .customLong("etcd-cafile"), help: "CA (PEM) of the etcd members' certificates, for https endpoints.")
    public var etcdCAFile: String?

    @Option(name: .customLong("etcd-certfile"), help: "Client certificate (PEM) for etcd; needs --etcd-keyfile.")
    public var etcdCertFile: String?

    @Option(name: .customLong("etcd-keyfile"), help: "The etcd client certificate's private key (PEM).")
    public var etcdKeyFile: String?

    public init() {}

    /// The control plane's storage arguments.
    func storeArguments() throws -> [String] {
        switch store {
        case "sqlite":
            return []
        case "etcd":
            guard let etcdEndpoints, !etcdEndpoints.isEmpty else { throw ValidationError("--store etcd needs --etcd-endpoints") }
            var a = ["--store", "etcd", "--etcd-endpoints", etcdEndpoints]
            let files = [("--etcd-prefix", etcdPrefix), ("--etcd-cafile", etcdCAFile), ("--etcd-certfile", etcdCertFile), ("--etcd-keyfile", etcdKeyFile)]
            for case let (flag, value?) in files {
                a += [flag, flag == "--etcd-prefix" ? value : URL(fileURLWithPath: value).standardizedFileURL.path]
            }
            return a
        default:
            throw ValidationError("--store must be sqlite or etcd")
        }
    }

    public func run() throws {
        let cwd = FileManager.default.currentDirectoryPath
        let data = URL(fileURLWithPath: dataDir, relativeTo: URL(fileURLWithPath: cwd, isDirectory: true)).standardizedFileURL.path
        guard data.utf8.count < 80 else { throw ValidationError("--data-dir \(data): too long for the runtime's socket path") }
        let storeArgs = try storeArguments()
        var opts = ControlPlaneOptions()
        opts.listen = listen
        let (host, port) = try opts.hostPort()
        guard port != 0 else { throw ValidationError("--listen needs a port") }
        for n in joinNode where n.isEmpty || n.utf8.count > 63 || !n.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "-" || $0 == "." }) {
            throw ValidationError("--join-node \(n): not a node name (lowercase letters, digits, '-', '.')")
        }
        guard IPv4CIDR.parse(clusterDNS) != nil else { throw ValidationError("--cluster-dns must be an IPv4 address") }
        guard let services = IPv4CIDR(serviceCIDR) else { throw ValidationError("--service-cidr must be an IPv4 CIDR with a prefix of 8 to 30 bits") }
        // What pods' resolv.conf names: the kube-dns Service's ClusterIP (the range's tenth
        // address), which the node's service proxy serves in every pod and relays to the DNS server.
        let dnsServiceIP = IPv4CIDR.format(services.base + 10)
        let apiHost = ["0.0.0.0", "::", ""].contains(host) ? "127.0.0.1" : host
        let apiURL = "https://\(apiHost.contains(":") ? "[\(apiHost)]" : apiHost):\(port)"
        var hostName = [CChar](repeating: 0, count: 256)
        gethostname(&hostName, 255)
        let node = nodeName ?? String(cString: hostName).lowercased()
        let apiSocket = data + "/api.sock"

        let fm = FileManager.default
        for d in [data, data + "/logs"] {
            try fm.createDirectory(atPath: d, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        let stopping = ServerSignals()
        let sup = Supervisor(executable: Supervisor.ownExecutable(), logDirectory: data + "/logs")
        func say(_ s: String) { FileHandle.standardError.write(("moat server: " + s + "\n").data(using: .utf8)!) }

        /// Waits for `ready`, failing if a child dies or a signal arrives first.
        func waitFor(_ what: String, timeout: Double, _ ready: () -> Bool) throws {
            let deadline = Date().addingTimeInterval(timeout)
            while !ready() {
                if let dead = sup.reap().first { throw SupervisorError("moat \(dead.name) exited while waiting for \(what):\n\(sup.logTail(dead.name))") }
                if stopping.requested { throw ExitCode(0) }
                if Date() > deadline { throw SupervisorError("timed out waiting for \(what)") }
                usleep(100_000)
            }
        }

        do {
            // Credentials, made on the first start and kept: the CA, the API server's certificate,
            // client certificates (admin, this node, a viewer), and the node agent's token for the
            // local socket.
            let pki = try PKI.ensure(directory: data + "/pki", hosts: [apiHost, String(cString: hostName)], nodeName: node)
            // Each node's token (this one's in pki/node.token, the --join-node ones in
            // pki/node-NAME.token), made once and kept; tokens.csv lists them all.
            let nodeToken = data + "/pki/node.token", tokens = data + "/pki/tokens.csv"
            var lines = ""
            for (name, file) in [(node, nodeToken)] + joinNode.map({ ($0, data + "/pki/node-\($0).token") }) {
                var token = (try? String(contentsOfFile: file, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
                if token.isEmpty {
                    var raw = [UInt8](repeating: 0, count: 32)
                    for i in raw.indices { raw[i] = UInt8.random(in: 0...255) }
                    token = raw.map { String(format: "%02x", $0) }.joined()
                    try PKI.write(token + "\n", to: file)
                }
                lines += "\(token),system:node:\(name),\(name),\"system:nodes\"\n"
            }
            try PKI.write(lines, to: tokens)
            let nodePID = data + "/node.pid"
            unlink(nodePID)
            try sup.start("controlplane", after: nodePID, ["controlplane", "--listen", listen, "--data-dir", data + "/store", "--leader-elect", "false",
                                           "--pod-eviction-timeout", String(podEvictionTimeout),
                                           "--node-grace-period", String(nodeGracePeriod), "--cluster-cidr", clusterCIDR,
                                           "--tls-cert-file", pki.serverCert, "--tls-private-key-file", pki.serverKey,
                                           "--client-ca-file", pki.caCert, "--token-file", tokens, "--local-socket", apiSocket,
                                           "--dns-listen", clusterDNS + ":53", "--service-cidr", serviceCIDR,
                                           "--dns-service-ip", dnsServiceIP, "--event-ttl", eventTTL] + storeArgs)
            try waitFor("the API server on \(apiURL)", timeout: 60) { Self.healthy(socket: apiSocket) }

            let sock = data + "/cri.sock"
            unlink(sock)
            var cri = ["cri", "--listen", "unix://" + sock, "--root", data + "/cri", "--state", data + "/run"]
            cri += rootfsImage.flatMap { ["--rootfs-image", $0] } + registryMirror.flatMap { ["--registry-mirror", $0] }
            if let c = cniConfDir { cri += ["--cni-conf-dir", c] }
            if let c = cniBinDir { cri += ["--cni-bin-dir", c] }
            try sup.start("cri", after: nodePID, cri)
            try waitFor("the CRI runtime on \(sock)", timeout: 60) { fm.fileExists(atPath: sock) }

            let agent = try sup.start("node", ["node", "--server", "unix://" + apiSocket, "--token-file", nodeToken, "--cri", "unix://" + sock, "--name", node,
                                   "--log-directory", data + "/pod-logs", "--root", data + "/node", "--port", "0", "--stop-pods-on-exit",
                                   "--cluster-dns", dnsServiceIP, "--service-cidr", serviceCIDR, "--dns-upstream", clusterDNS + ":53"]
                                   + (evictionHard.map { ["--eviction-hard", $0] } ?? []))
            try PKI.write("\(agent)\n", to: nodePID)
            try PKI.write(try pki.kubeconfig(server: apiURL, user: "admin"), to: data + "/kubeconfig")
            try PKI.write(try pki.kubeconfig(server: apiURL, user: "viewer"), to: data + "/pki/viewer.kubeconfig")
            try PKI.write(try pki.kubeconfig(server: apiURL, user: "node-\(node)"), to: data + "/pki/node-\(node).kubeconfig")
            say("API server on \(apiURL), node \(node); kubectl --kubeconfig \(data)/kubeconfig get nodes; logs in \(data)/logs")

            while !stopping.requested {
                if let dead = sup.reap().first {
                    say("moat \(dead.name) exited unexpectedly; stopping.\n\(sup.logTail(dead.name))")
                    shutdown(sup)
                    throw ExitCode(1)
                }
                usleep(100_000)
            }
            say("stopping")
            shutdown(sup)
        } catch {
            shutdown(sup)
            throw error
        }
    }

    /// The agent first (it stops and removes its pods), then the runtime, then the API server.
    func shutdown(_ sup: Supervisor) {
        sup.stop("node", grace: 90)
        sup.stop("cri", grace: 20)
        sup.stop("controlplane", grace: 20)
    }

    static func healthy(socket: String) -> Bool {
        guard let c = try? RawHTTPConnection(host: socket, port: 0, timeoutSeconds: 2) else { return false }
        guard (try? c.send(method: "GET", path: "/healthz", host: "localhost", headers: [:], body: nil)) != nil,
              let (code, _) = try? c.readHead() else { return false }
        return code == 200
    }
}

/// SIGTERM and SIGINT set a flag that `moat server`'s loop polls.
final class ServerSignals: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    private var sources: [DispatchSourceSignal] = []

    init() {
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { [weak self] in self?.lock.withLock { self?.flag = true } }
            s.resume()
            sources.append(s)
        }
    }

    var requested: Bool { lock.withLock { flag } }
}
