// Request bodies in application/vnd.kubernetes.protobuf, what client-go's typed clients send
// (`kubectl create deployment|configmap|secret|service|job|namespace`, `kubectl run`): decoded
// to the JSON object the registry takes, so they behave exactly like the same object sent as
// JSON. Responses stay JSON (these clients accept it: they ask for protobuf *or* JSON).
//
// The body: the magic "k8s\0", then a runtime.Unknown message (1 typeMeta {1 apiVersion,
// 2 kind}, 2 raw = the object's own message, 3 contentEncoding, 4 contentType). The object is
// walked with the field table of KubeProtobufSchema.swift. What cannot be decoded faithfully
// is refused with 415 naming the field (an unknown field number, a kind or API group not in
// the table, a compressed body, malformed wire data), never dropped: a client gets a clear
// error and can send JSON instead.
//
// Zero values: Go's protobuf encoder writes every non-pointer field, where a JSON client
// omits the zero value; the wire cannot tell the two apart. So empty strings, zero times, 0
// and false are left out, except for the fields where Kubernetes keeps a pointer because an
// explicit 0 or false means something other than absent (`explicitZero`: replicas: 0,
// runAsUser: 0, allowPrivilegeEscalation: false...).

import Foundation
#if canImport(Glibc)
import Glibc
#endif

enum KubeProtobuf {
    struct Field: Sendable {
        let name: String
        let kind: Character
        let repeated: Bool
        let map: Bool
        let message: String?
    }

    static let schema: [String: [Int: Field]] = {
        var out: [String: [Int: Field]] = [:]
        for line in KubeProtobufSchema.text.split(separator: "\n") {
            let words = line.split(separator: " ")
            guard let type = words.first else { continue }
            var fields: [Int: Field] = [:]
            for w in words.dropFirst() {
                let p = w.split(separator: ":", omittingEmptySubsequences: false)
                guard p.count >= 3, let n = Int(p[0]) else { continue }
                var k = Substring(p[2])
                let repeated = k.first == "R", map = k.first == "M"
                if repeated || map { k = k.dropFirst() }
                fields[n] = Field(name: String(p[1]), kind: k.first ?? "z", repeated: repeated, map: map,
                                  message: p.count > 3 ? String(p[3]) : nil)
            }
            out[String(type)] = fields
        }
        return out
    }()

    /// Fields that Go embeds in their parent (`json:",inline"`): their members are the parent's.
    static let inline: Set<String> = ["core.Probe.handler", "core.Volume.volumeSource", "core.EphemeralContainer.ephemeralContainerCommon"]

    /// Fields (by JSON name) whose 0 or false is kept: pointers in the Go types, where it differs from absent.
    static let explicitZero: Set<String> = [
        "replicas", "parallelism", "completions", "backoffLimit", "backoffLimitPerIndex", "maxFailedIndexes", "suspend",
        "ttlSecondsAfterFinished", "startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit",
        "revisionHistoryLimit", "progressDeadlineSeconds", "terminationGracePeriodSeconds", "activeDeadlineSeconds",
        "deletionGracePeriodSeconds", "runAsUser", "runAsGroup", "fsGroup", "runAsNonRoot", "privileged",
        "readOnlyRootFilesystem", "allowPrivilegeEscalation", "automountServiceAccountToken", "enableServiceLinks",
        "hostUsers", "shareProcessNamespace", "setHostnameAsFQDN", "defaultMode", "mode", "optional", "expirationSeconds",
        "immutable", "priority", "procMount", "minDomains", "sizeLimit",
    ]

    /// The API group/version of a typeMeta, to the table's package.
    static let packages = ["v1": "core", "apps/v1": "apps", "batch/v1": "batch"]

    static func refuse(_ why: String) -> APIError {
        APIError(code: 415, reason: "UnsupportedMediaType",
                 message: "the protobuf body cannot be read (\(why)); send it as application/json")
    }

