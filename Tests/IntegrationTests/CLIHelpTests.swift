// Every subcommand answers --help with its usage (issue 19): `moat run
// --help` used to be taken as a command to run.

import Foundation
import Testing

@Suite("moat SUBCOMMAND --help")
struct CLIHelpTests {
    @Test(arguments: ["run", "pull", "images", "rmi", "image", "apiserver", "controlplane", "cri", "node", "debug",
                            "ps", "logs", "exec", "stop", "kill", "rm", "inspect", "top", "stats"])
    func answersHelp(_ sub: String) async throws {
        let moat = try Integration.moatBinary.get()
        let r = await runProcess([moat, sub, "--help"], env: Integration.hostEnvironment(), timeout: 30)
        #expect(r.exitStatus == 0, "moat \(sub) --help: status \(r.exitStatus)\n\(r.stderrText)")
        #expect(r.stdoutText.contains("USAGE: moat \(sub)"), "moat \(sub) --help printed:\n\(r.stdoutText)\(r.stderrText)")
    }

    /// `moat --help` names every command a person can use, the OCI runtime's too.
    @Test func listsEveryCommand() async throws {
        let moat = try Integration.moatBinary.get()
        let r = await runProcess([moat, "--help"], env: Integration.hostEnvironment(), timeout: 30)
        #expect(r.exitStatus == 0)
        for sub in ["run", "ps", "logs", "exec", "stop", "kill", "rm", "inspect", "top", "stats", "pull", "images", "rmi", "image",
                    "apiserver", "controlplane", "cri", "node", "debug"] {
            #expect(r.stdoutText.contains("\n  \(sub) "), "moat --help lacks \(sub):\n\(r.stdoutText)")
        }
        for oci in ["create", "start", "state", "delete", "run --bundle", "exec --process", "spec", "features", "events", "update"] {
            #expect(r.stdoutText.contains(oci), "moat --help lacks the OCI runtime's \(oci)")
        }
    }
}
