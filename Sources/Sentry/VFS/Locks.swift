// Advisory file locks: flock(2) (owned by an open file description),
// POSIX record locks (owned by a process) and OFD locks (owned by a
// description), all on byte ranges of one inode, keyed by (device, inode);
// and the leases of open descriptions (F_SETLEASE). Guarded by Kernel.mu.

import CMoat
import Glibc

final class FileLocks {
    enum Owner: Hashable { case process(Int32), description(ObjectIdentifier) }
    struct Lock { var owner: Owner; var exclusive: Bool; var start: UInt64; var end: UInt64; var pid: Int32; var isFlock: Bool }
    struct Key: Hashable { let dev: UInt64; let ino: UInt64 }

    private var locks: [Key: [Lock]] = [:]
    /// F_SETLEASE leases, by open description (Syscalls/FD.swift).
    struct Lease { weak var file: FileDescription?; var key: Key; var write: Bool }
    var leases: [ObjectIdentifier: Lease] = [:]
    var waiters = WaitQueue()
    /// Which lock owner each blocked POSIX locker waits for (for EDEADLK).
    var blockedOn: [Owner: Owner] = [:]

    /// Whether `owner` waiting for `holder` would close a cycle of POSIX
    /// lockers each waiting for the next (Linux answers EDEADLK; OFD and
    /// flock locks are not checked, as in Linux).
    func wouldDeadlock(_ owner: Owner, waitingFor holder: Owner) -> Bool {
        var cur = holder
        var steps = 0
        while let next = blockedOn[cur], steps < 64 {
            if next == owner { return true }
            cur = next
            steps += 1
        }
        return holder == owner
    }

    static func key(_ i: Inode) -> Key { Key(dev: i.dev, ino: i.ino) }

    /// The first lock of another owner that conflicts with the request.
    func conflict(_ k: Key, owner: Owner, exclusive: Bool, start: UInt64, end: UInt64, flock: Bool) -> Lock? {
        for l in locks[k] ?? [] where l.owner != owner && l.isFlock == flock {
            if l.start < end && start < l.end && (exclusive || l.exclusive) { return l }
        }
        return nil
    }

    /// Sets (or with `unlock`, clears) the owner's lock on [start, end),
    /// replacing what the owner held there. As in Linux, a record lock
    /// absorbs the owner's locks of the same type that overlap or touch it,
    /// and an owner's locks stay together, ordered by start: F_GETLK
    /// reports the first conflicting lock in that order (the lowest range
    /// of the first owner that locked the file), not the newest one.
    func set(_ k: Key, owner: Owner, exclusive: Bool, start: UInt64, end: UInt64, pid: Int32, flock: Bool, unlock: Bool) {
        var list: [Lock] = []
        var start = start, end = end
        let merging = !unlock && !flock
        for l in locks[k] ?? [] {
            if l.owner != owner || l.isFlock != flock { list.append(l); continue }
            if merging && l.exclusive == exclusive && l.end >= start && l.start <= end {
                start = min(start, l.start); end = max(end, l.end)
                continue
            }
            if l.end <= start || l.start >= end { list.append(l); continue }
            if l.start < start { var a = l; a.end = start; list.append(a) }
            if l.end > end { var b = l; b.start = end; list.append(b) }
        }
        if !unlock {
            var i = list.firstIndex { $0.owner == owner && $0.isFlock == flock } ?? list.count
            while i < list.count && list[i].owner == owner && list[i].isFlock == flock && list[i].start < start { i += 1 }
            list.insert(Lock(owner: owner, exclusive: exclusive, start: start, end: end, pid: pid, isFlock: flock), at: i)
        }
        locks[k] = list.isEmpty ? nil : list
        waiters.notifyAll()
    }

    /// Drops every lock of `owner` (process exit, last close of a description).
    func releaseAll(_ owner: Owner, key: Key? = nil) {
        var changed = false
        // Every close asks with its file's key: look that one up, not every file.
        for k in key.map({ [$0] }) ?? Array(locks.keys) {
            guard let list = locks[k] else { continue }
            let kept = list.filter { $0.owner != owner }
            if kept.count != list.count { locks[k] = kept.isEmpty ? nil : kept; changed = true }
        }
        if changed { waiters.notifyAll() }
    }
}
