import Foundation

/// A deduplicating work queue of keys.
///
/// - A key added while queued is not queued twice (`dirty`).
/// - A key added while a worker holds it (`processing`) is re-queued when that worker
///   calls `done`, so one key is never processed by two workers at once.
/// - `addRateLimited` re-adds after an exponential backoff; `forget` resets it.
public actor WorkQueue {
    private var queue: [String] = []
    private var dirty: Set<String> = []
    private var processing: Set<String> = []
    private var waiters: [CheckedContinuation<String?, Never>] = []
    private var failures: [String: Int] = [:]
    private var isShutDown = false
    let baseDelay: Double
    let maxDelay: Double

    public init(baseDelay: Double = 0.05, maxDelay: Double = 5) {
        self.baseDelay = baseDelay; self.maxDelay = maxDelay
    }

    public func add(_ key: String) {
        guard !isShutDown, !dirty.contains(key) else { return }
        dirty.insert(key)
        if processing.contains(key) { return }
        if !waiters.isEmpty { waiters.removeFirst().resume(returning: take(key)) } else { queue.append(key) }
    }

    private func take(_ key: String) -> String {
        dirty.remove(key); processing.insert(key)
        return key
    }

    /// The next key, or nil once shut down. The caller must call `done(key)` afterwards.
    public func get() async -> String? {
        if isShutDown { return nil }
        if !queue.isEmpty { return take(queue.removeFirst()) }
        return await withCheckedContinuation { waiters.append($0) }
    }

    public func done(_ key: String) {
        processing.remove(key)
        if dirty.contains(key) {
            if !waiters.isEmpty { waiters.removeFirst().resume(returning: take(key)) } else { queue.append(key) }
        }
    }

    public func addAfter(_ key: String, delay: Double) {
        guard !isShutDown else { return }
        Task {
            try? await Task.sleep(nanoseconds: UInt64(max(0, delay) * 1e9))
            self.add(key)
        }
    }

    public func addRateLimited(_ key: String) {
        let n = failures[key, default: 0]
        failures[key] = n + 1
        addAfter(key, delay: min(maxDelay, baseDelay * pow(2, Double(n))))
    }

    public func forget(_ key: String) { failures[key] = nil }

    public func shutDown() {
        isShutDown = true
        for w in waiters { w.resume(returning: nil) }
        waiters.removeAll()
    }

    public var count: Int { queue.count }
}

/// Runs a reconcile function over a work queue with a few workers, a periodic resync
/// and retry with backoff. Cancelling the task that calls `run` stops it.
public struct ControllerLoop: Sendable {
    public let name: String
    public let queue: WorkQueue
    public let workers: Int
    public let resyncInterval: Double
    /// Keys to enqueue on every resync.
    public let resyncKeys: @Sendable () async -> [String]
    public let reconcile: @Sendable (String) async throws -> Void

    public init(name: String, queue: WorkQueue = WorkQueue(), workers: Int = 2, resyncInterval: Double = 30,
                resyncKeys: @escaping @Sendable () async -> [String], reconcile: @escaping @Sendable (String) async throws -> Void) {
        self.name = name; self.queue = queue; self.workers = workers; self.resyncInterval = resyncInterval
        self.resyncKeys = resyncKeys; self.reconcile = reconcile
    }

    public func run() async {
        let queue = self.queue
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<max(1, workers) {
                    group.addTask {
                        while let key = await queue.get() {
                            do {
                                try await reconcile(key)
                                await queue.forget(key)
                            } catch {
                                await queue.addRateLimited(key)
                            }
                            await queue.done(key)
                        }
                    }
                }
                group.addTask {
                    while !Task.isCancelled {
                        for k in await resyncKeys() { await queue.add(k) }
                        try? await Task.sleep(nanoseconds: UInt64(resyncInterval * 1e9))
                    }
                }
            }
        } onCancel: {
            Task { await queue.shutDown() }
        }
    }
}
