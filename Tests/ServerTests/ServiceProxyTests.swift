// Pods reach Services through the node agent's service proxy (Sources/NodeAgent/ServiceProxy.swift):
// a Deployment of two python http.server pods behind a Service; a client pod fetches
// http://web.default.svc.cluster.local/ (the cluster DNS at the kube-dns ClusterIP, which the
// proxy serves inside the pod), http://CLUSTERIP/ and http://web/ (the search path), and sees
// both pods answer; a ClusterIP port nothing serves is refused at once, inside the pod; the
// NodePort answers on the node's loopback; scaling to one pod leaves one answer. Nothing of
// the proxy stays on the host: the host's local routing table is the same afterwards.

import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

extension MoatServerTests {
    /// The cached Debian root file system with python3 (rootfs/debian-apps.sh builds it when missing).
    func debianRootfs() throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [Self.repo + "/rootfs/debian-apps.sh"]
        let out = Pipe()
        p.standardOutput = out; p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let dir = String(decoding: data, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        try require(p.terminationStatus == 0 && FileManager.default.isExecutableFile(atPath: dir + "/usr/bin/python3"),
                    "the Debian rootfs with python3 (rootfs/debian-apps.sh)")
        return dir
    }

    /// Each URL fetched `times` times from inside the client pod: the answers (pod names) or ERR:KIND.
    func fetch(_ urls: [String], times: Int = 6) throws -> [String] {
        let script = """
            import sys, urllib.request
            out = []
            for u in sys.argv[1:]:
                for i in range(\(times)):
                    try: out.append(urllib.request.urlopen(u, timeout=5).read().decode())
                    except Exception as e: out.append('ERR:' + type(e).__name__)
            print(' '.join(out))
            """
        let r = try kubectl(["exec", "client", "--", "python3", "-c", script] + urls)
        return r.code == 0 ? r.out.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init) : ["ERR:exec:" + r.out]
    }

    func localRoutes() throws -> String { try run("/usr/sbin/ip", ["route", "show", "table", "local"]).out }

    func testPodsReachServices() throws {
        try require(FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip"), "ip (iproute2)")
        let debian = try debianRootfs()
        let routesBefore = try localRoutes()
        let (p, _) = try startAndWaitReady(images: ["python=" + debian])
        let nodePort = 30000 + Int(getpid() % 2700)
        let manifests = """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web}
            spec:
              replicas: 2
              selector: {matchLabels: {app: web}}
              template:
                metadata: {labels: {app: web}}
                spec:
                  containers:
                  - name: http
                    image: python
                    command:
                    - python3
                    - -c
                    - |
                      import http.server, socket
                      class H(http.server.BaseHTTPRequestHandler):
                          def do_GET(self):
                              b = socket.gethostname().encode()
                              self.send_response(200); self.send_header('Content-Length', str(len(b))); self.end_headers(); self.wfile.write(b)
                      http.server.HTTPServer(('0.0.0.0', 8080), H).serve_forever()
                    ports: [{containerPort: 8080, name: http}]
                    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec:
              type: NodePort
              selector: {app: web}
              ports: [{port: 80, targetPort: http, nodePort: \(nodePort)}]
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: client}
            spec: {containers: [{name: c, image: python, command: [sleep, "3600"]}]}
            """
        try manifests.write(toFile: dir + "/web.yaml", atomically: true, encoding: .utf8)
        let applied = try kubectl(["apply", "-f", dir + "/web.yaml"])
        XCTAssertEqual(applied.code, 0, applied.out)
        try waitFor("2 ready web endpoints", timeout: 120) {
            try kubectl(["get", "endpoints", "web", "-o", "jsonpath={.subsets[*].addresses[*].targetRef.name}"]).out.split(separator: " ").count == 2
        }
        try waitFor("the client pod Running", timeout: 90) { try kubectl(["get", "pod", "client", "-o", "jsonpath={.status.phase}"]).out == "Running" }
        let names = Set(try kubectl(["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}"]).out.split(separator: " ").map(String.init))
        XCTAssertEqual(names.count, 2)
        let ip = try kubectl(["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"]).out

        // By DNS name, by the short name (search path) and by ClusterIP: both pods answer.
        let urls = ["http://web.default.svc.cluster.local/", "http://web/", "http://\(ip)/"]
        var got: [String] = []
        // (The proxy learns of the second endpoint on its next pass.)
        try waitFor("both pods answering through the service proxy", timeout: 60) { got = try fetch(urls); return Set(got) == names }
        XCTAssertEqual(got.count, 18, got.joined(separator: " "))
        for u in urls { XCTAssertEqual(Set(try fetch([u], times: 4)), names, "each pod answers \(u) (round robin)") }

        // A port of the ClusterIP that nothing serves, an address no Service holds, a name no
        // Service has: refused or unknown at once, inside the pod.
        XCTAssertEqual(try fetch(["http://\(ip):81/", "http://10.111.255.254/"], times: 1), ["ERR:URLError", "ERR:URLError"])
        let refused = try kubectl(["exec", "client", "--", "python3", "-c",
                                   "import socket\ntry: socket.create_connection(('\(ip)', 81), timeout=5)\nexcept OSError as e: print(e.errno)"])
        XCTAssertEqual(refused.out.trimmingCharacters(in: .whitespacesAndNewlines), "\(ECONNREFUSED)", refused.out)
        XCTAssertEqual(try fetch(["http://nope.default.svc.cluster.local/"], times: 1), ["ERR:URLError"])

        // The NodePort, from the node.
        let viaNode = try run("/usr/bin/curl", ["-sS", "--max-time", "5", "http://127.0.0.1:\(nodePort)/"])
        XCTAssertTrue(names.contains(viaNode.out), viaNode.out)

        // One pod fewer: one answer left.
        XCTAssertEqual(try kubectl(["scale", "deployment", "web", "--replicas=1"]).code, 0)
        try waitFor("one web pod left", timeout: 90) { try kubectl(["get", "pods", "-l", "app=web", "-o", "name"]).out.split(separator: "\n").count == 1 }
        let left = try kubectl(["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}"]).out
        try waitFor("only \(left) answers", timeout: 30) { Set(try fetch(["http://web/"], times: 4)) == [left] }

        p.terminate()
        try waitFor("moat server to exit", timeout: 120) { !p.isRunning }
        XCTAssertEqual(p.terminationStatus, 0)
        XCTAssertEqual(try localRoutes(), routesBefore, "the host's local routes changed")
        XCTAssertEqual(processes(mentioning: dir), [], "processes naming the data directory")
    }
}

