// A short pass of the fault-injection driver (Tests/Faults/faults.sh): kill
// -9 the launcher, the Gofer, the Sentry, a stub, an OCI container's parts,
// the API server, the node agent, the whole control plane (API server,
// scheduler, controllers) and `moat cri` with and without a CNI network at
// random moments; nothing may be left on the
// host, no acknowledged API write may be lost, and a restarted agent or
// control plane must bring the runtime back in line with the API. The long runs (100 rounds each)
// are documented in Tests/Faults/README.md.

import Foundation
import Testing

@Suite("Fault injection (kill -9 at random moments)")
struct FaultInjectionTests {
    /// Rounds per scenario: MOAT_FAULT_ROUNDS, else 3.
    static var rounds: Int { ProcessInfo.processInfo.environment["MOAT_FAULT_ROUNDS"].flatMap(Int.init) ?? 3 }
    static let scenarios = ["run", "oci", "api", "node", "control", "cri", "cri-cni"]

    @Test func nothingLeftAndNothingLost() async throws {
        guard Integration.isRoot else {
            try #require(ProcessInfo.processInfo.environment["CI"] != "true", "CI=true: fault injection needs root")
            return
        }
        let moat = try Integration.moatBinary.get()
        let rootfs = try Integration.rootfs.get()
        // Every scenario; the two cri ones use crictl from /var/cache/moat/bin (.ci/setup builds
        // it with Tests/Conformance/cri-tools.sh; faults.sh builds it when it is missing).
        let r = await runProcess(["/bin/bash", Integration.repoRoot + "/Tests/Faults/faults.sh", "-n", String(Self.rounds),
                                  "-m", moat, "-r", rootfs] + Self.scenarios.flatMap { ["-s", $0] },
                                 env: Integration.hostEnvironment(), timeout: 2400)
        print("faults.sh -n \(Self.rounds):\n\(r.stdoutText)")
        #expect(r.exitStatus == 0 && !r.timedOut, "faults.sh failed (status \(r.exitStatus)):\n\(r.stdoutText)\n\(r.stderrText.suffix(4000))")
        for s in Self.scenarios {
            #expect(r.stdoutText.contains("\(s): \(Self.rounds) rounds"), "scenario \(s) did not run:\n\(r.stdoutText)")
        }
    }
}
