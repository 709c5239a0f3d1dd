// futex: WAIT and WAKE (the rest is the userland issue's).

import CMoat
import Glibc

/// Waiters keyed by (address space, address).
final class FutexTable {
    /// A private futex is (address space, address); a shared one in a
    /// MAP_SHARED mapping is (shared object, offset), so that processes
    /// mapping the same memory meet on the same key.
    /// `sharedOp`: a shared (not FUTEX_PRIVATE_FLAG) operation on private
    /// memory. Linux keys it apart from a private one on the same word
    /// (FUT_OFF_MMSHARED), so a private waiter never hears a shared wake
    /// and the other way round.
    struct Key: Hashable { let space: UInt64; let addr: UInt64; var sharedOp = false }

    static func key(_ t: Task, _ addr: UInt64, shared: Bool) -> Key {
        if shared, let v = t.mm.vma(containing: addr), v.shareID != 0 {
            return Key(space: v.shareID, addr: addr - v.start + v.offset)
        }
        return Key(space: t.mm.id, addr: addr, sharedOp: shared)
    }
    var waiters: [Key: [(Task, UInt32)]] = [:]
    var woken = Set<ObjectIdentifier>()
    /// Blocked FUTEX_LOCK_PI callers, in arrival order, and those handed
    /// the lock by FUTEX_UNLOCK_PI.
    var piWaiters: [Key: [Task]] = [:]
    var piGranted = Set<ObjectIdentifier>()
    static let shared = FutexTable()
}

/// A futex key as Linux's get_futex_key checks it: an aligned address
/// (EINVAL) in user space (EFAULT). A shared operation also pins the page,
/// so its word must be mapped and accessible: an unmapped or PROT_NONE page,
/// or a shared file page past the file's end, is EFAULT. A private one
/// never looks at the page.
func checkedFutexKey(_ t: Task, _ addr: UInt64, shared: Bool) -> Result<FutexTable.Key, Errno> {
    if addr & 3 != 0 { return .failure(Errno(EINVAL)) }
    if addr > userAddressEnd - 4 { return .failure(Errno(EFAULT)) }
    if shared {
        guard let v = t.mm.vma(containing: addr), v.prot & 7 != 0, t.readI32(addr) != nil else { return .failure(Errno(EFAULT)) }
    }
    return .success(FutexTable.key(t, addr, shared: shared))
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
        if n < count && w.1 & bitset != 0 { tab.woken.insert(ObjectIdentifier(w.0)); w.0.wakeAnswering(); n += 1 } else { rest.append(w) }
    }
    list = rest
    tab.waiters[key] = list.isEmpty ? nil : list
}

