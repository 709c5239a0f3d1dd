import Foundation
import XCTest
@testable import ControlPlane

/// Leader election on a Lease through the API.
final class LeaderElectionTests: XCTestCase {
    var cluster: TestCluster!

    override func setUp() async throws { cluster = try await TestCluster() }
    override func tearDown() async throws { await cluster?.stop(); cluster = nil }

    func elector(_ id: String, duration: Double = 1.5, client: (any APIClient)? = nil) -> LeaderElector {
        var c = LeaderElector.Config(identity: id)
        c.leaseDuration = duration
        c.renewDeadline = duration * 2 / 3
        c.retryPeriod = 0.1
        return LeaderElector(client: client ?? cluster.local, config: c)
    }

    func testOnlyOneCandidateHoldsTheLeaseUntilItExpires() async throws {
        let a = elector("a", duration: 10), b = elector("b", duration: 10)
        let t0 = Date()
        let aWon = try await a.tryAcquireOrRenew(now: t0)
        XCTAssertTrue(aWon)
        let bEarly = try await b.tryAcquireOrRenew(now: t0)
        XCTAssertFalse(bEarly, "b took a lease a holds")
        let aRenewed = try await a.tryAcquireOrRenew(now: t0.addingTimeInterval(1))
        XCTAssertTrue(aRenewed)
        // b judges expiry from when it saw the lease change (the renewal), not from a's clock.
        let bBefore = try await b.tryAcquireOrRenew(now: t0.addingTimeInterval(5))
        XCTAssertFalse(bBefore)
        let bAfter = try await b.tryAcquireOrRenew(now: t0.addingTimeInterval(16))
        XCTAssertTrue(bAfter, "b should take an expired lease")
        let lease = try await cluster.local.get(.leases, namespace: "kube-system", name: "moat-controller-manager")
        XCTAssertEqual(lease[path: "spec", "holderIdentity"], "b")
        XCTAssertEqual(lease[path: "spec", "leaseTransitions"], 1)
        let aBack = try await a.tryAcquireOrRenew(now: t0.addingTimeInterval(17))
        XCTAssertFalse(aBack, "a must not renew a lease it lost")
    }

    func testRacingCandidatesElectExactlyOne() async throws {
        let candidates = (0..<6).map { elector("c\($0)", duration: 30) }
        let wins = try await withThrowingTaskGroup(of: Bool.self) { group in
            for c in candidates { group.addTask { try await c.tryAcquireOrRenew() } }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        XCTAssertEqual(wins, 1)
    }

    func testStandbyTakesOverWhenTheLeaderStops() async throws {
        let http = try await cluster.serve()
        let a = elector("a", client: http), b = elector("b", client: http)
        let running = Counter()
        let ta = Task { await a.run { await running.work("a") } }
        try await eventually("a leads") { a.isLeader }
        try await eventually("a's work runs") { await running.active == ["a"] }
        let tb = Task { await b.run { await running.work("b") } }
        try await Task.sleep(nanoseconds: 600_000_000)
        XCTAssertFalse(b.isLeader, "two leaders at once")
        let sawA = await running.active
        XCTAssertEqual(sawA, ["a"])
        // The leader stops (and releases the lease): the standby takes over.
        ta.cancel()
        await ta.value
        try await eventually("b leads", timeout: 5) { b.isLeader }
        try await eventually("b's work runs, alone", timeout: 5) { await running.active == ["b"] }
        let maxConcurrent = await running.maxConcurrent
        XCTAssertEqual(maxConcurrent, 1)
        tb.cancel()
        await tb.value
    }

    func testLeaderThatCannotRenewStepsDown() async throws {
        let http = try await cluster.serve()
        let a = elector("a", duration: 1.5, client: http)
        let running = Counter()
        let ta = Task { await a.run { await running.work("a") } }
        try await eventually("a leads") { a.isLeader }
        // Someone else takes the lease behind a's back: a's renewals now conflict or find
        // another holder, and a stops its work within the renew deadline.
        var l = try await cluster.local.get(.leases, namespace: "kube-system", name: "moat-controller-manager")
        l[path: "spec", "holderIdentity"] = "intruder"
        l[path: "spec", "leaseDurationSeconds"] = 3600
        _ = try await cluster.local.update(.leases, l)
        await withDeadline2(5) { await ta.value }
        XCTAssertFalse(a.isLeader)
        let active = await running.active
        XCTAssertEqual(active, [], "work kept running after leadership was lost")
    }
}

/// Records which workers run at once.
actor Counter {
    var active: [String] = []
    var maxConcurrent = 0
    func work(_ id: String) async {
        active.append(id)
        maxConcurrent = max(maxConcurrent, active.count)
        while !Task.isCancelled { try? await Task.sleep(nanoseconds: 20_000_000) }
        active.removeAll { $0 == id }
    }
}

/// Awaits `op`, failing the test (not throwing) if it takes longer than `seconds`.
func withDeadline2(_ seconds: Double, _ op: @escaping @Sendable () async -> Void) async {
    do { try await withDeadline(seconds) { await op() } } catch { XCTFail("\(error)") }
}
