import CMoat
import Glibc
import Platform
import XCTest

/// The ptrace platform's primitives against a real stub process.
final class PtracePlatformTests: XCTestCase {
    func testStubInjectionAndMemory() throws {
        try StubFactory.shared.start()
        let pid = try StubFactory.shared.newAddressSpace().get()
        let th = try PtraceThread(seize: pid)
        defer { kill(pid, SIGKILL); th.reap() }
        // The stub's address space is empty but for the stub page: an
        // injected mmap at a chosen address must land there.
        let addr: UInt64 = 0x10_0000
        let r = th.inject(9, addr, 4096, UInt64(PROT_READ | PROT_WRITE), UInt64(MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED), UInt64.max, 0)
        XCTAssertEqual(r, Int(addr))
        var out: [UInt8] = Array("moat".utf8)
        XCTAssertEqual(th.write(addr, &out, 4), 4)
        var back = [UInt8](repeating: 0, count: 4)
        XCTAssertEqual(th.read(addr, &back, 4), 4)
        XCTAssertEqual(back, out)
        // Nothing else is mapped: reading the Sentry's own addresses fails.
        var x: UInt64 = 0
        XCTAssertLessThan(th.read(0x2000_0000, &x, 8), 0)
        // An invalid injected call returns the host error, not a crash.
        XCTAssertEqual(th.inject(11, 1, 4096), -Int(EINVAL))
    }
}
