// /proc/PID/mem: a process's memory as a file, the file offset an address.
//
// As Linux's mem_open and mem_rw: the open needs ptrace "attach" access
// with the opener's file-system ids (its own process always has it) and
// holds on to the address space it found; reads and writes go page by page
// through the memory accessors every syscall uses, stop at the first page
// that cannot be reached (EIO when that is the first), and find nothing
// (0 bytes) once that address space is gone (the process exited or ran
// another program). Only SEEK_SET and SEEK_CUR move the offset.

import Glibc

extension Kernel {
    /// The /proc/PID/mem node of `tg`: mode 0600, owned by the process's
    /// effective ids while it is dumpable (root's otherwise), as Linux's
    /// proc_pid_make_inode.
    func procMemNode(_ tg: ThreadGroup, ino: UInt64, task: @escaping () -> Task?) -> ProcNode {
        let n = ProcNode(kernel: self, ino: ino, mode: S_IFREG_ | 0o600)
        if tg.dumpable != 0 { n.uid = tg.creds.euid; n.gid = tg.creds.egid }
        n.openFile = { [weak tg] t, flags in
            guard let tg, !tg.reaped else { return .failure(Errno(ESRCH)) }
            if !mayAttach(t, tg, fsCreds: true) { return .failure(Errno(EACCES)) }
            // A zombie has no memory left: the file opens and reads nothing.
            return .success(ProcMemFD(flags: flags, mm: tg.zombie ? nil : task()?.mm, group: tg))
        }
        return n
    }
}

final class ProcMemFD: FileDescription {
    /// The address space found at open (Linux's mmgrab), nil once gone.
    private weak var mm: MemoryManager?
    private weak var group: ThreadGroup?
    init(flags: Int32, mm: MemoryManager?, group: ThreadGroup) {
        self.mm = mm
        self.group = group
        super.init(flags: flags, path: nil)
    }

    /// A task still running in that address space, to reach it through.
    private func holder() -> Task? {
        guard let mm, let tg = group, !tg.zombie else { return nil }
        return tg.tasks.first { $0.mm === mm }
    }

    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        transfer(t, buf, count, off, write: false)
    }
    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        transfer(t, buf, count, off, write: true)
    }

    private func transfer(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?, write: Bool) -> Int {
        if count == 0 { return 0 }
        guard let target = holder() else { return 0 }
        if target !== t && !target.awaitThread(by: t) { return 0 }
        let start = UInt64(bitPattern: off ?? offset)
        var done = 0
        var page = [UInt8](repeating: 0, count: 4096)
        while done < count {
            let addr = start &+ UInt64(done)
            let n = min(count - done, Int(4096 - (addr & 4095)))
            let moved = page.withUnsafeMutableBytes { p -> Int in
                if write {
                    guard t.memRead(buf &+ UInt64(done), p.baseAddress!, n) == n else { return -1 }
                    return target.memWrite(addr, p.baseAddress!, n)
                }
                let r = target.memRead(addr, p.baseAddress!, n)
                if r <= 0 { return 0 }
                return t.memWrite(buf &+ UInt64(done), p.baseAddress!, r) == r ? r : -1
            }
            if moved < 0 { if done == 0 { return err(EFAULT) }; break }   // the caller's buffer
            done += moved
            if moved < n { break }
        }
        if done == 0 { return err(EIO) }
        if off == nil { offset = Int64(bitPattern: start &+ UInt64(done)) }
        return done
    }

    /// Addresses are unsigned: any offset may be set (FMODE_UNSIGNED_OFFSET).
    override func seek(_ off: Int64, _ whence: Int32) -> Int {
        switch whence {
        case SEEK_SET: offset = off
        case SEEK_CUR: offset = offset &+ off
        default: return err(EINVAL)
        }
        return Int(offset)
    }
}
