import Foundation

/// Label selectors: parsed from the `labelSelector` query string or from a
/// `metav1.LabelSelector` JSON object (matchLabels + matchExpressions).
public struct LabelSelector: Sendable, Equatable {
    public enum Requirement: Sendable, Equatable {
        case equals(String, String)
        case notEquals(String, String)
        case isIn(String, Set<String>)
        case notIn(String, Set<String>)
        case exists(String)
        case doesNotExist(String)

        func matches(_ labels: [String: String]) -> Bool {
            switch self {
            case .equals(let k, let v): return labels[k] == v
            case .notEquals(let k, let v): return labels[k] != v
            case .isIn(let k, let vs): return labels[k].map { vs.contains($0) } ?? false
            case .notIn(let k, let vs): return labels[k].map { !vs.contains($0) } ?? true
            case .exists(let k): return labels[k] != nil
            case .doesNotExist(let k): return labels[k] == nil
            }
        }
    }

    public var requirements: [Requirement]
    /// A selector that matches nothing (a nil selector in Kubernetes' sense for controllers).
    public var matchesNothing = false

    public init(requirements: [Requirement] = []) { self.requirements = requirements }

    public static let everything = LabelSelector()
    public static let nothing: LabelSelector = { var s = LabelSelector(); s.matchesNothing = true; return s }()

    public var isEmpty: Bool { requirements.isEmpty && !matchesNothing }

    public func matches(_ labels: [String: String]) -> Bool {
        if matchesNothing { return false }
        return requirements.allSatisfy { $0.matches(labels) }
    }

    public struct ParseError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Parses `a=b,c!=d,e in (f,g),h notin (i),j,!k`.
    public static func parse(_ text: String) throws -> LabelSelector {
        var reqs: [Requirement] = []
        for term in splitTerms(text) {
            let t = term.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { continue }
            if t.hasPrefix("!") {
                let k = String(t.dropFirst()).trimmingCharacters(in: .whitespaces)
                try checkKey(k); reqs.append(.doesNotExist(k)); continue
            }
            if let r = t.range(of: " notin ") ?? t.range(of: " in ") {
                let k = String(t[..<r.lowerBound]).trimmingCharacters(in: .whitespaces)
                let isNot = t[r].contains("notin")
                var rest = String(t[r.upperBound...]).trimmingCharacters(in: .whitespaces)
                guard rest.hasPrefix("("), rest.hasSuffix(")") else { throw ParseError(description: "invalid set in selector term \"\(t)\"") }
                rest = String(rest.dropFirst().dropLast())
                let vals = Set(rest.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
                try checkKey(k)
                reqs.append(isNot ? .notIn(k, vals) : .isIn(k, vals)); continue
            }
            if let r = t.range(of: "!=") {
                let k = t[..<r.lowerBound].trimmingCharacters(in: .whitespaces), v = t[r.upperBound...].trimmingCharacters(in: .whitespaces)
                try checkKey(k); reqs.append(.notEquals(k, v)); continue
            }
            if let r = t.range(of: "==") ?? t.range(of: "=") {
                let k = t[..<r.lowerBound].trimmingCharacters(in: .whitespaces), v = t[r.upperBound...].trimmingCharacters(in: .whitespaces)
                try checkKey(k); reqs.append(.equals(k, v)); continue
            }
            try checkKey(t)
            reqs.append(.exists(t))
        }
        return LabelSelector(requirements: reqs)
    }

    private static func checkKey(_ k: String) throws {
        let ok = !k.isEmpty && k.allSatisfy { $0.isLetter || $0.isNumber || "-_./".contains($0) }
        if !ok { throw ParseError(description: "invalid label key \"\(k)\"") }
    }

    /// Splits on commas that are not inside parentheses.
    private static func splitTerms(_ s: String) -> [String] {
        var out: [String] = [], cur = "", depth = 0
        for ch in s {
            if ch == "(" { depth += 1 } else if ch == ")" { depth -= 1 }
            if ch == "," && depth == 0 { out.append(cur); cur = "" } else { cur.append(ch) }
        }
        out.append(cur)
        return out
    }

    /// From a `metav1.LabelSelector` JSON object. A null selector matches nothing; `{}` matches everything.
    public init(json: JSON) {
        guard case .object = json else { self = .nothing; return }
        var reqs: [Requirement] = []
        for (k, v) in (json["matchLabels"].object ?? [:]).sorted(by: { $0.key < $1.key }) {
            reqs.append(.equals(k, v.string ?? ""))
        }
        for e in json["matchExpressions"].array ?? [] {
            let k = e["key"].string ?? ""
            let vals = Set((e["values"].array ?? []).compactMap { $0.string })
            switch e["operator"].string ?? "" {
            case "In": reqs.append(.isIn(k, vals))
            case "NotIn": reqs.append(.notIn(k, vals))
            case "Exists": reqs.append(.exists(k))
            case "DoesNotExist": reqs.append(.doesNotExist(k))
            default: self = .nothing; return
            }
        }
        self.init(requirements: reqs)
    }

    /// Renders as a query-string selector.
    public var queryString: String {
        requirements.map { r -> String in
            switch r {
            case .equals(let k, let v): return "\(k)=\(v)"
            case .notEquals(let k, let v): return "\(k)!=\(v)"
            case .isIn(let k, let vs): return "\(k) in (\(vs.sorted().joined(separator: ",")))"
            case .notIn(let k, let vs): return "\(k) notin (\(vs.sorted().joined(separator: ",")))"
            case .exists(let k): return k
            case .doesNotExist(let k): return "!\(k)"
            }
        }.joined(separator: ",")
    }
}

/// Field selectors over a fixed set of supported fields.
public struct FieldSelector: Sendable, Equatable {
    public struct Term: Sendable, Equatable {
        public let field: String, value: String, negated: Bool
        public init(field: String, value: String, negated: Bool) { self.field = field; self.value = value; self.negated = negated }
    }
    public var terms: [Term] = []
    public init(terms: [Term] = []) { self.terms = terms }

