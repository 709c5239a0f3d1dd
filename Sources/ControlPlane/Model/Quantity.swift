import Foundation

/// Resource quantities ("100m", "2", "128Mi", "1G") as integers:
/// CPU in millicores, everything else in base units (bytes).
public enum Quantity {
    static let binary: [String: Double] = ["Ki": 1024, "Mi": 1048576, "Gi": 1073741824, "Ti": 1099511627776, "Pi": 1125899906842624, "Ei": 1152921504606846976]
    static let decimal: [String: Double] = ["n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18]

    /// Parses a quantity into a Double value in base units; nil if malformed.
    public static func parse(_ s: String) -> Double? {
        let t = s.trimmingCharacters(in: .whitespaces)
        guard !t.isEmpty else { return nil }
        var idx = t.endIndex
        while idx > t.startIndex, let c = t[t.index(before: idx)...].first, c.isLetter { idx = t.index(before: idx) }
        let num = String(t[..<idx]), suffix = String(t[idx...])
        if suffix == "e" || suffix == "E" { return nil }
        guard let v = Double(num) else { return nil }
        if let m = binary[suffix] { return v * m }
        if let m = decimal[suffix] { return v * m }
        return nil
    }

    /// Parses a JSON quantity (string or number).
    public static func parse(_ j: JSON) -> Double? {
        if let s = j.string { return parse(s) }
        return j.double
    }

    public static func milliCPU(_ j: JSON) -> Int64 { Int64(((parse(j) ?? 0) * 1000).rounded()) }
    public static func bytes(_ j: JSON) -> Int64 { Int64((parse(j) ?? 0).rounded()) }
}
