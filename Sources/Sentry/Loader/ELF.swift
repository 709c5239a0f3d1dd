// ELF loading: static and static-PIE executables (PT_INTERP is the next
// step), the initial stack with argv, envp and auxv, and #! scripts.
// Segments of a Gofer-donated file are mapped from the file (mapSegments);
// others (tmpfs, overlay copies) are copied in.

import CMoat
import Glibc

struct ELFSegment { var vaddr: UInt64; var memsz: UInt64; var offset: UInt64; var filesz: UInt64; var flags: UInt32 }

struct ELFInfo {
    var type: UInt16
    var entry: UInt64
    var phoff: UInt64
    var phnum: Int
    var phentsize: Int
    var segments: [ELFSegment]
    var interp: [UInt8]?
    var stackExec = false
}

/// Reads file bytes into Sentry memory (the loader's input).
protocol ByteSource { func pread(_ off: Int64, _ count: Int) -> [UInt8]? }

extension HostFileFD: ByteSource {
    func pread(_ off: Int64, _ count: Int) -> [UInt8]? {
        var b = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let r = b.withUnsafeMutableBytes { Glibc.pread(fd, $0.baseAddress! + done, count - done, Int(off) + done) }
            if r < 0 { if errno == EINTR { continue }; return nil }
            if r == 0 { break }
            done += r
        }
        return Array(b[0..<done])
    }
}
extension TmpfsFileFD: ByteSource {
    func pread(_ off: Int64, _ count: Int) -> [UInt8]? {
        if node.memfd >= 0 {
            var b = [UInt8](repeating: 0, count: count)
            let r = b.withUnsafeMutableBytes { Glibc.pread(node.memfd, $0.baseAddress!, count, Int(off)) }
            return r < 0 ? nil : Array(b[0..<r])
        }
        let d = node.data
        if off >= d.count { return [] }
        return Array(d[Int(off)..<min(d.count, Int(off) + count)])
    }
}

func parseELF(_ src: ByteSource) -> Result<ELFInfo, Errno> {
    guard let h = src.pread(0, 64), h.count == 64 else { return .failure(Errno(ENOEXEC)) }
    if !(h[0] == 0x7f && h[1] == 0x45 && h[2] == 0x4c && h[3] == 0x46) { return .failure(Errno(ENOEXEC)) }
    if h[4] != 2 || h[5] != 1 { return .failure(Errno(ENOEXEC)) }            // ELFCLASS64, little endian
    let type = UInt16(h[16]) | UInt16(h[17]) << 8
    let machine = UInt16(h[18]) | UInt16(h[19]) << 8
    if machine != 62 || (type != 2 && type != 3) { return .failure(Errno(ENOEXEC)) } // x86-64, EXEC/DYN
    let entry = get64(h, 24)
    let phoff = get64(h, 32)
    let phentsize = Int(UInt16(h[54]) | UInt16(h[55]) << 8)
    let phnum = Int(UInt16(h[56]) | UInt16(h[57]) << 8)
    if phentsize != 56 || phnum == 0 || phnum > 128 || phoff > 1 << 30 { return .failure(Errno(ENOEXEC)) }
    guard let ph = src.pread(Int64(phoff), phnum * 56), ph.count == phnum * 56 else { return .failure(Errno(ENOEXEC)) }
    var info = ELFInfo(type: type, entry: entry, phoff: phoff, phnum: phnum, phentsize: phentsize, segments: [], interp: nil)
    for i in 0..<phnum {
        let o = i * 56
        let ptype = get32(ph, o)
        let flags = get32(ph, o + 4)
        let off = get64(ph, o + 8), vaddr = get64(ph, o + 16), filesz = get64(ph, o + 32), memsz = get64(ph, o + 40)
        switch ptype {
        case 1: // PT_LOAD
            if filesz > memsz || memsz > 1 << 40 || off > 1 << 40 { return .failure(Errno(ENOEXEC)) }
            // A segment that cannot be mapped (an offset aligned otherwise
            // than its address, an address past the user range) is no
            // error of execve on Linux: its mmap fails after the point of
            // no return and the new program dies of SIGSEGV (loadSegments).
            info.segments.append(ELFSegment(vaddr: vaddr, memsz: memsz, offset: off, filesz: filesz, flags: flags))
        case 3: // PT_INTERP
            // The offset is the file's word: one past Int64 would trap the
            // conversion below (found by Tests/Fuzz, target elf).
            // Linux's load_elf_binary: at least two bytes, the last a NUL
            // (what follows an earlier NUL is ignored).
            if filesz < 2 || filesz > 4096 || off > 1 << 40 { return .failure(Errno(ENOEXEC)) }
            guard var s = src.pread(Int64(off), Int(filesz)), s.count == Int(filesz), s.last == 0 else { return .failure(Errno(ENOEXEC)) }
            if let z = s.firstIndex(of: 0) { s = Array(s[..<z]) }
            info.interp = s
        case 0x6474e551: // PT_GNU_STACK
            info.stackExec = flags & 1 != 0
        default: break
        }
    }
    if info.segments.isEmpty { return .failure(Errno(ENOEXEC)) }
    return .success(info)
}

