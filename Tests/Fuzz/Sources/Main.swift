// moat-fuzz: Moat's libFuzzer targets, one binary, the target chosen by
// MOAT_FUZZ_TARGET (see Tests/Fuzz/README.md).
//
// Built two ways from the same sources:
// - normally (`swift build --product moat-fuzz`): a replayer that runs every
//   file given on the command line through a target, so committed corpora
//   and past crashes are regression tests in every CI run;
// - with `--sanitize fuzzer --sanitize address -Xswiftc -DFUZZING`
//   (Tests/Fuzz/fuzz.sh): libFuzzer's main drives LLVMFuzzerTestOneInput.
//
// Every target takes untrusted bytes exactly where Moat takes them from a
// less trusted party: the Sentry's requests to the Gofer, the Gofer's
// replies to the Sentry, an engine's config.json, a client's API object,
// an application's ELF file and syscall arguments, kubelet's CRI requests,
// a streaming peer's SPDY frames.

import Foundation

/// A fuzz target: consumes one input; traps (or trips ASan) on a bug.
struct FuzzTarget {
    let name: String
    let summary: String
    /// Once per process, before the first input.
    let setUp: () -> Void
    let run: ([UInt8]) -> Void
}

enum Targets {
    static let all: [FuzzTarget] = [
        GoferServerFuzz.target, GoferClientFuzz.target, OCIConfigFuzz.target,
        APIObjectFuzz.target, ELFFuzz.target, SyscallArgsFuzz.target, CRIRequestFuzz.target, SPDYFuzz.target,
    ]
    static func named(_ n: String) -> FuzzTarget? { all.first { $0.name == n } }
}

nonisolated(unsafe) private var current: FuzzTarget?

private func selected() -> FuzzTarget {
    if let t = current { return t }
    let name = ProcessInfo.processInfo.environment["MOAT_FUZZ_TARGET"] ?? ""
    guard let t = Targets.named(name) else {
        FileHandle.standardError.write(Data("moat-fuzz: set MOAT_FUZZ_TARGET to one of: \(Targets.all.map(\.name).joined(separator: ", "))\n".utf8))
        exit(2)
    }
    t.setUp()
    current = t
    return t
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    selected().run(bytes)
    return 0
}

#if !FUZZING
/// Replay: `moat-fuzz TARGET FILE|DIR...` runs each file through TARGET
/// and prints how many it ran; a bug traps, as under libFuzzer.
@main
struct Replay {
    static func main() {
        var args = Array(CommandLine.arguments.dropFirst())
        if args.isEmpty || args[0] == "--help" || args[0] == "-h" {
            print("usage: moat-fuzz TARGET FILE|DIR...   (replays inputs; Tests/Fuzz/fuzz.sh fuzzes)")
            for t in Targets.all { print("  \(t.name): \(t.summary)") }
            exit(args.isEmpty ? 2 : 0)
        }
        setenv("MOAT_FUZZ_TARGET", args.removeFirst(), 1)
        let t = selected()
        var files: [String] = []
        for a in args {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: a, isDirectory: &isDir) else {
                FileHandle.standardError.write(Data("moat-fuzz: no such file: \(a)\n".utf8)); exit(2)
            }
            if isDir.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: a)) ?? []
                files += names.sorted().map { a + "/" + $0 }
            } else {
                files.append(a)
            }
        }
        for f in files {
            guard let d = FileManager.default.contents(atPath: f) else { continue }
            t.run([UInt8](d))
        }
        print("\(t.name): \(files.count) inputs replayed")
    }
}
#endif
