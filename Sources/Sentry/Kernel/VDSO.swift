// Moat's own vDSO. The host here has none to lend, and without one every
// clock_gettime, gettimeofday and time is a trap (a ptrace round trip).
// The image is built once per Sentry: an ELF shared object (header, one
// PT_LOAD, a dynamic section, a SysV hash table, symbols with their version,
// LINUX_2.6, as Linux's vDSO has them) around the
// position-independent code of CMoat/vdso.c, plus a data page the Sentry
// keeps current from the host clocks. Both live in a sealed memfd: stubs map
// the data page read-only and shared, the code privately; the seal stops
// any of them from ever mapping it writable, so no process can change
// another's clock.

import CMoat
import Glibc

final class VDSO {
    static let base: UInt64 = 0x7fff_0000_0000          // MOAT_VDSO_DATA: [vvar]
    static let text: UInt64 = base + 0x1000               // AT_SYSINFO_EHDR: [vdso]
    /// nil when the memfd cannot be made; then there is no vDSO.
    static let shared: VDSO? = VDSO()

    let fd: Int32
    let page: UnsafeMutableRawPointer
    private var lastTSC: UInt64 = 0, lastMono: Int64 = 0, mult: UInt64 = 0
    private var monoBase: Int64 = 0
    private var usable = false

