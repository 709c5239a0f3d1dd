// The cost of one application syscall round trip on the KVM platform, for
// bench/kvm.sh: a guest loop of `getppid` syscalls, each answered by the host
// through KVMThread exactly as the Sentry answers one (exit, registers out,
// rax in, resume). The guest checks every answer, so a broken round trip is
// reported rather than measured.

import CMoat
import Glibc

public enum KVMBench {
    /// Mean nanoseconds per syscall round trip over `iterations`: wall
    /// clock, and the calling thread's CPU time (what the trap costs when
    /// other processes compete for the CPUs).
    public static func syscallRoundTrip(iterations: Int) throws -> (wall: Double, cpu: Double) {
        let m = try KVMMachine(memoryBytes: 8 << 20)
        let asp = try KVMAddressSpace(machine: m)
        let code: UInt64 = 0x40_0000
        // loop: mov eax, 110 (getppid); syscall; cmp rax, 4242; jne fail;
        //       jmp loop; fail: ud2
        let prog: [UInt8] = [0xb8, 110, 0, 0, 0, 0x0f, 0x05,
                             0x48, 0x3d, 0x92, 0x10, 0, 0, 0x75, 0x02, 0xeb, 0xef, 0x0f, 0x0b]
        guard asp.map(code, 4096, prot: PROT_READ | PROT_EXEC) == 0,
              asp.map(0x80_0000, 4096, prot: PROT_READ | PROT_WRITE) == 0,
              prog.withUnsafeBytes({ asp.write(code, $0.baseAddress!, prog.count, force: true) }) == prog.count
        else { throw KVMError.unavailable("cannot load the bench program") }
        let t = try m.newThread()
        t.addressSpace = asp
        t.regs.rip = code
        t.regs.rsp = 0x80_1000
        func once() throws {
            let r = t.run()
            guard r == .syscall, t.regs.orig_rax == 110 else {
                throw KVMError.unavailable("bench guest stopped with \(r) \(t.lastError ?? "")")
            }
            t.regs.rax = 4242
        }
        for _ in 0..<1000 { try once() }  // warm up (first faults, TLB)
        var a = timespec(), b = timespec(), ca = timespec(), cb = timespec()
        clock_gettime(CLOCK_MONOTONIC, &a)
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ca)
        for _ in 0..<iterations { try once() }
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cb)
        clock_gettime(CLOCK_MONOTONIC, &b)
        func ns(_ x: timespec, _ y: timespec) -> Double { Double(y.tv_sec - x.tv_sec) * 1e9 + Double(y.tv_nsec - x.tv_nsec) }
        return (ns(a, b) / Double(iterations), ns(ca, cb) / Double(iterations))
    }
}
