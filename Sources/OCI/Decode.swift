// Typed access to a JSON document that knows where it is: every value read
// through a `Node` carries its JSON path, so a bad field is reported as
// `config.json: process.user.uid: expected an unsigned integer`.
//
// Unknown properties are ignored (the spec requires it, for extensions);
// a property whose value is null is treated as absent, as runc does.

public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let document: String
    public let path: String
    public let message: String
    public init(document: String = "config.json", path: String, _ message: String) {
        self.document = document; self.path = path; self.message = message
    }
    public var description: String { path.isEmpty ? "\(document): \(message)" : "\(document): \(path): \(message)" }
}

public struct Node {
    public let value: JSON
    public let path: String
    public let document: String

    public init(_ value: JSON, path: String = "", document: String = "config.json") {
        self.value = value; self.path = path; self.document = document
    }

    func fail(_ m: String) -> ConfigError { ConfigError(document: document, path: path, m) }

    func child(_ key: String) -> String { path.isEmpty ? key : path + "." + key }

    // MARK: Containers

    func object() throws -> [(String, Node)] {
        guard case .object(let kv) = value else { throw fail("expected an object") }
        return kv.map { ($0.0, Node($0.1, path: child($0.0), document: document)) }
    }

    func array() throws -> [Node] {
        guard case .array(let a) = value else { throw fail("expected an array") }
        return a.enumerated().map { Node($0.1, path: "\(path)[\($0.0)]", document: document) }
    }

    /// The member `key`, or nil when absent or null. Throws if self is not an object.
    func field(_ key: String) throws -> Node? {
        guard case .object(let kv) = value else { throw fail("expected an object") }
        guard let v = kv.last(where: { $0.0 == key })?.1 else { return nil }
        if case .null = v { return nil }
        return Node(v, path: child(key), document: document)
    }

    func required(_ key: String) throws -> Node {
        guard let n = try field(key) else { throw ConfigError(document: document, path: child(key), "required property is missing") }
        return n
    }

    func opt<T>(_ key: String, _ read: (Node) throws -> T) throws -> T? {
        guard let n = try field(key) else { return nil }
        return try read(n)
    }

    func list<T>(_ key: String, _ read: (Node) throws -> T) throws -> [T]? {
        guard let n = try field(key) else { return nil }
        return try n.array().map(read)
    }

    // MARK: Scalars

    func string() throws -> String {
        guard case .string(let s) = value else { throw fail("expected a string") }
        return s
    }

    func bool() throws -> Bool {
        guard case .bool(let b) = value else { throw fail("expected a boolean") }
        return b
    }

    func strings() throws -> [String] { try array().map { try $0.string() } }

    func stringMap() throws -> [(String, String)] { try object().map { ($0.0, try $0.1.string()) } }

    func oneOf(_ allowed: [String]) throws -> String {
        let s = try string()
        guard allowed.contains(s) else { throw fail("invalid value \"\(s)\" (expected one of \(allowed.joined(separator: ", ")))") }
        return s
    }

    private func integerText(_ what: String) throws -> String {
        guard case .number(let t) = value else { throw fail("expected \(what)") }
        // JSON allows 1e3 or 1.0 for integers; accept only an exact integer.
        if t.contains(".") || t.contains("e") || t.contains("E") {
            if let d = Double(t), d == d.rounded(), abs(d) < 9.007e15 { return String(Int64(d)) }
            throw fail("expected \(what)")
        }
        return t
    }

    func u32() throws -> UInt32 {
        guard let v = UInt32(try integerText("an unsigned integer")) else { throw fail("expected an unsigned integer (32-bit)") }
        return v
    }
    func u16() throws -> UInt16 {
        guard let v = UInt16(try integerText("an unsigned integer")) else { throw fail("expected an unsigned integer (16-bit)") }
        return v
    }
    func u64() throws -> UInt64 {
        guard let v = UInt64(try integerText("an unsigned integer")) else { throw fail("expected an unsigned integer (64-bit)") }
        return v
    }
    func i64() throws -> Int64 {
        guard let v = Int64(try integerText("an integer")) else { throw fail("expected an integer (64-bit)") }
        return v
    }
    func i32() throws -> Int32 {
        guard let v = Int32(try integerText("an integer")) else { throw fail("expected an integer (32-bit)") }
        return v
    }
}
