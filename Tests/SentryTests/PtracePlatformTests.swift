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

    /// The word operations the Sentry runs on the stub page for futexes: a
    /// compare-and-swap, and FUTEX_WAKE_OP's five operations as one loop,
    /// each returning the old value; a bad address is EFAULT, not a crash.
    func testAtomicWordOperationsOnTheStub() throws {
        try StubFactory.shared.start()
        let pid = try StubFactory.shared.newAddressSpace().get()
        let th = try PtraceThread(seize: pid)
        defer { kill(pid, SIGKILL); th.reap() }
        let addr: UInt64 = 0x10_0000
        XCTAssertEqual(th.inject(9, addr, 4096, UInt64(PROT_READ | PROT_WRITE), UInt64(MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED), UInt64.max, 0), Int(addr))
        func word() -> UInt32 { var v: UInt32 = 0; XCTAssertEqual(th.read(addr + 8, &v, 4), 4); return v }
        var start: UInt32 = 0b1100
        XCTAssertEqual(th.write(addr + 8, &start, 4), 4)
        XCTAssertEqual(th.compareExchange32(addr + 8, expected: 1, new: 7), 0b1100)   // not swapped
        XCTAssertEqual(word(), 0b1100)
        // (op, operand, the word after): SET, ADD, OR, ANDN, XOR in turn.
        let steps: [(Int, UInt32, UInt32)] = [(0, 5, 5), (1, 0xffff_ffff, 4), (2, 0b1011, 0b1111), (3, 0b0110, 0b1001), (4, 0b1111, 0b0110)]
        var before = word()
        for (op, operand, after) in steps {
            XCTAssertEqual(th.futexOp32(addr + 8, op: op, operand: operand), Int(before), "op \(op)")
            XCTAssertEqual(word(), after, "op \(op)")
            before = after
        }
        XCTAssertEqual(th.futexOp32(0x2000_0000, op: 1, operand: 1), -Int(EFAULT))
        XCTAssertEqual(th.futexOp32(addr + 2, op: 1, operand: 1), -Int(EFAULT))   // misaligned
        XCTAssertEqual(th.futexOp32(addr + 8, op: 5, operand: 1), -Int(EINVAL))
        XCTAssertEqual(word(), 0b0110)
    }
}
