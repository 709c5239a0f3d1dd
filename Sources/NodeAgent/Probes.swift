// Container probes and lifecycle hooks, run by the node agent as kubelet
// runs them. startupProbe gates the other two; livenessProbe failing
// failureThreshold times in a row stops the container (the pod's
// restartPolicy then restarts it, and restartCount shows it);
// readinessProbe drives the container's `ready` and so the pod's Ready
// condition. A container without a readiness probe is ready once it runs
// (and its startup probe passed).
//
// An exec probe is CRI ExecSync with the probe's timeout. tcpSocket and
// httpGet connect to the pod: to its IP when the runtime gives it one
// (CNI), and otherwise inside the pod's own network namespace, which the
// agent enters only to create the socket (on a dedicated thread, switching
// back at once), so the connection reaches the pod's loopback and nothing
// else. postStart runs right after StartContainer and preStop before a
// container is stopped; a failing postStart stops the container.

import CMoat
import CRIAPI
import ControlPlane
import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct ProbeState {
    var startedAt = Date()
    var started = false
    var ready = false
    var failures: [String: Int] = [:]
    var successes: [String: Int] = [:]
    var next: [String: Date] = [:]
}

struct ProbeVerdict {
    var started: Bool
    var ready: Bool
    /// Why the container must be restarted (a failed liveness or startup probe), if it must.
    var kill: String?
    /// "Liveness probe failed" etc., for each probe that failed this time.
    var failed: [String] = []
}

extension NodeAgent {
    /// Runs the container's probes that are due; returns what they say now.
    func runProbes(_ pod: JSON, _ spec: JSON, containerID: String, startedAt: Date, sandboxID: String, podIP: String) async -> ProbeVerdict {
        var s = probes[containerID] ?? ProbeState(startedAt: startedAt)
        let now = Date()
        let hasStartup = !spec["startupProbe"].isNull
        if !hasStartup { s.started = true }
        var kill: String? = nil
        var failed: [String] = []
        for kind in ["startupProbe", "livenessProbe", "readinessProbe"] {
            let p = spec[kind]
            if p.isNull { continue }
            if kind == "startupProbe" && s.started { continue }
            if kind != "startupProbe" && !s.started { continue }
            let initial = Double(p["initialDelaySeconds"].int ?? 0)
            let period = Double(max(1, p["periodSeconds"].int ?? 10))
            let due = s.next[kind] ?? s.startedAt.addingTimeInterval(initial)
            if now < due { continue }
            s.next[kind] = now.addingTimeInterval(period)
            let ok = await probe(p, spec, containerID: containerID, sandboxID: sandboxID, podIP: podIP)
            let failureThreshold = max(1, p["failureThreshold"].int ?? 3)
            let successThreshold = kind == "readinessProbe" ? max(1, p["successThreshold"].int ?? 1) : 1
            if ok {
                s.failures[kind] = 0
                s.successes[kind, default: 0] += 1
                if s.successes[kind]! >= successThreshold {
                    if kind == "startupProbe" { s.started = true }
                    if kind == "readinessProbe" { s.ready = true }
                }
            } else {
                s.successes[kind] = 0
                s.failures[kind, default: 0] += 1
                failed.append(kind.dropLast(5).prefix(1).uppercased() + kind.dropLast(5).dropFirst() + " probe failed")
                if s.failures[kind]! >= failureThreshold {
                    switch kind {
                    case "readinessProbe": s.ready = false
                    case "livenessProbe": kill = "Liveness probe failed"
                    default: kill = "Startup probe failed"
                    }
                }
            }
        }
        if spec["readinessProbe"].isNull { s.ready = s.started }
        probes[containerID] = s
        return ProbeVerdict(started: s.started, ready: s.started && s.ready, kill: kill, failed: failed)
    }

    /// One probe or hook handler (exec, httpGet, tcpSocket): did it succeed?
    func probe(_ p: JSON, _ spec: JSON, containerID: String, sandboxID: String, podIP: String) async -> Bool {
        let timeout = max(1, p["timeoutSeconds"].int ?? 1)
        if !p["exec"].isNull {
            var r = Runtime_V1_ExecSyncRequest()
            r.containerID = containerID
            r.cmd = (p["exec"]["command"].array ?? []).compactMap(\.string)
            r.timeout = Int64(timeout)
            guard let res = try? await runtime.execSync(r) else { return false }
            return res.exitCode == 0
        }
        let h = p["httpGet"].isNull ? p["tcpSocket"] : p["httpGet"]
        guard !h.isNull, let port = Self.port(h["port"], spec) else { return false }
        let host = h["host"].string ?? ""
        let netns = (host.isEmpty && podIP == "127.0.0.1") ? await sandboxNetns(sandboxID) : nil
        let ip = host.isEmpty ? podIP : host
        var request: [UInt8]? = nil
        if !p["httpGet"].isNull {
            var path = h["path"].string ?? "/"
            if !path.hasPrefix("/") { path = "/" + path }
            var head = "GET \(path) HTTP/1.1\r\nHost: \(ip):\(port)\r\nUser-Agent: kube-probe/1.30\r\nAccept: */*\r\nConnection: close\r\n"
            for hh in h["httpHeaders"].array ?? [] {
                let n = hh["name"].string ?? "", v = hh["value"].string ?? ""
                if n.contains(where: { $0 == "\r" || $0 == "\n" || $0 == ":" }) || v.contains(where: { $0 == "\r" || $0 == "\n" }) { continue }
                head += "\(n): \(v)\r\n"
            }
            request = Array((head + "\r\n").utf8)
        }
        let req = request
        return await withCheckedContinuation { cont in
            let t = Thread {
                let r = Self.connectProbe(ip: ip, port: port, netns: netns, request: req, timeout: timeout)
                cont.resume(returning: r ?? false)
                // A thread left in the pod's network namespace never runs anything again.
                if r == nil { while true { pause() } }
            }
            t.start()
        }
    }

