// What an application hands the Sentry's loader: an executable file. The
// parser must refuse anything it cannot handle without trapping, and what it
// accepts must have sizes and file ranges the loader's arithmetic takes
// (memory and file sizes within 2^40, file ranges that do not wrap). A
// segment at an address outside the user range is accepted, as Linux's
// execve accepts it: the loader refuses to map it after the point of no
// return and the program dies of SIGSEGV (Loader/ELF.swift).

@testable import Sentry

enum ELFFuzz {
    static let target = FuzzTarget(
        name: "elf",
        summary: "the Sentry's ELF parser: [file bytes]",
        setUp: {},
        run: run)

    struct Bytes: ByteSource {
        let b: [UInt8]
        func pread(_ off: Int64, _ count: Int) -> [UInt8]? {
            if off < 0 || count < 0 { return nil }
            if off >= Int64(b.count) { return [] }
            return Array(b[Int(off)..<min(b.count, Int(off) + count)])
        }
    }

    static func run(_ input: [UInt8]) {
        guard case .success(let info) = parseELF(Bytes(b: input)) else { return }
        if info.segments.isEmpty { fatalError("an ELF file without loadable segments was accepted") }
        for s in info.segments {
            if s.memsz > 1 << 40 || s.offset > 1 << 40 { fatalError("a segment too large for the loader was accepted: \(s)") }
            if s.filesz > s.memsz { fatalError("a segment with more file than memory was accepted: \(s)") }
            if s.offset.addingReportingOverflow(s.filesz).overflow { fatalError("a segment whose file range wraps was accepted: \(s)") }
        }
    }
}
