import Foundation

/// A generic JSON value. Every API object is held as a `JSON` tree; typed accessors
/// for the fields the control plane cares about live in `Object.swift`.
public enum JSON: Sendable, Equatable, Hashable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    // MARK: Accessors

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var int: Int? {
        switch self {
        case .int(let i): return i
        case .double(let d) where d == d.rounded() && abs(d) < 9e15: return Int(d)
        default: return nil
        }
    }
    public var double: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }
    public var array: [JSON]? { if case .array(let a) = self { return a }; return nil }
    public var object: [String: JSON]? { if case .object(let o) = self { return o }; return nil }
    public var isNull: Bool { if case .null = self { return true }; return false }

    /// Member access; returns `.null` for missing keys or non-objects. Setting `.null` removes the key.
    public subscript(key: String) -> JSON {
        get { if case .object(let o) = self { return o[key] ?? .null }; return .null }
        set {
            var o = object ?? [:]
            if case .null = newValue { o.removeValue(forKey: key) } else { o[key] = newValue }
            self = .object(o)
        }
    }

    /// Nested access by a path of keys, e.g. `obj[path: "spec", "replicas"]`.
    public subscript(path keys: String...) -> JSON {
        get { self[keyPath: keys] }
        set { self[keyPath: keys] = newValue }
    }

    public subscript(keyPath keys: [String]) -> JSON {
        get {
            var cur = self
            for k in keys { cur = cur[k] }
            return cur
        }
        set {
            guard let first = keys.first else { self = newValue; return }
            var child = self[first]
            child[keyPath: Array(keys.dropFirst())] = newValue
            // Avoid materialising empty intermediate objects when removing.
            if case .null = newValue, keys.count > 1, case .object(let o) = child, o.isEmpty, self[first].isNull {
                return
            }
            self[first] = child
        }
    }

    // MARK: Serialisation

    public static func parse(_ data: Data) throws -> JSON {
        try JSONCodec.parse(data)
    }

    public static func parse(_ text: String) throws -> JSON {
        try parse(Data(text.utf8))
    }

    public func serialized(pretty: Bool = false) -> Data {
        if !pretty { return JSONCodec.serialize(self) }
        let enc = JSONEncoder()
        enc.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return (try? enc.encode(self)) ?? Data("null".utf8)
    }

    public var text: String { String(decoding: serialized(), as: UTF8.self) }
}

extension JSON: Codable {
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null; return }
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let i = try? c.decode(Int.self) { self = .int(i); return }
        if let d = try? c.decode(Double.self) { self = .double(d); return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        if let a = try? c.decode([JSON].self) { self = .array(a); return }
        if let o = try? c.decode([String: JSON].self) { self = .object(o); return }
        throw DecodingError.dataCorruptedError(in: c, debugDescription: "invalid JSON value")
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .double(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSON)...) {
        var o: [String: JSON] = [:]
        for (k, v) in elements { o[k] = v }
        self = .object(o)
    }
    public init(nilLiteral: ()) { self = .null }
}

// MARK: - Normalisation

extension JSON {
    /// Removes `null` members recursively (and, with `dropEmpty`, empty objects and arrays),
    /// the way typed API clients omit unset fields.
    public func pruned(dropEmpty: Bool = false) -> JSON {
        switch self {
        case .object(let o):
            var out: [String: JSON] = [:]
            for (k, v) in o {
                let p = v.pruned(dropEmpty: dropEmpty)
                if p.isNull { continue }
                if dropEmpty, (p.object?.isEmpty ?? false) || (p.array?.isEmpty ?? false) { continue }
                out[k] = p
            }
            return .object(out)
        case .array(let a):
            return .array(a.map { $0.pruned(dropEmpty: dropEmpty) })
        default:
            return self
        }
    }
}

// MARK: - Patching

extension JSON {
    /// JSON merge patch (RFC 7386): objects merge recursively, `null` deletes, anything else replaces.
    public func mergePatched(with patch: JSON) -> JSON {
        guard case .object(let p) = patch else { return patch }
        var result = self.object ?? [:]
        for (k, v) in p {
            if case .null = v {
                result.removeValue(forKey: k)
            } else {
                result[k] = (result[k] ?? .null).mergePatched(with: v)
            }
        }
        return .object(result)
    }

    /// Keys that identify list elements for strategic-merge patches of well-known list fields.
    static let strategicMergeKeys: [String: String] = [
        "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
        "volumes": "name", "env": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath",
        "ports": "containerPort", "conditions": "type", "imagePullSecrets": "name",
        "tolerations": "key", "ownerReferences": "uid", "hostAliases": "ip", "topologySpreadConstraints": "topologyKey",
    ]

    /// A pragmatic strategic-merge patch: like merge patch, but lists of objects under
    /// well-known fields are merged element-wise by their merge key, `$patch: delete`
    /// removes an element, and `$setElementOrder/...`/`$retainKeys`/`$deleteFromPrimitiveList/...`
    /// directives are honoured approximately (order) or ignored.
    public func strategicMergePatched(with patch: JSON) -> JSON {
        guard case .object(let p) = patch else { return patch }
        if p["$patch"]?.string == "replace" {
            var copy = p; copy.removeValue(forKey: "$patch")
            return .object(copy)
        }
        var result = self.object ?? [:]
        var orders: [String: [JSON]] = [:]
        for (k, v) in p {
            if k.hasPrefix("$setElementOrder/") {
                orders[String(k.dropFirst("$setElementOrder/".count))] = v.array ?? []
                continue
            }
            if k.hasPrefix("$deleteFromPrimitiveList/") {
                let field = String(k.dropFirst("$deleteFromPrimitiveList/".count))
                let remove = Set(v.array ?? [])
                if let cur = result[field]?.array { result[field] = .array(cur.filter { !remove.contains($0) }) }
                continue
            }
            if k.hasPrefix("$") { continue }
            if case .null = v { result.removeValue(forKey: k); continue }
            if case .array(let patchList) = v, let mergeKey = JSON.strategicMergeKeys[k],
               case .array(let curList)? = result[k],
               patchList.allSatisfy({ $0[mergeKey] != .null }), curList.allSatisfy({ $0[mergeKey] != .null })
            {
                result[k] = .array(JSON.mergeList(curList, patchList, key: mergeKey, order: orders[k]))
                continue
            }
            result[k] = (result[k] ?? .null).strategicMergePatched(with: v)
        }
        return .object(result)
    }

    static func mergeList(_ cur: [JSON], _ patch: [JSON], key: String, order: [JSON]?) -> [JSON] {
        var out = cur
        for item in patch {
            let id = item[key]
            let idx = out.firstIndex { $0[key] == id }
            if item["$patch"].string == "delete" {
                if let idx { out.remove(at: idx) }
                continue
            }
            if let idx { out[idx] = out[idx].strategicMergePatched(with: item) } else {
                var clean = item; clean["$patch"] = .null
                out.append(clean)
            }
        }
        if let order {
            let ids = order.map { $0[key] }
            out.sort { a, b in
                (ids.firstIndex(of: a[key]) ?? Int.max) < (ids.firstIndex(of: b[key]) ?? Int.max)
            }
        }
        return out
    }
}
