// The libFuzzer targets of Tests/Fuzz in every run: each committed corpus
// (seeds, inputs libFuzzer found interesting, past crashes) replayed through
// a normal build of moat-fuzz, and, under CI (or MOAT_FUZZ_SECONDS), a short
// real fuzzing run of every target through Tests/Fuzz/fuzz.sh (libFuzzer +
// AddressSanitizer). A crash or sanitizer report fails the test with the
// fuzzer's own words.

import Foundation
import Testing

@Suite("libFuzzer targets (Tests/Fuzz)")
struct FuzzTests {
    static let fuzzDir = Integration.repoRoot + "/Tests/Fuzz"
    /// Every target has a corpus directory (moat-fuzz refuses a name it lacks).
    static let targets = ((try? FileManager.default.contentsOfDirectory(atPath: fuzzDir + "/corpus")) ?? []).sorted()

    /// moat-fuzz next to the test binary, else in .build/debug (test.sh
    /// builds it; it cannot be built from inside `swift test`, which holds
    /// the .build lock).
    static let replayer: Result<String, HarnessError> = {
        var candidates: [String] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append((exe as NSString).deletingLastPathComponent + "/moat-fuzz")
        }
        candidates.append(Integration.repoRoot + "/.build/debug/moat-fuzz")
        if let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) { return .success(found) }
        return .failure(HarnessError("no moat-fuzz at \(candidates.joined(separator: " or ")): build it first (swift build --product moat-fuzz, as test.sh does)"))
    }()

    @Test("the committed corpora replay without a crash", arguments: targets)
    func corpusReplays(_ target: String) async throws {
        let bin = try Self.replayer.get()
        let dir = Self.fuzzDir + "/corpus/" + target
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        try #require(!files.isEmpty, "no corpus in \(dir)")
        let r = await runProcess([bin, target, dir], env: Integration.hostEnvironment(), timeout: 300)
        #expect(r.exitStatus == 0 && !r.timedOut, "moat-fuzz \(target) \(dir): status \(r.exitStatus)\n\(r.stderrText.suffix(3000))")
        #expect(r.stdoutText.contains("\(target): \(files.count) inputs replayed"), "\(r.stdoutText)")
    }

    /// Seconds per target for the short fuzzing run: MOAT_FUZZ_SECONDS, 20 under CI, else none.
    static var fuzzSeconds: Int? {
        let env = ProcessInfo.processInfo.environment
        if let s = env["MOAT_FUZZ_SECONDS"], let n = Int(s) { return n > 0 ? n : nil }
        return env["CI"] == "true" ? 20 : nil
    }

    @Test("a short libFuzzer run of every target finds nothing", .enabled(if: fuzzSeconds != nil, "set MOAT_FUZZ_SECONDS (CI runs 20 s per target)"))
    func shortFuzzRun() async throws {
        let secs = try #require(Self.fuzzSeconds)
        let artifacts = Integration.scratchRoot + "/fuzz-artifacts"
        try? FileManager.default.removeItem(atPath: artifacts)
        var env = Integration.hostEnvironment()
        env.append("MOAT_FUZZ_ARTIFACTS=" + artifacts)
        let r = await runProcess(["/bin/bash", Self.fuzzDir + "/fuzz.sh", "-t", String(secs)] + Self.targets, env: env, timeout: 3600)
        var logs = ""
        for t in Self.targets {
            if let l = try? String(contentsOfFile: artifacts + "/\(t).log", encoding: .utf8) { logs += "--- \(t)\n" + l.suffix(2500) + "\n" }
        }
        print("fuzz.sh -t \(secs):\n\(r.stdoutText)")
        #expect(r.exitStatus == 0 && !r.timedOut, "fuzz.sh failed (status \(r.exitStatus)):\n\(r.stdoutText)\(r.stderrText.suffix(3000))\n\(logs)")
    }
}