    private init?() {
        let f = hostMemfd("moat-vdso", flags: 3 /* MFD_CLOEXEC | MFD_ALLOW_SEALING */)
        if f < 0 { return nil }
        let image = VDSO.image()
        if ftruncate(f, 0x2000) != 0 || image.count > 0x1000
            || image.withUnsafeBytes({ pwrite(f, $0.baseAddress!, image.count, 0x1000) }) != image.count {
            close(f); return nil
        }
        guard let p = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0), p != MAP_FAILED else { close(f); return nil }
        page = p
        fd = f
        // No new writable shared mapping, and no size change, from now on.
        _ = fcntl(fd, 1033 /* F_ADD_SEALS */, 2 | 4 | 0x10 /* SHRINK|GROW|FUTURE_WRITE */)
        // Until the TSC is calibrated (off the start-up path, on the
        // updater thread) every call takes the syscall.
        publish()
        if moat_tsc_invariant() != 0 { startUpdater() }
    }

    /// Nanoseconds per TSC tick << 32, measured against CLOCK_MONOTONIC
    /// over 10 ms (the updates that follow refine it every second).
    private static func calibrate() -> UInt64? {
        let t0 = Kernel.now(CLOCK_MONOTONIC), c0 = moat_rdtsc()
        var ts = timespec(tv_sec: 0, tv_nsec: 10_000_000)
        nanosleep(&ts, nil)
        let t1 = Kernel.now(CLOCK_MONOTONIC), c1 = moat_rdtsc()
        guard c1 > c0, t1 > t0 else { return nil }
        return rate(ns: UInt64(t1 - t0), ticks: c1 - c0)
    }

    /// ns / ticks in 32.32 fixed point (the vDSO's `mult`); nil when it
    /// would not fit (no ticks, or more than 2^32 ns per tick).
    private static func rate(ns: UInt64, ticks: UInt64) -> UInt64? {
        let (hi, lo) = ns.multipliedFullWidth(by: 1 << 32)
        if ticks == 0 || hi >= ticks { return nil }
        return ticks.dividingFullWidth((hi, lo)).quotient
    }

    /// Rebases the clocks on the host's. CLOCK_MONOTONIC as the vDSO computes
    /// it never goes back: a new base below what the old one gives now is
    /// raised to it, and the rate follows the host's over the last interval.
    private func publish() {
        let c = moat_rdtsc()
        let mono = Kernel.now(CLOCK_MONOTONIC), real = Kernel.now(CLOCK_REALTIME)
        var base = mono
        if lastTSC != 0 && c > lastTSC {
            // What the vDSO gives now: ((c - lastTSC) * mult) >> 32, as in vdso.c.
            let p = (c - lastTSC).multipliedFullWidth(by: mult)
            let projected = monoBase + Int64(truncatingIfNeeded: p.high << 32 | p.low >> 32)
            base = max(mono, projected)
            // Rate over the last interval, from the host clock.
            if let m = VDSO.rate(ns: UInt64(max(0, mono - lastMono)), ticks: c - lastTSC) { mult = m }
        }
        lastTSC = c; lastMono = mono; monoBase = base
        moat_vdso_publish(page, c, mult, UInt64(base), UInt64(real + (base - mono)), usable ? 1 : 0)
    }

    private func startUpdater() {
        var th = pthread_t()
        let me = Unmanaged.passUnretained(self).toOpaque()
        pthread_create(&th, nil, { p in
            let v = Unmanaged<VDSO>.fromOpaque(p!).takeUnretainedValue()
            guard let m = VDSO.calibrate() else { return nil }
            v.mult = m
            v.usable = true
            v.publish()
            while true {
                var ts = timespec(tv_sec: 1, tv_nsec: 0)
                nanosleep(&ts, nil)
                v.publish()
            }
        }, me)
        pthread_detach(th)
    }

    /// CLOCK_MONOTONIC exactly as the vDSO gives it at this moment (nil
    /// while it takes the syscall): the syscall answers with it too, so
    /// that readings alternating between the two never go back.
    func monotonicNow() -> Int64? {
        let ns = moat_vdso_mono(page)
        return ns < 0 ? nil : Int64(ns)
    }

    /// Maps [vvar] and [vdso] into a new image; returns AT_SYSINFO_EHDR or 0.
    /// Both pages come from one copy of the memfd in the stub (one
    /// pidfd_getfd and one close per exec, not two of each).
    func map(_ t: Task) -> UInt64 {
        func both(_ remote: UInt64?) -> UInt64 {
            if t.mm.mapFile(t, addr: VDSO.base, len: 0x1000, prot: PROT_READ, shared: true, hostFD: fd, offset: 0,
                            name: "[vvar]", remote: remote) < 0 { return 0 }
            if t.mm.mapFile(t, addr: VDSO.text, len: 0x1000, prot: PROT_READ | PROT_EXEC, shared: false, hostFD: fd, offset: 0x1000,
                            name: "[vdso]", remote: remote) < 0 {
                _ = t.mm.unmap(t, addr: VDSO.base, len: 0x1000)
                return 0
            }
            return VDSO.text
        }
        if !t.thread.hasStub { return both(nil) }
        return t.mm.withStubFD(t, fd) { both($0) } ?? 0
    }

    /// The ELF image: everything at offsets from its start, which is also
    /// its link address 0 (the loader adds where it is mapped).
    static func image() -> [UInt8] {
        var codeLen = 0
        let code = moat_vdso_code(&codeLen)!
        let names = ["__vdso_clock_gettime", "__vdso_gettimeofday", "__vdso_time", "clock_gettime", "gettimeofday", "time"]
        let targets = [0, 1, 2, 0, 1, 2]
        var strtab: [UInt8] = [0]
        var nameOff: [Int] = []
        for n in names { nameOff.append(strtab.count); strtab += Array(n.utf8) + [0] }
        let soname = strtab.count
        strtab += Array("linux-vdso.so.1".utf8) + [0]
        // Symbol versions: Go's runtime (any static Go binary) reads the
        // version definitions unconditionally once it finds a vDSO, and
        // faults on a vDSO without them; glibc checks them when present.
        let versionName = strtab.count
        strtab += Array("LINUX_2.6".utf8) + [0]
        let nsyms = names.count + 1
        let dynOff = 64 + 2 * 56, dynCount = 10
        let hashOff = dynOff + dynCount * 16
        let hashSize = (2 + 1 + nsyms) * 4
        let symOff = (hashOff + hashSize + 7) & ~7
        let versymOff = symOff + nsyms * 24
        let verdefOff = (versymOff + nsyms * 2 + 3) & ~3
        let verdefSize = 2 * (20 + 8)
        let strOff = verdefOff + verdefSize
        let textOff = (strOff + strtab.count + 15) & ~15
        let size = textOff + codeLen
        var b = [UInt8](repeating: 0, count: size)
        func w16(_ o: Int, _ v: Int) { b[o] = UInt8(v & 0xff); b[o + 1] = UInt8((v >> 8) & 0xff) }
        func w32(_ o: Int, _ v: Int) { for i in 0..<4 { b[o + i] = UInt8((v >> (8 * i)) & 0xff) } }
        func w64(_ o: Int, _ v: Int) { for i in 0..<8 { b[o + i] = UInt8((v >> (8 * i)) & 0xff) } }
        // ELF header
        b.replaceSubrange(0..<4, with: [0x7f, 0x45, 0x4c, 0x46])
        b[4] = 2; b[5] = 1; b[6] = 1                       // 64-bit, little-endian, version 1
        w16(16, 3); w16(18, 62); w32(20, 1)               // ET_DYN, x86-64
        w64(32, 64)                                        // e_phoff
        w16(52, 64); w16(54, 56); w16(56, 2); w16(58, 64)  // ehsize, phentsize, phnum, shentsize
        // PT_LOAD: the whole image, read + execute
        w32(64, 1); w32(68, 5); w64(72, 0); w64(80, 0); w64(88, 0); w64(96, size); w64(104, size); w64(112, 0x1000)
        // PT_DYNAMIC
        w32(120, 2); w32(124, 4); w64(128, dynOff); w64(136, dynOff); w64(144, dynOff); w64(152, dynCount * 16); w64(160, dynCount * 16); w64(168, 8)
        // dynamic section (DT_VERSYM, DT_VERDEF, DT_VERDEFNUM after the basics)
        let dyn: [(Int, Int)] = [(4, hashOff), (5, strOff), (6, symOff), (10, strtab.count), (11, 24), (14, soname),
                                 (0x6fff_fff0, versymOff), (0x6fff_fffc, verdefOff), (0x6fff_fffd, 2), (0, 0)]
        for (i, d) in dyn.enumerated() { w64(dynOff + i * 16, d.0); w64(dynOff + i * 16 + 8, d.1) }
        // SysV hash: one bucket chaining every symbol
        w32(hashOff, 1); w32(hashOff + 4, nsyms); w32(hashOff + 8, 1)
        for i in 0..<nsyms { w32(hashOff + 12 + i * 4, i == 0 || i == nsyms - 1 ? 0 : i + 1) }
        // symbols (index 0 stays null), each of version 2 (LINUX_2.6)
        for (i, _) in names.enumerated() {
            let o = symOff + (i + 1) * 24
            w32(o, nameOff[i]); b[o + 4] = 0x12; w16(o + 6, 1)   // GLOBAL FUNC, a defined section
            w64(o + 8, textOff + moat_vdso_offset(Int32(targets[i]))); w64(o + 16, 16)
            w16(versymOff + (i + 1) * 2, 2)
        }
        // Version definitions: 1 is the object itself (VER_FLG_BASE), 2 is
        // LINUX_2.6; each Elf64_Verdef (20 bytes) is followed by its one
        // Elf64_Verdaux (8 bytes) naming it.
        for (i, (flags, name)) in [(1, soname), (0, versionName)].enumerated() {
            let o = verdefOff + i * 28
            w16(o, 1); w16(o + 2, flags); w16(o + 4, i + 1); w16(o + 6, 1)
            w32(o + 8, Int(VDSO.elfHash(strtab[name...].prefix { $0 != 0 }))); w32(o + 12, 20); w32(o + 16, i == 0 ? 28 : 0)
            w32(o + 20, name); w32(o + 24, 0)
        }
        b.replaceSubrange(strOff..<strOff + strtab.count, with: strtab)
        let raw = UnsafeRawBufferPointer(start: code, count: codeLen)
        b.replaceSubrange(textOff..<textOff + codeLen, with: raw)
        return b
    }

    /// The System V ELF hash (of a symbol or version name).
    static func elfHash<S: Sequence>(_ name: S) -> UInt32 where S.Element == UInt8 {
        var h: UInt32 = 0
        for c in name {
            h = (h << 4) &+ UInt32(c)
            let g = h & 0xf000_0000
            if g != 0 { h ^= g >> 24 }
            h &= ~g
        }
        return h
    }
}
