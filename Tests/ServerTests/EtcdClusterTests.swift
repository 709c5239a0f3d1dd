// `moat server` on a 3-member etcd cluster (Debian's etcd-server, three members on loopback
// ports the test picks, data under the test's directory): the server is given all three
// client URLs, and its store speaks etcd's gRPC API to the first and fails over to the next.
// The rolling update of ServiceProxyTests runs while a writer creates ConfigMaps one after
// another through kubectl; a few seconds into the update the first member (the one the store
// talks to) is killed with SIGKILL. Afterwards: the client looping over the Service saw no
// failed request, no write through kubectl failed (the store's retries on the other members
// hid the loss), every acknowledged ConfigMap is there with its data, read back through the
// API and straight from the surviving members; and once the server and the members are
// stopped no etcd process and no member data directory is left.

import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Three etcd members on loopback, each under a shell watchdog that kills it and removes its
/// data directory when told to (TERM), when the member dies, or when the test process dies.
final class EtcdMembers {
    let root: String
    let clientPorts: [Int]
    let hosts: [String]
    private(set) var watchdogs: [Process] = []
    var endpoints: [String] { clientPorts.indices.map { "http://\(hosts[$0]):\(clientPorts[$0])" } }

    /// `hosts[i]` is the address member i listens on (loopback by default); `netns[i]`, when
    /// given, the network namespace (a path) it runs in (nsenter execs etcd: the pid is etcd's).
    init(root: String, ports: () -> Int, hosts: [String] = Array(repeating: "127.0.0.1", count: 3),
         netns: [String?] = [nil, nil, nil]) throws {
        self.root = root
        self.hosts = hosts
        let names = ["e0", "e1", "e2"]
        let client = names.map { _ in ports() }, peer = names.map { _ in ports() }
        clientPorts = client
        let cluster = names.indices.map { "\(names[$0])=http://\(hosts[$0]):\(peer[$0])" }.joined(separator: ",")
        for (i, n) in names.enumerated() {
            let d = "\(root)/\(n)"
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
            let args = "--name \(n) --data-dir '\(d)/data' --listen-client-urls http://\(hosts[i]):\(client[i]) " +
                "--advertise-client-urls http://\(hosts[i]):\(client[i]) --listen-peer-urls http://\(hosts[i]):\(peer[i]) " +
                "--initial-advertise-peer-urls http://\(hosts[i]):\(peer[i]) --initial-cluster \(cluster) " +
                "--initial-cluster-state new --initial-cluster-token moat-\(getpid()) --logger zap --log-level warn"
            let enter = netns[i].map { "/usr/bin/nsenter --net='\($0)' -- " } ?? ""
            let script = """
                \(enter)/usr/bin/etcd \(args) >'\(d)/etcd.log' 2>&1 & e=$!
                echo $e >'\(d)/pid'
                stop() { kill -9 $e 2>/dev/null; wait $e 2>/dev/null; rm -rf '\(d)/data'; exit 0; }
                trap stop TERM INT
                while kill -0 \(getpid()) 2>/dev/null && kill -0 $e 2>/dev/null; do sleep 0.1; done
                stop
                """
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", script]
            p.standardInput = FileHandle.nullDevice
            try p.run()
            watchdogs.append(p)
        }
    }

