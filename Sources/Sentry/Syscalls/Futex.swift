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
        case 5: // FUTEX_WAKE_OP
            return futexWakeOp(t, a, shared: shared)
        default:
            // The PI operations need a priority-inheriting owner model;
            // glibc uses them only for PTHREAD_PRIO_INHERIT mutexes.
            return err(ENOSYS)
        }
    }
}

/// FUTEX_WAKE_OP: *uaddr2 = old OP oparg; wake up to val waiters on uaddr;
/// if (old CMP cmparg) also wake up to val2 waiters on uaddr2.
/// The read-modify-write is atomic with respect to every other futex call
/// (they all hold the kernel lock), not to plain atomics the application
/// runs on the same word at the same moment; modern glibc no longer uses
/// this operation (its condition variables stopped in 2.25).
func futexWakeOp(_ t: Task, _ a: Args, shared: Bool) -> Int {
    let addr = a.a0, addr2 = a.a4
    if addr2 & 3 != 0 { return err(EINVAL) }
    let enc = a.uint(5)
    var op = (enc >> 28) & 0xf
    let cmp = (enc >> 24) & 0xf
    var oparg = (Int32(bitPattern: (enc >> 12) & 0xfff) << 20) >> 20   // sign-extended 12 bits
    let cmparg = (Int32(bitPattern: enc & 0xfff) << 20) >> 20
    if op & 8 != 0 {                                                 // FUTEX_OP_ARG_SHIFT
        if oparg < 0 || oparg > 31 { return err(EINVAL) }
        oparg = Int32(bitPattern: UInt32(1) << UInt32(oparg))
        op &= 7
    }
    guard let old = t.readI32(addr2) else { return err(EFAULT) }
    let new: Int32
    switch op {
    case 0: new = oparg                  // SET
    case 1: new = old &+ oparg           // ADD
    case 2: new = old | oparg            // OR
    case 3: new = old & ~oparg           // ANDN
    case 4: new = old ^ oparg            // XOR
    default: return err(ENOSYS)
    }
    if !t.writeI32(addr2, new) { return err(EFAULT) }
    let cond: Bool
    switch cmp {
    case 0: cond = old == cmparg
    case 1: cond = old != cmparg
    case 2: cond = old < cmparg
    case 3: cond = old <= cmparg
    case 4: cond = old > cmparg
    case 5: cond = old >= cmparg
    default: return err(ENOSYS)
    }
    let tab = FutexTable.shared
    let k1 = FutexTable.key(t, addr, shared: shared), k2 = FutexTable.key(t, addr2, shared: shared)
    var woken = tab.waiters[k1]?.count ?? 0
    futexWake(t, key: k1, count: Int(max(0, a.int(2))), bitset: ~0)
    woken -= tab.waiters[k1]?.count ?? 0
    if cond {
        let before = tab.waiters[k2]?.count ?? 0
        futexWake(t, key: k2, count: Int(min(a.a3, UInt64(Int32.max))), bitset: ~0)
        woken += before - (tab.waiters[k2]?.count ?? 0)
    }
    return woken
}

extension Task {
    /// At thread exit: every robust mutex the thread still holds (its
    /// set_robust_list list, and the entry it was acquiring) is marked
    /// FUTEX_OWNER_DIED and one waiter is woken, so that another thread or
    /// process gets EOWNERDEAD instead of waiting forever.
    /// struct robust_list_head { next; long futex_offset; list_op_pending }.
    func exitRobustList() {
        guard let first = readU64(robustList), let offRaw = readU64(robustList &+ 8),
              let pending = readU64(robustList &+ 16) else { return }
        let offset = Int64(bitPattern: offRaw)
        var entry = first
        var seen = 0
        // The list is circular through the head; bound it against a hostile one.
        while entry != robustList && entry != 0 && seen < 2048 {
            guard let next = readU64(entry) else { return }
            if entry != pending { robustOwnerDied(UInt64(bitPattern: Int64(bitPattern: entry & ~1) &+ offset)) }
            entry = next
            seen += 1
        }
        if pending != 0 { robustOwnerDied(UInt64(bitPattern: Int64(bitPattern: pending & ~1) &+ offset)) }
    }

    private func robustOwnerDied(_ addr: UInt64) {
        if addr & 3 != 0 { return }
        guard let v = readI32(addr) else { return }
        let FUTEX_WAITERS: Int32 = Int32(bitPattern: 0x8000_0000), FUTEX_OWNER_DIED: Int32 = 0x4000_0000
        if v & 0x3fff_ffff != tid { return }
        _ = writeI32(addr, (v & FUTEX_WAITERS) | FUTEX_OWNER_DIED)
        if v & FUTEX_WAITERS != 0 { futexWake(self, addr: addr, count: 1, bitset: ~0) }
    }
}
