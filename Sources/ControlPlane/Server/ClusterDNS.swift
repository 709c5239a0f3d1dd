// ClusterDNS: the cluster's DNS server (UDP), answering A queries for
// NAME.NAMESPACE.svc.DOMAIN (default domain cluster.local) with the Service's ClusterIP,
// from an informer over Services; a headless Service (clusterIP None) answers with the
// addresses of its ready endpoints instead (an informer over Endpoints), one A record
// each, as clients of a headless Service expect. Names in the cluster domain that do not exist get
// NXDOMAIN; AAAA and other types of existing names get an empty answer; names outside
// the cluster domain get REFUSED (no forwarding: pods reach no resolver outside the
// cluster through it).
//
// Threads: one dedicated thread runs the blocking receive loop; the informer's cache (its
// own lock) is the only shared state.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

public final class ClusterDNS: @unchecked Sendable {
    let services: Informer
    let endpoints: Informer
    let domain: String
    let ttl: UInt32 = 5

    public init(client: any APIClient, domain: String = "cluster.local") {
        services = Informer(client: client, resource: .services)
        endpoints = Informer(client: client, resource: .endpoints)
        self.domain = domain.lowercased()
    }

    /// The addresses of NAME.NAMESPACE.svc.DOMAIN: .some([ClusterIP]) for a Service with one,
    /// .some(ready endpoint addresses) for a headless one (possibly none), .some(nil) for a
    /// name in the domain without a Service, nil outside the domain.
    func lookup(_ name: String) -> [UInt32]?? {
        let n = name.lowercased().hasSuffix(".") ? String(name.lowercased().dropLast()) : name.lowercased()
        guard n == domain || n.hasSuffix("." + domain) else { return nil }
        let labels = n.dropLast(domain.count).split(separator: ".").map(String.init)
        guard labels.count == 3, labels[2] == "svc", let svc = services.get(namespace: labels[1], name: labels[0]) else { return .some(nil) }
        let ip = svc["spec"]["clusterIP"].string ?? ""
        if ip == "None" {
            let eps = endpoints.get(namespace: labels[1], name: labels[0])
            let all = (eps?["subsets"].array ?? []).flatMap { $0["addresses"].array ?? [] }.compactMap { $0["ip"].string.flatMap(IPv4CIDR.parse) }
            return .some(Array(Set(all)).sorted())
        }
        guard let a = IPv4CIDR.parse(ip) else { return .some(nil) }
        return .some([a])
    }

    /// The reply to one query message; nil for what is not a query worth answering.
    func answer(_ q: [UInt8]) -> [UInt8]? {
        guard q.count >= 12, q[2] & 0x80 == 0 else { return nil }            // a query, not a response
        let opcode = (q[2] >> 3) & 0x0F
        let qd = Int(q[4]) << 8 | Int(q[5])
        var reply = Array(q[0..<2])
        func header(rcode: UInt8, answers: Int, question: Bool) {
            reply += [0x80 | (q[2] & 0x79) | 0x04, rcode]                       // QR, opcode and RD kept, AA set
            reply += [0, question ? 1 : 0, UInt8(answers >> 8), UInt8(answers & 255), 0, 0, 0, 0]
        }
        guard opcode == 0, qd == 1 else { header(rcode: 4, answers: 0, question: false); return reply }   // NOTIMP
        // The question: labels (no compression in a question), type, class.
        var i = 12, labels: [String] = []
        while i < q.count, q[i] != 0 {
            let len = Int(q[i])
            guard len < 64, i + 1 + len < q.count else { header(rcode: 1, answers: 0, question: false); return reply }   // FORMERR
            labels.append(String(decoding: q[(i + 1)...(i + len)], as: UTF8.self))
            i += 1 + len
        }
        guard i + 4 < q.count else { header(rcode: 1, answers: 0, question: false); return reply }
        let question = Array(q[12...(i + 4)])
        let qtype = Int(q[i + 1]) << 8 | Int(q[i + 2]), qclass = Int(q[i + 3]) << 8 | Int(q[i + 4])
        guard let found = lookup(labels.joined(separator: ".")) else {
            header(rcode: 5, answers: 0, question: true); return reply + question                          // REFUSED
        }
        guard var addrs = found else { header(rcode: 3, answers: 0, question: true); return reply + question }  // NXDOMAIN
        guard (qtype == 1 || qtype == 255), qclass == 1 || qclass == 255 else {
            header(rcode: 0, answers: 0, question: true); return reply + question
        }
        // At most what fits a 512-byte UDP reply (16 bytes a record after the question).
        addrs = Array(addrs.prefix(max(0, (512 - 12 - question.count) / 16)))
        header(rcode: 0, answers: addrs.count, question: true)
        reply += question
        for addr in addrs {
            reply += [0xC0, 12, 0, 1, 0, 1]                                      // the question's name, A, IN
            reply += [UInt8(ttl >> 24), UInt8(ttl >> 16 & 255), UInt8(ttl >> 8 & 255), UInt8(ttl & 255), 0, 4]
            reply += [UInt8(addr >> 24), UInt8(addr >> 16 & 255), UInt8(addr >> 8 & 255), UInt8(addr & 255)]
        }
        return reply
    }

    /// Serves on host:port (UDP, IPv4) until the task is cancelled.
    public func run(host: String, port: Int, onRunning: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        guard let a = IPv4CIDR.parse(host) else { throw SupervisorError("the DNS address must be IPv4: \(host)") }
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw SupervisorError("DNS socket: errno \(errno)") }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET); sa.sin_port = UInt16(port).bigEndian; sa.sin_addr.s_addr = a.bigEndian
        let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { let e = errno; close(fd); throw SupervisorError("DNS bind \(host):\(port): errno \(e)") }
        var tv = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        onRunning(Int(UInt16(bigEndian: sa.sin_port)))

        let informer = Task { await withTaskGroup(of: Void.self) { g in
            g.addTask { await self.services.run() }
            g.addTask { await self.endpoints.run() }
        } }
        let stop = StopFlag()
        let thread = Thread { [self] in
            var buf = [UInt8](repeating: 0, count: 1500)
            while !stop.isSet {
                var from = sockaddr_storage(), flen = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let n = withUnsafeMutablePointer(to: &from) { p in
                    p.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buf, buf.count, 0, $0, &flen) }
                }
                guard n > 0, let reply = answer(Array(buf[0..<n])) else { continue }
                _ = withUnsafePointer(to: &from) { p in
                    p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, reply, reply.count, 0, $0, flen) }
                }
            }
            close(fd)
        }
        thread.start()
        await withTaskCancellationHandler {
            while !Task.isCancelled { try? await Task.sleep(nanoseconds: 500_000_000) }
        } onCancel: { stop.set() }
        stop.set()
        informer.cancel()
    }
}

final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
