// Services beyond the ClusterIP: node ports from their range (one owner each, freed with the
// Service) and headless Services in the cluster DNS (one A record per ready endpoint).

import Foundation
import XCTest
@testable import ControlPlane
#if canImport(Glibc)
import Glibc
#endif

extension APIServerTests {
    func nodePortService(_ name: String, _ nodePorts: [Int?]) -> JSON {
        let ports: [JSON] = nodePorts.enumerated().map { i, np in
            var p: JSON = ["name": .string("p\(i)"), "port": .int(80 + i)]
            if let np { p["nodePort"] = .int(np) }
            return p
        }
        return ["apiVersion": "v1", "kind": "Service", "metadata": ["name": .string(name)],
                "spec": ["type": "NodePort", "selector": ["app": "x"], "ports": .array(ports)]]
    }

    func testNodePortsComeFromTheirRange() async throws {
        let a = try await client.create(.services, namespace: "default", nodePortService("a", [nil, nil]))
        let ports = (a[path: "spec", "ports"].array ?? []).compactMap { $0["nodePort"].int }
        XCTAssertEqual(ports.count, 2, "\(a)")
        XCTAssertEqual(Set(ports).count, 2, "two ports of one Service get two node ports")
        for p in ports { XCTAssertTrue(APIRegistry.nodePortRange.contains(p), "\(p)") }
        // Asked for: kept; held by another Service or outside the range: 422 naming the field.
        let b = try await client.create(.services, namespace: "default", nodePortService("b", [31234]))
        XCTAssertEqual(b[path: "spec", "ports"].array?.first?["nodePort"], 31234)
        let taken = await expectError(422, "a held node port") {
            _ = try await self.client.create(.services, namespace: "default", self.nodePortService("c", [ports[0]]))
        }
        XCTAssertEqual(taken?.details["causes"].array?.first?["field"], "spec.ports[0].nodePort")
        XCTAssertTrue(taken?.message.contains("already allocated") ?? false, taken?.message ?? "")
        let outside = await expectError(422, "a node port outside the range") {
            _ = try await self.client.create(.services, namespace: "default", self.nodePortService("c", [nil, 8080]))
        }
        XCTAssertEqual(outside?.details["causes"].array?.first?["field"], "spec.ports[1].nodePort")
        // The failed create kept nothing: its first port's allocation is free again, as is a
        // deleted Service's port.
        let held = try await cluster.store.list(resource: APIRegistry.nodePortResource, namespace: nil).items.count
        XCTAssertEqual(held, 3)
        try await client.delete(.services, namespace: "default", name: "b")
        let c = try await client.create(.services, namespace: "default", nodePortService("c", [31234]))
        XCTAssertEqual(c[path: "spec", "ports"].array?.first?["nodePort"], 31234)
        // A ClusterIP Service gets none.
        var plain = nodePortService("d", [nil]); plain[path: "spec", "type"] = "ClusterIP"
        let d = try await client.create(.services, namespace: "default", plain)
        XCTAssertNil(d[path: "spec", "ports"].array?.first?["nodePort"].int)
    }
}

extension ControllerTests {
    /// The A records the DNS server at 127.0.0.1:port gives for `name` (nil: no answer, or not NOERROR).
    func aRecords(_ name: String, port: Int) -> [String]? {
        var q: [UInt8] = [0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        for l in name.split(separator: ".") { q.append(UInt8(l.utf8.count)); q += Array(l.utf8) }
        q += [0, 0, 1, 0, 1]
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var sa = sockaddr_in(); sa.sin_family = sa_family_t(AF_INET); sa.sin_port = UInt16(port).bigEndian
        sa.sin_addr.s_addr = UInt32(0x7f000001).bigEndian
        _ = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, q, q.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var r = [UInt8](repeating: 0, count: 1500)
        let n = recv(fd, &r, r.count, 0)
        guard n >= 12, r[0] == 0xab, r[1] == 0xcd, r[3] & 0x0F == 0 else { return nil }
        // Each record: a 2-byte name pointer, type, class, TTL, length, data.
        var out: [String] = [], i = q.count
        for _ in 0..<(Int(r[6]) << 8 | Int(r[7])) {
            guard i + 12 <= n else { break }
            let len = Int(r[i + 10]) << 8 | Int(r[i + 11])
            if r[i + 3] == 1, len == 4, i + 16 <= n { out.append("\(r[i + 12]).\(r[i + 13]).\(r[i + 14]).\(r[i + 15])") }
            i += 12 + len
        }
        return out
    }

    func testHeadlessServiceNamesItsReadyPodsInDNS() async throws {
        try await start(nodes: 2)
        _ = try await client.create(.deployments, namespace: "default", deploymentJSON("db", replicas: 3))
        let headless: JSON = ["apiVersion": "v1", "kind": "Service", "metadata": ["name": "db"],
                              "spec": ["clusterIP": "None", "selector": ["app": "db"], "ports": [["port": 5432]]]]
        _ = try await client.create(.services, namespace: "default", headless)
        let plain: JSON = ["apiVersion": "v1", "kind": "Service", "metadata": ["name": "front"],
                           "spec": ["selector": ["app": "db"], "ports": [["port": 80]]]]
        let front = try await client.create(.services, namespace: "default", plain)
        let (bound, cont) = AsyncStream<Int>.makeStream()
        let dns = Task { try await ClusterDNS(client: self.client).run(host: "127.0.0.1", port: 0) { cont.yield($0) } }
        defer { dns.cancel() }
        let port = try await withDeadline(10) { for await p in bound { return p }; return 0 }
        func podIPs() async throws -> [String] {
            try await self.pods("app=db").filter { $0.phase == "Running" }.compactMap { $0[path: "status", "podIP"].string }.sorted()
        }
        try await eventually("the headless name lists the 3 pod IPs", timeout: 20) {
            let ips = try await podIPs()
            return ips.count == 3 && self.aRecords("db.default.svc.cluster.local", port: port)?.sorted() == ips
        }
        XCTAssertEqual(aRecords("front.default.svc.cluster.local", port: port), [front[path: "spec", "clusterIP"].string ?? "?"], "a ClusterIP Service: its address only")
        _ = try await client.patch(.deployments, namespace: "default", name: "db", ["spec": ["replicas": 1]])
        try await eventually("the headless name follows the scale-down", timeout: 20) {
            let ips = try await podIPs()
            return ips.count == 1 && self.aRecords("db.default.svc.cluster.local", port: port) == ips
        }
        XCTAssertNil(aRecords("nope.default.svc.cluster.local", port: port), "NXDOMAIN for a missing Service")
    }
}
