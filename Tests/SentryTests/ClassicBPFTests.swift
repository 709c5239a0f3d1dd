import CMoat
import Glibc
import XCTest
@testable import Sentry

/// Classic BPF as seccomp runs it (Kernel/ClassicBPF.swift), against the
/// host kernel: random programs are installed as seccomp filters in a
/// forked child, which then makes a call and reports what the host's
/// filter answered; the Sentry's checker must accept exactly the programs
/// the host accepts, and its interpreter must give the same answer over the
/// same struct seccomp_data.
final class ClassicBPFTests: XCTestCase {
    /// A small deterministic generator (splitmix64), so a failure repeats.
    private struct Rand {
        var s: UInt64
        mutating func next() -> UInt64 {
            s &+= 0x9e37_79b9_7f4a_7c15
            var z = s
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    private func insn(_ code: UInt16, _ k: UInt32, _ jt: UInt8 = 0, _ jf: UInt8 = 0) -> [UInt8] {
        [UInt8(code & 0xff), UInt8(code >> 8), jt, jf, UInt8(k & 0xff), UInt8((k >> 8) & 0xff), UInt8((k >> 16) & 0xff), UInt8(k >> 24)]
    }

    /// The calls the child makes: harmless if a filter ever let one run.
    private let calls = [39, 102, 110, 186]     // getpid, getuid, getppid, gettid

    /// What the host's seccomp does with `prog` in a child: nil if the
    /// host refuses the program (EINVAL), else the errno of the call
    /// `nr(args)` (0: it returned 0), or -SIGNAL if the child was killed.
    private func host(_ prog: [UInt8], nr: Int, args: [UInt64]) throws -> Int? {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        var fprog = [UInt8](repeating: 0, count: 16)
        let pid: pid_t = prog.withUnsafeBytes { p in
            let n = prog.count / 8
            fprog[0] = UInt8(n & 0xff); fprog[1] = UInt8(n >> 8)
            let addr = UInt64(UInt(bitPattern: p.baseAddress!))
            for i in 0..<8 { fprog[8 + i] = UInt8((addr >> (8 * UInt64(i))) & 0xff) }
            return fprog.withUnsafeBytes { fp -> pid_t in
                let child = fork()
                if child != 0 { return child }
                // The child: only async-signal-safe calls from here on.
                var out: (Int32, Int32) = (0, 0)
                _ = moat_syscall6(157, 38, 1, 0, 0, 0, 0)                     // prctl(PR_SET_NO_NEW_PRIVS, 1)
                if moat_syscall6(317, 1, 0, Int(bitPattern: UInt(bitPattern: fp.baseAddress!)), 0, 0, 0) != 0 {
                    out = (1, errno)
                } else {
                    let r = moat_syscall6(nr, Int(bitPattern: UInt(args[0])), Int(bitPattern: UInt(args[1])), Int(bitPattern: UInt(args[2])),
                                          Int(bitPattern: UInt(args[3])), Int(bitPattern: UInt(args[4])), Int(bitPattern: UInt(args[5])))
                    out = (2, r == -1 ? errno : 0)
                }
                _ = withUnsafeBytes(of: &out) { write(fds[1], $0.baseAddress!, 8) }
                _exit(0)
            }
        }
        close(fds[1])
        var out: (Int32, Int32) = (0, 0)
        let n = withUnsafeMutableBytes(of: &out) { read(fds[0], $0.baseAddress!, 8) }
        close(fds[0])
        var st: Int32 = 0
        waitpid(pid, &st, 0)
        if n != 8 {
            // Killed before it could say (a KILL answer to write itself is excluded below).
            XCTAssertTrue(st & 0x7f != 0, "child ended without a word, status \(st)")
            return -Int(st & 0x7f)
        }
        if out.0 == 1 {
            XCTAssertEqual(out.1, EINVAL, "the host refused a program with errno \(out.1)")
            return nil
        }
        return Int(out.1)
    }

    /// A random program over seccomp_data (after a prologue that lets the
    /// child report and exit; never the instruction pointer,
    /// which differs between the child and this test): every path ends in
    /// "A &= 0xfff; A |= SECCOMP_RET_ERRNO; return A", so the call never
    /// runs and the answer is the errno the program computed, unless it
    /// divided by a zero X (the program then returns 0: KILL_THREAD).
    private func randomProgram(_ r: inout Rand) -> [UInt8] {
        // The child's own write, exit and exit_group are always allowed.
        var body: [[UInt8]] = [insn(0x20, 0), insn(0x15, 1, 3, 0), insn(0x15, 231, 2, 0), insn(0x15, 60, 1, 0),
                               insn(0x05, 1), insn(0x06, SeccompRet.allow)]
        for s in 0..<16 { body.append(insn(0x00, UInt32(truncatingIfNeeded: r.next()))); body.append(insn(0x02, UInt32(s))) }  // every M[s] set
        let n = 1 + r.below(40)
        let offsets: [UInt32] = [0, 4] + (4..<16).map { UInt32($0 * 4) }
        for i in 0..<n {
            let left = n - i   // instructions after this one in the body, before the epilogue
            let k = UInt32(truncatingIfNeeded: r.next())
            switch r.below(12) {
            case 0, 1: body.append(insn(0x20, offsets[r.below(offsets.count)]))            // LD W ABS
            case 2: body.append(insn([0x00, 0x01][r.below(2)], r.below(3) == 0 ? UInt32(r.below(8)) : k))
            case 3: body.append(insn([0x60, 0x61, 0x02, 0x03][r.below(4)], UInt32(r.below(16))))
            case 4, 5, 6:
                let ops: [UInt16] = [0x04, 0x14, 0x24, 0x34, 0x44, 0x54, 0x64, 0x74, 0xa4]   // no MOD: seccomp refuses it
                let op = ops[r.below(ops.count)]
                if r.below(2) == 0 {
                    var kk = k
                    if op == 0x34 { kk = max(1, k % 97) }
                    if op == 0x64 || op == 0x74 { kk = k % 32 }
                    body.append(insn(op, kk))
                } else {
                    body.append(insn(op | 0x08, 0))                                         // X form
                }
            case 7: body.append(insn([0x84, 0x07, 0x87, 0x80, 0x81][r.below(5)], 0))          // NEG TAX TXA LEN
            default:
                let jumps: [UInt16] = [0x15, 0x1d, 0x25, 0x2d, 0x35, 0x3d, 0x45, 0x4d, 0x05]
                let j = jumps[r.below(jumps.count)]
                let kk = r.below(3) == 0 ? UInt32(r.below(70)) : k
                if j == 0x05 { body.append(insn(j, UInt32(r.below(left)))) }
                else { body.append(insn(j, kk, UInt8(r.below(left)), UInt8(r.below(left)))) }
            }
        }
        body.append(insn(0x54, 0xfff))
        body.append(insn(0x44, SeccompRet.errno))
        body.append(insn(0x16, 0))
        return body.flatMap { $0 }
    }

    func testInterpreterMatchesTheHostsSeccomp() throws {
        var r = Rand(s: 20261207)
        var killed = 0
        for round in 0..<250 {
            let prog = randomProgram(&r)
            let nr = calls[r.below(calls.count)]
            let args = (0..<6).map { _ in r.below(4) == 0 ? UInt64(r.below(5)) : r.next() }
            guard let bpf = ClassicBPF(prog, use: .seccomp(dataSize: 64)) else {
                XCTFail("round \(round): the Sentry refused a program the generator made valid"); continue
            }
            let mine = bpf.run(seccompData(nr: nr, ip: 0, Args(a0: args[0], a1: args[1], a2: args[2], a3: args[3], a4: args[4], a5: args[5])))
            let expected: Int = mine == 0 ? -Int(SIGSYS) : Int(mine & 0xfff)
            if mine == 0 { killed += 1 }
            let got = try host(prog, nr: nr, args: args)
            XCTAssertEqual(got, expected, "round \(round): nr \(nr) args \(args)")
        }
        XCTAssertLessThan(killed, 125, "most programs should compute an errno")
    }

    /// Mutated programs, most of them invalid: the Sentry accepts exactly
    /// what the host accepts. Every return is ALLOW, so an accepted
    /// program changes nothing in the child.
    func testCheckerAcceptsWhatTheHostAccepts() throws {
        var r = Rand(s: 7)
        var accepted = 0
        for round in 0..<300 {
            var prog = randomProgram(&r)
            let n = prog.count / 8
            // Returns become ALLOW, then one or two bytes change.
            for i in 0..<n where prog[i * 8] == 0x16 || prog[i * 8] == 0x06 {
                prog.replaceSubrange(i * 8..<(i + 1) * 8, with: insn(0x06, SeccompRet.allow))
            }
            for _ in 0..<(1 + r.below(2)) {
                let n = prog.count / 8
                let i = r.below(n)
                switch r.below(6) {
                case 0: prog[i * 8] = UInt8(r.below(256)); prog[i * 8 + 1] = r.below(8) == 0 ? 1 : 0  // opcode
                case 1: prog[i * 8 + 4] = UInt8(r.below(80))                                         // k
                case 2: prog[i * 8 + 2] = UInt8(r.below(256))                                        // jt
                case 3: prog.removeLast(8 * (1 + r.below(min(3, n - 1))))                           // lose the end
                case 4: prog[i * 8] = 0x60; prog[i * 8 + 4] = UInt8(r.below(20))                   // LD MEM
                default: prog[i * 8 + 4] = 0; prog[i * 8 + 5] = 0; prog[i * 8 + 6] = 0; prog[i * 8 + 7] = 0
                }
            }
            // A return left in the program's bytes must still be ALLOW.
            for i in 0..<(prog.count / 8) where prog[i * 8] == 0x16 || (prog[i * 8] == 0x06 && prog[i * 8 + 1] == 0) {
                prog.replaceSubrange(i * 8..<(i + 1) * 8, with: insn(0x06, SeccompRet.allow))
            }
            let mine = ClassicBPF(prog, use: .seccomp(dataSize: 64)) != nil
            let host = try host(prog, nr: 39, args: [0, 0, 0, 0, 0, 0]) != nil
            XCTAssertEqual(mine, host, "round \(round): \(prog)")
            if host { accepted += 1 }
        }
        XCTAssertGreaterThan(accepted, 10)
        XCTAssertLessThan(accepted, 290)
    }
}
