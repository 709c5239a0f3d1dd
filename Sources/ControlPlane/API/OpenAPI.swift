import Foundation

/// A minimal OpenAPI v3 description (/openapi/v3 and one document per group/version).
///
/// It lists, for every served resource, its paths and operations, with the
/// `x-kubernetes-group-version-kind` extension on each operation and the query parameters
/// the server accepts. That is what kubectl reads to decide that the server validates
/// fields itself (a PATCH operation for the kind that takes `fieldValidation`); kubectl then
/// sends `?fieldValidation=...` instead of validating against a schema, so
/// `kubectl apply` works without `--validate=false`. No object schemas are published:
/// for built-in kinds kubectl falls back to its own types when computing patches.
/// The server accepts `fieldValidation`, `fieldManager` and `dryRun` but does not act on them.
enum OpenAPI {
    /// Changes whenever the served documents change, so clients' caches refresh.
    static let hash = stableHash(.array(ResourceType.all.map { .string($0.apiVersion + "/" + $0.plural + $0.subresources.joined()) }))

    static func gvPath(_ group: String, _ version: String) -> String { group.isEmpty ? "api/\(version)" : "apis/\(group)/\(version)" }

    /// The document for `segs` (path segments starting with "openapi"), or nil.
    static func respond(_ segs: [String]) -> JSON? {
        guard segs.first == "openapi", segs.count >= 2, segs[1] == "v3" else { return nil }
        let rest = Array(segs.dropFirst(2))
        if rest.isEmpty {
            var paths: [String: JSON] = [:]
            for gv in ResourceType.groupVersions {
                let p = gvPath(gv.group, gv.version)
                paths[p] = ["serverRelativeURL": .string("/openapi/v3/\(p)?hash=\(hash)")]
            }
            return ["paths": .object(paths)]
        }
        let group: String, version: String
        if rest.count == 2, rest[0] == "api" { group = ""; version = rest[1] }
        else if rest.count == 3, rest[0] == "apis" { group = rest[1]; version = rest[2] }
        else { return nil }
        let resources = ResourceType.all.filter { $0.group == group && $0.version == version }
        guard !resources.isEmpty else { return nil }
        var paths: [String: JSON] = [:]
        for rt in resources {
            let gvk: JSON = ["group": .string(rt.group), "version": .string(rt.version), "kind": .string(rt.kind)]
            let base = "/" + gvPath(group, version) + (rt.namespaced ? "/namespaces/{namespace}" : "")
            func op(_ id: String, _ params: [String]) -> JSON {
                ["operationId": .string(id + rt.kind), "x-kubernetes-group-version-kind": gvk,
                 "parameters": .array(params.map { ["name": .string($0), "in": "query", "schema": ["type": "string"]] }),
                 "responses": ["200": ["description": "OK"]]]
            }
            let write = ["dryRun", "fieldManager", "fieldValidation"]
            paths[base + "/\(rt.plural)"] = [
                "get": op("list", ["labelSelector", "fieldSelector", "resourceVersion", "watch", "timeoutSeconds"]),
                "post": op("create", write), "delete": op("deleteCollection", ["labelSelector", "fieldSelector"])]
            paths[base + "/\(rt.plural)/{name}"] = [
                "get": op("read", []), "put": op("replace", write), "patch": op("patch", write + ["force"]),
                "delete": op("delete", ["propagationPolicy", "dryRun"])]
        }
        return ["openapi": "3.0.0", "info": ["title": "Moat", "version": "v1.20.0-moat"],
                "paths": .object(paths), "components": ["schemas": [:]]]
    }
}
