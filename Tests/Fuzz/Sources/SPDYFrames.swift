// What a streaming peer sends in SPDY/3.1 (Sources/SPDY): `moat cri`'s
// streaming server parses the frames of whoever holds an exec, attach or
// port-forward URL, and the API server parses the frames of a node's
// runtime, which a compromised node controls. The first byte picks a mode:
//   0  raw bytes, fed to a fresh codec in pieces of fuzzer-chosen sizes;
//   1  a script of frames that one codec builds and a second parses, split
//      at fuzzer-chosen points: the frames parsed must be the frames built,
//      header blocks included (the two zlib contexts must stay in step for
//      the whole connection, as when kubectl opens five streams on one);
//   2  raw bytes after a well-formed SYN_STREAM, so that they reach an
//      inflater already primed with SPDY's dictionary.
// A malformed input must end as a SPDYError, never a trap or a hang
// (libFuzzer's -timeout catches a loop that never ends).

import SPDY

enum SPDYFuzz {
    static let target = FuzzTarget(
        name: "spdy",
        summary: "SPDY/3.1 frames as a streaming peer sends them: [mode][bytes or frame script]",
        setUp: {},
        run: run)

    static func run(_ input: [UInt8]) {
        guard input.count >= 2 else { return }
        let body = Array(input.dropFirst(2))
        switch input[0] % 3 {
        case 0: raw(SPDYCodec(), body, pieces: input[1])
        case 1: roundTrip(body, pieces: input[1])
        default:
            let codec = SPDYCodec(), peer = SPDYCodec()
            guard let first = try? codec.feed(peer.synStream(1, headers: [("streamtype", "stdin")])),
                  first == [.synStream(id: 1, headers: ["streamtype": "stdin"], fin: false)] else {
                fatalError("a well-formed SYN_STREAM did not parse as itself")
            }
            raw(codec, body, pieces: input[1])
        }
    }

    /// Piece sizes 1...64 from a small generator seeded by the input, so
    /// one input always splits the same way.
    struct Pieces {
        var state: UInt32
        init(_ seed: UInt8) { state = UInt32(seed) &* 2_654_435_761 | 1 }
        mutating func next() -> Int {
            state ^= state << 13; state ^= state >> 17; state ^= state << 5
            return Int(state % 64) + 1
        }
    }

    static func feed(_ codec: SPDYCodec, _ bytes: [UInt8], pieces seed: UInt8) throws -> [SPDYFrame] {
        var pieces = Pieces(seed), out: [SPDYFrame] = [], at = 0
        while at < bytes.count {
            let n = min(pieces.next(), bytes.count - at)
            out += try codec.feed(Array(bytes[at..<(at + n)]))
            at += n
        }
        return out
    }

    static func raw(_ codec: SPDYCodec, _ bytes: [UInt8], pieces: UInt8) {
        guard let frames = try? feed(codec, bytes, pieces: pieces) else { return }
        for f in frames {
            switch f {
            case .data(let id, let b, _):
                if b.count > SPDYCodec.maxFrame { fatalError("a DATA frame of \(b.count) bytes was accepted") }
                if id > 0x7fff_ffff { fatalError("a DATA frame on stream \(id) was accepted") }
            case .synStream(let id, let h, _):
                if id > 0x7fff_ffff { fatalError("a SYN_STREAM for stream \(id) was accepted") }
                if h.keys.contains(where: { $0 != $0.lowercased() }) { fatalError("a header name kept upper case: \(h.keys)") }
            default: break
            }
        }
    }

    /// Reads the script: one op byte, then what the op needs; stops where
    /// the input does.
    struct Script {
        let b: [UInt8]
        var at = 0
        mutating func byte() -> UInt8? { guard at < b.count else { return nil }; defer { at += 1 }; return b[at] }
        mutating func u32() -> UInt32? {
            guard b.count - at >= 4 else { return nil }
            defer { at += 4 }
            return UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
        }
        mutating func bytes(_ n: Int) -> [UInt8] { let k = min(n, b.count - at); defer { at += k }; return Array(b[at..<(at + k)]) }
        mutating func string(max: Int) -> String? { guard let n = byte() else { return nil }; return String(decoding: bytes(Int(n) % (max + 1)), as: UTF8.self) }
    }

    static func roundTrip(_ body: [UInt8], pieces: UInt8) {
        let sender = SPDYCodec(), receiver = SPDYCodec()
        var s = Script(b: body), wire: [UInt8] = [], expected: [SPDYFrame] = [], large = 0
        let mask: UInt32 = 0x7fff_ffff
        ops: while let op = s.byte() {
            guard let id = s.u32() else { break }
            switch op % 7 {
            case 0, 1:
                guard let n = s.byte() else { break ops }
                var headers: [(String, String)] = [], seen: [String: String] = [:]
                for _ in 0..<(n % 8) {
                    guard let k = s.string(max: 16), let v = s.string(max: 32) else { break ops }
                    headers.append((k, v))
                    // The sender lowercases names and the receiver lowercases what it reads;
                    // of one name sent twice, the last value stands.
                    seen[k.lowercased().lowercased()] = v
                }
                wire += sender.synStream(id, headers: headers, fin: op % 7 == 1)
                expected.append(.synStream(id: id & mask, headers: seen, fin: op % 7 == 1))
            case 2:
                wire += sender.synReply(id, headers: [("status", "200")])
                expected.append(.synReply(id: id & mask))
            case 3:
                guard let n = s.byte() else { break ops }
                let bytes = s.bytes(Int(n)), fin = n & 1 == 1
                wire += sender.data(id, bytes[...], fin: fin)
                expected.append(.data(id: id & mask, bytes: bytes, fin: fin))
            case 4 where large < 2:
                // Large data, around the largest frame the receiver accepts (at most two per
                // input, so that an execution stays cheap): split, FIN on the last only.
                guard let n = s.byte() else { break ops }
                large += 1
                let size = SPDYCodec.maxFrame - 128 + Int(n) * 67, fin = n & 1 == 1
                wire += sender.data(id, [UInt8](repeating: n, count: size)[...], fin: fin)
                var left = size
                repeat {
                    let part = min(left, SPDYCodec.maxFrame)
                    left -= part
                    expected.append(.data(id: id & mask, bytes: [UInt8](repeating: n, count: part), fin: fin && left == 0))
                } while left > 0
            case 5:
                guard let status = s.u32() else { break ops }
                wire += sender.rstStream(id, status: status)
                expected.append(.rstStream(id: id & mask, status: status))
            default:
                wire += sender.ping(id)
                expected.append(.ping(id: id))
            }
        }
        let got: [SPDYFrame]
        do { got = try feed(receiver, wire, pieces: pieces) } catch {
            fatalError("frames the codec built did not parse: \(error)")
        }
        guard got == expected else {
            fatalError("built \(expected.count) frames, parsed \(got.count); first difference: "
                + "\(zip(expected, got).first { $0 != $1 }.map { "\($0) vs \($1)" } ?? "a missing frame")")
        }
    }
}