func registerFutex(_ t: SyscallTable) {
    t[274] = { t, a in                                                        // get_robust_list
        // The list head set_robust_list stored, for this thread or one the
        // caller may ptrace (read mode, real credentials: EPERM otherwise).
        guard let x = a.int(0) == 0 ? t : t.kernel.task(a.int(0), by: t), !x.exited else { return err(ESRCH) }
        if !mayAttach(t, x.tg) { return err(EPERM) }
        if !t.writeU64(a.a2, 24) { return err(EFAULT) }                        // sizeof(struct robust_list_head)
        return t.writeU64(a.a1, x.robustList) ? 0 : err(EFAULT)
    }
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
                if tab.woken.remove(me) != nil { return 0 }
                // Woken, the wait returns 0: the waker may give the stub
                // that itself (Task.wakeAnswering).
                let r = t.block(deadline: deadline, answer: 0)
                // The waker took this (only) entry out of its list.
                if tab.woken.remove(me) != nil { return 0 }
                if r == .timedOut { result = err(ETIMEDOUT); break }
                if r == .interrupted { result = -ERESTARTSYS; break }
            }
            // Still queued, under this key or one a requeue moved it to.
            for (k, var l) in tab.waiters where l.contains(where: { $0.0 === t }) {
                l.removeAll { $0.0 === t }
                tab.waiters[k] = l.isEmpty ? nil : l
            }
            return result
        case 1, 10: // FUTEX_WAKE, FUTEX_WAKE_BITSET
            let bitset = op == 10 ? a.uint(5) : 0xffff_ffff
            if bitset == 0 { return err(EINVAL) }
            let key: FutexTable.Key
            switch checkedFutexKey(t, addr, shared: shared) { case .success(let k): key = k; case .failure(let e): return e.ret }
            let before = tab.waiters[key]?.count ?? 0
            // Linux counts a waiter woken before it compares with the count,
            // so a count of 0 or less still wakes one.
            futexWake(t, key: key, count: Int(max(1, a.int(2))), bitset: bitset)
            return before - (tab.waiters[key]?.count ?? 0)
        case 3, 4: // FUTEX_REQUEUE, FUTEX_CMP_REQUEUE
            // Linux's futex_requeue: negative counts (nr_requeue is the low
            // 32 bits of the timeout argument) are EINVAL; both keys before
            // the compare.
            let nWakeArg = a.int(2), nMoveArg = Int32(truncatingIfNeeded: a.a3)
            if nWakeArg < 0 || nMoveArg < 0 { return err(EINVAL) }
            let nWake = Int(nWakeArg), nMove = Int(nMoveArg)
            let key: FutexTable.Key, key2: FutexTable.Key
            switch checkedFutexKey(t, addr, shared: shared) { case .success(let k): key = k; case .failure(let e): return e.ret }
            switch checkedFutexKey(t, a.a4, shared: shared) { case .success(let k): key2 = k; case .failure(let e): return e.ret }
            if op == 4 {
                guard let cur = t.readI32(addr) else { return err(EFAULT) }
                if cur != a.int(5) { return err(EAGAIN) }
            }
            var list = tab.waiters[key] ?? []
            var woken = 0
            while woken < nWake, !list.isEmpty {
                let w = list.removeFirst()
                tab.woken.insert(ObjectIdentifier(w.0)); w.0.wakeAnswering(); woken += 1
            }
            var moved = 0
            while moved < nMove, !list.isEmpty {
                tab.waiters[key2, default: []].append(list.removeFirst()); moved += 1
            }
            tab.waiters[key] = list.isEmpty ? nil : list
            return woken + (op == 4 ? moved : 0)
        case 5: // FUTEX_WAKE_OP
            return futexWakeOp(t, a, shared: shared)
        case 6, 13: // FUTEX_LOCK_PI, FUTEX_LOCK_PI2
            return futexLockPI(t, a, shared: shared, try: false)
        case 8: // FUTEX_TRYLOCK_PI
            return futexLockPI(t, a, shared: shared, try: true)
        case 7: // FUTEX_UNLOCK_PI
            return futexUnlockPI(t, a.a0, shared: shared)
        default:
            // WAIT_REQUEUE_PI/CMP_REQUEUE_PI (PI condition variables) are
            // not implemented; glibc's default condvars do not use them.
            return err(ENOSYS)
        }
    }
}

