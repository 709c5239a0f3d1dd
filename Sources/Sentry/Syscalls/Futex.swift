// futex: WAIT and WAKE (the rest is the userland issue's).

import CMoat
import Glibc

/// Waiters keyed by (address space, address).
final class FutexTable {
    /// A private futex is (address space, address); a shared one in a
    /// MAP_SHARED mapping is (shared object, offset), so that processes
    /// mapping the same memory meet on the same key.
    struct Key: Hashable { let space: UInt64; let addr: UInt64 }

    static func key(_ t: Task, _ addr: UInt64, shared: Bool) -> Key {
        if shared, let v = t.mm.vma(containing: addr), v.shareID != 0 {
            return Key(space: v.shareID, addr: addr - v.start + v.offset)
        }
        return Key(space: t.mm.id, addr: addr)
    }
    var waiters: [Key: [(Task, UInt32)]] = [:]
    var woken = Set<ObjectIdentifier>()
    static let shared = FutexTable()
}

func futexWake(_ t: Task, addr: UInt64, count: Int, bitset: UInt32) {
    futexWake(t, key: FutexTable.key(t, addr, shared: true), count: count, bitset: bitset)
}

func futexWake(_ t: Task, key: FutexTable.Key, count: Int, bitset: UInt32) {
    let tab = FutexTable.shared
    guard var list = tab.waiters[key] else { return }
    var n = 0
    var rest: [(Task, UInt32)] = []
    for w in list {
        if n < count && w.1 & bitset != 0 { tab.woken.insert(ObjectIdentifier(w.0)); w.0.wake(); n += 1 } else { rest.append(w) }
    }
    list = rest
    tab.waiters[key] = list.isEmpty ? nil : list
}

func registerFutex(_ t: SyscallTable) {
    t[202] = { t, a in
        let op = a.int(1) & 0x7f
        let shared = a.int(1) & 128 == 0 // no FUTEX_PRIVATE_FLAG
        let addr = a.a0
        if addr & 3 != 0 { return err(EINVAL) }
        let tab = FutexTable.shared
        switch op {
        case 0, 9: // FUTEX_WAIT, FUTEX_WAIT_BITSET
            let bitset = op == 9 ? a.uint(5) : 0xffff_ffff
            if bitset == 0 { return err(EINVAL) }
            guard let cur = t.readI32(addr) else { return err(EFAULT) }
            if cur != a.int(2) { return err(EAGAIN) }
            var deadline: Int64? = nil
            if a.a3 != 0 {
                guard let s = t.readU64(a.a3), let n = t.readU64(a.a3 &+ 8) else { return err(EFAULT) }
                let ns = Int64(bitPattern: s) &* 1_000_000_000 &+ Int64(bitPattern: n)
                deadline = op == 9 ? Kernel.now(CLOCK_MONOTONIC) &+ max(0, ns &- Kernel.now(a.int(1) & 256 != 0 ? CLOCK_REALTIME : CLOCK_MONOTONIC)) : Kernel.now(CLOCK_MONOTONIC) &+ max(0, ns)
            }
            let key = FutexTable.key(t, addr, shared: shared)
            tab.waiters[key, default: []].append((t, bitset))
            let me = ObjectIdentifier(t)
            var result = 0
            while true {
                if tab.woken.remove(me) != nil { result = 0; break }
                let r = t.block(deadline: deadline)
                if tab.woken.remove(me) != nil { result = 0; break }
                if r == .timedOut { result = err(ETIMEDOUT); break }
                if r == .interrupted { result = -ERESTARTSYS; break }
            }
            // A requeue may have moved us to another key.
            for (k, var l) in tab.waiters where l.contains(where: { $0.0 === t }) {
                l.removeAll { $0.0 === t }
                tab.waiters[k] = l.isEmpty ? nil : l
            }
            return result
        case 1, 10: // FUTEX_WAKE, FUTEX_WAKE_BITSET
            let bitset = op == 10 ? a.uint(5) : 0xffff_ffff
            let key = FutexTable.key(t, addr, shared: shared)
            let before = tab.waiters[key]?.count ?? 0
            futexWake(t, key: key, count: Int(max(0, a.int(2))), bitset: bitset)
            return before - (tab.waiters[key]?.count ?? 0)
        case 3, 4: // FUTEX_REQUEUE, FUTEX_CMP_REQUEUE
            let addr2 = a.a4
            if addr2 & 3 != 0 { return err(EINVAL) }
            let nWake = Int(max(0, a.int(2))), nMove = Int(min(a.a3, UInt64(Int32.max)))
            if op == 4 {
                guard let cur = t.readI32(addr) else { return err(EFAULT) }
                if cur != a.int(5) { return err(EAGAIN) }
            }
            let key = FutexTable.key(t, addr, shared: shared)
            let key2 = FutexTable.key(t, addr2, shared: shared)
            var list = tab.waiters[key] ?? []
            var woken = 0
            while woken < nWake, !list.isEmpty {
                let w = list.removeFirst()
                tab.woken.insert(ObjectIdentifier(w.0)); w.0.wake(); woken += 1
            }
            var moved = 0
            while moved < nMove, !list.isEmpty {
                tab.waiters[key2, default: []].append(list.removeFirst()); moved += 1
            }
            tab.waiters[key] = list.isEmpty ? nil : list
            return woken + (op == 4 ? moved : 0)
        default:
            // WAKE_OP needs an atomic read-modify-write of application
            // memory (not yet), the PI operations a PI-aware owner model.
            return err(ENOSYS)
        }
    }
}
