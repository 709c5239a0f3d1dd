import Foundation

/// JSON Patch (RFC 6902): add, remove, replace, move, copy, test over JSON Pointer paths.
public enum JSONPatch {
    public struct Failure: Error, CustomStringConvertible { public let description: String }

    public static func apply(_ ops: JSON, to doc: JSON) throws -> JSON {
        guard let list = ops.array else { throw Failure(description: "a JSON patch must be an array of operations") }
        var d = doc
        for op in list {
            guard let name = op["op"].string, let path = op["path"].string else {
                throw Failure(description: "each operation needs \"op\" and \"path\"")
            }
            let tokens = try pointer(path)
            switch name {
            case "add": d = try set(d, tokens, op["value"], insert: true)
            case "replace":
                _ = try get(d, tokens)
                d = try set(d, tokens, op["value"], insert: false)
            case "remove": d = try remove(d, tokens)
            case "test":
                if try get(d, tokens) != op["value"] { throw Failure(description: "test operation failed at \(path)") }
            case "move", "copy":
                guard let from = op["from"].string else { throw Failure(description: "\(name) needs \"from\"") }
                let src = try pointer(from)
                let value = try get(d, src)
                if name == "move" { d = try remove(d, src) }
                d = try set(d, tokens, value, insert: true)
            default:
                throw Failure(description: "unsupported JSON patch operation \"\(name)\"")
            }
        }
        return d
    }

    static func pointer(_ p: String) throws -> [String] {
        if p.isEmpty { return [] }
        guard p.hasPrefix("/") else { throw Failure(description: "invalid JSON pointer \"\(p)\"") }
        return p.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            $0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
        }
    }

    static func get(_ doc: JSON, _ t: [String]) throws -> JSON {
        var cur = doc
        for k in t {
            switch cur {
            case .object(let o):
                guard let v = o[k] else { throw Failure(description: "path not found: \(k)") }
                cur = v
            case .array(let a):
                guard let i = Int(k), a.indices.contains(i) else { throw Failure(description: "bad array index \(k)") }
                cur = a[i]
            default: throw Failure(description: "path not found: \(k)")
            }
        }
        return cur
    }

    static func set(_ doc: JSON, _ t: [String], _ value: JSON, insert: Bool) throws -> JSON {
        guard let k = t.first else { return value }
        let rest = Array(t.dropFirst())
        switch doc {
        case .object(var o):
            if rest.isEmpty { o[k] = value } else {
                guard let child = o[k] else { throw Failure(description: "path not found: \(k)") }
                o[k] = try set(child, rest, value, insert: insert)
            }
            return .object(o)
        case .array(var a):
            if rest.isEmpty {
                if k == "-" { a.append(value); return .array(a) }
                guard let i = Int(k), i >= 0, i <= a.count, insert || i < a.count else { throw Failure(description: "bad array index \(k)") }
                if insert { a.insert(value, at: i) } else { a[i] = value }
            } else {
                guard let i = Int(k), a.indices.contains(i) else { throw Failure(description: "bad array index \(k)") }
                a[i] = try set(a[i], rest, value, insert: insert)
            }
            return .array(a)
        default:
            throw Failure(description: "cannot set \(k) in a scalar")
        }
    }

    static func remove(_ doc: JSON, _ t: [String]) throws -> JSON {
        guard let k = t.first else { throw Failure(description: "cannot remove the whole document") }
        let rest = Array(t.dropFirst())
        switch doc {
        case .object(var o):
            guard let child = o[k] else { throw Failure(description: "path not found: \(k)") }
            if rest.isEmpty { o.removeValue(forKey: k) } else { o[k] = try remove(child, rest) }
            return .object(o)
        case .array(var a):
            guard let i = Int(k), a.indices.contains(i) else { throw Failure(description: "bad array index \(k)") }
            if rest.isEmpty { a.remove(at: i) } else { a[i] = try remove(a[i], rest) }
            return .array(a)
        default:
            throw Failure(description: "path not found: \(k)")
        }
    }
}