/// FUTEX_WAKE_OP: *uaddr2 = old OP oparg; wake up to val waiters on uaddr;
/// if (old CMP cmparg) also wake up to val2 waiters on uaddr2.
/// The read-modify-write is a compare-and-swap loop, atomic also against
/// the application's own atomics on the word (modern glibc no longer uses
/// this operation; its condition variables stopped in 2.25).
func futexWakeOp(_ t: Task, _ a: Args, shared: Bool) -> Int {
    let addr = a.a0, addr2 = a.a4
    // Both keys first, as Linux's futex_wake_op.
    for x in [addr, addr2] { if case .failure(let e) = checkedFutexKey(t, x, shared: shared) { return e.ret } }
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
    if op > 4 { return err(ENOSYS) }
    // Atomic against the application's own atomics on the word: one tight
    // compare-and-swap loop, as the kernel's futex_atomic_op_inuser, run by
    // the platform (ptrace: on the stub page; KVM: on the Sentry's mapping).
    let fetched = t.thread.futexOp32(addr2, op: Int(op), operand: UInt32(bitPattern: oparg))
    if fetched < 0 { return err(EFAULT) }
    let cur = UInt32(truncatingIfNeeded: fetched)
    let old = Int32(bitPattern: cur)
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
        // Other threads set FUTEX_WAITERS with their own atomics meanwhile:
        // a compare-and-swap loop, as for PI words.
        guard case .success(let v) = updateU32(addr, { v in
            v & FUTEX_TID_MASK_ == UInt32(bitPattern: vpid(tid)) ? (v & FUTEX_WAITERS_) | FUTEX_OWNER_DIED_ : nil
        }), v & FUTEX_TID_MASK_ == UInt32(bitPattern: vpid(tid)) else { return }
        if v & FUTEX_WAITERS_ != 0 { futexWake(self, addr: addr, count: 1, bitset: ~0) }
    }

    func readU32Word(_ addr: UInt64) -> UInt32? { readI32(addr).map { UInt32(bitPattern: $0) } }

    /// An atomic compare-and-swap of the futex word at `addr`: its old value
    /// (swapped when that equals `expected`), nil on a fault. Application
    /// threads change futex words with their own atomics at any moment, so a
    /// read followed by a write could undo theirs (a PI owner's user-space
    /// unlock, resurrected by a waiter's FUTEX_WAITERS: its next lock then
    /// failed with EDEADLK). A thread whose host side is already gone (its
    /// exit) falls back to read-then-write.
    func casU32(_ addr: UInt64, _ expected: UInt32, _ new: UInt32) -> UInt32? {
        let r = thread.compareExchange32(addr, expected: expected, new: new)
        if r >= 0 { return UInt32(truncatingIfNeeded: r) }
        if r != -Int(ESRCH) { return nil }
        guard let old = readU32Word(addr) else { return nil }
        if old == expected && !writeI32(addr, Int32(bitPattern: new)) { return nil }
        return old
    }

    enum WordUpdate {
        case success(UInt32), failure(Int32)
        var errno: Int32 { if case .failure(let e) = self { return e }; return 0 }
    }

    /// Replaces the futex word at `addr` with what `next` makes of its
    /// current value, atomically against the application's own atomics:
    /// when another thread changed the word between the read and the
    /// compare-and-swap, `next` decides again on the new value. `next`
    /// returns nil to leave the word as it is. The result is the value the
    /// final decision was made on (the word's old value); EFAULT on a fault,
    /// EAGAIN when the word kept changing for casRetries attempts (only a
    /// hostile application does that; it must not hold the Sentry).
    func updateU32(_ addr: UInt64, _ next: (UInt32) -> UInt32?) -> WordUpdate {
        guard var word = readU32Word(addr) else { return .failure(EFAULT) }
        for _ in 0..<casRetries {
            guard let new = next(word) else { return .success(word) }
            guard let old = casU32(addr, word, new) else { return .failure(EFAULT) }
            if old == word { return .success(word) }
            word = old
        }
        return .failure(EAGAIN)
    }
}

/// How often a compare-and-swap on a futex word is retried when the word
/// keeps changing under it. Only a hostile application keeps changing it; it
/// then gets EAGAIN instead of holding the Sentry in a loop.
private let casRetries = 1000

// PI futexes, without priority inheritance: the Sentry has no priorities to
// lend (every application thread is a host thread at the same priority),
// so what is kept is the ownership protocol glibc's PTHREAD_PRIO_INHERIT
// and robust PI mutexes rely on: the word holds the owner's tid, the
// kernel hands the lock to the first waiter on unlock, a dead owner's lock
// goes to the next locker marked FUTEX_OWNER_DIED.
private let FUTEX_WAITERS_: UInt32 = 0x8000_0000, FUTEX_OWNER_DIED_: UInt32 = 0x4000_0000, FUTEX_TID_MASK_: UInt32 = 0x3fff_ffff

