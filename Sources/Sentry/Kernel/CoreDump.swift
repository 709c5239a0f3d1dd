// Core dumps. A process that dies of a signal whose default action is
// "core" (SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV,
// SIGXCPU, SIGXFSZ, SIGSYS) leaves an ELF core file where Linux's
// do_coredump would, and its wait status carries WCOREDUMP (si_code
// CLD_DUMPED) only when the file was made:
//
//   - RLIMIT_CORE's soft limit is at least a page (Linux's min_coredump),
//     the process is dumpable (PR_SET_DUMPABLE, an exec that changed ids),
//     kernel.core_pattern is not empty;
//   - the name is kernel.core_pattern expanded (%p %P %i %I %u %g %d %s %t
//     %h %e %E %f %c %%; ".PID" appended under kernel.core_uses_pid),
//     resolved as the dying process resolves paths (its root, cwd and mount
//     namespace): an old file of that name is unlinked, the new one made
//     with O_EXCL and mode 0600 (less the umask), with the process's own
//     credentials, through the Sentry's file system like any other file
//     (a Gofer file, the overlay, a tmpfs): nothing reaches a host path;
//   - a pattern that pipes to a program ("|...") makes no dump: Linux runs
//     such a helper as root in the host's namespaces, which a sandbox has
//     no business doing.
//
// The file: an ELF header, a PT_NOTE segment (NT_PRSTATUS, NT_PRPSINFO,
// NT_SIGINFO, NT_AUXV, NT_FILE, NT_FPREGSET and NT_X86_XSTATE, as gdb
// reads them) and one PT_LOAD per mapping, filled as
// /proc/PID/coredump_filter says (default 0x33: anonymous memory, private
// and shared; the first page of each mapped ELF file). MADV_DONTDUMP
// ranges stay empty. Pages the host does not hold are holes (the stub's
// mincore; every page on KVM), as Linux skips pages never faulted in.
// Bytes written stop at RLIMIT_CORE (the file is cut short there, as
// Linux's dump_emit).
//
// Registers: only the thread that took the signal is in the file (its
// driver thread writes the dump and only a task's own driver may read its
// platform thread); Linux lists every thread.

import Glibc
import Platform

extension Task {
    /// The process dies of `sig`: first, for a signal whose default action
    /// is "core", the core dump Linux would write. Requires: Kernel.mu held.
    func dieOfSignal(_ sig: Int32, _ info: SigInfo) {
        var code = sig
        if defaultAction(sig) == .core && !tg.exiting && CoreDump(self, info).write() { code |= 0x80 }
        tg.beginExit(code: code, bySignal: true)
    }
}

/// One core dump, written by the task that took the signal.
struct CoreDump {
    let t: Task
    let info: SigInfo
    init(_ t: Task, _ info: SigInfo) { self.t = t; self.info = info }

    /// Bytes of mappings scanned for contents in one dump at most (the rest
    /// become holes): a bound on the time a dump holds the kernel.
    static let scanBudget: UInt64 = 16 << 30
    /// Said once per sandbox: a pipe pattern makes no dump. Guarded by Kernel.mu.
    nonisolated(unsafe) static var pipeLogged = false

    func write() -> Bool {
        let k = t.kernel
        guard t.tg.dumpable != 0 else { return false }
        let limit = t.tg.rlimits[RL_CORE].cur
        let pattern = k.sysctl.entries["kernel/core_pattern"]?.value ?? "core"
        if pattern.isEmpty { return false }
        if pattern.hasPrefix("|") {
            if !CoreDump.pipeLogged {
                CoreDump.pipeLogged = true
                Log.shared.info("core dump: kernel.core_pattern pipes to a program; Moat runs none, so no core file")
            }
            return false
        }
        if limit < pageSize { return false }
        let name = corename(pattern)
        if name.isEmpty { return false }
        // An old file of the name goes first (Linux unlinks it; errors are the open's to report).
        _ = unlinkAt(t, AT_FDCWD_, name, 0)
        let flags = O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_LARGEFILE_ | O_CLOEXEC
        let fd = Int32(truncatingIfNeeded: openAt(t, AT_FDCWD_, name, flags, 0o600))
        if fd < 0 { return false }
        defer { _ = t.fds.close(fd) }
        guard let f = t.fds.get(fd), let ino = f.inode, case .success(let st) = ino.stat() else { return false }
        // What Linux checks of the file it made: a regular file of its own, one link, mode 0600.
        guard st.mode & S_IFMT_ == S_IFREG_, st.nlink == 1, st.uid == t.creds.fsuid, st.mode & 0o677 == 0o600 else { return false }
        var out = Output(t: t, f: f, limit: limit)
        emit(&out)
        return !out.failed
    }

