// --strace: one line per application syscall, with decoded path arguments,
// the result and the time spent, written to Moat's log (never to the
// application's stdout/stderr).

import CMoat
import Glibc

/// Syscalls whose argument N is a path (or string).
private let pathArgs: [Int: [Int]] = [
    2: [0], 4: [0], 6: [0], 21: [0], 59: [0], 76: [0], 80: [0], 82: [0, 1], 83: [0], 84: [0], 85: [0], 86: [0, 1],
    87: [0], 88: [0, 1], 89: [0], 90: [0], 92: [0], 94: [0], 133: [0], 137: [0], 161: [0],
    257: [1], 258: [1], 259: [1], 260: [1], 262: [1], 263: [1], 264: [1, 3], 265: [1, 3], 266: [0, 2],
    267: [1], 268: [1], 269: [1], 280: [1], 316: [1, 3], 322: [1], 332: [1], 439: [1],
]

/// The string arguments of a call, read before it runs: after a
/// successful execve the old image (and its strings) is gone.
func straceStrings(_ t: Task, _ nr: Int, _ a: Args) -> [Int: String] {
    var out: [Int: String] = [:]
    for i in pathArgs[nr] ?? [] {
        let (s, _) = t.copyInString(a.raw(i), max: 256)
        out[i] = s.map { "\"" + String(decoding: $0, as: UTF8.self) + "\"" } ?? "0x" + hex(a.raw(i))
    }
    return out
}

func straceLine(_ t: Task, _ nr: Int, _ a: Args, _ ret: Int, _ ns: Int64, strings: [Int: String]) {
    var parts: [String] = []
    for i in 0..<6 {
        if let s = strings[i] {
            parts.append(s)
        } else {
            let v = a.raw(i)
            parts.append(v < 4096 ? String(v) : (Int64(bitPattern: v) < 0 && Int64(bitPattern: v) > -4096 ? String(Int64(bitPattern: v)) : "0x" + hex(v)))
        }
    }
    let r: String
    if ret < 0 && ret > -4096 {
        let e = Int32(-ret)
        r = isRestart(ret) ? "? ERESTART(\(-ret)) (interrupted)" : "-1 \(errnoName(e)) (\(String(cString: strerror(e))))"
    } else {
        r = ret > 4096 || ret < 0 ? "0x" + hex(UInt(bitPattern: ret)) : String(ret)
    }
    Log.shared.write("[pid \(t.tid)] \(syscallName(nr))(\(parts.joined(separator: ", "))) = \(r) <\(fixed6(ns))>")
}

func errnoName(_ e: Int32) -> String {
    let names: [Int32: String] = [1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 6: "ENXIO", 7: "E2BIG", 8: "ENOEXEC",
        9: "EBADF", 10: "ECHILD", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES", 14: "EFAULT", 16: "EBUSY", 17: "EEXIST", 18: "EXDEV",
        19: "ENODEV", 20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL", 24: "EMFILE", 25: "ENOTTY", 28: "ENOSPC", 29: "ESPIPE", 30: "EROFS",
        32: "EPIPE", 34: "ERANGE", 36: "ENAMETOOLONG", 38: "ENOSYS", 39: "ENOTEMPTY", 40: "ELOOP", 95: "EOPNOTSUPP", 110: "ETIMEDOUT",
        88: "ENOTSOCK", 90: "EMSGSIZE", 91: "EPROTOTYPE", 92: "ENOPROTOOPT", 93: "EPROTONOSUPPORT", 94: "ESOCKTNOSUPPORT",
        97: "EAFNOSUPPORT", 98: "EADDRINUSE", 99: "EADDRNOTAVAIL", 101: "ENETUNREACH", 104: "ECONNRESET", 105: "ENOBUFS",
        106: "EISCONN", 107: "ENOTCONN", 111: "ECONNREFUSED", 113: "EHOSTUNREACH", 114: "EALREADY", 115: "EINPROGRESS"]
    return names[e] ?? "E\(e)"
}