    /// The object in a protobuf request body, as JSON.
    static func decode(_ data: [UInt8]) throws -> JSON {
        guard data.count >= 4, data[0..<4].elementsEqual([0x6b, 0x38, 0x73, 0x00]) else { throw refuse("no k8s magic") }
        var r = WireReader(data[4...])
        var apiVersion = "", kind = "", encoding = ""
        var raw: ArraySlice<UInt8> = []
        while !r.atEnd {
            let (n, wt) = try r.tag()
            switch (n, wt) {
            case (1, 2):
                var t = WireReader(try r.bytes())
                while !t.atEnd {
                    let (m, w) = try t.tag()
                    if m == 1 && w == 2 { apiVersion = try t.string() } else if m == 2 && w == 2 { kind = try t.string() } else { try t.skip(w) }
                }
            case (2, 2): raw = try r.bytes()
            case (3, 2): encoding = try r.string()
            default: try r.skip(wt)
            }
        }
        guard encoding.isEmpty else { throw refuse("content encoding \(encoding)") }
        guard let pkg = packages[apiVersion], schema["\(pkg).\(kind)"] != nil else { throw refuse("kind \(kind) of \(apiVersion) is not known") }
        var obj = try message("\(pkg).\(kind)", raw, depth: 0)
        obj["apiVersion"] = .string(apiVersion)
        obj["kind"] = .string(kind)
        return .object(obj)
    }

    static func message(_ type: String, _ bytes: ArraySlice<UInt8>, depth: Int) throws -> [String: JSON] {
        guard depth < 64 else { throw refuse("nested too deeply") }
        guard let fields = schema[type] else { throw refuse("\(type) is not known") }
        var out: [String: JSON] = [:]
        var r = WireReader(bytes)
        while !r.atEnd {
            let (n, wt) = try r.tag()
            guard let f = fields[n] else { throw refuse("\(type) has no field \(n)") }
            if f.map {
                guard wt == 2 else { throw refuse("\(type).\(f.name): not a map entry") }
                var e = WireReader(try r.bytes())
                var key = "", value: JSON? = nil
                while !e.atEnd {
                    let (m, w) = try e.tag()
                    if m == 1 && w == 2 { key = try e.string() }
                    else if m == 2 { value = try scalar(f, w, &e, type: type, depth: depth, keepEmpty: true) }
                    else { try e.skip(w) }
                }
                var m = out[f.name]?.object ?? [:]
                m[key] = value ?? (f.kind == "s" || f.kind == "y" || f.kind == "q" ? .string("") : .null)
                out[f.name] = .object(m)
                continue
            }
            if f.repeated && wt == 2 && (f.kind == "i" || f.kind == "b") {
                // Packed numbers.
                var p = WireReader(try r.bytes())
                var a = out[f.name]?.array ?? []
                while !p.atEnd { a.append(f.kind == "b" ? .bool(try p.varint() != 0) : .int(Int(Int64(bitPattern: try p.varint())))) }
                out[f.name] = .array(a)
                continue
            }
            let v = try scalar(f, wt, &r, type: type, depth: depth, keepEmpty: f.repeated)
            if f.repeated {
                out[f.name] = .array((out[f.name]?.array ?? []) + [v ?? .null])
            } else if let v {
                if inline.contains("\(type).\(f.name)") || f.name == "localObjectReference", case .object(let o) = v {
                    for (k, x) in o { out[k] = x }
                } else {
                    out[f.name] = v
                }
            }
        }
        return out
    }

