// The resident set of an address space: which of its pages the host has
// backed with memory. The host kernel alone knows (the application's page
// faults never reach the Sentry), so a thread of the space asks it with
// mincore(2), run in its stub over every mapping, the vector going to a
// scratch mapping the host places and the Sentry removes before it returns.

import Glibc

extension MemoryManager {
    /// Bytes of this address space resident in memory, counted by `t`, a
    /// thread of it stopped in the Sentry; nil where no stub can ask (the
    /// KVM platform) or the host refused.
    func residentBytes(_ t: Task) -> UInt64? {
        guard t.mm === self, let th = t.thread, th.hasStub else { return nil }
        let vecLen = 64 << 10                                   // one byte per page: 256 MiB a call
        let scratch = th.inject(9 /* mmap */, 0, UInt64(vecLen), UInt64(PROT_READ | PROT_WRITE),
                                UInt64(MAP_PRIVATE | MAP_ANONYMOUS), UInt64.max, 0)
        if scratch < 0 { return nil }
        defer { _ = th.inject(11 /* munmap */, UInt64(scratch), UInt64(vecLen)) }
        var vec = [UInt8](repeating: 0, count: vecLen)
        var pages: UInt64 = 0
        for v in vmas {
            var a = v.start
            while a < v.end {
                let len = min(v.end - a, UInt64(vecLen) * pageSize)
                let n = Int(len / pageSize)
                if th.inject(27 /* mincore */, a, len, UInt64(scratch)) == 0,
                   vec.withUnsafeMutableBytes({ th.read(UInt64(scratch), $0.baseAddress!, n) }) == n {
                    pages += UInt64(vec[..<n].reduce(0) { $0 + Int($1 & 1) })
                }
                a += len
            }
        }
        return pages * pageSize
    }
}

/// An address space's sizes as /proc/PID/stat, statm and status show them.
struct MemoryUsage {
    var size: UInt64 = 0, resident: UInt64 = 0, locked: UInt64 = 0, data: UInt64 = 0, stack: UInt64 = 0
}

extension MemoryManager {
    /// The sizes, in bytes. The resident set is the host's count where
    /// `reader` is a thread of this space (residentBytes); another reader
    /// gets an estimate, a quarter of the mapped size (the host is asked
    /// only by a thread stopped in the Sentry, and the owner's run on).
    func usage(reader: Task?) -> MemoryUsage {
        var u = MemoryUsage()
        for v in vmas {
            let n = v.end - v.start
            u.size += n
            if v.locked { u.locked += n }
            if v.name == "[stack]" { u.stack += n }
            // Linux's data_vm: private writable memory that is no stack.
            else if v.prot & PROT_WRITE != 0 && v.flags & MAP_SHARED == 0 { u.data += n }
        }
        if let r = reader, let b = residentBytes(r) {
            u.resident = b
        } else {
            u.resident = u.size / 4
        }
        return u
    }
}
