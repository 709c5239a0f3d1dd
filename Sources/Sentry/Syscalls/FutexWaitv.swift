// futex_waitv: wait on up to 128 futex words at once, woken by a
// FUTEX_WAKE on any of them (Linux 5.16).
//
// The waiter queues itself on every word's key in the FutexTable that
// FUTEX_WAIT uses, so the ordinary FUTEX_WAKE (private or shared, as each
// entry's FUTEX_PRIVATE_FLAG says) finds it; the result is the index of
// the entry whose key it was woken on. Everything from the first compare
// to the queueing happens under Kernel.mu, so no wake can fall between
// them.

import CMoat
import Glibc

func registerFutexWaitv(_ t: SyscallTable) {
    t[449] = sysFutexWaitv
}

/// FUTEX_WAITV_MAX.
private let waitvMax: UInt32 = 128
/// FUTEX_32 and FUTEX_PRIVATE_FLAG: the only entry flags (Linux's FUTEX2_MASK).
private let futex32: UInt32 = 2, futexPrivate: UInt32 = 128

/// futex_waitv(waiters, nr_futexes, flags, timeout, clockid).
/// struct futex_waitv { u64 val; u64 uaddr; u32 flags; u32 __reserved }.
func sysFutexWaitv(_ t: Task, _ a: Args) -> Int {
    // Linux's order: flags, the count and the array pointer, the timeout
    // (clock, copy, validity), then each entry, then each address.
    if a.uint(2) != 0 { return err(EINVAL) }
    let n = a.uint(1)
    if n == 0 || n > waitvMax || a.a0 == 0 { return err(EINVAL) }
    var deadline: Int64? = nil
    if a.a3 != 0 {
        let clock = a.int(4)
        if clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC { return err(EINVAL) }
        // An absolute time on that clock.
        let at: (sec: Int64, nsec: Int64)
        switch readTimespecArg(t, a.a3) { case .success(let v): at = v; case .failure(let e): return e.ret }
        let abs = at.sec.multipliedReportingOverflow(by: 1_000_000_000)
        if !abs.overflow {
            deadline = Kernel.now(CLOCK_MONOTONIC) &+ max(0, (abs.partialValue &+ at.nsec) &- Kernel.now(clock))
        }
    }
    guard let raw = t.copyIn(a.a0, Int(n) * 24) else { return err(EFAULT) }
    var entries: [(val: UInt64, addr: UInt64, flags: UInt32)] = []
    for i in 0..<Int(n) {
        let val = get64(raw, 24 * i), addr = get64(raw, 24 * i + 8)
        let flags = get32(raw, 24 * i + 16)
        if flags & ~(futex32 | futexPrivate) != 0 || get32(raw, 24 * i + 20) != 0 { return err(EINVAL) }
        if flags & futex32 == 0 || val > UInt64(UInt32.max) { return err(EINVAL) }
        entries.append((val, addr, flags))
    }
    // get_futex_key for each: aligned (EINVAL) and in user space (EFAULT).
    for e in entries {
        if e.addr & 3 != 0 { return err(EINVAL) }
        if e.addr > userAddressEnd - 4 { return err(EFAULT) }
    }
    let keys = entries.map { FutexTable.key(t, $0.addr, shared: $0.flags & futexPrivate == 0) }
    let tab = FutexTable.shared
    let me = ObjectIdentifier(t)
    tab.woken.remove(me)
    // Compare and queue, entry by entry; a word that differs (or faults)
    // ends the wait before it starts, undoing the queueing.
    func unqueue() {
        for (k, var l) in tab.waiters where l.contains(where: { $0.0 === t }) {
            l.removeAll { $0.0 === t }
            tab.waiters[k] = l.isEmpty ? nil : l
        }
    }
    for (i, e) in entries.enumerated() {
        guard let cur = t.readI32(e.addr) else { unqueue(); return err(EFAULT) }
        if UInt64(UInt32(bitPattern: cur)) != e.val { unqueue(); return err(EAGAIN) }
        tab.waiters[keys[i], default: []].append((t, 0xffff_ffff))
    }
    var result = 0
    while true {
        let r = t.block(deadline: deadline)
        if tab.woken.remove(me) != nil {
            // The first entry whose key lost one of this task's places: a
            // wake takes the earliest queued waiter, so on a key named
            // twice it is the earlier entry's place.
            var lost: [FutexTable.Key: Int] = [:]
            for k in keys { lost[k, default: 0] += 1 }
            for k in Set(keys) { lost[k]! -= (tab.waiters[k] ?? []).reduce(0) { $0 + ($1.0 === t ? 1 : 0) } }
            result = keys.firstIndex { lost[$0]! > 0 } ?? 0
            break
        }
        if r == .timedOut { result = err(ETIMEDOUT); break }
        if r == .interrupted { result = -ERESTARTSYS; break }
    }
    unqueue()
    return result
}
