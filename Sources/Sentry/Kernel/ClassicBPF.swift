// Classic BPF (struct sock_filter programs): the checks Linux makes before a
// socket or seccomp takes a program, and an interpreter for what seccomp
// runs. A program is an array of 8-byte instructions: a 16-bit opcode, two
// 8-bit jump offsets (true, false) and a 32-bit constant k. The machine has
// an accumulator A, an index register X and 16 scratch words M[0..15], all
// 32 bits; jumps only go forward, so every program ends.

/// One instruction of a classic BPF program.
struct BPFInsn {
    var code: UInt16, jt: UInt8, jf: UInt8, k: UInt32
}

/// A classic BPF program that passed the checks for its use.
struct ClassicBPF {
    let insns: [BPFInsn]

    /// Longest program Linux takes (BPF_MAXINSNS).
    static let maxInstructions = 4096

    /// What the program is for: a socket takes every classic load; seccomp
    /// only word loads of its 64-byte struct seccomp_data (at offsets that
    /// are multiples of 4), its length, no packet loads and no modulo
    /// (Linux's seccomp_check_filter lists every ALU operation but MOD).
    enum Use { case socket, seccomp(dataSize: UInt32) }

    /// The opcodes both uses accept: ALU (K and X forms), LD/LDX of a
    /// constant, of scratch memory and of the length, ST/STX, the jumps,
    /// RET K/A and TAX/TXA.
    private static let common: Set<UInt16> = [
        0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3c, 0x94, 0x9c, 0x54, 0x5c, 0x44, 0x4c, 0xa4, 0xac, // ALU
        0x64, 0x6c, 0x74, 0x7c, 0x84,
        0x00, 0x60, 0x80, 0x01, 0x61, 0x81,                     // LD/LDX IMM, MEM, W LEN
        0x02, 0x03, 0x06, 0x16, 0x07, 0x87,                     // ST STX RET MISC
        0x05, 0x15, 0x1d, 0x25, 0x2d, 0x35, 0x3d, 0x45, 0x4d,   // JMP
    ]
    /// Packet loads only a socket filter may use: LD W/H/B ABS and IND, LDX B MSH.
    private static let packetLoads: Set<UInt16> = [0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0xb1]

    /// Decodes and checks `bytes` (8 bytes per instruction) as Linux's
    /// bpf_check_classic (and seccomp_check_filter for `.seccomp`) would:
    /// 1...4096 instructions, known opcodes only, jumps inside the program,
    /// scratch slots below 16 and written before any path reads them, no
    /// division or shift by an out-of-range constant, a return last.
    /// nil: EINVAL.
    init?(_ bytes: [UInt8], use: Use) {
        let n = bytes.count / 8
        if n == 0 || n > ClassicBPF.maxInstructions || bytes.count % 8 != 0 { return nil }
        var p: [BPFInsn] = []
        p.reserveCapacity(n)
        for i in 0..<n {
            let o = i * 8
            p.append(BPFInsn(code: UInt16(bytes[o]) | UInt16(bytes[o + 1]) << 8, jt: bytes[o + 2], jf: bytes[o + 3],
                             k: UInt32(bytes[o + 4]) | UInt32(bytes[o + 5]) << 8 | UInt32(bytes[o + 6]) << 16 | UInt32(bytes[o + 7]) << 24))
        }
        for (i, x) in p.enumerated() {
            switch use {
            case .socket:
                if !ClassicBPF.common.contains(x.code) && !ClassicBPF.packetLoads.contains(x.code) { return nil }
            case .seccomp(let size):
                if x.code == 0x20 {                                     // LD W ABS: a word of seccomp_data
                    if x.k >= size || x.k & 3 != 0 { return nil }
                } else if !ClassicBPF.common.contains(x.code) || x.code == 0x94 || x.code == 0x9c { return nil }
            }
            switch x.code {
            case 0x60, 0x61, 0x02, 0x03: if x.k >= 16 { return nil }           // scratch memory
            case 0x34, 0x94: if x.k == 0 { return nil }                         // DIV, MOD by constant 0
            case 0x64, 0x74: if x.k >= 32 { return nil }                        // LSH, RSH by >= 32
            case 0x05: if UInt64(i) + 1 + UInt64(x.k) >= UInt64(n) { return nil }
            case 0x15, 0x1d, 0x25, 0x2d, 0x35, 0x3d, 0x45, 0x4d:
                if i + 1 + max(Int(x.jt), Int(x.jf)) >= n { return nil }
            default: break
            }
        }
        if p[n - 1].code != 0x06 && p[n - 1].code != 0x16 { return nil }
        if !ClassicBPF.scratchWrittenBeforeRead(p) { return nil }
        insns = p
    }

