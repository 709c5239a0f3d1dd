import Foundation

/// Per-kind validation. Returns every field error found; the API turns a non-empty
/// result into a 422 `Invalid` Status whose causes name the fields.
enum Validation {
    static func validate(_ rt: ResourceType, _ obj: JSON, old: JSON? = nil) -> [FieldError] {
        var errs = metadata(rt, obj)
        switch rt.kind {
        case "Pod":
            errs += podSpec(obj["spec"], path: "spec")
            if let old, let oldNode = old.nodeName, obj.nodeName != oldNode {
                errs.append(.forbidden("spec.nodeName", "pod updates may not change fields other than image, activeDeadlineSeconds, tolerations"))
            }
        case "Deployment", "ReplicaSet", "DaemonSet":
            errs += workload(obj)
            if let old, old["spec"]["selector"] != obj["spec"]["selector"] {
                errs.append(.invalid("spec.selector", LabelSelector(json: obj.selector).queryString, "field is immutable"))
            }
        case "Job":
            errs += podTemplate(obj, selectorRequired: false)
            for f in ["parallelism", "completions", "backoffLimit", "activeDeadlineSeconds"] {
                if let v = obj["spec"][f].int, v < 0 { errs.append(.invalid("spec.\(f)", String(v), "must be greater than or equal to 0")) }
            }
            let rp = obj[path: "spec", "template", "spec", "restartPolicy"].string ?? ""
            if !["OnFailure", "Never"].contains(rp) {
                errs.append(.notSupported("spec.template.spec.restartPolicy", rp, ["OnFailure", "Never"]))
            }
        case "Service":
            for (i, p) in (obj["spec"]["ports"].array ?? []).enumerated() {
                guard let port = p["port"].int else { errs.append(.required("spec.ports[\(i)].port")); continue }
                if !(1...65535).contains(port) { errs.append(.invalid("spec.ports[\(i)].port", String(port), "must be between 1 and 65535, inclusive")) }
                if let proto = p["protocol"].string, !["TCP", "UDP", "SCTP"].contains(proto) {
                    errs.append(.notSupported("spec.ports[\(i)].protocol", proto, ["SCTP", "TCP", "UDP"]))
                }
            }
            if let old, let ip = old["spec"]["clusterIP"].string, !ip.isEmpty, obj["spec"]["clusterIP"].string != ip {
                errs.append(.invalid("spec.clusterIP", obj["spec"]["clusterIP"].string ?? "", "field is immutable"))
            }
            let type = obj["spec"]["type"].string ?? "ClusterIP"
            if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(type) {
                errs.append(.notSupported("spec.type", type, ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]))
            }
        case "ConfigMap", "Secret":
            if rt.kind == "Secret" {
                for (k, v) in (obj["data"].object ?? [:]).sorted(by: { $0.key < $1.key }) where Data(base64Encoded: v.string ?? "") == nil {
                    errs.append(.invalid("data[\(k)]", "<secret contents redacted>", "must be base64-encoded"))
                }
            }
            for field in ["data", "stringData", "binaryData"] {
                for k in (obj[field].object ?? [:]).keys.sorted() where !isConfigKey(k) {
                    errs.append(.invalid("\(field)[\(k)]", k, "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"))
                }
            }
        default:
            break
        }
        return errs
    }

    static func metadata(_ rt: ResourceType, _ obj: JSON) -> [FieldError] {
        var errs: [FieldError] = []
        let name = obj.name
        if name.isEmpty {
            errs.append(.required("metadata.name"))
        } else if rt.kind == "Namespace" ? !isDNSLabel(name) : !isDNSSubdomain(name) {
            let what = rt.kind == "Namespace" ? "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
                : "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            errs.append(.invalid("metadata.name", name, what))
        }
        if rt.namespaced, obj.namespace.isEmpty { errs.append(.required("metadata.namespace")) }
        for (k, v) in (obj["metadata"]["labels"].object ?? [:]).sorted(by: { $0.key < $1.key }) {
            if !isQualifiedName(k) { errs.append(.invalid("metadata.labels", k, "name part must consist of alphanumeric characters, '-', '_' or '.'")) }
            guard let s = v.string else { errs.append(.invalid("metadata.labels", k, "label values must be strings")); continue }
            if !isLabelValue(s) { errs.append(.invalid("metadata.labels", s, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")) }
        }
        for (k, v) in obj["metadata"]["annotations"].object ?? [:] where v.string == nil {
            errs.append(.invalid("metadata.annotations", k, "annotation values must be strings"))
        }
        return errs
    }

    static func workload(_ obj: JSON) -> [FieldError] {
        var errs = podTemplate(obj, selectorRequired: true)
        if let r = obj["spec"]["replicas"].int, r < 0 {
            errs.append(.invalid("spec.replicas", String(r), "must be greater than or equal to 0"))
        } else if !obj["spec"]["replicas"].isNull, obj["spec"]["replicas"].int == nil {
            errs.append(.invalid("spec.replicas", obj["spec"]["replicas"].text, "must be an integer"))
        }
        if obj.kind == "Deployment", obj[path: "spec", "strategy", "type"].string == "RollingUpdate" {
            let ru = obj[path: "spec", "strategy", "rollingUpdate"]
            let surge = ru["maxSurge"], unavail = ru["maxUnavailable"]
            for (f, v) in [("maxSurge", surge), ("maxUnavailable", unavail)] where IntOrPercent(v) == nil {
                errs.append(.invalid("spec.strategy.rollingUpdate.\(f)", v.text, "must be an integer or percentage (e.g '5%')"))
            }
            if let s = IntOrPercent(surge), let u = IntOrPercent(unavail), s.isZero, u.isZero {
                errs.append(.invalid("spec.strategy.rollingUpdate.maxUnavailable", unavail.text, "may not be 0 when `maxSurge` is 0"))
            }
        } else if obj.kind == "Deployment", let t = obj[path: "spec", "strategy", "type"].string, t != "Recreate" {
            errs.append(.notSupported("spec.strategy.type", t, ["Recreate", "RollingUpdate"]))
        }
        return errs
    }

    static func podTemplate(_ obj: JSON, selectorRequired: Bool) -> [FieldError] {
        var errs: [FieldError] = []
        let sel = obj["spec"]["selector"]
        if sel.isNull {
            if selectorRequired { errs.append(.required("spec.selector")) }
        } else if case .object = sel {
            let s = LabelSelector(json: sel)
            if s.matchesNothing { errs.append(.invalid("spec.selector", sel.text, "invalid label selector")) }
            else if s.isEmpty && selectorRequired { errs.append(.invalid("spec.selector", "{}", "empty selector is invalid for deployment")) }
            else if !s.matches(obj.template.labels) {
                errs.append(.invalid("spec.template.metadata.labels", obj.template.labels.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: ","), "`selector` does not match template `labels`"))
            }
        } else {
            errs.append(.invalid("spec.selector", sel.text, "must be a label selector object"))
        }
        if obj["spec"]["template"].isNull {
            errs.append(.required("spec.template"))
        } else {
            errs += podSpec(obj[path: "spec", "template", "spec"], path: "spec.template.spec")
        }
        return errs
    }

    static func podSpec(_ spec: JSON, path: String) -> [FieldError] {
        var errs: [FieldError] = []
        guard let containers = spec["containers"].array, !containers.isEmpty else {
            return [.required("\(path).containers")]
        }
        var names = Set<String>()
        for (i, c) in containers.enumerated() {
            let p = "\(path).containers[\(i)]"
            let n = c["name"].string ?? ""
            if n.isEmpty { errs.append(.required("\(p).name")) }
            else if !isDNSLabel(n) { errs.append(.invalid("\(p).name", n, "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'")) }
            else if !names.insert(n).inserted { errs.append(.duplicate("\(p).name", n)) }
            if (c["image"].string ?? "").isEmpty { errs.append(.required("\(p).image")) }
            for kind in ["requests", "limits"] {
                for (r, q) in (c["resources"][kind].object ?? [:]).sorted(by: { $0.key < $1.key }) where Quantity.parse(q) == nil {
                    errs.append(.invalid("\(p).resources.\(kind)[\(r)]", q.text, "must be a valid quantity"))
                }
            }
            for (j, port) in (c["ports"].array ?? []).enumerated() {
                if let v = port["containerPort"].int, !(1...65535).contains(v) {
                    errs.append(.invalid("\(p).ports[\(j)].containerPort", String(v), "must be between 1 and 65535, inclusive"))
                } else if port["containerPort"].isNull { errs.append(.required("\(p).ports[\(j)].containerPort")) }
            }
        }
        if let rp = spec["restartPolicy"].string, !["Always", "OnFailure", "Never"].contains(rp) {
            errs.append(.notSupported("\(path).restartPolicy", rp, ["Always", "OnFailure", "Never"]))
        }
        errs += volumes(spec, path: path)
        return errs
    }

    static let volumeSources = ["emptyDir", "hostPath", "configMap", "secret", "downwardAPI", "projected"]

    /// Volumes and volume mounts: unique names, one supported source each, relative paths without "..",
    /// mounts that name a volume at an absolute path.
    static func volumes(_ spec: JSON, path: String) -> [FieldError] {
        var errs: [FieldError] = []
        var names = Set<String>()
        func relative(_ p: String) -> Bool {
            !p.isEmpty && !p.hasPrefix("/") && !p.split(separator: "/", omittingEmptySubsequences: false).contains("..")
        }
        func items(_ src: JSON, _ p: String) {
            for (j, it) in (src["items"].array ?? []).enumerated() where !relative(it["path"].string ?? "") {
                errs.append(.invalid("\(p).items[\(j)].path", it["path"].string ?? "", "must be a relative path without '..'"))
            }
        }
        for (i, v) in (spec["volumes"].array ?? []).enumerated() {
            let p = "\(path).volumes[\(i)]"
            let n = v["name"].string ?? ""
            if !isDNSLabel(n) { errs.append(.invalid("\(p).name", n, "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'")) }
            else if !names.insert(n).inserted { errs.append(.duplicate("\(p).name", n)) }
            let given = volumeSources.filter { !v[$0].isNull }
            if given.count != 1 {
                errs.append(given.isEmpty ? .required("\(p)") : .forbidden("\(p)", "may not specify more than 1 volume type"))
                if given.isEmpty, let other = v.object?.keys.first(where: { $0 != "name" }) {
                    errs.append(.notSupported("\(p).\(other)", other, volumeSources))
                }
            }
            if let h = v["hostPath"]["path"].string, !h.hasPrefix("/") || h.split(separator: "/").contains("..") {
                errs.append(.invalid("\(p).hostPath.path", h, "must be an absolute path without '..'"))
            }
            for k in ["configMap", "secret", "downwardAPI"] where !v[k].isNull { items(v[k], "\(p).\(k)") }
            for (j, src) in (v["projected"]["sources"].array ?? []).enumerated() {
                for k in ["configMap", "secret", "downwardAPI"] where !src[k].isNull { items(src[k], "\(p).projected.sources[\(j)].\(k)") }
            }
        }
        for (i, c) in (spec["containers"].array ?? []).enumerated() {
            for (j, m) in (c["volumeMounts"].array ?? []).enumerated() {
                let p = "\(path).containers[\(i)].volumeMounts[\(j)]"
                let n = m["name"].string ?? ""
                if !names.contains(n) { errs.append(.notFound("\(p).name", n)) }
                if !(m["mountPath"].string ?? "").hasPrefix("/") { errs.append(.invalid("\(p).mountPath", m["mountPath"].string ?? "", "must be an absolute path")) }
                if let sub = m["subPath"].string, !sub.isEmpty, !relative(sub) {
                    errs.append(.invalid("\(p).subPath", sub, "must be a relative path without '..'"))
                }
            }
        }
        return errs
    }

    // MARK: Name rules

    static func isDNSLabel(_ s: String) -> Bool {
        guard !s.isEmpty, s.count <= 63, let f = s.first, let l = s.last, isAlnumLower(f), isAlnumLower(l) else { return false }
        return s.allSatisfy { isAlnumLower($0) || $0 == "-" }
    }

    static func isDNSSubdomain(_ s: String) -> Bool {
        guard !s.isEmpty, s.count <= 253 else { return false }
        return s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isDNSLabel(String($0)) }
    }

    static func isAlnumLower(_ c: Character) -> Bool { c.isASCII && (c.isNumber || c.isLowercase) }
    static func isAlnum(_ c: Character) -> Bool { c.isASCII && (c.isNumber || c.isLetter) }

    static func isLabelValue(_ s: String) -> Bool {
        if s.isEmpty { return true }
        guard s.count <= 63, let f = s.first, let l = s.last, isAlnum(f), isAlnum(l) else { return false }
        return s.allSatisfy { isAlnum($0) || "-_.".contains($0) }
    }

    static func isQualifiedName(_ s: String) -> Bool {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        if parts.count == 2 { return isDNSSubdomain(String(parts[0])) && !parts[1].isEmpty && isLabelValue(String(parts[1])) }
        return parts.count == 1 && !s.isEmpty && isLabelValue(s)
    }

    static func isConfigKey(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 253 && s.allSatisfy { isAlnum($0) || "-_.".contains($0) }
    }
}

/// An int-or-percent field such as maxSurge ("25%" or 1).
struct IntOrPercent: Equatable {
    var value: Int
    var percent: Bool
    init?(_ j: JSON) {
        if let i = j.int { value = i; percent = false; return }
        guard let s = j.string else { return nil }
        if s.hasSuffix("%"), let v = Int(s.dropLast()) { value = v; percent = true; return }
        if let v = Int(s) { value = v; percent = false; return }
        return nil
    }
    var isZero: Bool { value == 0 }
    /// Scaled against `total`, rounding up or down as Kubernetes does for surge/unavailable.
    func scaled(_ total: Int, roundUp: Bool) -> Int {
        guard percent else { return value }
        let x = Double(value * total) / 100
        return roundUp ? Int(x.rounded(.up)) : Int(x.rounded(.down))
    }
}