    // MARK: - The name

    /// kernel.core_pattern with its % specifiers filled in, as Linux's format_corename.
    func corename(_ pattern: String) -> [UInt8] {
        let k = t.kernel
        let p = Array(pattern.utf8)
        var out: [UInt8] = []
        var hasPid = false
        func put(_ s: String) { out += Array(s.utf8) }
        func bang(_ b: [UInt8]) -> [UInt8] { b.map { $0 == 47 ? 33 : $0 } }   // '/' -> '!'
        var i = 0
        while i < p.count {
            if p[i] != 37 /* % */ { out.append(p[i]); i += 1; continue }
            i += 1
            if i >= p.count { break }                 // a lone % at the end is dropped
            switch p[i] {
            case 37: out.append(37)
            case 112 /* p */: put("\(t.vpid(t.tg.tgid))"); hasPid = true
            case 80 /* P */: put("\(t.tg.tgid)"); hasPid = true
            case 105 /* i */: put("\(t.vpid(t.tid))")
            case 73 /* I */: put("\(t.tid)")
            case 117 /* u */: put("\(t.creds.uid)")
            case 103 /* g */: put("\(t.creds.gid)")
            case 100 /* d */: put("\(t.tg.dumpable)")
            case 115 /* s */: put("\(info.signo)")
            case 116 /* t */: put("\(time(nil))")
            case 104 /* h */: out += bang(t.uts.hostname)
            case 101 /* e */: out += bang(t.comm)
            case 69 /* E */: out += bang(Array(t.mm.exePath.utf8))
            case 102 /* f */: out += bang(Array((t.mm.exePath.split(separator: "/").last.map(String.init) ?? "").utf8))
            case 99 /* c */: put("\(t.tg.rlimits[RL_CORE].cur)")
            default: break                            // an unknown specifier is dropped
            }
            i += 1
        }
        if !hasPid, let e = k.sysctl.entries["kernel/core_uses_pid"], (Int(e.value) ?? 0) != 0 {
            put(".\(t.vpid(t.tg.tgid))")
        }
        return out
    }

    // MARK: - The file

    /// Where the bytes go: at most `limit` of them, holes by seeking.
    struct Output {
        let t: Task
        let f: FileDescription
        let limit: UInt64
        var pos: UInt64 = 0
        var written: UInt64 = 0
        var end: UInt64 = 0           // past the last byte written
        var stopped = false           // the limit was reached: nothing more is written
        var failed = false            // a write failed: no dump

        /// Writes `bytes` at `pos`; false once the limit stops the dump.
        mutating func put(_ bytes: [UInt8]) -> Bool {
            bytes.withUnsafeBytes { put(raw: $0) }
        }

        mutating func put(raw b: UnsafeRawBufferPointer) -> Bool {
            if stopped || failed { return false }
            if b.isEmpty { return true }
            if written + UInt64(b.count) > limit { stopped = true; return false }
            var off = 0
            while off < b.count {
                let n = min(b.count - off, 1 << 20)
                let chunk = UnsafeMutableRawBufferPointer(mutating: UnsafeRawBufferPointer(rebasing: b[off..<(off + n)]))
                let (f, at) = (f, Int64(pos))
                let r = withBounce(t, chunk) { f.write(t, $0, n, at) }
                if r <= 0 { failed = true; return false }
                pos += UInt64(r); written += UInt64(r); off += r
            }
            end = max(end, pos)
            return true
        }

        mutating func skip(to p: UInt64) { if p > pos { pos = p } }