    /// A port number, or a named port of the container.
    static func port(_ j: JSON, _ spec: JSON) -> Int? {
        if let n = j.int { return (1...65535).contains(n) ? n : nil }
        if let s = j.string {
            if let n = Int(s) { return (1...65535).contains(n) ? n : nil }
            return (spec["ports"].array ?? []).first { $0["name"].string == s }?["containerPort"].int
        }
        return nil
    }

    /// The pod's network namespace, from the runtime's verbose status (the Sentry's pid).
    func sandboxNetns(_ id: String) async -> String? {
        var q = Runtime_V1_PodSandboxStatusRequest(); q.podSandboxID = id; q.verbose = true
        guard let r = try? await runtime.podSandboxStatus(q), let pid = Int32(r.info["sentryPid"] ?? ""), pid > 0 else { return nil }
        return "/proc/\(pid)/ns/net"
    }

    /// Connects (in `netns` when given), sends `request` if any and expects an HTTP 2xx/3xx answer. Blocking.
    /// nil: the thread could not return to its own network namespace.
    static func connectProbe(ip: String, port: Int, netns: String?, request: [UInt8]?, timeout: Int) -> Bool? {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port)).bigEndian
        guard inet_pton(AF_INET, ip, &addr.sin_addr) == 1 else { return false }
        var fd: Int32 = -1
        if let netns {
            // setns affects only this thread; it goes back before doing anything else.
            let mine = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
            let target = open(netns, O_RDONLY | O_CLOEXEC)
            defer { if mine >= 0 { close(mine) }; if target >= 0 { close(target) } }
            guard mine >= 0, target >= 0, moat_setns(target, 0x4000_0000 /* CLONE_NEWNET */) == 0 else { return false }
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            if moat_setns(mine, 0x4000_0000) != 0 {
                if fd >= 0 { close(fd) }
                return nil
            }
        } else {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        }
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let deadline = Date().addingTimeInterval(Double(timeout))
        func wait(_ events: Int16) -> Bool {
            let ms = Int32(max(0, deadline.timeIntervalSinceNow * 1000))
            var p = pollfd(fd: fd, events: events, revents: 0)
            return poll(&p, 1, ms) == 1 && p.revents & events != 0
        }
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc != 0 {
            guard errno == EINPROGRESS, wait(Int16(POLLOUT)) else { return false }
            var err: Int32 = 0, len = socklen_t(4)
            guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0, err == 0 else { return false }
        }
        guard let request else { return true }
        var sent = 0
        while sent < request.count {
            guard wait(Int16(POLLOUT)) else { return false }
            let n = request[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { if errno == EAGAIN { continue }; return false }
            sent += n
        }
        var got: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 1024)
        while !got.contains(10) && got.count < 4096 {
            guard wait(Int16(POLLIN)) else { return false }
            let n = read(fd, &buf, buf.count)
            if n < 0 && errno == EAGAIN { continue }
            if n <= 0 { break }
            got += buf[0..<n]
        }
        // "HTTP/1.x NNN ..."
        let line = String(decoding: got.prefix { $0 != 10 }, as: UTF8.self).split(separator: " ")
        guard line.count >= 2, line[0].hasPrefix("HTTP/"), let code = Int(line[1]) else { return false }
        return (200..<400).contains(code)
    }

    /// Runs a lifecycle hook (postStart or preStop) of the container, if it has one; false when it failed.
    func runHook(_ spec: JSON, _ which: String, containerID: String, sandboxID: String, podIP: String) async -> Bool {
        let h = spec["lifecycle"][which]
        if h.isNull { return true }
        if !h["sleep"].isNull {
            try? await Task.sleep(nanoseconds: UInt64(max(0, h["sleep"]["seconds"].int ?? 0)) * 1_000_000_000)
            return true
        }
        var p = h
        p["timeoutSeconds"] = 30
        return await probe(p, spec, containerID: containerID, sandboxID: sandboxID, podIP: podIP)
    }

    /// Stops a container after its preStop hook, giving it `grace` seconds before SIGKILL.
    /// `forget`: drop its probe state (only from the sync loop, which owns it).
    func stopContainer(_ spec: JSON?, containerID: String, sandboxID: String, podIP: String, grace: Int, forget: Bool = true) async {
        let start = Date()
        if let spec { _ = await runHook(spec, "preStop", containerID: containerID, sandboxID: sandboxID, podIP: podIP) }
        // The hook's time counts against the grace period (at least 2 s are left for SIGTERM).
        let left = max(2, grace - Int(Date().timeIntervalSince(start)))
        var r = Runtime_V1_StopContainerRequest(); r.containerID = containerID; r.timeout = Int64(left)
        _ = try? await runtime.stopContainer(r)
        if forget { probes[containerID] = nil }
    }
}
