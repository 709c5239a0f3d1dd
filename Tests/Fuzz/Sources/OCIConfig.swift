// What an engine hands the OCI runtime: config.json (create), process.json
// (exec), a resources document (update). The first byte picks the document;
// a decoded config must also survive the launcher-to-Sentry plan encoding
// unchanged (encode, decode, encode gives the same JSON).

@testable import OCI
import Sentry

enum OCIConfigFuzz {
    static let target = FuzzTarget(
        name: "oci-config",
        summary: "config.json / process.json / resources decoding and validation: [kind][JSON]",
        setUp: {},
        run: run)

    static func run(_ input: [UInt8]) {
        guard let kind = input.first else { return }
        let text = String(decoding: input.dropFirst(), as: UTF8.self)
        switch kind % 4 {
        case 0:
            guard let spec = try? Spec.decode(text) else { return }
            var c = SentryConfig()
            SentryPlan.applyCredentials(spec, to: &c)
            if let p = spec.process {
                _ = SentryPlan.execCredentialFields(p)
                c.argv = p.args
                c.env = p.env
                c.cwd = p.cwd
            }
            c.hostname = spec.hostname ?? ""
            roundTrip(c)
        case 1:
            guard let j = try? JSON.parse(text) else { return }
            _ = try? Spec.Process(Node(j, document: "process.json"))
        case 2:
            guard let j = try? JSON.parse(text) else { return }
            _ = try? Spec.Resources(Node(j, document: "resources"))
        default:
            guard let j = try? JSON.parse(text), let c = try? SentryPlan.decode(j) else { return }
            roundTrip(c)
        }
    }

    static func roundTrip(_ c: SentryConfig) {
        let once = SentryPlan.encode(c)
        guard let back = try? SentryPlan.decode(once) else { fatalError("the Sentry cannot read a plan the launcher wrote: \(once)") }
        if SentryPlan.encode(back) != once { fatalError("the plan changed on its way to the Sentry: \(once)") }
    }
}
