// Host system calls and constants the Glibc module does not import (it is
// built without _GNU_SOURCE, and variadic C functions such as syscall(2) and
// prctl(2) cannot be called from Swift directly). `syscall` is reached through
// a C function pointer looked up once with dlsym; glibc implements it in
// assembly that ignores the variadic register count, so a fixed 6-argument
// signature is sound.

import Glibc

enum HostSys {
    // MARK: Syscall numbers
    #if arch(x86_64)
    static let SYS_capset = 126
    static let SYS_fstatfs = 138
    static let SYS_pivot_root = 155
    static let SYS_prctl = 157
    static let SYS_getdents64 = 217
    static let SYS_unshare = 272
    static let SYS_renameat2 = 316
    static let SYS_close_range = 436
    static let SYS_open_tree = 428
    static let SYS_fchmodat2 = 452
    static let SYS_fsetxattr = 190
    static let SYS_fgetxattr = 193
    static let SYS_flistxattr = 196
    static let SYS_fremovexattr = 199
    #elseif arch(arm64)
    static let SYS_capset = 91
    static let SYS_fstatfs = 44
    static let SYS_pivot_root = 41
    static let SYS_prctl = 167
    static let SYS_getdents64 = 61
    static let SYS_unshare = 97
    static let SYS_renameat2 = 276
    static let SYS_close_range = 436
    static let SYS_open_tree = 428
    static let SYS_fchmodat2 = 452
    static let SYS_fsetxattr = 7
    static let SYS_fgetxattr = 10
    static let SYS_flistxattr = 13
    static let SYS_fremovexattr = 16
    #else
    #error("Gofer: unsupported architecture")
    #endif

    // MARK: Constants missing from Glibc without _GNU_SOURCE
    static let O_PATH: Int32 = 0o10000000
    /// O_TMPFILE as open(2) takes it (__O_TMPFILE | O_DIRECTORY).
    static let O_TMPFILE: Int32 = 0o20200000
    static let AT_EMPTY_PATH: Int32 = 0x1000
    static let AT_REMOVEDIR: Int32 = 0x200
    static let RENAME_NOREPLACE: UInt32 = 1
    static let RENAME_EXCHANGE: UInt32 = 2
    static let CLONE_NEWNS = 0x0002_0000
    static let OPEN_TREE_CLONE = 1
    static let PR_CAPBSET_DROP = 24
    static let PR_SET_NO_NEW_PRIVS = 38
    static let PR_CAP_AMBIENT = 47
    static let PR_CAP_AMBIENT_CLEAR_ALL = 4
    static let LINUX_CAPABILITY_VERSION_3: UInt32 = 0x2008_0522

    // MARK: syscall(2)
    private typealias SyscallFn = @convention(c) (Int, Int, Int, Int, Int, Int, Int) -> Int
    private static let syscallFn: SyscallFn = {
        guard let p = dlsym(nil, "syscall") else { fatalError("Gofer: dlsym(syscall) failed") }
        return unsafeBitCast(p, to: SyscallFn.self)
    }()

    /// Raw syscall; returns the result or -1 with errno set (glibc convention).
    static func syscall(_ n: Int, _ a: Int = 0, _ b: Int = 0, _ c: Int = 0,
                        _ d: Int = 0, _ e: Int = 0, _ f: Int = 0) -> Int {
        syscallFn(n, a, b, c, d, e, f)
    }

    // MARK: Wrappers (each returns 0 or a positive errno, unless noted)

    static func renameat2(_ oldDir: Int32, _ oldName: [UInt8], _ newDir: Int32, _ newName: [UInt8], _ flags: UInt32) -> Int32 {
        withCString(oldName) { o in
            withCString(newName) { n in
                result(syscall(SYS_renameat2, Int(oldDir), Int(bitPattern: o), Int(newDir), Int(bitPattern: n), Int(flags)))
            }
        }
    }

    /// Returns the byte count, or -errno.
    static func getdents64(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int) -> Int {
        let r = syscall(SYS_getdents64, Int(fd), Int(bitPattern: buf), count)
        return r < 0 ? -Int(errno) : r
    }

    /// fchmodat2(fd, "", mode, AT_EMPTY_PATH|AT_SYMLINK_NOFOLLOW): chmod an O_PATH fd (Linux >= 6.6).
    static func fchmodEmptyPath(_ fd: Int32, _ mode: UInt32) -> Int32 {
        "".withCString { p in
            result(syscall(SYS_fchmodat2, Int(fd), Int(bitPattern: p), Int(mode), Int(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)))
        }
    }

    /// fgetxattr into `buf`; returns the value's length or -errno.
    static func fgetxattr(_ fd: Int32, _ name: [UInt8], _ buf: UnsafeMutableRawBufferPointer) -> Int {
        withCString(name) { n in
            let r = syscall(SYS_fgetxattr, Int(fd), Int(bitPattern: n), Int(bitPattern: buf.baseAddress), buf.count)
            return r < 0 ? -Int(lastError) : r
        }
    }

    /// fsetxattr; returns 0 or an errno.
    static func fsetxattr(_ fd: Int32, _ name: [UInt8], _ value: [UInt8], _ flags: Int32) -> Int32 {
        withCString(name) { n in
            value.withUnsafeBytes { v in
                result(syscall(SYS_fsetxattr, Int(fd), Int(bitPattern: n), Int(bitPattern: v.baseAddress), v.count, Int(flags)))
            }
        }
    }

    /// flistxattr into `buf`; returns the list's length or -errno.
    static func flistxattr(_ fd: Int32, _ buf: UnsafeMutableRawBufferPointer) -> Int {
        let r = syscall(SYS_flistxattr, Int(fd), Int(bitPattern: buf.baseAddress), buf.count)
        return r < 0 ? -Int(lastError) : r
    }

    /// fremovexattr; returns 0 or an errno.
    static func fremovexattr(_ fd: Int32, _ name: [UInt8]) -> Int32 {
        withCString(name) { n in result(syscall(SYS_fremovexattr, Int(fd), Int(bitPattern: n))) }
    }

    /// Raw `struct statfs` (x86_64 / arm64 layout: 15 longs).
    static func fstatfs(_ fd: Int32) -> (Int32, [Int64]) {
        var buf = [Int64](repeating: 0, count: 16)
        let r = buf.withUnsafeMutableBytes { p in
            result(syscall(SYS_fstatfs, Int(fd), Int(bitPattern: p.baseAddress)))
        }
        return (r, buf)
    }

    static func prctl(_ option: Int, _ a: Int = 0, _ b: Int = 0, _ c: Int = 0, _ d: Int = 0) -> Int32 {
        result(syscall(SYS_prctl, option, a, b, c, d))
    }

    // MARK: Helpers

    @inline(__always)
    static func result(_ r: Int) -> Int32 { r < 0 ? lastError : 0 }

    /// Calls `body` with a NUL-terminated copy of `bytes`.
    @inline(__always)
    static func withCString<R>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) -> R) -> R {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: bytes.count + 1) { buf in
            bytes.withUnsafeBufferPointer { src in
                for i in 0..<src.count { buf[i] = CChar(bitPattern: src[i]) }
            }
            buf[bytes.count] = 0
            return body(UnsafePointer(buf.baseAddress!))
        }
    }

    /// errno of the last failed libc call, as a positive value (EIO if unset).
    @inline(__always)
    static var lastError: Int32 { errno == 0 ? EIO : errno }
}