    /// The pid of member `i`'s etcd process (0 before it started).
    func pid(_ i: Int) -> pid_t { pid_t(((try? String(contentsOfFile: "\(root)/e\(i)/pid", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0 }

    func log(_ i: Int) -> String { (try? String(contentsOfFile: "\(root)/e\(i)/etcd.log", encoding: .utf8)) ?? "" }

    /// Stops every member and waits for its watchdog (which removes the member's data).
    func stop() {
        for w in watchdogs where w.isRunning { w.terminate() }
        for w in watchdogs { w.waitUntilExit() }
    }
}

/// A writer thread of the test's: ConfigMaps `ack-N` (data n=N) created one after another
/// through kubectl; those kubectl acknowledged are kept, with the failures.
final class ConfigMapWriter: @unchecked Sendable {
    let lock = NSLock()
    private var acked: [Int] = []       // Guarded by: lock
    private var failures: [String] = [] // Guarded by: lock
    private var stopped = false         // Guarded by: lock
    private var thread: Thread?

    init(kubectl: @escaping ([String]) throws -> (code: Int32, out: String)) {
        let t = Thread { [self] in
            var n = 0
            while !lock.withLock({ stopped }) && n < 2000 {
                n += 1
                let r = (try? kubectl(["create", "configmap", "ack-\(n)", "--from-literal=n=\(n)"])) ?? (code: -1, out: "could not run")
                lock.withLock { if r.code == 0 { acked.append(n) } else { failures.append("ack-\(n): \(r.out)") } }
            }
        }
        thread = t
        t.start()
    }

    var acknowledged: [Int] { lock.withLock { acked } }
    var failed: [String] { lock.withLock { failures } }

    /// Stops the thread and waits for it (its kubectl call in flight finishes first).
    func stop() {
        lock.withLock { stopped = true }
        while let t = thread, !t.isFinished { usleep(50_000) }
    }
}

extension MoatServerTests {
    /// A POST to a member's JSON gateway (etcd's own HTTP face, used here only to check the
    /// data independently of Moat's gRPC client), from `netns` when given: the response body,
    /// or "" when it failed.
    func etcdGateway(_ endpoint: String, _ path: String, _ body: String, netns: String? = nil) throws -> String {
        let curl = ["/usr/bin/curl", "-sS", "--max-time", "5", "-X", "POST", "-d", body, endpoint + path]
        let r = try netns.map { try run("/usr/bin/nsenter", ["--net=" + $0, "--"] + curl) } ?? run(curl[0], Array(curl.dropFirst()))
        return r.code == 0 ? r.out : ""
    }

    /// The keys (decoded) under `prefix` in a member, read linearizably: value and mod revision.
    func etcdKeys(_ endpoint: String, prefix: String, netns: String? = nil) throws -> [String: (value: String, revision: Int64)] {
        var end = Array(prefix.utf8); end[end.count - 1] += 1
        let body = #"{"key":"\#(Data(prefix.utf8).base64EncodedString())","range_end":"\#(Data(end).base64EncodedString())"}"#
        let out = try etcdGateway(endpoint, "/v3/kv/range", body, netns: netns)
        guard let json = try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any] else { return [:] }
        var keys: [String: (value: String, revision: Int64)] = [:]
        for kv in json["kvs"] as? [[String: Any]] ?? [] {
            guard let k = (kv["key"] as? String).flatMap({ Data(base64Encoded: $0) }) else { continue }
            let v = (kv["value"] as? String).flatMap { Data(base64Encoded: $0) } ?? Data()
            // The gateway writes int64s as JSON strings.
            let rev = Int64(kv["mod_revision"] as? String ?? "") ?? 0
            keys[String(decoding: k, as: UTF8.self)] = (String(decoding: v, as: UTF8.self), rev)
        }
        return keys
    }

    /// Waits until all three members answer through their gateways.
    func waitForMembers(_ members: EtcdMembers, netns: String? = nil) throws {
        try waitFor("three etcd members answering", timeout: 60) {
            try members.endpoints.allSatisfy { try etcdGateway($0, "/v3/kv/range", #"{"key":"AA=="}"#, netns: netns).contains("\"header\"") }
        }
    }

    /// Member `i` killed with SIGKILL, mid-run; returns how many writes had been acknowledged.
    func killMember(_ members: EtcdMembers, _ i: Int, writer: ConfigMapWriter) -> Int {
        let pid = members.pid(i)
        XCTAssertGreaterThan(pid, 0)
        let before = writer.acknowledged.count
        XCTAssertEqual(kill(pid, SIGKILL), 0, "killing member e\(i)")
        return before
    }

    /// After a member died: a few more writes on the members left, then the writer stops; no
    /// write failed, and every acknowledged ConfigMap is there with its data, through the API
    /// and straight from each of `survivors` (read from `netns` when given).
    func checkAcknowledgedWrites(_ writer: ConfigMapWriter, killedAt: Int, survivors: [String], prefix: String, netns: String? = nil) throws {
        let target = writer.acknowledged.count + 5
        try waitFor("writes after the member died", timeout: 60) { writer.acknowledged.count >= target || !writer.failed.isEmpty }
        writer.stop()
        let (ok, failed) = (writer.acknowledged, writer.failed)
        print("etcd member killed after \(killedAt) acknowledged writes; \(ok.count) acknowledged in all, \(failed.count) failed")
        XCTAssertEqual(failed, [], "writes that failed")
        XCTAssertGreaterThan(ok.count, killedAt, "no write acknowledged after the member died")
        let listed = try kubectl(["get", "configmaps", "-o", "jsonpath={range .items[*]}{.metadata.name}={.data.n} {end}"])
        XCTAssertEqual(listed.code, 0, listed.out)
        let names = Set(listed.out.split(separator: " ").map(String.init))
        let missing = ok.filter { !names.contains("ack-\($0)=\($0)") }
        XCTAssertEqual(missing, [], "acknowledged ConfigMaps missing through the API")
        for e in survivors {
            let keys = try etcdKeys(e, prefix: prefix + "/configmaps/default/", netns: netns)
            let absent = ok.filter { n in !(keys[prefix + "/configmaps/default/ack-\(n)"]?.value.contains("\"n\":\"\(n)\"") ?? false) }
            XCTAssertEqual(absent, [], "acknowledged ConfigMaps missing in \(e)")
        }
    }

    /// Stops the server as `tearDown` would, before the etcd it needs goes away.
    func stopServer() {
        guard let s = server, s.isRunning else { return }
        s.terminate()
        let deadline = Date().addingTimeInterval(120)
        while s.isRunning && Date() < deadline { usleep(50_000) }
        if s.isRunning { kill(s.processIdentifier, SIGKILL) }
    }

    func testRollingUpdateOnAThreeMemberEtcdLosesNoWriteWhenAMemberDies() throws {
        try require(FileManager.default.isExecutableFile(atPath: "/usr/bin/etcd"), "etcd (Debian's etcd-server; .ci/setup installs it)")
        let debian = try debianRootfs()
        let etcdRoot = dir + "/etcd"
        let members = try EtcdMembers(root: etcdRoot, ports: freePort)
        var writer: ConfigMapWriter?
        addTeardownBlock { [self] in
            writer?.stop()
            stopServer()
            members.stop()
            XCTAssertEqual(processes(mentioning: etcdRoot), [], "etcd processes left")
            for i in 0..<3 {
                XCTAssertFalse(FileManager.default.fileExists(atPath: "\(etcdRoot)/e\(i)/data"), "member e\(i)'s data left")
            }
            if (testRun?.totalFailureCount ?? 0) > 0 {
                for i in 0..<3 { print("--- etcd e\(i)\n" + String(members.log(i).suffix(2000))) }
            }
        }
        try waitForMembers(members)
        let prefix = "/moat-\(getpid())"
        let (_, _) = try startAndWaitReady(images: ["python=" + debian],
                                           extra: ["--store", "etcd", "--etcd-endpoints", members.endpoints.joined(separator: ","),
                                                   "--etcd-prefix", prefix])
        // The API server's objects are in etcd, not in a SQLite file.
        XCTAssertNotNil(try etcdKeys(members.endpoints[1], prefix: prefix + "/").keys.first { $0.hasPrefix(prefix + "/nodes/") },
                        "node s1 is not in etcd")

        let w = ConfigMapWriter(kubectl: { [self] in try kubectl($0) })
        writer = w
        var killedAt = 0
        try rollingUpdateFailsNoRequest(during: { [self] in
            sleep(3)
            killedAt = killMember(members, 0, writer: w)
        })
        XCTAssertFalse(members.watchdogs[0].isRunning && alive(members.pid(0)), "member e0 still running")
        try checkAcknowledgedWrites(w, killedAt: killedAt, survivors: Array(members.endpoints.dropFirst()), prefix: prefix)
    }
}
