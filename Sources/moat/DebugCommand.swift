// `moat debug`: argument parsing only; the report is Sandbox.SandboxDebug.

import ArgumentParser
import Glibc
import Sandbox
import Standalone

struct DebugCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug",
        abstract: "Show what each host process of a sandbox can reach: ids, namespaces, root, capabilities, seccomp, fds.")
    @Option(help: "The OCI runtime's state root (to find a container by id).") var ociRoot: String = "/run/moat"
    @Option(help: "Moat's state root (to find a standalone sandbox by name or id).") var root: String = "/var/lib/moat"
    @Flag(help: "Every Moat process on this host.") var all = false
    @Argument(help: "A pid (a launcher, Sentry or Gofer; its descendants are included), an OCI container id, or a standalone sandbox's name or id.")
    var sandbox: [String] = []

    func run() throws {
        var pids: [Int32] = []
        if all { pids = SandboxDebug.allMoatProcesses() }
        for name in sandbox {
            switch SandboxDebug.resolve(name, ociRoot: ociRoot) {
            case .success(let p): pids += p.filter { !pids.contains($0) }
            case .failure(let e):
                // A standalone sandbox (moat run -d): its supervisor and everything it started.
                guard let store = try? StandaloneStore(root: root), let r = try? store.find(name), store.isRunning(r) else {
                    throw ValidationError(e.message + " (nor a running standalone sandbox: moat ps)")
                }
                let top = store.supervisorAlive(r) ? r.supervisorPid : r.sentryPid
                if case .success(let p) = SandboxDebug.resolve(String(top), ociRoot: ociRoot) { pids += p.filter { !pids.contains($0) } }
            }
        }
        if pids.isEmpty && !all { throw ValidationError("name a sandbox (a pid or a container id), or give --all") }
        print(SandboxDebug.report(pids), terminator: "")
    }
}
