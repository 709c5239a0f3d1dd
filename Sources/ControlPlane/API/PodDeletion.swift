// Graceful pod deletion. Deleting a pod that runs on a live node agent
// does not remove the object: it gets metadata.deletionTimestamp (now +
// the grace period) and deletionGracePeriodSeconds (the request's
// gracePeriodSeconds, else spec.terminationGracePeriodSeconds, else 30),
// and shows as Terminating. The agent then runs the preStop hooks, stops
// the containers with that much time before SIGKILL, removes the sandbox and
// deletes the pod with gracePeriodSeconds 0, which removes it at once.
//
// Only nodes whose agent says it does this (the Node annotation
// `moat.dev/graceful-deletion`) and that are Ready get it: a pod on a node
// with no working agent is removed at once, so it cannot stay Terminating
// forever. Unscheduled and finished pods are removed at once too.

import Foundation

extension NodeProxy {
    /// The Node annotation by which an agent says it finishes graceful pod deletions.
    public static let gracefulDeletionAnnotation = "moat.dev/graceful-deletion"
}

extension APIRegistry {
    /// Marks the pod for graceful deletion and returns it, or nil when it is to be removed now.
    func gracefulPodDelete(namespace: String, name: String, options: DeleteOptions) async throws -> JSON? {
        if options.gracePeriodSeconds == 0 { return nil }
        for _ in 0..<16 {
            let (so, pod) = try await getStored(.pods, namespace, name)
            if let uid = options.preconditionUID, uid != pod.uid { return nil }  // the normal path reports the conflict
            // (Checked again for a pod already Terminating: if its node died meanwhile, it goes now.)
            guard let nodeName = pod["spec"]["nodeName"].string, !nodeName.isEmpty,
                  pod.phase != "Succeeded", pod.phase != "Failed", pod.finalizers.isEmpty,
                  let node = try await store.get(storeKey(.nodes, "", nodeName)).map(decode),
                  node["metadata"]["annotations"][NodeProxy.gracefulDeletionAnnotation].string == "true",
                  node.condition("Ready")?["status"].string == "True" else { return nil }
            if pod.deletionTimestamp != nil { return pod }
            let grace = max(1, options.gracePeriodSeconds ?? pod["spec"]["terminationGracePeriodSeconds"].int ?? 30)
            var new = pod
            new[path: "metadata", "deletionTimestamp"] = .string(Timestamp.string(Date().addingTimeInterval(Double(grace))))
            new[path: "metadata", "deletionGracePeriodSeconds"] = .int(grace)
            do {
                return try decode(try await store.update(storeKey(.pods, namespace, name), value: encode(new), expectedRevision: so.modRevision))
            } catch StoreError.conflict(_, _, _) {
                continue
            } catch {
                throw mapStoreError(error, .pods, name)
            }
        }
        throw APIError.conflict(.pods, name)
    }
}
