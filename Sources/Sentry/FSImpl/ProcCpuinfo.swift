// /proc/cpuinfo: the host CPU as the CPUID instruction describes it (the
// Sentry runs it itself; no host file is read), in Linux's fields and order.
// The "flags" line names the features CPUID reports with Linux's names, in
// Linux's order of feature words, so that a program that looks for avx2 or
// aes there (rather than asking CPUID) takes the path it would take natively.

import CMoat
import Glibc

/// One CPUID leaf: EAX, EBX, ECX, EDX.
private func cpuid(_ leaf: UInt32, _ sub: UInt32 = 0) -> [UInt32] {
    var out = [UInt32](repeating: 0, count: 4)
    out.withUnsafeMutableBufferPointer { moat_cpuid(leaf, sub, $0.baseAddress!) }
    return out
}

/// A feature word's register and its named bits (bit, Linux's name).
private struct FeatureWord {
    let leaf: UInt32, sub: UInt32, register: Int
    let names: [(Int, String)]
}

/// Linux's feature words in the order it prints them; bits Linux keeps
/// unnamed (osxsave, hidden speculation-control bits) are left out.
private let featureWords: [FeatureWord] = [
    FeatureWord(leaf: 1, sub: 0, register: 3, names: [
        (0, "fpu"), (1, "vme"), (2, "de"), (3, "pse"), (4, "tsc"), (5, "msr"), (6, "pae"), (7, "mce"), (8, "cx8"),
        (9, "apic"), (11, "sep"), (12, "mtrr"), (13, "pge"), (14, "mca"), (15, "cmov"), (16, "pat"), (17, "pse36"),
        (18, "pn"), (19, "clflush"), (21, "dts"), (22, "acpi"), (23, "mmx"), (24, "fxsr"), (25, "sse"), (26, "sse2"),
        (27, "ss"), (28, "ht"), (29, "tm"), (30, "ia64"), (31, "pbe")]),
    FeatureWord(leaf: 0x8000_0001, sub: 0, register: 3, names: [
        (11, "syscall"), (19, "mp"), (20, "nx"), (22, "mmxext"), (25, "fxsr_opt"), (26, "pdpe1gb"), (27, "rdtscp"),
        (29, "lm"), (30, "3dnowext"), (31, "3dnow")]),
    FeatureWord(leaf: 1, sub: 0, register: 2, names: [
        (0, "pni"), (1, "pclmulqdq"), (2, "dtes64"), (3, "monitor"), (4, "ds_cpl"), (5, "vmx"), (6, "smx"), (7, "est"),
        (8, "tm2"), (9, "ssse3"), (10, "cid"), (11, "sdbg"), (12, "fma"), (13, "cx16"), (14, "xtpr"), (15, "pdcm"),
        (17, "pcid"), (18, "dca"), (19, "sse4_1"), (20, "sse4_2"), (21, "x2apic"), (22, "movbe"), (23, "popcnt"),
        (24, "tsc_deadline_timer"), (25, "aes"), (26, "xsave"), (28, "avx"), (29, "f16c"), (30, "rdrand"),
        (31, "hypervisor")]),
    FeatureWord(leaf: 0x8000_0001, sub: 0, register: 2, names: [
        (0, "lahf_lm"), (1, "cmp_legacy"), (2, "svm"), (3, "extapic"), (4, "cr8_legacy"), (5, "abm"), (6, "sse4a"),
        (7, "misalignsse"), (8, "3dnowprefetch"), (9, "osvw"), (10, "ibs"), (11, "xop"), (12, "skinit"), (13, "wdt"),
        (15, "lwp"), (16, "fma4"), (17, "tce"), (19, "nodeid_msr"), (21, "tbm"), (22, "topoext"), (23, "perfctr_core"),
        (24, "perfctr_nb"), (26, "bpext"), (27, "ptsc"), (28, "perfctr_llc"), (29, "mwaitx")]),
    FeatureWord(leaf: 7, sub: 0, register: 1, names: [
        (0, "fsgsbase"), (1, "tsc_adjust"), (2, "sgx"), (3, "bmi1"), (4, "hle"), (5, "avx2"), (7, "smep"), (8, "bmi2"),
        (9, "erms"), (10, "invpcid"), (11, "rtm"), (12, "cqm"), (14, "mpx"), (15, "rdt_a"), (16, "avx512f"),
        (17, "avx512dq"), (18, "rdseed"), (19, "adx"), (20, "smap"), (21, "avx512ifma"), (23, "clflushopt"),
        (24, "clwb"), (25, "intel_pt"), (26, "avx512pf"), (27, "avx512er"), (28, "avx512cd"), (29, "sha_ni"),
        (30, "avx512bw"), (31, "avx512vl")]),
    FeatureWord(leaf: 0xd, sub: 1, register: 0, names: [(0, "xsaveopt"), (1, "xsavec"), (2, "xgetbv1"), (3, "xsaves")]),
    FeatureWord(leaf: 7, sub: 1, register: 0, names: [(4, "avx_vnni"), (5, "avx512_bf16")]),
    FeatureWord(leaf: 0x8000_0008, sub: 0, register: 1, names: [(0, "clzero"), (1, "irperf"), (2, "xsaveerptr"), (9, "wbnoinvd")]),
    FeatureWord(leaf: 7, sub: 0, register: 2, names: [
        (1, "avx512vbmi"), (2, "umip"), (3, "pku"), (4, "ospke"), (5, "waitpkg"), (6, "avx512_vbmi2"), (8, "gfni"),
        (9, "vaes"), (10, "vpclmulqdq"), (11, "avx512_vnni"), (12, "avx512_bitalg"), (13, "tme"),
        (14, "avx512_vpopcntdq"), (16, "la57"), (22, "rdpid"), (24, "bus_lock_detect"), (25, "cldemote"),
        (27, "movdiri"), (28, "movdir64b"), (29, "enqcmd"), (30, "sgx_lc")]),
    FeatureWord(leaf: 7, sub: 0, register: 3, names: [
        (2, "avx512_4vnniw"), (3, "avx512_4fmaps"), (4, "fsrm"), (8, "avx512_vp2intersect"), (10, "md_clear"),
        (14, "serialize"), (16, "tsxldtrk"), (18, "pconfig"), (19, "arch_lbr"), (20, "ibt"), (22, "amx_bf16"),
        (23, "avx512_fp16"), (24, "amx_tile"), (25, "amx_int8"), (28, "flush_l1d"), (29, "arch_capabilities")]),
]

