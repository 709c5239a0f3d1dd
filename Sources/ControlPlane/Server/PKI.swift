// PKI: the certificate authority and certificates `moat server` creates on its first start
// and reuses afterwards (swift-certificates, swift-crypto; P-256 keys, PEM files, 0600).
//
// DATA/pki/ holds ca.{crt,key}, apiserver.{crt,key} (SANs: localhost, 127.0.0.1, ::1, the
// host name and the listen address), and client certificates: admin (O=system:masters),
// node-NAME (CN=system:node:NAME, O=system:nodes) and viewer (O=moat:viewers). Identities
// follow the usual Kubernetes convention: CN is the user, each O a group; `ClientIdentity`
// turns a verified peer certificate back into a `UserInfo`.

import Crypto
import Foundation
import SwiftASN1
import X509

public struct PKI: Sendable {
    public let directory: String
    public var caCert: String { directory + "/ca.crt" }
    public var serverCert: String { directory + "/apiserver.crt" }
    public var serverKey: String { directory + "/apiserver.key" }
    public func clientCert(_ who: String) -> String { directory + "/\(who).crt" }
    public func clientKey(_ who: String) -> String { directory + "/\(who).key" }

    /// Loads DATA/pki, creating whatever is missing: the CA first (never replaced while its
    /// key exists), then the serving certificate (re-issued when the names it must carry
    /// change) and the client certificates.
    public static func ensure(directory: String, hosts: [String], nodeName: String) throws -> PKI {
        let pki = PKI(directory: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let (ca, caKey) = try pki.loadOrCreateCA()
        let names = Array(Set(["localhost", "127.0.0.1", "::1"] + hosts)).sorted()
        let namesFile = directory + "/apiserver.names"
        if (try? String(contentsOfFile: namesFile, encoding: .utf8)) != names.joined(separator: "\n") || !pki.exists("apiserver") {
            try pki.issue("apiserver", cn: "moat-apiserver", orgs: [], server: names, ca: ca, caKey: caKey)
            try write(names.joined(separator: "\n"), to: namesFile)
        }
        for (who, cn, orgs) in [("admin", "admin", ["system:masters"]),
                                ("node-\(nodeName)", "system:node:\(nodeName)", ["system:nodes"]),
                                ("viewer", "viewer", ["moat:viewers"])] where !pki.exists(who) {
            try pki.issue(who, cn: cn, orgs: orgs, server: nil, ca: ca, caKey: caKey)
        }
        return pki
    }

    func exists(_ who: String) -> Bool {
        FileManager.default.fileExists(atPath: clientCert(who)) && FileManager.default.fileExists(atPath: clientKey(who))
    }

    func loadOrCreateCA() throws -> (Certificate, Certificate.PrivateKey) {
        let keyPath = directory + "/ca.key"
        if let keyPEM = try? String(contentsOfFile: keyPath, encoding: .utf8),
           let certPEM = try? String(contentsOfFile: caCert, encoding: .utf8) {
            let key = try P256.Signing.PrivateKey(pemRepresentation: keyPEM)
            return (try Certificate(pemEncoded: certPEM), Certificate.PrivateKey(key))
        }
        let key = P256.Signing.PrivateKey()
        let caKey = Certificate.PrivateKey(key)
        let name = try DistinguishedName { CommonName("moat-ca") }
        let now = Date()
        let cert = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: caKey.publicKey,
            notValidBefore: now - 3600, notValidAfter: now + 10 * 365 * 86400,
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: caKey.publicKey)
            },
            issuerPrivateKey: caKey)
        try Self.write(key.pemRepresentation, to: keyPath)
        try Self.write(try cert.serializeAsPEM().pemString, to: caCert)
        return (cert, caKey)
    }

    /// Issues NAME.crt/NAME.key signed by the CA: a serving certificate when `server` lists
    /// its names (DNS names or IP addresses), a client certificate otherwise.
    func issue(_ file: String, cn: String, orgs: [String], server: [String]?, ca: Certificate, caKey: Certificate.PrivateKey) throws {
        let key = P256.Signing.PrivateKey()
        let pub = Certificate.PrivateKey(key).publicKey
        let subject = try DistinguishedName {
            for o in orgs { OrganizationName(o) }
            CommonName(cn)
        }
        let now = Date()
        let sans: [GeneralName] = (server ?? []).map { n in
            if let ip = Self.ipBytes(n) { return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(ip))) }
            return .dnsName(n)
        }
        let cert = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: pub,
            notValidBefore: now - 3600, notValidAfter: now + 365 * 86400,
            issuer: ca.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([server == nil ? .clientAuth : .serverAuth])
                if server != nil { SubjectAlternativeNames(sans) }
            },
            issuerPrivateKey: caKey)
        try Self.write(key.pemRepresentation, to: clientKey(file))
        try Self.write(try cert.serializeAsPEM().pemString, to: clientCert(file))
    }

    static func ipBytes(_ s: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, s, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, s, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    static func write(_ text: String, to path: String) throws {
        let tmp = path + ".tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw SupervisorError("cannot write \(tmp)")
        }
        guard rename(tmp, path) == 0 else { throw SupervisorError("cannot write \(path): errno \(errno)") }
    }

    /// The kubeconfig for one of the client identities, with the CA and the key inline.
    public func kubeconfig(server: String, user who: String) throws -> String {
        func b64(_ p: String) throws -> String { try Data(contentsOf: URL(fileURLWithPath: p)).base64EncodedString() }
        return """
            apiVersion: v1
            kind: Config
            clusters:
            - name: moat
              cluster:
                server: \(server)
                certificate-authority-data: \(try b64(caCert))
            contexts:
            - name: moat
              context:
                cluster: moat
                user: \(who)
                namespace: default
            current-context: moat
            users:
            - name: \(who)
              user:
                client-certificate-data: \(try b64(clientCert(who)))
                client-key-data: \(try b64(clientKey(who)))

            """
    }
}

/// A verified client certificate's subject as a user: CN is the name, O the groups.
public enum ClientIdentity {
    public static func user(fromDER der: [UInt8]) -> UserInfo? {
        guard let cert = try? Certificate(derEncoded: der) else { return nil }
        var cn: String?, groups: [String] = []
        for rdn in cert.subject {
            for a in rdn {
                if a.type == .RDNAttributeType.commonName { cn = String(a.value) }
                if a.type == .RDNAttributeType.organizationName, let o = String(a.value) { groups.append(o) }
            }
        }
        guard let name = cn else { return nil }
        return UserInfo(name: name, groups: groups)
    }
}
