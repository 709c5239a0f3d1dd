import XCTest
@testable import Sentry

/// The vDSO image read the way a versioned lookup reads it (Go's runtime,
/// glibc): the dynamic section must name version definitions, LINUX_2.6 must
/// be one of them, and the clock symbols must carry its index.
final class VDSOTests: XCTestCase {
    func testSymbolsCarryTheLinux26Version() throws {
        let b = VDSO.image()
        func u16(_ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 }
        func u32(_ o: Int) -> Int { u16(o) | u16(o + 2) << 16 }
        func u64(_ o: Int) -> Int { u32(o) | u32(o + 4) << 32 }
        func str(_ o: Int) -> String { String(decoding: b[o...].prefix { $0 != 0 }, as: UTF8.self) }
        XCTAssertEqual(Array(b[0..<4]), [0x7f, 0x45, 0x4c, 0x46])
        XCTAssertLessThanOrEqual(b.count, 0x1000, "the image fits its page")

        // PT_DYNAMIC, then the tags in it.
        let phoff = u64(32), phnum = u16(56)
        guard let ph = (0..<phnum).map({ phoff + $0 * 56 }).first(where: { u32($0) == 2 }) else { return XCTFail("no PT_DYNAMIC") }
        var tags: [Int: Int] = [:]
        var d = u64(ph + 8)
        while u64(d) != 0 { tags[u64(d)] = u64(d + 8); d += 16 }
        guard let strtab = tags[5], let symtab = tags[6], let hash = tags[4] else { return XCTFail("no STRTAB/SYMTAB/HASH") }
        guard let versym = tags[0x6fff_fff0], let verdef = tags[0x6fff_fffc] else {
            return XCTFail("no DT_VERSYM/DT_VERDEF: Go programs fault on such a vDSO")
        }

        // Walk the definitions for LINUX_2.6, checking each hash as loaders do.
        var ndx: Int?
        var def = verdef
        var seenBase = false
        while true {
            XCTAssertEqual(u16(def), 1, "vd_version")
            let name = str(strtab + u32(def + u32(def + 12)))
            XCTAssertEqual(UInt32(u32(def + 8)), VDSOTests.elfHash(name), name)
            if u16(def + 2) & 1 != 0 { seenBase = true; XCTAssertEqual(name, "linux-vdso.so.1") }
            if name == "LINUX_2.6" { ndx = u16(def + 4) }
            if u32(def + 16) == 0 { break }
            def += u32(def + 16)
        }
        XCTAssertTrue(seenBase)
        XCTAssertEqual(VDSOTests.elfHash("LINUX_2.6"), 0x3ae75f6)
        guard let version = ndx else { return XCTFail("no LINUX_2.6 definition") }

        // Every exported symbol is defined, in the hash table's range, and of that version.
        let nsyms = u32(hash + 4)
        var found: Set<String> = []
        for i in 1..<nsyms {
            let s = symtab + i * 24
            let name = str(strtab + u32(s))
            XCTAssertEqual(u16(versym + i * 2) & 0x7fff, version, name)
            XCTAssertNotEqual(u64(s + 8), 0, name)
            found.insert(name)
        }
        XCTAssertTrue(found.isSuperset(of: ["__vdso_clock_gettime", "__vdso_gettimeofday", "__vdso_time"]), "\(found)")
    }

    static func elfHash(_ s: String) -> UInt32 {
        var h: UInt32 = 0
        for c in s.utf8 {
            h = (h << 4) &+ UInt32(c)
            let g = h & 0xf000_0000
            if g != 0 { h ^= g >> 24 }
            h &= ~g
        }
        return h
    }
}
