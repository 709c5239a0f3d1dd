import Foundation

/// Runs Jobs to completion: keeps up to `parallelism` active pods until `completions` pods
/// have succeeded, and fails the Job once more than `backoffLimit` pods have failed.
/// Finished pods are kept (they carry the results) and counted in status.
public final class JobController: Sendable {
    let client: any APIClient
    let jobs: Informer
    public let queue = WorkQueue()
    let resync: Double

    public init(client: any APIClient, informers: InformerFactory, resync: Double = 30) {
        self.client = client
        self.jobs = informers.informer(.jobs)
        self.resync = resync
        let queue = self.queue
        jobs.addHandler { _, j, _ in await queue.add(j.key) }
        informers.informer(.pods).addHandler { _, p, _ in
            if let ref = p.controllerRef, ref.kind == "Job" { await queue.add("\(p.namespace)/\(ref.name)") }
        }
    }

    public var loop: ControllerLoop {
        ControllerLoop(name: "job", queue: queue, workers: 2, resyncInterval: resync,
                       resyncKeys: { [jobs] in jobs.keys }, reconcile: { [self] in try await self.reconcile($0) })
    }

    static func finished(_ job: JSON) -> Bool {
        ["Complete", "Failed"].contains { job.condition($0)?["status"].string == "True" }
    }

    public func reconcile(_ key: String) async throws {
        let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2, let job = try await client.getIfExists(.jobs, namespace: parts[0], name: parts[1]),
              job.deletionTimestamp == nil else { return }
        let pods = try await client.list(.pods, namespace: job.namespace).filter { $0.controllerRef?.uid == job.uid }
        var active = pods.filter(Pods.isActive)
        let succeeded = pods.filter { $0.phase == "Succeeded" }.count
        let failed = pods.filter { $0.phase == "Failed" }.count
        var status = job["status"]
        if status["startTime"].isNull { status["startTime"] = .string(Timestamp.now()) }
        var tmp = JSON.object(["status": status])

        if !Self.finished(job) {
            let parallelism = job["spec"]["parallelism"].int ?? 1
            let completions = job["spec"]["completions"].int
            let backoffLimit = job["spec"]["backoffLimit"].int ?? 6
            let done = completions.map { succeeded >= $0 } ?? (succeeded > 0 && active.isEmpty)
            if failed > backoffLimit {
                for p in active { try? await client.delete(.pods, namespace: p.namespace, name: p.name, options: .init(preconditionUID: p.uid)) }
                active = []
                tmp.setCondition(type: "Failed", status: "True", reason: "BackoffLimitExceeded", message: "Job has reached the specified backoff limit")
            } else if done {
                tmp.setCondition(type: "Complete", status: "True")
                tmp[path: "status", "completionTime"] = .string(Timestamp.now())
            } else {
                let remaining = completions.map { $0 - succeeded } ?? parallelism
                let want = max(0, min(parallelism, remaining))
                if active.count < want {
                    for _ in 0..<(want - active.count) {
                        let pod = try await client.create(.pods, namespace: job.namespace,
                                                          Pods.fromTemplate(job.template, owner: job, generateName: job.name + "-"))
                        active.append(pod)
                    }
                } else if active.count > want {
                    for p in active.sorted(by: Pods.deletionOrder).prefix(active.count - want) {
                        try? await client.delete(.pods, namespace: p.namespace, name: p.name, options: .init(preconditionUID: p.uid))
                    }
                    active = Array(active.sorted(by: Pods.deletionOrder).dropFirst(active.count - want))
                }
            }
        }
        tmp[path: "status", "active"] = active.isEmpty ? .null : .int(active.count)
        tmp[path: "status", "succeeded"] = succeeded == 0 ? .null : .int(succeeded)
        tmp[path: "status", "failed"] = failed == 0 ? .null : .int(failed)
        if tmp["status"] != job["status"] {
            var j = job
            j["status"] = tmp["status"]
            _ = try await client.update(.jobs, j, subresource: "status")  // 409 on a race → retried
        }
    }
}
