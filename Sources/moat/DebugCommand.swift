// `moat debug`: argument parsing only; the report is Sandbox.SandboxDebug.

import ArgumentParser
import Glibc
import Sandbox

struct DebugCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug",
        abstract: "Show what each host process of a sandbox can reach: ids, namespaces, root, capabilities, seccomp, fds.")
    @Option(help: "The OCI runtime's state root (to find a container by id).") var ociRoot: String = "/run/moat"
    @Flag(help: "Every Moat process on this host.") var all = false
    @Argument(help: "A pid (a launcher, Sentry or Gofer; its descendants are included) or an OCI container id.")
    var sandbox: [String] = []

    func run() throws {
        var pids: [Int32] = []
        if all { pids = SandboxDebug.allMoatProcesses() }
        for name in sandbox {
            switch SandboxDebug.resolve(name, ociRoot: ociRoot) {
            case .success(let p): pids += p.filter { !pids.contains($0) }
            case .failure(let e): throw ValidationError(e.message)
            }
        }
        if pids.isEmpty && !all { throw ValidationError("name a sandbox (a pid or a container id), or give --all") }
        print(SandboxDebug.report(pids), terminator: "")
    }
}