/// Maps the segments of `info` at `bias` into the task's (fresh) address
/// space. Returns the end of the highest segment.
func loadSegments(_ t: Task, _ src: ByteSource, _ info: ELFInfo, bias: UInt64, name: String) -> Result<UInt64, Errno> {
    let mm = t.mm
    var lo = UInt64.max, hi: UInt64 = 0
    for s in info.segments {
        // An address past the user range (or wrapping with the bias), or a
        // file offset that cannot be mapped at the segment's address: mmap's
        // EINVAL on Linux.
        if s.vaddr > 1 << 47 || s.vaddr &+ bias < s.vaddr || s.vaddr &+ bias &+ s.memsz < s.vaddr &+ bias { return .failure(Errno(EINVAL)) }
        if s.filesz > 0 && (s.vaddr & 4095) != (s.offset & 4095) { return .failure(Errno(EINVAL)) }
        lo = min(lo, pageDown(s.vaddr &+ bias))
        hi = max(hi, pageUp(s.vaddr &+ bias &+ s.memsz))
    }
    if hi <= lo || !mm.validRange(lo, hi - lo) { return .failure(Errno(ENOMEM)) }
    if let h = src as? HostFileFD, let r = mapSegments(t, h, info, bias: bias, name: name) { return r.map { _ in hi } }
    if mm.mapAnonymous(t, addr: lo, len: hi - lo, prot: PROT_READ | PROT_WRITE, shared: false, name: name) < 0 {
        return .failure(Errno(ENOMEM))
    }
    for s in info.segments where s.filesz > 0 {
        var done: UInt64 = 0
        while done < s.filesz {
            let n = Int(min(s.filesz - done, 1 << 20))
            guard let bytes = src.pread(Int64(s.offset + done), n), bytes.count == n else { return .failure(Errno(EIO)) }
            if !t.copyOut(s.vaddr &+ bias &+ done, bytes) { return .failure(Errno(EFAULT)) }
            done += UInt64(n)
        }
    }
    // Final protections, page by page ranges: a page shared by two segments
    // gets the union of their permissions; pages in no segment are unmapped.
    var pages: [(UInt64, UInt64, Int32)] = []
    for s in info.segments {
        var prot: Int32 = 0
        if s.flags & 4 != 0 { prot |= PROT_READ }
        if s.flags & 2 != 0 { prot |= PROT_WRITE }
        if s.flags & 1 != 0 { prot |= PROT_EXEC }
        // The pages past the file's are anonymous .bss, always writable
        // (Linux maps them as brk memory, executable only with PF_X).
        let start = pageDown(s.vaddr &+ bias), fileEnd = s.filesz > 0 ? pageUp(s.vaddr &+ bias &+ s.filesz) : start
        let end = pageUp(s.vaddr &+ bias &+ s.memsz)
        if fileEnd > start { pages.append((start, min(fileEnd, end), prot)) }
        if end > fileEnd { pages.append((fileEnd, end, PROT_READ | PROT_WRITE | (prot & PROT_EXEC))) }
    }
    pages.sort { $0.0 < $1.0 }
    var cursor = lo
    for (i, p) in pages.enumerated() {
        if p.0 > cursor { _ = mm.unmap(t, addr: cursor, len: p.0 - cursor) }
        var prot = p.2
        var start = max(p.0, cursor)
        if i > 0 && pages[i - 1].1 > p.0 {
            // Shared first page.
            prot |= pages[i - 1].2
            _ = mm.protect(t, addr: p.0, len: pageSize, prot: prot)
            start = p.0 + pageSize
            prot = p.2
        }
        if p.1 > start { _ = mm.protect(t, addr: start, len: p.1 - start, prot: prot) }
        cursor = max(cursor, p.1)
    }
    // What /proc/PID/maps shows, as if mapped from the file as Linux maps
    // it: a segment's pages that hold file bytes are the file's at their
    // offset; the rest of its .bss is anonymous and unnamed.
    for s in info.segments {
        let start = pageDown(s.vaddr &+ bias), fileEnd = s.filesz > 0 ? pageUp(s.vaddr &+ bias &+ s.filesz) : start
        let end = pageUp(s.vaddr &+ bias &+ s.memsz)
        for b in [start, fileEnd, end] { mm.split(at: b) }
        for i in mm.overlapping(start, end) {
            if mm.vmas[i].start < fileEnd {
                mm.vmas[i].name = name
                mm.vmas[i].offset = pageDown(s.offset) &+ (mm.vmas[i].start - start)
                mm.vmas[i].flags &= ~MAP_ANONYMOUS
            } else if mm.vmas[i].flags & MAP_ANONYMOUS == 0 {
                continue  // the file page of a later segment sharing this page
            } else {
                mm.vmas[i].name = ""
                mm.vmas[i].offset = 0
            }
        }
    }
    return .success(hi)
}

