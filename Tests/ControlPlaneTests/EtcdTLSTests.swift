import Foundation
import XCTest
@testable import ControlPlane

/// `EtcdStore` on an `https://` endpoint: an etcd (Debian's etcd-server) serving TLS with a
/// certificate from a CA the test makes with openssl, and requiring client certificates
/// (`--client-cert-auth`). With the CA and a client certificate the store reads, writes and
/// watches; without the client certificate etcd refuses it.
final class EtcdTLSTests: XCTestCase {
    func testHTTPSEndpointWithCAAndClientCertificate() async throws {
        try requireBackend(.etcd)
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("openssl missing under CI") }
            throw XCTSkip("openssl is not installed")
        }
        let dir = try TempDir()
        let d = dir.path
        let pki = """
            set -e; cd '\(d)'
            openssl ecparam -name prime256v1 -genkey -noout -out ca.key
            openssl req -x509 -new -key ca.key -subj /CN=moat-test-etcd-ca -days 1 -out ca.crt
            printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth,clientAuth\\n' > ext
            for n in server client; do
                openssl ecparam -name prime256v1 -genkey -noout -out $n.key
                openssl req -new -key $n.key -subj /CN=$n -out $n.csr
                openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile ext -out $n.crt
            done
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", pki]
        p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
        try p.run(); p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "openssl")
        let cport = freeLoopbackPort(), pport = freeLoopbackPort()
        let etcd = try ManagedProcess([EtcdProcess.binary!, "--name", "s", "--data-dir", d + "/data",
                                       "--listen-client-urls", "https://127.0.0.1:\(cport)", "--advertise-client-urls", "https://127.0.0.1:\(cport)",
                                       "--listen-peer-urls", "http://127.0.0.1:\(pport)", "--initial-advertise-peer-urls", "http://127.0.0.1:\(pport)",
                                       "--initial-cluster", "s=http://127.0.0.1:\(pport)",
                                       "--cert-file", d + "/server.crt", "--key-file", d + "/server.key",
                                       "--client-cert-auth", "--trusted-ca-file", d + "/ca.crt", "--logger", "zap", "--log-level", "error"],
                                      log: d + "/etcd.log", cleanup: d + "/data")
        defer { etcd.stop() }

        let store = try EtcdStore(endpoints: ["https://127.0.0.1:\(cport)"],
                                  tls: .init(caFile: d + "/ca.crt", certFile: d + "/client.crt", keyFile: d + "/client.key"))
        defer { store.close() }
        store.retryWindow = .seconds(20)  // etcd is still starting
        let base = try await store.currentRevision()
        let events = try await store.watch(resource: "configmaps", namespace: nil, fromRevision: base)
        let key = ObjectKey(resource: "configmaps", namespace: "default", name: "tls")
        let made = try await store.create(key, value: Data("over TLS".utf8))
        let got = try await store.get(key)
        XCTAssertEqual(got?.value, Data("over TLS".utf8))
        let first = try await withDeadline(20) { () -> StoreEvent? in
            for try await e in events { return e }
            return nil
        }
        XCTAssertEqual(first?.revision, made.modRevision)

        // Without a client certificate etcd does not let the store in.
        let anonymous = try EtcdStore(endpoints: ["https://127.0.0.1:\(cport)"], tls: .init(caFile: d + "/ca.crt"))
        defer { anonymous.close() }
        anonymous.retryWindow = .seconds(2)
        do { _ = try await anonymous.get(key); XCTFail("etcd answered a client without a certificate") } catch {}
        XCTAssertTrue(etcd.isRunning, etcd.log)
    }
}
