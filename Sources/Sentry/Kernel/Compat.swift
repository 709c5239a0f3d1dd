// Constants and small helpers Glibc's Swift overlay does not provide
// (and that would otherwise need Foundation, which the Sentry avoids).

import Glibc

let O_PATH: Int32 = 0o10000000
let SS_DISABLE: Int32 = 2
let SEEK_DATA: Int32 = 3
let SEEK_HOLE: Int32 = 4
let O_DIRECT: Int32 = 0o40000
let O_NOATIME: Int32 = 0o1000000

/// A syscall result carried as an Error (negative errno or restart code).
struct SysErr: Error { let r: Int; init(_ r: Int) { self.r = r } }
let EFD_CLOEXEC_: Int32 = 0o2000000
let EFD_NONBLOCK_: Int32 = 0o4000

let RL_DATA = 2, RL_STACK = 3, RL_AS = 9, RL_CORE = 4, RL_NPROC = 6, RL_NOFILE = 7, RL_MEMLOCK = 8, RL_SIGPENDING = 11, RL_MSGQUEUE = 12

/// Lower-case hex, zero-padded to `width` digits.
func hex<T: BinaryInteger>(_ v: T, width: Int = 0) -> String {
    let s = String(v, radix: 16)
    return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
}

func octal<T: BinaryInteger>(_ v: T, width: Int) -> String {
    let s = String(v, radix: 8)
    return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
}

/// Pads `s` with spaces on the right to `n` characters.
func padRight(_ s: String, _ n: Int) -> String {
    s.count >= n ? s : s + String(repeating: " ", count: n - s.count)
}

/// Pads `s` with spaces on the left to `n` characters.
func padLeft(_ s: String, _ n: Int) -> String {
    s.count >= n ? s : String(repeating: " ", count: n - s.count) + s
}

/// A non-negative value with two decimals ("12.34").
func fixed2(_ ns: Int64) -> String {
    let cs = ns / 10_000_000
    let frac = cs % 100
    return "\(cs / 100)." + (frac < 10 ? "0" : "") + "\(frac)"
}

/// Seconds with six decimals, from nanoseconds.
func fixed6(_ ns: Int64) -> String {
    let us = ns / 1000
    let frac = String(us % 1_000_000)
    return "\(us / 1_000_000)." + String(repeating: "0", count: 6 - frac.count) + frac
}
let O_TMPFILE_: Int32 = 0o20200000
let S_ISUID_: UInt32 = 0o4000
let S_ISGID_: UInt32 = 0o2000
