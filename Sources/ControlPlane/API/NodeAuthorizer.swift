// NodeAuthorizer: what a node agent's identity (role `.node`, user system:node:NAME) may do.
// A node reads and writes its own Node and Lease, the pods bound to it (and their status),
// the ConfigMaps and Secrets those pods use, events, and reads Services and Endpoints;
// nothing else. Decisions that depend on stored objects (a pod's spec.nodeName) read them
// through the registry; a create is checked again once its body is known (`checkCreate`).

import Foundation

enum NodeAuthorizer {
    static let leaseNamespace = "kube-node-lease"

    static func deny(_ user: UserInfo, _ verb: String, _ rt: ResourceType, _ sub: String?, _ name: String?) -> APIError {
        let res = sub.map { "\(rt.plural)/\($0)" } ?? rt.plural
        return APIError.forbidden("\(res)\(name.map { " \"\($0)\"" } ?? "") is forbidden: User \"\(user.name)\" cannot \(verb) it: a node may only use its own Node, its Lease and the pods bound to it")
    }

    /// Checked before the request body is read.
    static func check(_ user: UserInfo, verb: String, rt: ResourceType, sub: String?, namespace: String, name: String?,
                      options: ListOptions, registry: APIRegistry) async throws {
        guard let node = user.nodeName else { throw deny(user, verb, rt, sub, name) }
        let selects = { (field: String) in options.fieldSelector.terms.contains { $0.field == field && $0.value == node && !$0.negated } }
        let ok: Bool
        switch rt.plural {
        case ResourceType.nodes.plural:
            switch verb {
            case "create": ok = true   // checkCreate sees the name
            case "get", "update", "patch": ok = name == node && (sub == nil || sub == "status")
            case "list", "watch": ok = selects("metadata.name")
            default: ok = false
            }
        case ResourceType.leases.plural:
            ok = namespace == leaseNamespace && (verb == "create" || (["get", "update", "patch"].contains(verb) && name == node))
        case ResourceType.pods.plural:
            switch verb {
            case "list", "watch": ok = selects("spec.nodeName")
            case "get", "update", "patch", "delete":
                guard let name, sub == nil || sub == "status" else { ok = false; break }
                let pod = try await registry.get(.pods, namespace: namespace, name: name)
                ok = pod["spec"]["nodeName"].string == node
            default: ok = false
            }
        case ResourceType.events.plural:
            ok = ["create", "update", "patch"].contains(verb)
        case ResourceType.services.plural, ResourceType.endpoints.plural:
            ok = ["get", "list", "watch"].contains(verb)
        case ResourceType.configmaps.plural, ResourceType.secrets.plural:
            guard verb == "get", let name else { ok = false; break }
            ok = try await usedByPod(on: node, kind: rt.plural, name: name, namespace: namespace, registry: registry)
        default:
            ok = false
        }
        if !ok { throw deny(user, verb, rt, sub, name) }
    }

    /// A node creates only its own Node and Lease.
    static func checkCreate(_ user: UserInfo, rt: ResourceType, body: JSON) throws {
        guard rt.plural == ResourceType.nodes.plural || rt.plural == ResourceType.leases.plural else { return }
        let name = body["metadata"]["name"].string
        if name != user.nodeName { throw deny(user, "create", rt, nil, name) }
    }

    /// Whether a pod bound to `node` in `namespace` names the ConfigMap or Secret (volumes,
    /// projected sources, env and envFrom).
    static func usedByPod(on node: String, kind: String, name: String, namespace: String, registry: APIRegistry) async throws -> Bool {
        var opts = ListOptions()
        opts.fieldSelector.terms.append(.init(field: "spec.nodeName", value: node, negated: false))
        let pods = try await registry.list(.pods, namespace: namespace, options: opts)["items"].array ?? []
        let secret = kind == ResourceType.secrets.plural
        for pod in pods {
            let spec = pod["spec"]
            var refs: [String?] = []
            for v in spec["volumes"].array ?? [] {
                refs.append(secret ? v["secret"]["secretName"].string : v["configMap"]["name"].string)
                for src in v["projected"]["sources"].array ?? [] { refs.append(src[secret ? "secret" : "configMap"]["name"].string) }
            }
            for c in (spec["containers"].array ?? []) + (spec["initContainers"].array ?? []) {
                for e in c["env"].array ?? [] { refs.append(e["valueFrom"][secret ? "secretKeyRef" : "configMapKeyRef"]["name"].string) }
                for e in c["envFrom"].array ?? [] { refs.append(e[secret ? "secretRef" : "configMapRef"]["name"].string) }
            }
            if refs.contains(name) { return true }
        }
        return false
    }
}
