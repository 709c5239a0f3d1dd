// The KVM platform without the Sentry: a hand-assembled user program runs in
// a fresh VM, and each of its syscalls and faults must reach the host as the
// right StopReason with the right registers; the host answers syscalls by
// setting rax, and the program's later behaviour proves the answer arrived.

import CMoat
import Foundation
import Glibc
import Platform
import XCTest

final class KVMPlatformTests: XCTestCase {
    static let codeVA: UInt64 = 0x40_0000
    static let dataVA: UInt64 = 0x60_0000
    static let stackVA: UInt64 = 0x7f_0000
    static let stackTop: UInt64 = 0x80_0000
    static let unmappedVA: UInt64 = 0x90_0000

    /// Skips without /dev/kvm, except under CI=true where that is a failure.
    func machine() throws -> KVMMachine {
        if !KVMMachine.available {
            let msg = "/dev/kvm is not usable here"
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("missing prerequisite under CI: \(msg)") }
            throw XCTSkip(msg)
        }
        return try KVMMachine(memoryBytes: 16 << 20)
    }

    /// The program, with the offsets of the instructions the test checks.
    struct Program {
        var bytes: [UInt8] = []
        var marks: [String: UInt64] = [:]
        mutating func mark(_ name: String) { marks[name] = KVMPlatformTests.codeVA + UInt64(bytes.count) }
        mutating func emit(_ b: [UInt8]) { bytes += b }
        func at(_ name: String) -> UInt64 { marks[name]! }
    }

    static func imm32(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: UInt32(truncatingIfNeeded: v).littleEndian) { Array($0) } }

    static func program() -> Program {
        var p = Program()
        // write(1, dataVA, 5)
        p.emit([0xb8] + imm32(1))                         // mov eax, 1
        p.emit([0xbf] + imm32(1))                         // mov edi, 1
        p.emit([0x48, 0xc7, 0xc6] + imm32(dataVA))        // mov rsi, dataVA
        p.emit([0xba] + imm32(5))                         // mov edx, 5
        p.mark("write"); p.emit([0x0f, 0x05])             // syscall
        p.emit([0x48, 0x89, 0xc3])                        // mov rbx, rax
        // getpid()
        p.emit([0xb8] + imm32(39))                        // mov eax, 39
        p.mark("getpid"); p.emit([0x0f, 0x05])            // syscall
        p.emit([0x49, 0x89, 0xc4])                        // mov r12, rax
        p.emit([0x48, 0x89, 0x1c, 0x25] + imm32(dataVA + 0x100))  // mov [dataVA+0x100], rbx
        p.emit([0x41, 0x54])                              // push r12
        p.emit([0x64, 0x4c, 0x8b, 0x2c, 0x25] + imm32(0x10))      // mov r13, fs:[0x10]
        // Faults, each skipped by the host.
        p.mark("unmapped"); p.emit([0x48, 0x8b, 0x04, 0x25] + imm32(unmappedVA))  // mov rax, [unmapped]
        p.mark("ud2"); p.emit([0x0f, 0x0b])
        p.mark("rocode"); p.emit([0x88, 0x04, 0x25] + imm32(codeVA))  // mov [codeVA], al
        p.mark("out"); p.emit([0xe6, 0x51])               // out 0x51, al: must not forge a syscall exit
        p.mark("hlt"); p.emit([0xf4])
        p.mark("div"); p.emit([0x31, 0xc9, 0x48, 0xf7, 0xf1])  // xor ecx, ecx; div rcx
        p.mark("int3"); p.emit([0xcc]); p.mark("afterInt3")
        // exit(7)
        p.emit([0xb8] + imm32(60))
        p.emit([0xbf] + imm32(7))
        p.mark("exit"); p.emit([0x0f, 0x05])
        p.emit([0xf4])
        return p
    }

    func load(_ m: KVMMachine) throws -> (KVMAddressSpace, KVMThread, Program) {
        let p = Self.program()
        let asp = try KVMAddressSpace(machine: m)
        XCTAssertEqual(asp.map(Self.codeVA, 4096, prot: PROT_READ | PROT_EXEC), 0)
        XCTAssertEqual(asp.map(Self.dataVA, 4096, prot: PROT_READ | PROT_WRITE), 0)
        XCTAssertEqual(asp.map(Self.stackVA, Self.stackTop - Self.stackVA, prot: PROT_READ | PROT_WRITE), 0)
        // Text is read-only to the guest; the loader writes it with force.
        XCTAssertEqual(p.bytes.withUnsafeBytes { asp.write(Self.codeVA, $0.baseAddress!, p.bytes.count) }, 0)
        XCTAssertEqual(p.bytes.withUnsafeBytes { asp.write(Self.codeVA, $0.baseAddress!, p.bytes.count, force: true) },
                       p.bytes.count)
        let msg = Array("hello".utf8)
        XCTAssertEqual(asp.write(Self.dataVA, msg, msg.count), 5)
        var tls: UInt64 = 0x1122_3344_5566_7788
        XCTAssertEqual(asp.write(Self.dataVA + 0x10, &tls, 8), 8)
        let t = try m.newThread()
        t.addressSpace = asp
        t.regs.rip = Self.codeVA
        t.regs.rsp = Self.stackTop
        t.regs.fs_base = Self.dataVA
        return (asp, t, p)
    }

    func testSyscallsAndFaultsReachTheHost() throws {
        let m = try machine()
        let (asp, t, p) = try load(m)

        XCTAssertEqual(t.run(), .syscall, t.lastError ?? "")
        XCTAssertEqual(t.regs.orig_rax, 1)
        XCTAssertEqual(t.regs.rdi, 1)
        XCTAssertEqual(t.regs.rsi, Self.dataVA)
        XCTAssertEqual(t.regs.rdx, 5)
        XCTAssertEqual(t.regs.rip, p.at("write") + 2, "rip is after the syscall instruction")
        XCTAssertEqual(t.regs.rsp, Self.stackTop)
        var buf = [UInt8](repeating: 0, count: 5)
        XCTAssertEqual(asp.read(t.regs.rsi, &buf, 5), 5)
        XCTAssertEqual(String(decoding: buf, as: UTF8.self), "hello")
        t.regs.rax = 5

        XCTAssertEqual(t.run(), .syscall, t.lastError ?? "")
        XCTAssertEqual(t.regs.orig_rax, 39)
        XCTAssertEqual(t.regs.rbx, 5, "the result of write reached the program")
        XCTAssertEqual(t.regs.rip, p.at("getpid") + 2)
        t.regs.rax = 1234

        XCTAssertEqual(t.run(), .fault(signo: SIGSEGV, code: 1, addr: Self.unmappedVA), t.lastError ?? "")
        XCTAssertEqual(t.regs.rip, p.at("unmapped"))
        XCTAssertEqual(t.regs.r12, 1234, "the result of getpid reached the program")
        XCTAssertEqual(t.regs.r13, 0x1122_3344_5566_7788, "FS base is honoured")
        XCTAssertEqual(t.regs.rsp, Self.stackTop - 8)
        var v: UInt64 = 0
        XCTAssertEqual(asp.read(Self.dataVA + 0x100, &v, 8), 8)
        XCTAssertEqual(v, 5, "the program's store to a demand-paged data page")
        XCTAssertEqual(asp.read(Self.stackTop - 8, &v, 8), 8)
        XCTAssertEqual(v, 1234, "the program's push")
        t.regs.rip += 8

        XCTAssertEqual(t.run(), .fault(signo: SIGILL, code: 2, addr: p.at("ud2")), t.lastError ?? "")
        XCTAssertEqual(t.regs.rip, p.at("ud2"))
        t.regs.rip += 2

        XCTAssertEqual(t.run(), .fault(signo: SIGSEGV, code: 2, addr: Self.codeVA), t.lastError ?? "")
        XCTAssertEqual(t.regs.rip, p.at("rocode"))
        t.regs.rip += 7

        XCTAssertEqual(t.run(), .fault(signo: SIGSEGV, code: 0x80, addr: 0), "user `out` is a #GP, not an exit")
        XCTAssertEqual(t.regs.rip, p.at("out"))
        t.regs.rip += 2
        t.regs.eflags |= 0x3000  // IOPL 3 from the host must not be honoured either

        XCTAssertEqual(t.run(), .fault(signo: SIGSEGV, code: 0x80, addr: 0), "user `hlt` is a #GP")
        XCTAssertEqual(t.regs.rip, p.at("hlt"))
        XCTAssertEqual(t.regs.eflags & 0x3000, 0)
        t.regs.rip += 1

        XCTAssertEqual(t.run(), .fault(signo: SIGFPE, code: 1, addr: p.at("div") + 2), t.lastError ?? "")
        t.regs.rip += 3

        XCTAssertEqual(t.run(), .fault(signo: SIGTRAP, code: 0x80, addr: 0), t.lastError ?? "")
        XCTAssertEqual(t.regs.rip, p.at("afterInt3"), "int3 is a trap: rip is past it")

        XCTAssertEqual(t.run(), .syscall, t.lastError ?? "")
        XCTAssertEqual(t.regs.orig_rax, 60)
        XCTAssertEqual(t.regs.rdi, 7)
        XCTAssertEqual(t.regs.rip, p.at("exit") + 2)
    }

    /// The syscall page and the doorbell (KVMMachine.swift) are reachable
    /// from user mode; touching the doorbell from anywhere but the syscall
    /// page is a SIGSEGV and leaves the registers consistent, and jumping to
    /// the syscall page is only a syscall with the registers the program set.
    func testDoorbellCannotForgeAnythingButASyscall() throws {
        let m = try machine()
        let (asp, t, _) = try load(m)
        let lstar: UInt64 = 0xffff_ff80_0000_c000     // KernelLayout.syscallEntry
        let doorbell: UInt64 = 0xffff_ff80_0000_d000  // KernelLayout.doorbell
        var p = Program()
        p.emit([0xb0, 0x5a])                                               // mov al, 0x5a
        p.mark("store"); p.emit([0xa2] + withUnsafeBytes(of: doorbell.littleEndian) { Array($0) })  // movabs [doorbell], al
        p.mark("load"); p.emit([0xa0] + withUnsafeBytes(of: doorbell.littleEndian) { Array($0) })   // movabs al, [doorbell]
        p.mark("afterLoad")
        p.emit([0xb8] + Self.imm32(39))                                    // mov eax, 39
        p.emit([0x48, 0xc7, 0xc1] + Self.imm32(Self.codeVA + 0x200))       // mov rcx, codeVA+0x200
        p.emit([0x49, 0xc7, 0xc3] + Self.imm32(0x202))                     // mov r11, 0x202
        p.emit([0x48, 0xba] + withUnsafeBytes(of: lstar.littleEndian) { Array($0) })  // movabs rdx, lstar
        p.emit([0xff, 0xe2])                                               // jmp rdx
        XCTAssertEqual(p.bytes.withUnsafeBytes { asp.write(Self.codeVA, $0.baseAddress!, p.bytes.count, force: true) },
                       p.bytes.count)
        t.regs.rip = Self.codeVA

        XCTAssertEqual(t.run(), .fault(signo: SIGSEGV, code: 2, addr: doorbell), t.lastError ?? "")
        XCTAssertEqual(t.regs.rip, p.at("load"), "the store is retired: rip is past it")
        XCTAssertEqual(t.regs.rax & 0xff, 0x5a)

        XCTAssertEqual(t.run(), .fault(signo: SIGSEGV, code: 2, addr: doorbell), t.lastError ?? "")
        XCTAssertEqual(t.regs.rip, p.at("afterLoad"))

        XCTAssertEqual(t.run(), .syscall, t.lastError ?? "")
        XCTAssertEqual(t.regs.orig_rax, 39)
        XCTAssertEqual(t.regs.rip, Self.codeVA + 0x200, "a jump to LSTAR returns to the rcx it chose")
    }

    /// A mapping change takes effect at the next entry (the TLB is flushed),
    /// and unmapped pages go back to the machine.
    func testUnmapAndProtectTakeEffect() throws {
        let m = try machine()
        let (asp, t, p) = try load(m)
        XCTAssertEqual(t.run(), .syscall, t.lastError ?? "")  // write: the data page is now in the TLB
        let before = m.memory.pagesInUse
        XCTAssertEqual(asp.protect(Self.dataVA, 4096, prot: PROT_READ), 0)
        XCTAssertEqual(asp.write(Self.dataVA, [1], 1), 0, "read-only to the Sentry's ordinary writes")
        t.regs.rax = 5
        XCTAssertEqual(t.run(), .syscall)  // getpid
        XCTAssertEqual(t.run(), .fault(signo: SIGSEGV, code: 2, addr: Self.dataVA + 0x100), "the store hits the new protection")
        XCTAssertEqual(asp.unmap(Self.dataVA, 4096), 0)
        XCTAssertEqual(t.run(), .fault(signo: SIGSEGV, code: 1, addr: Self.dataVA + 0x100), "now unmapped")
        XCTAssertLessThan(m.memory.pagesInUse, before, "the page went back after the TLB flush")
        XCTAssertEqual(asp.protect(Self.dataVA, 4096, prot: PROT_READ), -Int(ENOMEM))
        XCTAssertEqual(asp.map(Self.dataVA + 1, 4096, prot: PROT_READ), -Int(EINVAL))
        XCTAssertEqual(asp.map(0x7fff_ffff_f000, 0x2000, prot: PROT_READ), -Int(EINVAL))
        _ = p
    }

    /// A host rip outside user space is refused before entering the guest;
    /// Moat's own supervisor pages are invisible to user mode.
    func testNonCanonicalRipIsAFault() throws {
        let m = try machine()
        let (_, t, _) = try load(m)
        t.regs.rip = KVMAddressSpace.userEnd
        XCTAssertEqual(t.run(), .fault(signo: SIGSEGV, code: 0x80, addr: 0))
        t.regs.rip = 0xffff_ff80_0000_3000  // Moat's ring-0 code page: outside user space
        XCTAssertEqual(t.run(), .fault(signo: SIGSEGV, code: 0x80, addr: 0))
        t.regs.rip = 0x40_2000  // not mapped: an instruction-fetch page fault
        XCTAssertEqual(t.run(), .fault(signo: SIGSEGV, code: 1, addr: 0x40_2000), t.lastError ?? "")
    }

    /// A private file mapping (KVMAddressSpace.swift): clean pages are the
    /// file's and show its later writes, to the guest and to the Sentry; the
    /// first write (the guest's, to a page it read before, or the Sentry's)
    /// makes a private copy the file never sees; MADV_DONTNEED shows the
    /// file again, in the guest too; a fork's copy has the parent's private
    /// pages and its own writes stay its own; a page past the file's end is
    /// SIGBUS.
    func testPrivateFileMappingIsCopyOnWrite() throws {
        let m = try machine()
        func word(_ s: String) -> UInt64 { Array(s.utf8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } }
        func read(_ asp: KVMAddressSpace, _ va: UInt64) -> UInt64? {
            var v: UInt64 = 0
            return asp.read(va, &v, 8) == 8 ? v : nil
        }
        func fileWord(_ fd: Int32, _ off: Int) -> UInt64 {
            var v: UInt64 = 0
            XCTAssertEqual(pread(fd, &v, 8, off_t(off)), 8)
            return v
        }
        let fd = moat_memfd("private-file", 4096 + 10)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        XCTAssertEqual(pwrite(fd, "PAGE0abc", 8, 0), 8)
        XCTAssertEqual(pwrite(fd, "PAGE1abc", 8, 4096), 8)
        let d = Self.dataVA
        var code: [UInt8] = []
        func load(_ reg: UInt8, _ va: UInt64) { code += [0x48, 0x8b, 0x04 | reg << 3, 0x25] + Self.imm32(va) }  // mov reg, [va]
        load(0, d)                                              // mov rax, [d]: the clean page, read-only
        code += [0x48, 0x89, 0x04, 0x25] + Self.imm32(d + 0x100)  // mov [d+0x100], rax: copy-on-write
        load(6, d + 0x1000)                                     // mov rsi, [d+0x1000]
        code += [0xb8] + Self.imm32(39) + [0x0f, 0x05]          // getpid
        load(3, d)                                              // mov rbx, [d]
        load(2, d + 0x1000)                                     // mov rdx, [d+0x1000]
        code += [0xb8] + Self.imm32(39) + [0x0f, 0x05]          // getpid
        load(0, d + 0x2000)                                     // past the file's end
        code += [0xf4]
        let asp = try KVMAddressSpace(machine: m)
        XCTAssertEqual(asp.map(Self.codeVA, 4096, prot: PROT_READ | PROT_EXEC), 0)
        XCTAssertEqual(code.withUnsafeBytes { asp.write(Self.codeVA, $0.baseAddress!, code.count, force: true) }, code.count)
        let rw = try XCTUnwrap(m.windows.open(fd: fd, offset: 0, len: 3 * 4096, writable: true))
        XCTAssertEqual(asp.map(d, 3 * 4096, prot: PROT_READ | PROT_WRITE, window: rw, offset: 0, copyOnWrite: true), -Int(EINVAL),
                       "a private mapping never has a writable window")
        let w = try XCTUnwrap(m.windows.open(fd: fd, offset: 0, len: 3 * 4096, writable: false))
        XCTAssertEqual(asp.map(d, 3 * 4096, prot: PROT_READ | PROT_WRITE, window: w, offset: 0, copyOnWrite: true), 0)
        let t = try m.newThread()
        t.addressSpace = asp
        t.regs.rip = Self.codeVA
        t.regs.rsp = Self.stackTop

        XCTAssertEqual(t.run(), .syscall, t.lastError ?? "")
        XCTAssertEqual(t.regs.rsi, word("PAGE1abc"))
        XCTAssertEqual(read(asp, d + 0x100), word("PAGE0abc"), "the guest's store went to its copy")
        XCTAssertEqual(fileWord(fd, 0x100), 0, "never to the file")
        XCTAssertEqual(pwrite(fd, "FILE0new", 8, 0), 8)
        XCTAssertEqual(pwrite(fd, "FILE1new", 8, 4096), 8)
        XCTAssertEqual(read(asp, d), word("PAGE0abc"), "a written page is private")
        XCTAssertEqual(read(asp, d + 0x1000), word("FILE1new"), "a clean page is the file's")
        XCTAssertEqual(asp.discard(d, 4096), 0)
        XCTAssertEqual(read(asp, d), word("FILE0new"), "MADV_DONTNEED shows the file again")
        XCTAssertEqual(read(asp, d + 0x100), 0)

        XCTAssertEqual(t.run(), .syscall, t.lastError ?? "")
        XCTAssertEqual(t.regs.rbx, word("FILE0new"), "the guest no longer reaches its dropped copy")
        XCTAssertEqual(t.regs.rdx, word("FILE1new"), "the guest's clean page shows the file's write")

        XCTAssertEqual(asp.write(d + 0x1000, "SENTRY!!", 8), 8)
        XCTAssertEqual(fileWord(fd, 4096), word("FILE1new"), "the Sentry's copyout is private too")
        XCTAssertEqual(read(asp, d + 0x1000), word("SENTRY!!"))
        let c = try asp.fork()
        XCTAssertEqual(read(c, d + 0x1000), word("SENTRY!!"), "the child has the parent's private page")
        XCTAssertEqual(c.write(d + 0x1000, "CHILD!!!", 8), 8)
        XCTAssertEqual(read(asp, d + 0x1000), word("SENTRY!!"), "and its writes are its own")
        XCTAssertEqual(read(c, d), word("FILE0new"))
        XCTAssertEqual(c.discard(d + 0x1000, 4096), 0)
        XCTAssertEqual(read(c, d + 0x1000), word("FILE1new"))
        XCTAssertEqual(read(asp, d + 0x1000), word("SENTRY!!"))

        XCTAssertEqual(t.run(), .fault(signo: SIGBUS, code: 2, addr: d + 0x2000), t.lastError ?? "")
        XCTAssertNil(read(asp, d + 0x2000), "the Sentry does not touch a page past the end either")
    }

    /// XSAVE in the guest (KVMThread.swift): user code may read XCR0 and
    /// use YMM registers; two contexts on the one vCPU keep their own YMM
    /// values across each other's runs (the XSAVE area moves with the
    /// context); getXState is the standard-format area (xstate_bv names
    /// AVX, the register's upper half at the AVX component's offset 576,
    /// XCR0 in the first software-reserved word) and setXState of a
    /// context that does not hold the vCPU reaches its next run.
    func testYMMStateFollowsEachContext() throws {
        let m = try machine()
        var code: [UInt8] = []
        code += [0x31, 0xc9, 0x0f, 0x01, 0xd0]           // xor ecx, ecx; xgetbv
        code += [0x89, 0x47, 0x40]                       // mov [rdi+64], eax
        code += [0xc5, 0xfe, 0x6f, 0x07]                 // vmovdqu ymm0, [rdi]
        code += [0xb8] + Self.imm32(39) + [0x0f, 0x05]   // getpid
        code += [0xc5, 0xfe, 0x7f, 0x47, 0x20]           // vmovdqu [rdi+32], ymm0
        code += [0xb8] + Self.imm32(39) + [0x0f, 0x05]   // getpid
        code += [0xf4]
        let asp = try KVMAddressSpace(machine: m)
        XCTAssertEqual(asp.map(Self.codeVA, 4096, prot: PROT_READ | PROT_EXEC), 0)
        XCTAssertEqual(code.withUnsafeBytes { asp.write(Self.codeVA, $0.baseAddress!, code.count, force: true) }, code.count)
        XCTAssertEqual(asp.map(Self.dataVA, 4096, prot: PROT_READ | PROT_WRITE), 0)
        XCTAssertEqual(asp.map(Self.stackVA, Self.stackTop - Self.stackVA, prot: PROT_READ | PROT_WRITE), 0)
        let first: [UInt8] = (0..<32).map { UInt8($0 + 1) }
        let second: [UInt8] = (0..<32).map { UInt8(0x80 + $0) }
        let values = [first, second]
        var threads: [KVMThread] = []
        for (i, v) in values.enumerated() {
            XCTAssertEqual(asp.write(Self.dataVA + UInt64(i) * 0x100, v, 32), 32)
            let t = try m.newThread()
            t.addressSpace = asp
            t.regs.rip = Self.codeVA
            t.regs.rsp = Self.stackTop
            t.regs.rdi = Self.dataVA + UInt64(i) * 0x100
            threads.append(t)
        }
        func bytes(_ va: UInt64, _ n: Int) -> [UInt8] {
            var b = [UInt8](repeating: 0, count: n)
            XCTAssertEqual(asp.read(va, &b, n), n)
            return b
        }
        for t in threads { XCTAssertEqual(t.run(), .syscall, t.lastError ?? "") }
        XCTAssertEqual(bytes(Self.dataVA + 64, 1)[0] & 7, 7, "XCR0 has x87, SSE and AVX")

        let area = try threads[0].getXState().get()
        let xcr0 = area.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 464, as: UInt64.self) }
        XCTAssertEqual(xcr0 & 7, 7)
        XCTAssertEqual(area.count, Int(moat_xstate_size(xcr0)), "the size CPUID gives for XCR0")
        XCTAssertNotEqual(area[512] & 4, 0, "xstate_bv: AVX in use")
        XCTAssertEqual(Array(area[160..<176]), Array(values[0][0..<16]), "xmm0")
        XCTAssertEqual(Array(area[576..<592]), Array(values[0][16..<32]), "ymm0's upper half")
        var changed = area
        changed.replaceSubrange(576..<592, with: repeatElement(0xee, count: 16))
        XCTAssertEqual(threads[0].setXState(changed), 0)

        for t in threads { XCTAssertEqual(t.run(), .syscall, t.lastError ?? "") }
        let expected: [UInt8] = Array(first[0..<16]) + [UInt8](repeating: 0xee, count: 16)
        XCTAssertEqual(bytes(Self.dataVA + 32, 32), expected,
                       "the first context runs with the upper half setXState wrote")
        XCTAssertEqual(bytes(Self.dataVA + 0x120, 32), values[1], "the second keeps its own ymm0")
    }
}