/// Maps the segments of a host file (a Gofer-donated fd) from the file
/// itself, private and copy-on-write, as the host kernel maps an ELF: the
/// pages are the page cache's, shared by every process and sandbox that runs
/// the same binary, and nothing is read or copied at exec. Only the zeroed
/// tail of a segment's last file page (where its .bss starts) is written.
/// nil: the layout needs the copying loader (segments sharing a page, a .bss
/// tail in a read-only segment, a segment past the end of the file).
func mapSegments(_ t: Task, _ h: HostFileFD, _ info: ELFInfo, bias: UInt64, name: String) -> Result<Void, Errno>? {
    if h.isStream { return nil }
    var st = Glibc.stat()
    if fstat(h.fd, &st) != 0 || st.st_mode & S_IFMT != S_IFREG { return nil }
    let size = UInt64(st.st_size)
    let segs = info.segments.sorted { $0.vaddr < $1.vaddr }
    for (i, s) in segs.enumerated() {
        if s.filesz > 0 && (s.offset &+ s.filesz > size || s.offset &+ s.filesz < s.offset) { return nil }
        if s.memsz > s.filesz && s.flags & 2 == 0 && (s.vaddr &+ s.filesz) & 4095 != 0 && s.filesz > 0 { return nil }
        if i > 0 && pageUp(segs[i - 1].vaddr &+ segs[i - 1].memsz) > pageDown(s.vaddr) { return nil }
    }
    let mm = t.mm
    // No copy in the stub (nothing mapped yet): the copying loader instead.
    return mm.withStubFD(t, h.fd) { remote -> Result<Void, Errno> in
        for s in segs {
            var prot: Int32 = 0
            if s.flags & 4 != 0 { prot |= PROT_READ }
            if s.flags & 2 != 0 { prot |= PROT_WRITE }
            if s.flags & 1 != 0 { prot |= PROT_EXEC }
            let start = pageDown(s.vaddr &+ bias)
            let fileEnd = s.vaddr &+ bias &+ s.filesz
            var anonStart = start
            if s.filesz > 0 {
                anonStart = pageUp(fileEnd)
                if mm.mapStubFD(t, addr: start, len: anonStart - start, prot: prot, shared: false, remote: remote, hostFD: h.fd,
                                offset: pageDown(s.offset), name: name) < 0 { return .failure(Errno(ENOMEM)) }
                if s.memsz > s.filesz && fileEnd < anonStart {
                    if !t.copyOut(fileEnd, [UInt8](repeating: 0, count: Int(anonStart - fileEnd))) { return .failure(Errno(EFAULT)) }
                }
            }
            let end = pageUp(s.vaddr &+ bias &+ s.memsz)
            // The .bss past the file's pages is anonymous and unnamed, as the host kernel maps it.
            if end > anonStart && mm.mapAnonymous(t, addr: anonStart, len: end - anonStart, prot: PROT_READ | PROT_WRITE | (prot & PROT_EXEC),
                                                  shared: false, name: "") < 0 {
                return .failure(Errno(ENOMEM))
            }
        }
        return .success(())
    }
}

