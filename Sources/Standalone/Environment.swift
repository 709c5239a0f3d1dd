// The environment of a standalone sandbox's application, as podman builds
// it: the image's, then --env-file files, then -e (a later value of a key
// wins), PATH and HOME filled in when missing, TERM with a terminal.

import Foundation

public enum RunEnvironment {
    /// `given`: -e values, K=V, or K alone for this process's value of K
    /// (nothing when it is unset). `envFiles`: K=V lines, # comments.
    public static func merge(image: [String], envFiles: [String], given: [String], uid: UInt32, tty: Bool) throws -> [String] {
        var all: [String] = []
        for f in envFiles {
            guard let text = try? String(contentsOfFile: f, encoding: .utf8) else {
                throw StandaloneError.invalid("--env-file \(f): cannot read it")
            }
            for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
                let l = line.trimmingCharacters(in: .whitespaces)
                if !l.isEmpty && !l.hasPrefix("#") { all.append(l) }
            }
        }
        all += given
        all = all.compactMap { e in
            e.contains("=") ? e : ProcessInfo.processInfo.environment[e].map { e + "=" + $0 }
        }
        return merge(image + all, uid: uid, tty: tty)
    }

    /// Later values of a key replace earlier ones in place; then the defaults.
    static func merge(_ list: [String], uid: UInt32, tty: Bool) -> [String] {
        func key(_ s: String) -> Substring { s.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first ?? "" }
        var merged: [String] = []
        for e in list {
            if let i = merged.firstIndex(where: { key($0) == key(e) }) { merged[i] = e } else { merged.append(e) }
        }
        if !merged.contains(where: { $0.hasPrefix("PATH=") }) { merged.insert("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", at: 0) }
        if !merged.contains(where: { $0.hasPrefix("HOME=") }) { merged.append(uid == 0 ? "HOME=/root" : "HOME=/") }
        if tty && !merged.contains(where: { $0.hasPrefix("TERM=") }) { merged.append("TERM=xterm") }
        return merged
    }

    /// N[b|k|m|g] (--memory) in bytes.
    public static func bytes(_ s: String) -> UInt64? {
        let l = s.lowercased()
        let units: [Character: UInt64] = ["b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30]
        if let last = l.last, let m = units[last] { return UInt64(l.dropLast()).map { $0 * m } }
        return UInt64(l)
    }
}
