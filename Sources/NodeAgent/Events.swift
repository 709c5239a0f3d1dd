// Events the node agent records about its pods, as kubelet does (source
// component "kubelet"): Pulling/Pulled, Created, Started, Killing,
// Unhealthy, BackOff, Failed. `kubectl describe pod` and `kubectl get
// events` show them. A repeated event (same pod, container, reason and
// message) bumps the count of the one already written instead of adding a
// new object, at most every 10 s.

import ControlPlane
import Foundation

extension NodeAgent {
    func record(_ pod: JSON, container: String?, _ type: String, _ reason: String, _ message: String) async {
        let key = [pod.uid, container ?? "", reason, message].joined(separator: "\u{0}")
        let now = Date()
        if let prev = recorded[key] {
            if now.timeIntervalSince(prev.last) < 10 { return }
            recorded[key] = (prev.name, prev.count + 1, now)
            _ = try? await api.patch(.events, namespace: pod.namespace, name: prev.name,
                                     ["count": .int(prev.count + 1), "lastTimestamp": .string(Timestamp.string(now))])
            return
        }
        var ev: JSON = [
            "apiVersion": "v1", "kind": "Event",
            "metadata": ["name": .string(pod.name + "." + String(UInt64(now.timeIntervalSince1970 * 1e9), radix: 16)), "namespace": .string(pod.namespace)],
            "involvedObject": ["kind": "Pod", "apiVersion": "v1", "namespace": .string(pod.namespace), "name": .string(pod.name), "uid": .string(pod.uid)],
            "reason": .string(reason), "message": .string(message), "type": .string(type),
            "source": ["component": "kubelet", "host": .string(o.nodeName)],
            "reportingComponent": "kubelet", "reportingInstance": .string(o.nodeName),
            "firstTimestamp": .string(Timestamp.string(now)), "lastTimestamp": .string(Timestamp.string(now)), "count": 1,
        ]
        if let container { ev[path: "involvedObject", "fieldPath"] = .string("spec.containers{\(container)}") }
        if let made = try? await api.create(.events, namespace: pod.namespace, ev) {
            recorded[key] = (made.name, 1, now)
        }
    }
}