extension MoatServerTests {
    /// A rolling update while a client loops over the Service's ClusterIP: no request fails. New
    /// pods join the endpoints once ready; old ones leave them when their deletion starts, and a
    /// preStop pause keeps them serving until the proxy has moved on.
    func testRollingUpdateBehindAServiceFailsNoRequest() throws {
        let debian = try debianRootfs()
        let (p, _) = try startAndWaitReady(images: ["python=" + debian])
        defer { p.terminate() }
        try rollingUpdateFailsNoRequest()
    }

    /// The rolling update of `testRollingUpdateBehindAServiceFailsNoRequest` on a running server
    /// (with the python image); `during` runs once the update has been applied, while the
    /// client still loops (EtcdClusterTests kills an etcd member there).
    func rollingUpdateFailsNoRequest(during: (() throws -> Void)? = nil) throws {
        func manifests(_ version: String) -> String {
            """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web}
            spec:
              replicas: 2
              selector: {matchLabels: {app: web}}
              strategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}
              template:
                metadata: {labels: {app: web}}
                spec:
                  terminationGracePeriodSeconds: 10
                  containers:
                  - name: http
                    image: python
                    env: [{name: VERSION, value: "\(version)"}]
                    command:
                    - python3
                    - -c
                    - |
                      import http.server, os
                      class H(http.server.BaseHTTPRequestHandler):
                          def do_GET(self):
                              b = os.environ['VERSION'].encode()
                              self.send_response(200); self.send_header('Content-Length', str(len(b))); self.end_headers(); self.wfile.write(b)
                          def log_message(self, *a): pass
                      http.server.ThreadingHTTPServer(('0.0.0.0', 8080), H).serve_forever()
                    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
                    lifecycle: {preStop: {exec: {command: [sleep, "4"]}}}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: client}
            spec: {containers: [{name: c, image: python, command: [sleep, "3600"]}]}
            """
        }
        try manifests("v1").write(toFile: dir + "/web.yaml", atomically: true, encoding: .utf8)
        XCTAssertEqual(try kubectl(["apply", "-f", dir + "/web.yaml"]).code, 0)
        try waitFor("2 ready web endpoints", timeout: 120) {
            try kubectl(["get", "endpoints", "web", "-o", "jsonpath={.subsets[*].addresses[*].targetRef.name}"]).out.split(separator: " ").count == 2
        }
        try waitFor("the client pod Running", timeout: 90) { try kubectl(["get", "pod", "client", "-o", "jsonpath={.status.phase}"]).out == "Running" }
        let ip = try kubectl(["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"]).out
        try waitFor("v1 answering", timeout: 60) { try fetch(["http://\(ip)/"], times: 2) == ["v1", "v1"] }

        // The client: requests back to back until 20 in a row came from v2 (at most 150 s).
        let loop = """
            import time, urllib.request
            ok = failed = streak = 0; seen = set(); errors = []; end = time.time() + 150
            while time.time() < end and streak < 20:
                try:
                    v = urllib.request.urlopen('http://\(ip)/', timeout=10).read().decode(); ok += 1; seen.add(v)
                    streak = streak + 1 if v == 'v2' else 0
                except Exception as e:
                    failed += 1; errors.append(type(e).__name__ + ':' + str(e)); streak = 0
                time.sleep(0.05)
            print('ok=%d failed=%d seen=%s errors=%s' % (ok, failed, ','.join(sorted(seen)), errors[:5]))
            """
        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/usr/bin/kubectl")
        client.arguments = ["--kubeconfig", data + "/kubeconfig", "exec", "client", "--", "python3", "-c", loop]
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = dir; env["KUBECONFIG"] = nil
        client.environment = env
        let out = Pipe()
        client.standardOutput = out; client.standardError = out; client.standardInput = FileHandle.nullDevice
        try client.run()
        sleep(2)
        try manifests("v2").write(toFile: dir + "/web.yaml", atomically: true, encoding: .utf8)
        XCTAssertEqual(try kubectl(["apply", "-f", dir + "/web.yaml"]).code, 0)
        try during?()
        let report = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        client.waitUntilExit()
        print("rolling update, client: " + report)
        XCTAssertTrue(report.contains("failed=0 ") && report.contains("seen=v1,v2"), report)
        let ok = Int(report.split(separator: " ").first { $0.hasPrefix("ok=") }?.dropFirst(3) ?? "") ?? 0
        XCTAssertGreaterThan(ok, 40, report)
    }
}
