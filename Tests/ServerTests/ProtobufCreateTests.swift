// `kubectl create KIND` sends its object as application/vnd.kubernetes.protobuf
// (Sources/ControlPlane/API/KubeProtobuf.swift). Differential: each object is made twice, once by
// the stock kubectl's typed create (protobuf) and once from the JSON kubectl prints for the same
// command (`--dry-run=client -o json`, sent by `kubectl create -f`, which sends JSON); the two
// stored objects must be the same but for their names and server-assigned fields. A body the
// server cannot read faithfully gets 415, not a half-read object.

import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

extension MoatServerTests {
    /// The stored object without what differs by construction (name, uid, times, versions, addresses).
    func normalized(_ kind: String, _ name: String, uidsOf: String) throws -> String {
        let r = try kubectl(["get", kind, name, "-o", "json"])
        guard r.code == 0, var o = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any] else { return "get failed: \(r.out)" }
        o["status"] = nil
        var meta = o["metadata"] as? [String: Any] ?? [:]
        let uid = meta["uid"] as? String ?? "-"
        for k in ["uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "annotations", "name", "selfLink"] { meta[k] = nil }
        o["metadata"] = meta
        if var spec = o["spec"] as? [String: Any] {
            spec["clusterIP"] = nil; spec["clusterIPs"] = nil
            o["spec"] = spec
        }
        let text = String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self)
        return text.replacingOccurrences(of: uid, with: "UID").replacingOccurrences(of: uidsOf, with: "NAME")
    }

    func testKubectlCreateSendsProtobuf() throws {
        let (p, _) = try startAndWaitReady()
        defer { p.terminate() }
        let cases: [(kind: String, args: (String) -> [String])] = [
            ("deployment", { ["create", "deployment", $0, "--image=busybox", "--replicas=2", "--port=8080", "--", "sleep", "3600"] }),
            ("pod", { ["run", $0, "--image=busybox", "--restart=Never", "--env=A=1", "--labels=x=y,z=w", "--port=80", "--", "sleep", "3600"] }),
            ("configmap", { ["create", "configmap", $0, "--from-literal=a=b", "--from-literal=c=line1\nline2"] }),
            ("secret", { ["create", "secret", "generic", $0, "--from-literal=pw=hunter2", "--type=Opaque"] }),
            ("service", { ["create", "service", "clusterip", $0, "--tcp=80:8080", "--tcp=443:http"] }),
            ("job", { ["create", "job", $0, "--image=busybox", "--", "true"] }),
            ("namespace", { ["create", "namespace", $0] }),
        ]
        /// Flags go before a `--` that starts the container's command.
        func with(_ args: [String], _ flags: [String]) -> [String] {
            guard let i = args.firstIndex(of: "--") else { return args + flags }
            return Array(args[..<i]) + flags + Array(args[i...])
        }
        for c in cases {
            let pb = "\(c.kind)-pb", js = "\(c.kind)-js"
            let made = try kubectl(with(c.args(pb), ["-v=8"]))
            XCTAssertEqual(made.code, 0, "\(c.args(pb)): \(made.out.suffix(2000))")
            // (`kubectl run` sends JSON; it is here for the same comparison.)
            if c.kind != "pod" {
                XCTAssertTrue(made.out.contains("Content-Type: application/vnd.kubernetes.protobuf"), "kubectl \(c.kind) did not send protobuf")
            }
            let printed = try kubectl(with(c.args(js), ["--dry-run=client", "-o", "json"]))
            XCTAssertEqual(printed.code, 0, printed.out)
            try printed.out.write(toFile: dir + "/\(js).json", atomically: true, encoding: .utf8)
            let viaJSON = try kubectl(["create", "-f", dir + "/\(js).json"])
            XCTAssertEqual(viaJSON.code, 0, viaJSON.out)
            XCTAssertEqual(try normalized(c.kind, pb, uidsOf: pb), try normalized(c.kind, js, uidsOf: js), "\(c.kind): protobuf and JSON objects differ")
        }
        // Round trips of what was sent: the secret's bytes, the configmap's newline, the run pod's environment.
        XCTAssertEqual(try kubectl(["get", "secret", "secret-pb", "-o", "jsonpath={.data.pw}"]).out, Data("hunter2".utf8).base64EncodedString())
        XCTAssertEqual(try kubectl(["get", "configmap", "configmap-pb", "-o", "jsonpath={.data.c}"]).out, "line1\nline2")
        XCTAssertEqual(try kubectl(["get", "pod", "pod-pb", "-o", "jsonpath={.spec.containers[0].env[0].value}"]).out, "1")
        try waitFor("the protobuf-made deployment's 2 pods Running", timeout: 90) {
            try kubectl(["get", "deployment", "deployment-pb", "-o", "jsonpath={.status.readyReplicas}"]).out == "2"
        }

        // What cannot be read is refused with 415 and a reason: an unknown kind, a field number
        // the server does not know, a truncated body.
        func post(_ body: [UInt8], _ path: String = "/api/v1/namespaces/default/configmaps") throws -> (code: Int32, out: String) {
            try Data(body).write(to: URL(fileURLWithPath: dir + "/body.pb"))
            return try run("/usr/bin/curl", ["-sS", "-w", " %{http_code}", "--cacert", data + "/pki/ca.crt", "--cert", data + "/pki/admin.crt",
                                             "--key", data + "/pki/admin.key", "-H", "Content-Type: application/vnd.kubernetes.protobuf",
                                             "--data-binary", "@" + dir + "/body.pb", "https://127.0.0.1:\(port(of: p))" + path])
        }
        func field(_ n: Int, _ bytes: [UInt8]) -> [UInt8] { [UInt8(n << 3 | 2), UInt8(bytes.count)] + bytes }
        let magic: [UInt8] = Array("k8s".utf8) + [0]
        let typeMeta = field(1, field(1, Array("v1".utf8)) + field(2, Array("ConfigMap".utf8)))
        let meta = field(1, field(1, Array("cm-raw".utf8)))
        let good = try post(magic + typeMeta + field(2, meta + field(2, field(1, Array("k".utf8)) + field(2, Array("v".utf8)))))
        XCTAssertTrue(good.out.hasSuffix(" 201"), good.out)
        XCTAssertEqual(try kubectl(["get", "configmap", "cm-raw", "-o", "jsonpath={.data.k}"]).out, "v")
        let unknownField = try post(magic + typeMeta + field(2, meta + field(9, Array("x".utf8))))
        XCTAssertTrue(unknownField.out.hasSuffix(" 415") && unknownField.out.contains("core.ConfigMap has no field 9"), unknownField.out)
        let unknownKind = try post(magic + field(1, field(1, Array("v1".utf8)) + field(2, Array("Gadget".utf8))) + field(2, meta))
        XCTAssertTrue(unknownKind.out.hasSuffix(" 415") && unknownKind.out.contains("Gadget"), unknownKind.out)
        let truncated = try post(magic + typeMeta + [0x12, 0x40] + meta)
        XCTAssertTrue(truncated.out.hasSuffix(" 415") && truncated.out.contains("truncated"), truncated.out)
    }

    /// The API server's port, from the kubeconfig kubectl uses.
    func port(of p: Process) throws -> Int {
        let server = try kubectl(["config", "view", "-o", "jsonpath={.clusters[0].cluster.server}"]).out
        return Int(server.split(separator: ":").last ?? "") ?? 0
    }
}
