// The command lines Moat writes for a sandbox's own processes (`moat
// sentry`, `moat gofer`, `moat launch`; SandboxMain), parsed by hand rather
// than by ArgumentParser, whose command tree costs every start milliseconds
// of type-metadata and protocol-conformance lookups. A malformed command
// line is still a clear error (the caller exits 64, as a usage error).

/// `--name value`, `--name=value`, flags `--name`, repeatable options; the
/// command starts after `--` or at the first word that is not an option.
public struct InternalArguments {
    private var values: [String: [String]] = [:]
    private var flags: Set<String> = []
    public private(set) var command: [String] = []

    public struct Failure: Error {
        public let message: String
        public init(message: String) { self.message = message }
    }

    public init(_ args: ArraySlice<String>, options: Set<String>, flags known: Set<String>) throws(Failure) {
        var i = args.startIndex
        while i < args.endIndex {
            let a = args[i]
            if a == "--" { command = Array(args[(i + 1)...]); return }
            guard a.hasPrefix("--") else { command = Array(args[i...]); return }
            var name = String(a.dropFirst(2))
            var value: String? = nil
            if let eq = name.firstIndex(of: "=") {
                value = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            if known.contains(name) && value == nil {
                flags.insert(name)
            } else if options.contains(name) {
                if value == nil {
                    i += 1
                    guard i < args.endIndex else { throw Failure(message: "missing value for --\(name)") }
                    value = args[i]
                }
                values[name, default: []].append(value!)
            } else {
                throw Failure(message: "unknown option \(a)")
            }
            i += 1
        }
    }

    public func has(_ flag: String) -> Bool { flags.contains(flag) }
    public func string(_ name: String) -> String? { values[name]?.last }
    public func list(_ name: String) -> [String] { values[name] ?? [] }
    public func int32(_ name: String, _ fallback: Int32) throws(Failure) -> Int32 {
        guard let s = string(name) else { return fallback }
        guard let v = Int32(s) else { throw Failure(message: "--\(name): not a number: \(s)") }
        return v
    }
}
