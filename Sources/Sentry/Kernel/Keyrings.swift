// Kernel key retention (keyrings(7)) for the sandbox: keys and keyrings
// kept in the Sentry, one key space per sandbox, never the host's (a
// container must not see or change the host's keys, which is why runc's
// default seccomp profile refuses these calls; here they are emulated, not
// passed). The key types are those that need no kernel crypto or upcall:
// "keyring", "user", "logon" and "big_key". A key lives while a keyring
// links it or a task holds it as one of its special keyrings; a key no one
// holds is gone at once (Linux's garbage collector, without the delay).
// The syscalls are in Syscalls/Keys.swift.

import Glibc

/// KEY_{POS,USR,GRP,OTH}_* permission bits, one byte per class.
enum KeyPerm {
    static let view: UInt32 = 1, read: UInt32 = 2, write: UInt32 = 4, search: UInt32 = 8, link: UInt32 = 0x10, setattr: UInt32 = 0x20
    static let all: UInt32 = 0x3f
    static func pos(_ p: UInt32) -> UInt32 { p << 24 }
    static func usr(_ p: UInt32) -> UInt32 { p << 16 }
}

final class Key {
    let serial: Int32
    let type: String
    let description: [UInt8]
    var payload: [UInt8]
    /// A keyring's links, in the order they were made.
    var links: [Key] = []
    var uid: UInt32, gid: UInt32
    var perm: UInt32
    var revoked = false
    var invalidated = false
    /// Negatively instantiated: a construction failed (request_key with no
    /// upcall); finding or reading it is ENOKEY until it expires.
    var negative = false
    /// CLOCK_REALTIME seconds after which the key has expired (KEYCTL_SET_TIMEOUT).
    var expiry: Int64? = nil
    /// Keyrings linking this key, plus special-keyring holders.
    fileprivate var holders = 0

    init(serial: Int32, type: String, description: [UInt8], payload: [UInt8], uid: UInt32, gid: UInt32, perm: UInt32) {
        self.serial = serial; self.type = type; self.description = description; self.payload = payload
        self.uid = uid; self.gid = gid; self.perm = perm
    }

    var isKeyring: Bool { type == "keyring" }
    var expired: Bool { expiry.map { Kernel.now(CLOCK_REALTIME) / 1_000_000_000 >= $0 } ?? false }
    /// What Linux counts against the owner's byte quota.
    var quotaBytes: Int { description.count + 1 + payload.count }
}

/// Every key of the sandbox, by serial, and each user's keyrings and quota use.
final class KeyStore {
    private(set) var keys: [Int32: Key] = [:]
    private var nextSerial: Int32
    /// _uid.N and _uid_ses.N, made on first use.
    private var userKeyrings: [UInt32: (user: Key, session: Key)] = [:]
    private var owned: [UInt32: (count: Int, bytes: Int)] = [:]
    /// kernel/keys sysctls: (maxkeys, maxbytes) for users, and for root.
    var maxKeys = 200, maxBytes = 20000, rootMaxKeys = 1_000_000, rootMaxBytes = 25_000_000

    init() {
        // Serials are positive 31-bit numbers above 3; start at an arbitrary point as Linux's are random.
        nextSerial = Int32(truncatingIfNeeded: (UInt64(bitPattern: Kernel.now(CLOCK_MONOTONIC)) &* 2_654_435_761) % 0x2000_0000) + 0x1000_0000
    }

    /// A new key owned by `uid`, registered but not yet linked. nil: EDQUOT.
    func make(type: String, description: [UInt8], payload: [UInt8], uid: UInt32, gid: UInt32, perm: UInt32) -> Key? {
        let use = owned[uid] ?? (0, 0)
        let k = Key(serial: allocSerial(), type: type, description: description, payload: payload, uid: uid, gid: gid, perm: perm)
        let (mk, mb) = uid == 0 ? (rootMaxKeys, rootMaxBytes) : (maxKeys, maxBytes)
        if use.count + 1 > mk || use.bytes + k.quotaBytes > mb { return nil }
        owned[uid] = (use.count + 1, use.bytes + k.quotaBytes)
        keys[k.serial] = k
        return k
    }

    private func allocSerial() -> Int32 {
        repeat {
            nextSerial = nextSerial >= Int32.max - 1 ? 4 : nextSerial + 1
        } while keys[nextSerial] != nil
        return nextSerial
    }

    /// A keyring's or holder's reference taken / given back; a key no one
    /// holds any more is destroyed (and its links given back in turn).
    func hold(_ k: Key) { k.holders += 1 }
    func release(_ k: Key) {
        k.holders -= 1
        if k.holders <= 0 { destroy(k) }
    }
    private func destroy(_ k: Key) {
        guard keys[k.serial] === k else { return }
        keys[k.serial] = nil
        if let u = owned[k.uid] { owned[k.uid] = (max(0, u.count - 1), max(0, u.bytes - k.quotaBytes)) }
        let l = k.links
        k.links = []
        for x in l { release(x) }
    }

    /// Replaces a key's payload, keeping the owner's byte count right.
    func setPayload(_ k: Key, _ p: [UInt8]) {
        if let u = owned[k.uid] { owned[k.uid] = (u.count, u.bytes - k.payload.count + p.count) }
        k.payload = p
    }

    /// Links `k` into `ring` (a link to a key of the same type and
    /// description is replaced, as Linux's keyring index has one entry per
    /// type and description).
    func link(_ k: Key, into ring: Key) {
        if ring.links.contains(where: { $0 === k }) { return }
        hold(k)
        if let i = ring.links.firstIndex(where: { $0.type == k.type && $0.description == k.description }) {
            let old = ring.links[i]
            ring.links[i] = k
            release(old)
        } else {
            ring.links.append(k)
        }
    }

    /// Removes `k` from `ring`; false if it was not linked there.
    func unlink(_ k: Key, from ring: Key) -> Bool {
        guard let i = ring.links.firstIndex(where: { $0 === k }) else { return false }
        ring.links.remove(at: i)
        release(k)
        return true
    }

    /// KEYCTL_INVALIDATE: the key leaves every keyring at once.
    func invalidate(_ k: Key) {
        k.invalidated = true
        hold(k)
        for r in keys.values where r.isKeyring { _ = unlink(k, from: r) }
        release(k)
    }

    /// The user keyring and user session keyring of `uid`, made on first
    /// use (the session one links the user one).
    func userKeyrings(_ uid: UInt32, gid: UInt32) -> (user: Key, session: Key)? {
        if let u = userKeyrings[uid] { return u }
        let perm = KeyPerm.pos(KeyPerm.all & ~KeyPerm.setattr) | KeyPerm.usr(KeyPerm.all)
        guard let user = make(type: "keyring", description: Array("_uid.\(uid)".utf8), payload: [], uid: uid, gid: gid, perm: perm),
              let session = make(type: "keyring", description: Array("_uid_ses.\(uid)".utf8), payload: [], uid: uid, gid: gid, perm: perm)
        else { return nil }
        hold(user); hold(session)
        link(user, into: session)
        userKeyrings[uid] = (user, session)
        return (user, session)
    }

    /// The keyring named `name` a task may join (KEYCTL_JOIN_SESSION_KEYRING):
    /// a keyring with that description the joiner may search.
    func namedKeyring(_ name: [UInt8], searchable: (Key) -> Bool) -> Key? {
        keys.values.filter { $0.isKeyring && $0.description == name && !$0.revoked && !$0.invalidated && searchable($0) }
            .min { $0.serial < $1.serial }
    }
}
