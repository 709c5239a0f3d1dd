// What an API client sends the control plane: objects to create or update
// (decoded, defaulted, validated for every resource type, as admission
// does), merge, strategic-merge and JSON patches, label and field
// selectors, and quantities. The first byte picks the kind of input.

import Foundation
@testable import ControlPlane

enum APIObjectFuzz {
    static let target = FuzzTarget(
        name: "api-object",
        summary: "API object decoding, defaulting, validation; patches; selectors; quantities: [kind][bytes]",
        setUp: {},
        run: run)

    static func run(_ input: [UInt8]) {
        guard let kind = input.first else { return }
        let body = Array(input.dropFirst())
        switch kind % 4 {
        case 0:
            guard let obj = try? JSON.parse(Data(body)) else { return }
            for rt in ResourceType.all {
                var o = obj
                Defaults.apply(rt, &o)
                _ = Validation.validate(rt, o)
                _ = Validation.validate(rt, o, old: obj)
                _ = o.serialized()
                _ = o.pruned(dropEmpty: true)
            }
        case 1, 2:
            // Two documents separated by a NUL byte: the object and the patch.
            let parts = body.split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let doc = try? JSON.parse(Data(parts[0])), let patch = try? JSON.parse(Data(parts[1])) else { return }
            if kind % 4 == 1 {
                _ = doc.mergePatched(with: patch)
                _ = doc.strategicMergePatched(with: patch)
            } else {
                _ = try? JSONPatch.apply(patch, to: doc)
            }
        default:
            let s = String(decoding: body, as: UTF8.self)
            if let sel = try? LabelSelector.parse(s) { _ = sel }
            if let sel = try? FieldSelector.parse(s) { _ = sel }
            _ = Quantity.parse(s)
        }
    }
}