        /// A file that ends in a hole still has its full length (Linux
        /// writes the last byte, as dump_skip at the end of a dump does).
        mutating func finish() {
            if !stopped && !failed && pos > end {
                pos -= 1
                _ = put([0])
            }
        }
    }

    /// One mapping of the dump: its header and how much of it is in the file.
    struct Segment {
        let vma: VMA
        var fileSize: UInt64
    }

    func emit(_ out: inout Output) {
        let segs = t.mm.vmas.filter { $0.end <= t.mm.appTop || $0.name == "[vdso]" }.map { Segment(vma: $0, fileSize: dumpSize($0)) }
        let notes = noteBytes()
        let phnum = segs.count + 1
        let extended = phnum >= 0xffff
        let phoff: UInt64 = 64
        var off = phoff + UInt64(phnum) * 56
        let shoff: UInt64 = extended ? off : 0
        if extended { off += 64 }
        let notesOff = off
        off += UInt64(notes.count)
        let dataOff = pageUp(off)

        var h = [UInt8](repeating: 0, count: 64)
        h.replaceSubrange(0..<8, with: [0x7f, 0x45, 0x4c, 0x46, 2 /* 64-bit */, 1 /* LE */, 1, 0])
        le16(&h, 16, 4)                  // ET_CORE
        le16(&h, 18, 62)                 // EM_X86_64
        le32(&h, 20, 1)
        put64(&h, 32, phoff)
        put64(&h, 40, shoff)
        le16(&h, 52, 64)                 // e_ehsize
        le16(&h, 54, 56)                 // e_phentsize
        le16(&h, 56, extended ? 0xffff : UInt16(phnum))
        if extended { le16(&h, 58, 64); le16(&h, 60, 1) }
        guard out.put(h) else { return }

        var ph: [UInt8] = []
        ph.reserveCapacity(phnum * 56)
        func phdr(type: UInt32, flags: UInt32, offset: UInt64, vaddr: UInt64, filesz: UInt64, memsz: UInt64, align: UInt64) {
            var b = [UInt8](repeating: 0, count: 56)
            le32(&b, 0, type); le32(&b, 4, flags); put64(&b, 8, offset); put64(&b, 16, vaddr)
            put64(&b, 32, filesz); put64(&b, 40, memsz); put64(&b, 48, align)
            ph += b
        }
        phdr(type: 4 /* PT_NOTE */, flags: 0, offset: notesOff, vaddr: 0, filesz: UInt64(notes.count), memsz: 0, align: 0)
        var dataAt = dataOff
        for s in segs {
            let v = s.vma
            let pf = UInt32((v.prot & PROT_READ != 0 ? 4 : 0) | (v.prot & PROT_WRITE != 0 ? 2 : 0) | (v.prot & PROT_EXEC != 0 ? 1 : 0))
            phdr(type: 1 /* PT_LOAD */, flags: pf, offset: dataAt, vaddr: v.start, filesz: s.fileSize, memsz: v.end - v.start, align: pageSize)
            dataAt += s.fileSize
        }
        guard out.put(ph) else { return }
        if extended {
            // PN_XNUM: the real count is in the first section header's sh_info.
            var sh = [UInt8](repeating: 0, count: 64)
            le32(&sh, 44, UInt32(phnum))
            guard out.put(sh) else { return }
        }
        guard out.put(notes) else { return }
        out.skip(to: dataOff)
        var budget = CoreDump.scanBudget
        // One page-aligned MiB that every mapping's pages pass through.
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: Int(pageSize))
        defer { buf.deallocate() }
        for s in segs where s.fileSize > 0 {
            let start = out.pos
            writeContents(s.vma.start, s.vma.start + s.fileSize, &out, &budget, buf)
            if out.stopped || out.failed { return }
            out.skip(to: start + s.fileSize)
        }
        out.finish()
    }

    /// How much of a mapping goes in the file, as Linux's vma_dump_size
    /// decides it from the coredump filter.
    func dumpSize(_ v: VMA) -> UInt64 {
        let filter = t.tg.coredumpFilter
        let size = v.end - v.start
        if v.name == "[vdso]" { return size }           // always: debuggers read its symbols from the dump
        if v.dontDump || v.name == "[vvar]" || v.name == "[vsyscall]" { return 0 }
        // A file mapping is known by its path (on KVM a private one is anonymous memory underneath).
        let anonymous = !v.name.hasPrefix("/")
        if v.flags & MAP_SHARED != 0 {
            // Shared anonymous memory (memfd, SysV shared memory, MAP_SHARED|MAP_ANONYMOUS) is bit 1, shared file mappings bit 3.
            let unlinked = anonymous || v.name.hasSuffix(" (deleted)") || v.name.hasPrefix("/memfd:") || v.name.hasPrefix("/SYSV")
            return filter & (unlinked ? 2 : 8) != 0 ? size : 0
        }
        if v.prot & PROT_READ == 0 { return 0 }          // never read back: nothing written there worth dumping
        if anonymous { return filter & 1 != 0 ? size : 0 }
        // A private file mapping the program may have written (Linux: one
        // with anonymous pages, bit 0), or any (bit 2).
        if filter & 4 != 0 || (filter & 1 != 0 && v.prot & PROT_WRITE != 0) { return size }
        // Else the first page of an ELF file mapped from its start (bit 4).
        if filter & 16 != 0 && v.offset == 0 {
            var magic: UInt32 = 0
            if t.memRead(v.start, &magic, 4) == 4 && magic == 0x464c_457f { return pageSize }
        }
        return 0
    }

    /// Copies [start, end) of the application's memory into the file at
    /// its current position: pages the host does not hold (or that cannot
    /// be read), and pages of zeros, are holes.
    func writeContents(_ start: UInt64, _ end: UInt64, _ out: inout Output, _ budget: inout UInt64,
                       _ buf: UnsafeMutableRawBufferPointer) {
        let chunk = UInt64(buf.count)
        let base = out.pos
        var a = start
        while a < end {
            let n = min(chunk, end - a)
            if budget < n { return }
            budget -= n
            let resident = t.mm.residentPages(t, a, a + n)
            for pi in 0..<Int(n / pageSize) where resident?[pi] ?? true {
                let pa = a + UInt64(pi) * pageSize
                let dst = buf.baseAddress! + pi * Int(pageSize)
                if t.memRead(pa, dst, Int(pageSize)) != Int(pageSize) { continue }
                let page = UnsafeRawBufferPointer(start: dst, count: Int(pageSize))
                if !page.contains(where: { $0 != 0 }) { continue }
                out.skip(to: base + (pa - start))
                guard out.put(raw: page) else { return }
            }
            a += n
        }
    }

    // MARK: - Notes

    func noteBytes() -> [UInt8] {
        var b: [UInt8] = []
        func note(_ name: String, _ type: UInt32, _ desc: [UInt8]) {
            let n = Array(name.utf8) + [0]
            var h = [UInt8](repeating: 0, count: 12)
            le32(&h, 0, UInt32(n.count)); le32(&h, 4, UInt32(desc.count)); le32(&h, 8, type)
            b += h + n
            while b.count % 4 != 0 { b.append(0) }
            b += desc
            while b.count % 4 != 0 { b.append(0) }
        }
        var fx = FPRegisters()
        let xstate: [UInt8]? = { if case .success(let a) = t.thread.getXState(), a.count >= 576 { return a }; return nil }()
        var fpu: [UInt8]? = nil
        if let x = xstate { fpu = Array(x[0..<512]) } else if t.thread.getFP(&fx) { fpu = withUnsafeBytes(of: &fx) { Array($0.prefix(512)) } }
        note("CORE", 1 /* NT_PRSTATUS */, prstatus(fpValid: fpu != nil))
        note("CORE", 3 /* NT_PRPSINFO */, prpsinfo())
        note("CORE", 0x5349_4749 /* NT_SIGINFO */, info.bytes())
        if !t.mm.auxv.isEmpty { note("CORE", 6 /* NT_AUXV */, t.mm.auxv) }
        note("CORE", 0x4649_4c45 /* NT_FILE */, fileNote())
        if let f = fpu { note("CORE", 2 /* NT_FPREGSET */, f) }
        if let x = xstate { note("LINUX", 0x202 /* NT_X86_XSTATE */, x) }
        return b
    }

    /// struct elf_prstatus (x86-64): the signal, the pending and blocked
    /// sets, the ids, the times and the general registers.
    func prstatus(fpValid: Bool) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 336)
        le32(&b, 0, UInt32(bitPattern: info.signo))
        le16(&b, 12, UInt16(truncatingIfNeeded: info.signo))
        put64(&b, 16, t.pending.mask)
        put64(&b, 24, t.sigMask)
        let tg = t.tg
        le32(&b, 32, UInt32(bitPattern: t.vpid(t.tid)))
        le32(&b, 36, UInt32(bitPattern: tg.parent.map { t.vpidIfSeen($0.tgid) } ?? 0))
        le32(&b, 40, UInt32(bitPattern: t.vpidIfSeen(tg.pgid)))
        le32(&b, 44, UInt32(bitPattern: t.vpidIfSeen(tg.sid)))
        func timeval(_ at: Int, _ ns: Int64) { put64(&b, at, UInt64(ns / 1_000_000_000)); put64(&b, at + 8, UInt64(ns % 1_000_000_000 / 1000)) }
        timeval(48, tg.utimeNs)
        timeval(64, tg.stimeNs)
        var r = t.thread.regs
        withUnsafeBytes(of: &r) { b.replaceSubrange(112..<(112 + min($0.count, 216)), with: $0.prefix(216)) }
        le32(&b, 328, fpValid ? 1 : 0)
        return b
    }

    /// struct elf_prpsinfo: state, nice, ids, comm and the start of the command line.
    func prpsinfo() -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 136)
        b[1] = 82                                   // 'R': the dumping thread runs
        b[3] = UInt8(bitPattern: Int8(truncatingIfNeeded: t.nice))
        le32(&b, 16, t.creds.uid)
        le32(&b, 20, t.creds.gid)
        let tg = t.tg
        le32(&b, 24, UInt32(bitPattern: t.vpid(tg.tgid)))
        le32(&b, 28, UInt32(bitPattern: tg.parent.map { t.vpidIfSeen($0.tgid) } ?? 0))
        le32(&b, 32, UInt32(bitPattern: t.vpidIfSeen(tg.pgid)))
        le32(&b, 36, UInt32(bitPattern: t.vpidIfSeen(tg.sid)))
        let comm = t.comm.prefix(15)
        b.replaceSubrange(40..<(40 + comm.count), with: comm)
        var args = Array(t.kernel.procCmdline(tg).prefix(79))
        while args.last == 0 { args.removeLast() }
        args = args.map { $0 == 0 ? 32 : $0 }
        b.replaceSubrange(56..<(56 + args.count), with: args)
        return b
    }

    /// NT_FILE: every file mapping's range, offset (in pages) and path.
    func fileNote() -> [UInt8] {
        let files = t.mm.vmas.filter { $0.name.hasPrefix("/") }
        var b = [UInt8](repeating: 0, count: 16 + files.count * 24)
        put64(&b, 0, UInt64(files.count))
        put64(&b, 8, pageSize)
        for (i, v) in files.enumerated() {
            put64(&b, 16 + i * 24, v.start); put64(&b, 24 + i * 24, v.end); put64(&b, 32 + i * 24, v.offset / pageSize)
        }
        for v in files {
            var name = v.name
            if name.hasSuffix(" (deleted)") { name.removeLast(10) }
            b += Array(name.utf8) + [0]
        }
        return b
    }
}

private func le16(_ b: inout [UInt8], _ o: Int, _ v: UInt16) { b[o] = UInt8(v & 0xff); b[o + 1] = UInt8(v >> 8) }
private func le32(_ b: inout [UInt8], _ o: Int, _ v: UInt32) { for i in 0..<4 { b[o + i] = UInt8((v >> (8 * UInt32(i))) & 0xff) } }

extension SigInfo {
    /// A signal the kernel itself raises (SI_KERNEL): a bad signal frame's SIGSEGV.
    static func kernel(_ signo: Int32) -> SigInfo {
        var i = SigInfo(signo: signo)
        i.code = 0x80
        return i
    }
}