/// The CPU's description, read once (CPUID does not change under a
/// running sandbox).
private struct CPUDescription {
    var vendor = "", model = "", flags = ""
    var family: UInt32 = 0, modelNumber: UInt32 = 0, stepping: UInt32 = 0, level: UInt32 = 0
    var clflush: UInt32 = 64, physBits: UInt32 = 46, virtBits: UInt32 = 48, mhz: UInt32 = 2000

    static let host: CPUDescription = {
        var d = CPUDescription()
        let l0 = cpuid(0)
        d.level = l0[0]
        d.vendor = CPUDescription.ascii([l0[1], l0[3], l0[2]])
        let l1 = cpuid(1)
        let base = (l1[0] >> 8) & 0xf
        d.family = base == 0xf ? base + ((l1[0] >> 20) & 0xff) : base
        d.modelNumber = (l1[0] >> 4) & 0xf | (base >= 6 ? ((l1[0] >> 16) & 0xf) << 4 : 0)
        d.stepping = l1[0] & 0xf
        if (l1[1] >> 8) & 0xff != 0 { d.clflush = ((l1[1] >> 8) & 0xff) * 8 }
        let maxExt = cpuid(0x8000_0000)[0]
        if maxExt >= 0x8000_0004 {
            d.model = CPUDescription.ascii((0x8000_0002...0x8000_0004).flatMap { cpuid(UInt32($0)) })
                .trimmingCharacters(in: " ")
        }
        if maxExt >= 0x8000_0008 {
            let a = cpuid(0x8000_0008)[0]
            d.physBits = a & 0xff; d.virtBits = (a >> 8) & 0xff
        }
        if d.level >= 0x16, cpuid(0x16)[0] != 0 { d.mhz = cpuid(0x16)[0] }
        var names: [String] = []
        for w in featureWords {
            let top = w.leaf >= 0x8000_0000 ? maxExt : d.level
            if w.leaf > top { continue }
            if w.leaf == 7 && w.sub > cpuid(7)[0] { continue }   // subleaves of leaf 7: EAX is the highest
            let reg = cpuid(w.leaf, w.sub)[w.register]
            for (bit, name) in w.names where reg & (1 << UInt32(bit)) != 0 { names.append(name) }
        }
        d.flags = names.joined(separator: " ")
        if d.model.isEmpty { d.model = "moat virtual CPU" }
        return d
    }()

    /// Register words as the bytes of a string, NULs dropped.
    private static func ascii(_ words: [UInt32]) -> String {
        let bytes = words.flatMap { w in (0..<4).map { UInt8(truncatingIfNeeded: w >> (8 * $0)) } }
        return String(decoding: bytes.filter { $0 != 0 }, as: UTF8.self)
    }
}

private extension String {
    func trimmingCharacters(in c: Character) -> String {
        String(drop { $0 == c }.reversed().drop { $0 == c }.reversed())
    }
}

/// /proc/cpuinfo: one block per online CPU.
func procCpuinfo() -> String {
    let n = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    let d = CPUDescription.host
    let mhz = "\(d.mhz).000", bogo = "\(d.mhz * 2).00"
    var s = ""
    for i in 0..<n {
        s += """
        processor\t: \(i)
        vendor_id\t: \(d.vendor)
        cpu family\t: \(d.family)
        model\t\t: \(d.modelNumber)
        model name\t: \(d.model)
        stepping\t: \(d.stepping)
        cpu MHz\t\t: \(mhz)
        cache size\t: 8192 KB
        physical id\t: 0
        siblings\t: \(n)
        core id\t\t: \(i)
        cpu cores\t: \(n)
        apicid\t\t: \(i)
        initial apicid\t: \(i)
        fpu\t\t: yes
        fpu_exception\t: yes
        cpuid level\t: \(d.level)
        wp\t\t: yes
        flags\t\t: \(d.flags)
        bogomips\t: \(bogo)
        clflush size\t: \(d.clflush)
        cache_alignment\t: \(d.clflush)
        address sizes\t: \(d.physBits) bits physical, \(d.virtBits) bits virtual
        power management:


        """
    }
    return s
}