func futexLockPI(_ t: Task, _ a: Args, shared: Bool, try trylock: Bool) -> Int {
    let addr = a.a0
    let tab = FutexTable.shared
    let key = FutexTable.key(t, addr, shared: shared)
    var deadline: Int64? = nil
    if !trylock && a.a3 != 0 {
        guard let s = t.readU64(a.a3), let n = t.readU64(a.a3 &+ 8) else { return err(EFAULT) }
        if n >= 1_000_000_000 { return err(EINVAL) }
        // LOCK_PI's timeout is absolute on CLOCK_REALTIME (LOCK_PI2: monotonic unless asked).
        let abs = Int64(bitPattern: s) &* 1_000_000_000 &+ Int64(n)
        let clock = a.int(1) & 0x7f == 13 && a.int(1) & 256 == 0 ? CLOCK_MONOTONIC : CLOCK_REALTIME
        deadline = Kernel.now(CLOCK_MONOTONIC) &+ max(0, abs &- Kernel.now(clock))
    }
    let me = UInt32(bitPattern: t.vpid(t.tid))   // futex words hold tids as the task's namespace numbers them
    // Take the lock, or mark the word FUTEX_WAITERS so that the owner's
    // unlock comes to the Sentry. Every change is a compare-and-swap: the
    // owner may unlock in user space (tid -> 0) at any moment.
    func ownerGone(_ owner: UInt32) -> Bool { owner == 0 || t.kernel.tasks[t.gpid(Int32(bitPattern: owner))] == nil }
    var took = false   // decided on the word the update settled on, not on a later look at the tasks
    let updated = t.updateU32(addr) { word in
        took = false
        let owner = word & FUTEX_TID_MASK_
        if owner == me { return nil }
        if ownerGone(owner) {
            took = true
            // Free, or its owner is gone: take it (marking the death).
            let died = owner != 0 ? FUTEX_OWNER_DIED_ : word & FUTEX_OWNER_DIED_
            let waiters = (tab.piWaiters[key]?.isEmpty == false) ? FUTEX_WAITERS_ : 0
            return me | died | waiters
        }
        if trylock || word & FUTEX_WAITERS_ != 0 { return nil }
        return word | FUTEX_WAITERS_
    }
    guard case .success(let word) = updated else { return err(updated.errno) }
    let owner = word & FUTEX_TID_MASK_
    if owner == me { return err(EDEADLK) }
    if took { return owner != 0 ? err(EOWNERDEAD) : 0 }
    if trylock { return err(EAGAIN) }
    tab.piWaiters[key, default: []].append(t)
    let mine = ObjectIdentifier(t)
    var result = 0
    waiting: while true {
        if tab.piGranted.remove(mine) != nil { result = 0; break }
        // The owner may have died without unlocking: take over then.
        if let cur = t.readU32Word(addr), cur & FUTEX_TID_MASK_ != me,
           t.kernel.tasks[t.gpid(Int32(bitPattern: cur & FUTEX_TID_MASK_))] == nil {
            tab.piWaiters[key]?.removeAll { $0 === t }
            let rest = (tab.piWaiters[key]?.isEmpty == false) ? FUTEX_WAITERS_ : 0
            if let old = t.casU32(addr, cur, me | FUTEX_OWNER_DIED_ | rest), old == cur {
                if tab.piWaiters[key]?.isEmpty == true { tab.piWaiters[key] = nil }
                return err(EOWNERDEAD)
            }
            // It changed meanwhile: queue again and look once more.
            tab.piWaiters[key, default: []].append(t)
            continue waiting
        }
        let r = t.block(deadline: deadline ?? (Kernel.now(CLOCK_MONOTONIC) &+ 50_000_000))
        if tab.piGranted.remove(mine) != nil { result = 0; break }
        if r == .timedOut && deadline != nil && Kernel.now(CLOCK_MONOTONIC) >= deadline! { result = err(ETIMEDOUT); break }
        if r == .interrupted { result = -ERESTARTNOINTR; break }
    }
    tab.piWaiters[key]?.removeAll { $0 === t }
    if tab.piWaiters[key]?.isEmpty == true { tab.piWaiters[key] = nil }
    return result
}

func futexUnlockPI(_ t: Task, _ addr: UInt64, shared: Bool) -> Int {
    let tab = FutexTable.shared
    let key = FutexTable.key(t, addr, shared: shared)
    let me = UInt32(bitPattern: t.vpid(t.tid))   // futex words hold tids as the task's namespace numbers them
    // Hand the lock to the first waiter, if there is one; else free it.
    let next = tab.piWaiters[key]?.first
    let more = (tab.piWaiters[key]?.count ?? 0) > 1 ? FUTEX_WAITERS_ : 0
    let updated = t.updateU32(addr) { word in
        word & FUTEX_TID_MASK_ != me ? nil : next.map { UInt32(bitPattern: $0.vpid($0.tid)) | more } ?? 0
    }
    guard case .success(let word) = updated else { return err(updated.errno) }
    if word & FUTEX_TID_MASK_ != me { return err(EPERM) }
    if let next {
        tab.piWaiters[key]?.removeFirst()
        if tab.piWaiters[key]?.isEmpty == true { tab.piWaiters[key] = nil }
        tab.piGranted.insert(ObjectIdentifier(next))
        next.wake()
    }
    return 0
}