    public static let supportedFields: Set<String> = [
        "metadata.name", "metadata.namespace", "spec.nodeName", "status.phase", "type",
        "involvedObject.name", "involvedObject.namespace", "involvedObject.uid", "involvedObject.kind",
    ]

    public static func parse(_ text: String) throws -> FieldSelector {
        var sel = FieldSelector()
        for raw in text.split(separator: ",") {
            let t = raw.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { continue }
            let negated: Bool
            let r: Range<String.Index>
            if let x = t.range(of: "!=") { r = x; negated = true } else if let x = t.range(of: "==") ?? t.range(of: "=") { r = x; negated = false } else {
                throw LabelSelector.ParseError(description: "invalid field selector term \"\(t)\"")
            }
            let f = String(t[..<r.lowerBound]), v = String(t[r.upperBound...])
            guard supportedFields.contains(f) else {
                throw LabelSelector.ParseError(description: "field label not supported: \(f)")
            }
            sel.terms.append(Term(field: f, value: v, negated: negated))
        }
        return sel
    }

    public func matches(_ obj: JSON) -> Bool {
        terms.allSatisfy { t in
            let actual: String
            switch t.field {
            case "metadata.name": actual = obj.name
            case "metadata.namespace": actual = obj.namespace
            case "spec.nodeName": actual = obj["spec"]["nodeName"].string ?? ""
            case "status.phase": actual = obj["status"]["phase"].string ?? ""
            case "involvedObject.name", "involvedObject.namespace", "involvedObject.uid", "involvedObject.kind":
                actual = obj["involvedObject"][String(t.field.dropFirst("involvedObject.".count))].string ?? ""
            case "type": actual = obj["type"].string ?? ""
            default: return false
            }
            return (actual == t.value) != t.negated
        }
    }
}