    /// One value of field `f`; nil for a zero value JSON would omit (unless `keepEmpty`).
    static func scalar(_ f: Field, _ wt: Int, _ r: inout WireReader, type: String, depth: Int, keepEmpty: Bool) throws -> JSON? {
        func want(_ w: Int) throws { if wt != w { throw refuse("\(type).\(f.name): wire type \(wt)") } }
        switch f.kind {
        case "s":
            try want(2)
            let s = try r.string()
            return s.isEmpty && !keepEmpty ? nil : .string(s)
        case "i":
            try want(0)
            let v = Int(Int64(bitPattern: try r.varint()))
            return v == 0 && !keepEmpty && !explicitZero.contains(f.name) ? nil : .int(v)
        case "b":
            try want(0)
            let v = try r.varint() != 0
            return !v && !keepEmpty && !explicitZero.contains(f.name) ? nil : .bool(v)
        case "y":
            try want(2)
            return .string(Data(try r.bytes()).base64EncodedString())
        case "d":
            if wt == 1 { return .double(Double(bitPattern: try r.fixed(8))) }
            try want(5)
            return .double(Double(Float(bitPattern: UInt32(try r.fixed(4)))))
        case "t":
            try want(2)
            var t = WireReader(try r.bytes())
            var seconds: Int64 = 0, nanos: Int64 = 0
            while !t.atEnd {
                let (m, w) = try t.tag()
                if m == 1 && w == 0 { seconds = Int64(bitPattern: try t.varint()) } else if m == 2 && w == 0 { nanos = Int64(bitPattern: try t.varint()) } else { try t.skip(w) }
            }
            if seconds == 0 && nanos == 0 { return keepEmpty ? .null : nil }
            return .string(rfc3339(seconds, nanos))
        case "q":
            try want(2)
            var q = WireReader(try r.bytes())
            var s = ""
            while !q.atEnd { let (m, w) = try q.tag(); if m == 1 && w == 2 { s = try q.string() } else { try q.skip(w) } }
            return .string(s)
        case "n":
            try want(2)
            var q = WireReader(try r.bytes())
            var kind: UInt64 = 0, i: Int64 = 0, s = ""
            while !q.atEnd {
                let (m, w) = try q.tag()
                switch (m, w) {
                case (1, 0): kind = try q.varint()
                case (2, 0): i = Int64(Int32(truncatingIfNeeded: try q.varint()))
                case (3, 2): s = try q.string()
                default: try q.skip(w)
                }
            }
            return kind == 1 ? .string(s) : .int(Int(i))
        case "x":
            try want(2)
            var q = WireReader(try r.bytes())
            var raw: ArraySlice<UInt8> = []
            while !q.atEnd { let (m, w) = try q.tag(); if m == 1 && w == 2 { raw = try q.bytes() } else { try q.skip(w) } }
            if raw.isEmpty { return keepEmpty ? .null : nil }
            guard let j = try? JSON.parse(Data(raw)) else { throw refuse("\(type).\(f.name): not JSON") }
            return j
        case "m":
            try want(2)
            guard let sub = f.message else { throw refuse("\(type).\(f.name)") }
            return .object(try message(sub, try r.bytes(), depth: depth + 1))
        default:
            throw refuse("\(type).\(f.name) is not supported")
        }
    }

    static func rfc3339(_ seconds: Int64, _ nanos: Int64) -> String {
        var t = time_t(seconds)
        var tm = tm()
        gmtime_r(&t, &tm)
        let base = String(format: "%04d-%02d-%02dT%02d:%02d:%02d", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1, Int(tm.tm_mday),
                          Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec))
        return nanos == 0 ? base + "Z" : base + String(format: ".%06dZ", Int(nanos / 1000))
    }
}

/// Protocol buffers wire format, read from a byte slice; every overrun is an error.
struct WireReader {
    var b: ArraySlice<UInt8>
    init(_ b: ArraySlice<UInt8>) { self.b = b }
    var atEnd: Bool { b.isEmpty }

    mutating func varint() throws -> UInt64 {
        var v: UInt64 = 0, shift: UInt64 = 0
        while let x = b.first {
            b = b.dropFirst()
            guard shift < 64 else { throw KubeProtobuf.refuse("a varint too long") }
            v |= UInt64(x & 0x7f) << shift
            if x & 0x80 == 0 { return v }
            shift += 7
        }
        throw KubeProtobuf.refuse("truncated")
    }

    mutating func tag() throws -> (Int, Int) {
        let t = try varint()
        guard t >> 3 > 0, t >> 3 < 1 << 29 else { throw KubeProtobuf.refuse("field number 0") }
        return (Int(t >> 3), Int(t & 7))
    }

    mutating func bytes() throws -> ArraySlice<UInt8> {
        let n = try varint()
        guard n <= UInt64(b.count) else { throw KubeProtobuf.refuse("truncated") }
        let out = b.prefix(Int(n))
        b = b.dropFirst(Int(n))
        return out
    }

    mutating func string() throws -> String {
        guard let s = String(validating: try bytes(), as: UTF8.self) else { throw KubeProtobuf.refuse("a string is not UTF-8") }
        return s
    }

    mutating func fixed(_ n: Int) throws -> UInt64 {
        guard b.count >= n else { throw KubeProtobuf.refuse("truncated") }
        var v: UInt64 = 0
        for (i, x) in b.prefix(n).enumerated() { v |= UInt64(x) << (8 * UInt64(i)) }
        b = b.dropFirst(n)
        return v
    }

    mutating func skip(_ wt: Int) throws {
        switch wt {
        case 0: _ = try varint()
        case 1: _ = try fixed(8)
        case 2: _ = try bytes()
        case 5: _ = try fixed(4)
        default: throw KubeProtobuf.refuse("wire type \(wt)")
        }
    }
}