/// Builds the initial stack. Returns the initial stack pointer.
func buildStack(_ t: Task, argv: [[UInt8]], envp: [[UInt8]], execfn: [UInt8], auxv: [(UInt64, UInt64)]) -> Result<UInt64, Errno> {
    let top = MOAT_APP_TOP
    let stackSize: UInt64 = 8 << 20
    if t.mm.mapAnonymous(t, addr: top - stackSize, len: stackSize, prot: PROT_READ | PROT_WRITE, shared: false, name: "[stack]") < 0 {
        return .failure(Errno(ENOMEM))
    }
    var strings: [UInt8] = []
    var argOffs: [Int] = [], envOffs: [Int] = []
    for a in argv { argOffs.append(strings.count); strings += a; strings.append(0) }
    let argLen = strings.count
    for e in envp { envOffs.append(strings.count); strings += e; strings.append(0) }
    let envLen = strings.count - argLen
    let execfnOff = strings.count; strings += execfn; strings.append(0)
    let platOff = strings.count; strings += Array("x86_64".utf8); strings.append(0)
    let randOff = strings.count
    var rnd = [UInt8](repeating: 0, count: 16)
    _ = rnd.withUnsafeMutableBytes { getrandom($0.baseAddress!, 16, 0) }
    strings += rnd
    let stringsBase = (top - 16 - UInt64(strings.count)) & ~15
    if strings.count > 2 << 20 { return .failure(Errno(E2BIG)) }
    var aux = auxv
    aux.append((15, stringsBase + UInt64(platOff)))   // AT_PLATFORM
    aux.append((25, stringsBase + UInt64(randOff)))   // AT_RANDOM
    aux.append((31, stringsBase + UInt64(execfnOff))) // AT_EXECFN
    aux.append((0, 0))
    t.mm.auxv = aux.flatMap { [$0.0, $0.1] }.flatMap { v in (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    var words = 1 + argv.count + 1 + envp.count + 1 + aux.count * 2
    if words % 2 == 1 { words += 1 }
    let sp = stringsBase - UInt64(words * 8)
    var w: [UInt64] = [UInt64(argv.count)]
    for o in argOffs { w.append(stringsBase + UInt64(o)) }
    w.append(0)
    for o in envOffs { w.append(stringsBase + UInt64(o)) }
    w.append(0)
    for (k, v) in aux { w.append(k); w.append(v) }
    while w.count < words { w.append(0) }
    var block = [UInt8](repeating: 0, count: Int(top - sp))
    for (i, v) in w.enumerated() { put64(&block, i * 8, v) }
    let so = Int(stringsBase - sp)
    block.replaceSubrange(so..<so + strings.count, with: strings)
    if !t.copyOut(sp, block) { return .failure(Errno(EFAULT)) }
    t.mm.argStart = stringsBase
    t.mm.argEnd = stringsBase + UInt64(argLen)
    t.mm.envStart = t.mm.argEnd
    t.mm.envEnd = t.mm.envStart + UInt64(envLen)
    return .success(sp)
}