    /// Linux refuses a program that may read a scratch word no path to the
    /// read has written (check_load_and_stores). Jumps go forward, so one
    /// pass in order sees every way into an instruction before it.
    private static func scratchWrittenBeforeRead(_ p: [BPFInsn]) -> Bool {
        var written = [UInt16](repeating: 0xffff, count: p.count)   // slots written on every path in
        written[0] = 0
        for (i, x) in p.enumerated() {
            var w = written[i]
            switch x.code {
            case 0x60, 0x61: if w & (1 << UInt16(x.k)) == 0 { return false }
            case 0x02, 0x03: w |= 1 << UInt16(x.k)
            default: break
            }
            switch x.code {
            case 0x06, 0x16: break
            case 0x05: written[i + 1 + Int(x.k)] &= w
            case 0x15, 0x1d, 0x25, 0x2d, 0x35, 0x3d, 0x45, 0x4d:
                written[i + 1 + Int(x.jt)] &= w
                written[i + 1 + Int(x.jf)] &= w
            default: written[i + 1] &= w
            }
        }
        return true
    }

    /// Runs the program over `data` (the words LD W ABS reads, little
    /// endian; checked in range when the program was) and returns what it
    /// returns. A division or modulo by X = 0 ends the program with 0, as
    /// Linux's interpreter does; shifts by X take its low five bits.
    func run(_ data: [UInt8]) -> UInt32 {
        var a: UInt32 = 0, x: UInt32 = 0
        var m = (UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0),
                 UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0))
        var pc = 0
        return withUnsafeMutableBytes(of: &m) { raw -> UInt32 in
            let mem = raw.bindMemory(to: UInt32.self)
            while pc < insns.count {
                let i = insns[pc]
                pc += 1
                let src = i.code & 0x08 != 0 ? x : i.k
                switch i.code {
                case 0x20:
                    let o = Int(i.k)
                    a = UInt32(data[o]) | UInt32(data[o + 1]) << 8 | UInt32(data[o + 2]) << 16 | UInt32(data[o + 3]) << 24
                case 0x00: a = i.k
                case 0x60: a = mem[Int(i.k)]
                case 0x80: a = UInt32(data.count)
                case 0x01: x = i.k
                case 0x61: x = mem[Int(i.k)]
                case 0x81: x = UInt32(data.count)
                case 0x02: mem[Int(i.k)] = a
                case 0x03: mem[Int(i.k)] = x
                case 0x04, 0x0c: a = a &+ src
                case 0x14, 0x1c: a = a &- src
                case 0x24, 0x2c: a = a &* src
                case 0x34, 0x3c: if src == 0 { return 0 }; a /= src
                case 0x94, 0x9c: if src == 0 { return 0 }; a %= src
                case 0x44, 0x4c: a |= src
                case 0x54, 0x5c: a &= src
                case 0xa4, 0xac: a ^= src
                case 0x64, 0x6c: a = a << (src & 31)
                case 0x74, 0x7c: a = a >> (src & 31)
                case 0x84: a = 0 &- a
                case 0x07: x = a
                case 0x87: a = x
                case 0x05: pc += Int(i.k)
                case 0x15, 0x1d: pc += a == src ? Int(i.jt) : Int(i.jf)
                case 0x25, 0x2d: pc += a > src ? Int(i.jt) : Int(i.jf)
                case 0x35, 0x3d: pc += a >= src ? Int(i.jt) : Int(i.jf)
                case 0x45, 0x4d: pc += a & src != 0 ? Int(i.jt) : Int(i.jf)
                case 0x06: return i.k
                case 0x16: return a
                default: return 0                                   // not reached: checked when made
                }
            }
            return 0
        }
    }
}
