// What an application hands the Sentry's loader: an executable file. The
// parser must refuse anything it cannot load without trapping, and what it
// accepts must be loadable (segments inside the user address space, file
// ranges that do not wrap).

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
            let (end, wrapped) = s.vaddr.addingReportingOverflow(s.memsz)
            if wrapped || end > 1 << 48 { fatalError("a segment beyond the user address space was accepted: \(s)") }
            if s.filesz > s.memsz { fatalError("a segment with more file than memory was accepted: \(s)") }
            if s.offset.addingReportingOverflow(s.filesz).overflow { fatalError("a segment whose file range wraps was accepted: \(s)") }
        }
    }
}
