// `moat run`'s common foreground form, read without ArgumentParser: the
// launcher's first milliseconds are on every sandbox's start-up path, and
// ArgumentParser's parse of Run costs ~2.6 ms of a release build's CPU
// (reflection, and a linear scan of the binary's protocol conformance
// records at each first `as?`; bench/results/2026-12-06-perf12-start.md).
// Only a plain subset is read here: `moat run [OPTION VALUE | FLAG]... --
// COMMAND [ARG...]` with the options below, each single-valued one at most
// once, values not starting with "-", no OPTION=VALUE forms. Anything else
// (an image, -d, --help, an unknown or repeated option, an invalid value)
// returns nil and goes through Run, which gives today's results, messages
// and usage. What is read becomes RunOptions exactly as Run and RunSetup
// make them (the same helpers for the user and the environment).

import Foundation
import Sandbox
import Standalone

enum FastRun {
    static let valued: [String: String] = [
        "--rootfs": "rootfs", "--network": "network", "--hostname": "hostname", "--log": "log",
        "-w": "cwd", "--workdir": "cwd", "--cwd": "cwd", "-u": "user", "--user": "user",
        "-e": "env", "--env": "env", "--overlay-medium": "overlay-medium",
    ]
    static let flags: [String: String] = [
        "--read-only": "read-only", "--no-overlay": "no-overlay", "--debug": "debug", "--strace": "strace",
    ]

    /// RunOptions for `argv` ("moat", "run", ...), or nil: Run decides.
    static func options(_ argv: [String]) -> RunOptions? {
        guard argv.count > 3, argv[1] == "run" else { return nil }
        var single: [String: String] = [:], env: [String] = [], set: Set<String> = []
        var i = 2
        while i < argv.count, argv[i] != "--" {
            let a = argv[i]
            if let key = flags[a] {
                guard set.insert(key).inserted else { return nil }
                i += 1
            } else if let key = valued[a] {
                guard i + 1 < argv.count else { return nil }
                let v = argv[i + 1]
                guard !v.hasPrefix("-") else { return nil }
                if key == "env" { env.append(v) } else {
                    guard single[key] == nil else { return nil }
                    single[key] = v
                }
                i += 2
            } else {
                return nil
            }
        }
        guard i < argv.count, argv.count > i + 1 else { return nil }
        let command = Array(argv[(i + 1)...])
        guard let network = NetworkMode(rawValue: single["network"] ?? RunDefaults.network) else { return nil }
        var rootDir = single["rootfs"] ?? Run.defaultRootfs()
        if !rootDir.hasPrefix("/") { rootDir = FileManager.default.currentDirectoryPath + "/" + rootDir }
        guard let numeric = try? ImageRun.numericUser(single["user"] ?? RunDefaults.user, rootfs: rootDir) else { return nil }
        let parts = numeric.split(separator: ":")
        guard let uid = UInt32(parts.first ?? ""), parts.count <= 2, let gid = UInt32(parts.count == 2 ? parts[1] : parts[0]) else {
            return nil
        }
        guard let merged = try? RunEnvironment.merge(image: [], envFiles: [], given: env, uid: uid, tty: false) else { return nil }
        var o = RunOptions(rootfs: rootDir, argv: command)
        o.env = merged; o.cwd = single["cwd"] ?? RunDefaults.cwd; o.uid = uid; o.gid = gid
        o.strace = set.contains("strace"); o.debug = set.contains("debug"); o.logPath = single["log"]
        o.readOnly = set.contains("read-only"); o.hostname = single["hostname"] ?? RunDefaults.hostname; o.overlay = !set.contains("no-overlay")
        guard let onDisk = RunDefaults.overlayOnDisk(single["overlay-medium"] ?? RunDefaults.overlayMedium) else { return nil }
        o.overlayOnDisk = onDisk
        o.network = network
        return o
    }
}
