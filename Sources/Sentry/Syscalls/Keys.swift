// Kernel key management: add_key, request_key and keyctl over the
// sandbox's own key store (Kernel/Keyrings.swift). Each task has a thread
// keyring, its process a process keyring and (through its credentials, so
// inherited by fork) a session keyring, each made on first use, and every
// uid a user and a user session keyring. Nothing can construct a key for
// request_key (no /sbin/request-key upcall): a key not found is ENOKEY.
// Arguments are checked in Linux's order, so a malformed call gets Linux's
// error.

import Glibc

func registerKeys(_ t: SyscallTable) {
    t[248] = sysAddKey
    t[249] = sysRequestKey
    t[250] = sysKeyctl
}

/// Longest key type name with its NUL (Linux: char type[32]).
private let keyTypeSize = 32
/// Longest description and callout string, NUL included (KEY_MAX_DESC_SIZE, PAGE_SIZE).
private let keyDescSize = 4096
/// The key types the sandbox offers; any other name is ENODEV.
private let keyTypes: Set<String> = ["keyring", "user", "logon", "big_key"]

// Special keyring ids (KEY_SPEC_*).
private let specThread: Int32 = -1, specProcess: Int32 = -2, specSession: Int32 = -3
private let specUser: Int32 = -4, specUserSession: Int32 = -5, specGroup: Int32 = -6
private let specReqkeyAuth: Int32 = -7, specRequestor: Int32 = -8

/// A key type name: 1..31 bytes; a name starting with '.' is internal (EPERM).
private func keyType(_ t: Task, _ addr: UInt64) -> Result<String, Errno> {
    let (ty, tooLong) = t.copyInString(addr, max: keyTypeSize - 1)
    if tooLong { return .failure(Errno(EINVAL)) }
    guard let type = ty else { return .failure(Errno(EFAULT)) }
    if type.isEmpty { return .failure(Errno(EINVAL)) }
    if type[0] == UInt8(ascii: ".") { return .failure(Errno(EPERM)) }
    return .success(String(decoding: type, as: UTF8.self))
}

/// A description or callout string (at most 4095 bytes).
private func keyString(_ t: Task, _ addr: UInt64) -> Result<[UInt8], Errno> {
    let (d, tooLong) = t.copyInString(addr, max: keyDescSize - 1)
    if tooLong { return .failure(Errno(EINVAL)) }
    guard let s = d else { return .failure(Errno(EFAULT)) }
    return .success(s)
}

// MARK: - Finding keys

extension Task {
    var keyStore: KeyStore { kernel.keyStore }

    /// This task's session keyring: its own, or else its user session
    /// keyring becomes it (Linux installs that on first access).
    func sessionKeyringOrUser() -> Key? {
        if let s = sessionKeyring { return s }
        guard let u = keyStore.userKeyrings(creds.uid, gid: creds.gid) else { return nil }
        setSessionKeyring(u.session)
        return u.session
    }

    func setSessionKeyring(_ k: Key?) {
        if let k { keyStore.hold(k) }
        if let old = sessionKeyring { keyStore.release(old) }
        sessionKeyring = k
    }

    /// The keyring a special id names, made when `create` (the thread,
    /// process and session keyrings) or always (the user keyrings).
    func specialKeyring(_ id: Int32, create: Bool) -> Result<Key, Errno> {
        let store = keyStore
        switch id {
        case specThread:
            if let k = threadKeyring { return .success(k) }
            if !create { return .failure(Errno(ENOKEY)) }
            guard let k = store.make(type: "keyring", description: Array("_tid".utf8), payload: [], uid: creds.fsuid, gid: creds.fsgid,
                                     perm: KeyPerm.pos(KeyPerm.all) | KeyPerm.usr(KeyPerm.view)) else { return .failure(Errno(EDQUOT)) }
            store.hold(k)
            threadKeyring = k
            return .success(k)
        case specProcess:
            if let k = tg.processKeyring { return .success(k) }
            if !create { return .failure(Errno(ENOKEY)) }
            guard let k = store.make(type: "keyring", description: Array("_pid".utf8), payload: [], uid: creds.fsuid, gid: creds.fsgid,
                                     perm: KeyPerm.pos(KeyPerm.all) | KeyPerm.usr(KeyPerm.view)) else { return .failure(Errno(EDQUOT)) }
            store.hold(k)
            tg.processKeyring = k
            return .success(k)
        case specSession:
            if let k = sessionKeyring { return .success(k) }
            if create { return joinSessionKeyring(nil).map { $0! } }
            return sessionKeyringOrUser().map { .success($0) } ?? .failure(Errno(EDQUOT))
        case specUser, specUserSession:
            guard let u = store.userKeyrings(creds.uid, gid: creds.gid) else { return .failure(Errno(EDQUOT)) }
            return .success(id == specUser ? u.user : u.session)
        case specGroup: return .failure(Errno(EINVAL))
        case specReqkeyAuth, specRequestor: return .failure(Errno(ENOKEY))   // no key is being constructed
        default: return .failure(Errno(EINVAL))
        }
    }

    /// KEYCTL_JOIN_SESSION_KEYRING: an anonymous new "_ses" keyring, or the
    /// keyring of that name (made if none the task may search has it).
    /// nil: the named keyring is already this task's session keyring
    /// (Linux then answers 0).
    func joinSessionKeyring(_ name: [UInt8]?) -> Result<Key?, Errno> {
        let store = keyStore
        if let n = name, let k = store.namedKeyring(n, searchable: { self.keyAllowed($0, KeyPerm.search, possessed: false) }) {
            if k === sessionKeyring { return .success(nil) }
            setSessionKeyring(k)
            return .success(k)
        }
        // A named one may also be linked by its user; an anonymous one not.
        let perm = KeyPerm.pos(KeyPerm.all) | KeyPerm.usr(KeyPerm.view | KeyPerm.read | (name == nil ? 0 : KeyPerm.link))
        guard let k = store.make(type: "keyring", description: name ?? Array("_ses".utf8), payload: [], uid: creds.uid, gid: creds.gid, perm: perm)
        else { return .failure(Errno(EDQUOT)) }
        setSessionKeyring(k)
        return .success(k)
    }

    /// The keyrings a search starts from, in Linux's order.
    var searchRoots: [Key] { [threadKeyring, tg.processKeyring, sessionKeyringOrUser()].compactMap { $0 } }

    /// Whether `k` is reachable from this task's keyrings through keyrings
    /// it may search (it "possesses" it).
    func possesses(_ k: Key) -> Bool {
        var seen = Set<Int32>()
        func walk(_ r: Key) -> Bool {
            if r === k { return true }
            if !r.isKeyring || !seen.insert(r.serial).inserted { return false }
            if r !== threadKeyring && r !== tg.processKeyring && r !== sessionKeyring && !keyAllowed(r, KeyPerm.search, possessed: true) { return false }
            return r.links.contains { walk($0) }
        }
        return searchRoots.contains { walk($0) }
    }

    /// Linux's key_task_permission: the owner's, group's or others' byte,
    /// plus the possessor's when possessed. No capability overrides it.
    func keyAllowed(_ k: Key, _ need: UInt32, possessed: Bool) -> Bool {
        var p: UInt32
        if k.uid == creds.fsuid { p = k.perm >> 16 }
        else if k.gid == creds.fsgid || creds.groups.contains(k.gid) { p = k.perm >> 8 }
        else { p = k.perm }
        if possessed { p |= k.perm >> 24 }
        return p & need & KeyPerm.all == need
    }

    /// Linux's lookup_user_key: a special id or a serial, then the
    /// permission `need` (0: none), and a revoked or expired key's error
    /// unless `allowDead`.
    func lookupKey(_ id: Int32, create: Bool = false, need: UInt32, allowDead: Bool = false) -> Result<Key, Errno> {
        let k: Key
        var possessed = true
        if id < 0 {
            switch specialKeyring(id, create: create) {
            case .failure(let e): return .failure(e)
            case .success(let x): k = x
            }
        } else {
            guard id > 0, let x = keyStore.keys[id], !x.invalidated else { return .failure(Errno(ENOKEY)) }
            k = x
            possessed = possesses(x)
        }
        if !allowDead {
            if k.revoked { return .failure(Errno(EKEYREVOKED)) }
            if k.expired { return .failure(Errno(EKEYEXPIRED)) }
        }
        if need != 0 && !keyAllowed(k, need, possessed: possessed) { return .failure(Errno(EACCES)) }
        return .success(k)
    }

    /// Searches this task's keyrings (or `from` and the keyrings below it)
    /// for a key of `type` and `description`, as request_key and
    /// KEYCTL_SEARCH do. A match that is revoked or expired gives its error
    /// (request_key passes over expired keys: `skipExpired`).
    func searchKey(type: String, description: [UInt8], from: [Key]? = nil, skipExpired: Bool = false) -> Result<Key, Errno> {
        var seen = Set<Int32>()
        var dead: Errno? = nil
        func walk(_ r: Key) -> Key? {
            if !seen.insert(r.serial).inserted { return nil }
            for k in r.links {
                if k.type == type && k.description == description && !k.invalidated && keyAllowed(k, KeyPerm.search, possessed: true) {
                    if k.negative && !k.expired { dead = dead ?? Errno(ENOKEY); continue }
                    if k.revoked { dead = dead ?? Errno(EKEYREVOKED); continue }
                    if k.expired { if !skipExpired { dead = dead ?? Errno(EKEYEXPIRED) }; continue }
                    return k
                }
            }
            for k in r.links where k.isKeyring && !k.revoked && keyAllowed(k, KeyPerm.search, possessed: true) {
                if let f = walk(k) { return f }
            }
            return nil
        }
        for r in from ?? searchRoots { if let f = walk(r) { return .success(f) } }
        return .failure(dead ?? Errno(ENOKEY))
    }

    /// Gives back this task's keyrings as it exits. Requires: mu held.
    func releaseKeyrings() {
        if let k = threadKeyring { keyStore.release(k); threadKeyring = nil }
        if let k = sessionKeyring { keyStore.release(k); sessionKeyring = nil }
    }
}

/// The payload rules of each type (Linux's preparse): a keyring takes none,
/// user and logon 1..32767 bytes, big_key up to 1 MiB; a logon key's
/// description is "service:name".
private func checkPayload(_ type: String, _ desc: [UInt8], _ len: Int) -> Errno? {
    switch type {
    case "keyring": return len == 0 ? nil : Errno(EINVAL)
    case "user": return len >= 1 && len <= 32767 ? nil : Errno(EINVAL)
    case "logon":
        guard let c = desc.firstIndex(of: UInt8(ascii: ":")), c > 0 else { return Errno(EINVAL) }
        return len >= 1 && len <= 32767 ? nil : Errno(EINVAL)
    case "big_key": return len >= 1 && len <= 1 << 20 ? nil : Errno(EINVAL)
    default: return Errno(ENODEV)
    }
}

/// The permissions a new key gets (Linux's key_alloc default).
private func defaultPerm(_ type: String) -> UInt32 {
    var pos = KeyPerm.view | KeyPerm.search | KeyPerm.link | KeyPerm.setattr | KeyPerm.write
    if type != "logon" { pos |= KeyPerm.read }
    return KeyPerm.pos(pos) | KeyPerm.usr(KeyPerm.view)
}

// MARK: - add_key

func sysAddKey(_ t: Task, _ a: Args) -> Int {
    if a.a3 > UInt64(1 << 20) - 1 { return err(EINVAL) }
    let plen = Int(a.a3)
    let type: String
    switch keyType(t, a.a0) { case .failure(let e): return e.ret; case .success(let s): type = s }
    var desc: [UInt8]? = nil
    if a.a1 != 0 {
        switch keyString(t, a.a1) { case .failure(let e): return e.ret; case .success(let s): desc = s.isEmpty ? nil : s }
        if let d = desc, d.first == UInt8(ascii: "."), type.hasPrefix("keyring") { return err(EPERM) }
    }
    var payload: [UInt8] = []
    if plen > 0 {
        guard let p = t.copyIn(a.a2, plen) else { return err(EFAULT) }
        payload = p
    }
    let ring: Key
    switch t.lookupKey(a.int(4), create: true, need: KeyPerm.write) { case .failure(let e): return e.ret; case .success(let k): ring = k }
    if !ring.isKeyring { return err(ENOTDIR) }
    if !keyTypes.contains(type) { return err(ENODEV) }
    if let e = checkPayload(type, desc ?? [], plen) { return e.ret }
    guard let d = desc else { return err(EINVAL) }
    // A key of the same type and description in that keyring is updated
    // (keyrings are not: a new one replaces the link).
    if type != "keyring", let old = ring.links.first(where: { $0.type == type && $0.description == d && !$0.revoked && !$0.invalidated }) {
        if !t.keyAllowed(old, KeyPerm.write, possessed: true) { return err(EACCES) }
        t.keyStore.setPayload(old, payload)
        old.expiry = nil
        return Int(old.serial)
    }
    guard let k = t.keyStore.make(type: type, description: d, payload: payload, uid: t.creds.fsuid, gid: t.creds.fsgid, perm: defaultPerm(type)) else {
        return err(EDQUOT)
    }
    t.keyStore.link(k, into: ring)
    return Int(k.serial)
}

// MARK: - request_key

func sysRequestKey(_ t: Task, _ a: Args) -> Int {
    let type: String
    switch keyType(t, a.a0) { case .failure(let e): return e.ret; case .success(let s): type = s }
    let desc: [UInt8]
    switch keyString(t, a.a1) { case .failure(let e): return e.ret; case .success(let s): desc = s }
    var callout: [UInt8]? = nil
    if a.a2 != 0 {
        switch keyString(t, a.a2) { case .failure(let e): return e.ret; case .success(let s): callout = s }
    }
    var dest: Key? = nil
    if a.int(3) != 0 {
        switch t.lookupKey(a.int(3), create: true, need: KeyPerm.write) { case .failure(let e): return e.ret; case .success(let k): dest = k }
    }
    if !keyTypes.contains(type) { return err(ENOKEY) }                  // Linux's key_type_lookup: an unknown type finds nothing
    switch t.searchKey(type: type, description: desc, skipExpired: true) {
    case .success(let k):
        if let d = dest, d.isKeyring { t.keyStore.link(k, into: d) }
        return Int(k.serial)
    case .failure(let e):
        if e.ret != err(ENOKEY) || callout == nil { return e.ret }
    }
    // Construction puts the new key in the destination keyring, which must
    // be writable; then it fails as Linux's does when there is no
    // /sbin/request-key to run (ENOENT: no upcall constructs keys here),
    // leaving a negative key there for 60 s (key_negative_timeout).
    let target = dest ?? t.defaultRequestKeyring()
    if let r = target, !t.keyAllowed(r, KeyPerm.write, possessed: true) { return err(EACCES) }
    if let r = target, r.isKeyring,
       let k = t.keyStore.make(type: type, description: desc, payload: [], uid: t.creds.fsuid, gid: t.creds.fsgid, perm: defaultPerm(type)) {
        k.negative = true
        k.expiry = Kernel.now(CLOCK_REALTIME) / 1_000_000_000 + 60
        t.keyStore.link(k, into: r)
    }
    return err(ENOENT)
}

extension Task {
    /// The keyring KEYCTL_SET_REQKEY_KEYRING chose for constructed keys.
    func defaultRequestKeyring() -> Key? {
        switch reqkeyDefault {
        case 1: return threadKeyring
        case 2: return tg.processKeyring
        case 3: return sessionKeyringOrUser()
        case 4: return keyStore.userKeyrings(creds.uid, gid: creds.gid)?.user
        case 5: return keyStore.userKeyrings(creds.uid, gid: creds.gid)?.session
        default: return threadKeyring ?? tg.processKeyring ?? sessionKeyringOrUser()
        }
    }
}

// MARK: - keyctl

func sysKeyctl(_ t: Task, _ a: Args) -> Int {
    let store = t.keyStore
    func key(_ i: Int, create: Bool = false, need: UInt32, allowDead: Bool = false) -> Result<Key, Errno> {
        t.lookupKey(a.int(i), create: create, need: need, allowDead: allowDead)
    }
    switch a.a0 {
    case 0:                                                             // KEYCTL_GET_KEYRING_ID
        switch key(1, create: a.a2 != 0, need: 0) { case .failure(let e): return e.ret; case .success(let k): return Int(k.serial) }
    case 1:                                                             // KEYCTL_JOIN_SESSION_KEYRING
        var name: [UInt8]? = nil
        if a.a1 != 0 {
            switch keyString(t, a.a1) { case .failure(let e): return e.ret; case .success(let s): name = s }
            if name?.first == UInt8(ascii: ".") { return err(EPERM) }
        }
        switch t.joinSessionKeyring(name) { case .failure(let e): return e.ret; case .success(let k): return Int(k?.serial ?? 0) }
    case 2:                                                             // KEYCTL_UPDATE
        if a.a3 > 1 << 20 { return err(EINVAL) }
        let plen = Int(a.a3)
        var p: [UInt8] = []
        if plen > 0 { guard let x = t.copyIn(a.a2, plen) else { return err(EFAULT) }; p = x }
        switch key(1, need: KeyPerm.write) {
        case .failure(let e): return e.ret
        case .success(let k):
            if k.isKeyring { return err(EOPNOTSUPP) }
            if let e = checkPayload(k.type, k.description, plen) { return e.ret }
            store.setPayload(k, p)
            return 0
        }
    case 3:                                                             // KEYCTL_REVOKE
        var r = key(1, need: KeyPerm.write, allowDead: true)
        if case .failure(let e) = r, e.ret == err(EACCES) { r = key(1, need: KeyPerm.setattr, allowDead: true) }
        switch r { case .failure(let e): return e.ret; case .success(let k): k.revoked = true; return 0 }
    case 4:                                                             // KEYCTL_CHOWN
        switch key(1, need: KeyPerm.setattr, allowDead: true) {
        case .failure(let e): return e.ret
        case .success(let k):
            let uid = a.uint(2), gid = a.uint(3)
            if k.revoked { return err(EKEYREVOKED) }
            if (uid != UInt32.max && uid != k.uid) && !t.creds.has(Cap.sysAdmin) { return err(EACCES) }
            if gid != UInt32.max && gid != k.gid && !t.creds.has(Cap.sysAdmin) && !(k.uid == t.creds.fsuid && (gid == t.creds.fsgid || t.creds.groups.contains(gid))) { return err(EACCES) }
            if uid != UInt32.max { k.uid = uid }
            if gid != UInt32.max { k.gid = gid }
            return 0
        }
    case 5:                                                             // KEYCTL_SETPERM
        let perm = a.uint(2)
        if perm & ~(KeyPerm.pos(KeyPerm.all) | KeyPerm.usr(KeyPerm.all) | KeyPerm.all << 8 | KeyPerm.all) != 0 { return err(EINVAL) }
        switch key(1, need: KeyPerm.setattr, allowDead: true) {
        case .failure(let e): return e.ret
        case .success(let k):
            if k.revoked { return err(EKEYREVOKED) }
            if k.uid != t.creds.fsuid && !t.creds.has(Cap.sysAdmin) { return err(EACCES) }
            k.perm = perm
            return 0
        }
    case 6:                                                             // KEYCTL_DESCRIBE
        switch key(1, need: KeyPerm.view, allowDead: true) {
        case .failure(let e): return e.ret
        case .success(let k):
            let s = Array("\(k.type);\(Int32(bitPattern: k.uid));\(Int32(bitPattern: k.gid));\(hex(k.perm, width: 8));".utf8) + k.description + [0]
            return copyOutIfRoom(t, s, a.a2, a.a3)
        }
    case 7:                                                             // KEYCTL_CLEAR
        switch key(1, create: true, need: KeyPerm.write) {
        case .failure(let e): return e.ret
        case .success(let k):
            if !k.isKeyring { return err(ENOTDIR) }
            for x in k.links { _ = store.unlink(x, from: k) }
            return 0
        }
    case 8:                                                             // KEYCTL_LINK
        let ring: Key, k: Key
        switch key(2, create: true, need: KeyPerm.write) { case .failure(let e): return e.ret; case .success(let r): ring = r }
        switch key(1, create: true, need: KeyPerm.link) { case .failure(let e): return e.ret; case .success(let x): k = x }
        if !ring.isKeyring { return err(ENOTDIR) }
        if k === ring || (k.isKeyring && reaches(k, ring)) { return err(EDEADLK) }
        store.link(k, into: ring)
        return 0
    case 9:                                                             // KEYCTL_UNLINK
        let ring: Key
        switch key(2, need: KeyPerm.write) { case .failure(let e): return e.ret; case .success(let r): ring = r }
        if !ring.isKeyring { return err(ENOTDIR) }
        guard id2key(t, a.int(1)) .map({ store.unlink($0, from: ring) }) == true else { return err(ENOENT) }
        return 0
    case 10:                                                            // KEYCTL_SEARCH
        let ring: Key
        switch key(1, need: KeyPerm.search) { case .failure(let e): return e.ret; case .success(let r): ring = r }
        let type: String, desc: [UInt8]
        switch keyType(t, a.a2) { case .failure(let e): return e.ret; case .success(let s): type = s }
        switch keyString(t, a.a3) { case .failure(let e): return e.ret; case .success(let s): desc = s }
        var dest: Key? = nil
        if a.int(4) != 0 {
            switch key(4, create: true, need: KeyPerm.write) { case .failure(let e): return e.ret; case .success(let d): dest = d }
        }
        if !ring.isKeyring { return err(ENOTDIR) }
        switch t.searchKey(type: type, description: desc, from: [ring]) {
        case .failure(let e): return e.ret
        case .success(let k):
            if let d = dest { store.link(k, into: d) }
            return Int(k.serial)
        }
    case 11:                                                            // KEYCTL_READ
        let k: Key
        switch key(1, need: 0) { case .failure(let e): return e.ret; case .success(let x): k = x }
        // Without read permission, a key this task possesses may still be read (Linux).
        let possessed = a.int(1) < 0 || t.possesses(k)
        if !t.keyAllowed(k, KeyPerm.read, possessed: possessed) && !possessed { return err(EACCES) }
        if k.negative { return err(ENOKEY) }
        if k.type == "logon" { return err(EOPNOTSUPP) }
        var data: [UInt8] = []
        if k.isKeyring {
            if a.a2 != 0 && a.a3 % 4 != 0 { return err(EINVAL) }         // whole serials only
            for l in k.links { withUnsafeBytes(of: l.serial.littleEndian) { data.append(contentsOf: $0) } }
        } else {
            data = k.payload
        }
        // The data is copied only when it all fits; its length is returned either way.
        if a.a2 != 0 && !data.isEmpty && UInt64(data.count) <= a.a3 && !t.copyOut(a.a2, data) { return err(EFAULT) }
        return data.count
    case 12, 13, 19, 20:                                                // INSTANTIATE, NEGATE, REJECT, INSTANTIATE_IOV
        return err(EPERM)                                               // no key is under construction
    case 14:                                                            // KEYCTL_SET_REQKEY_KEYRING
        let v = a.int(1)
        let old = t.reqkeyDefault
        switch v {
        case -1: return Int(old)                                        // KEY_REQKEY_DEFL_NO_CHANGE
        case 0, 2, 3, 4, 5, 7: break
        case 1: if case .failure(let e) = t.specialKeyring(specThread, create: true) { return e.ret }
        default: return err(EINVAL)
        }
        if v == 2, case .failure(let e) = t.specialKeyring(specProcess, create: true) { return e.ret }
        t.reqkeyDefault = v
        return Int(old)
    case 15:                                                            // KEYCTL_SET_TIMEOUT
        switch key(1, need: KeyPerm.setattr, allowDead: true) {
        case .failure(let e): return e.ret
        case .success(let k):
            if k.revoked { return err(EKEYREVOKED) }
            k.expiry = a.a2 == 0 ? nil : Kernel.now(CLOCK_REALTIME) / 1_000_000_000 + Int64(a.uint(2))
            return 0
        }
    case 16: return a.a1 == 0 ? 0 : err(EPERM)                          // KEYCTL_ASSUME_AUTHORITY
    case 17:                                                            // KEYCTL_GET_SECURITY: no LSM label
        switch key(1, need: KeyPerm.view, allowDead: true) { case .failure(let e): return e.ret; case .success: return copyOutIfRoom(t, [0], a.a2, a.a3) }
    case 18:                                                            // KEYCTL_SESSION_TO_PARENT
        guard let p = t.tg.parent, let pt = p.tasks.first(where: { !$0.exited }) else { return err(EPERM) }
        if p.tasks.contains(where: { $0.creds.uid != t.creds.uid }) { return err(EPERM) }
        pt.setSessionKeyring(t.sessionKeyringOrUser())
        return 0
    case 21:                                                            // KEYCTL_INVALIDATE
        switch key(1, need: KeyPerm.search, allowDead: true) {
        case .failure(let e): return e.ret
        case .success(let k): store.invalidate(k); return 0
        }
    case 30:                                                            // KEYCTL_MOVE
        if a.uint(4) & ~1 != 0 { return err(EINVAL) }
        let k: Key, from: Key, to: Key
        switch key(1, need: KeyPerm.link) { case .failure(let e): return e.ret; case .success(let x): k = x }
        switch key(2, need: KeyPerm.write) { case .failure(let e): return e.ret; case .success(let x): from = x }
        switch key(3, create: true, need: KeyPerm.write) { case .failure(let e): return e.ret; case .success(let x): to = x }
        if !from.isKeyring || !to.isKeyring { return err(ENOTDIR) }
        if !from.links.contains(where: { $0 === k }) { return err(ENOENT) }
        if a.uint(4) & 1 != 0 && to.links.contains(where: { $0.type == k.type && $0.description == k.description }) { return err(EEXIST) }
        store.hold(k)
        _ = store.unlink(k, from: from)
        store.link(k, into: to)
        store.release(k)
        return 0
    case 31:                                                            // KEYCTL_CAPABILITIES
        // CAPABILITIES, BIG_KEY, INVALIDATE, MOVE; no namespace or notification bits.
        let caps: [UInt8] = [0x01 | 0x10 | 0x20 | 0x80, 0]
        if a.a1 != 0 && a.a2 > 0 && !t.copyOut(a.a1, Array(caps.prefix(Int(min(a.a2, 2))))) { return err(EFAULT) }
        return caps.count
    default:
        return err(EOPNOTSUPP)   // persistent keyrings, Diffie-Hellman, public keys, restrictions, watches
    }
}

/// Whether keyring `from` links `to`, directly or through keyrings below it.
private func reaches(_ from: Key, _ to: Key) -> Bool {
    var seen = Set<Int32>()
    func walk(_ r: Key) -> Bool {
        if r === to { return true }
        if !r.isKeyring || !seen.insert(r.serial).inserted { return false }
        return r.links.contains { walk($0) }
    }
    return walk(from)
}

/// A serial or special id to its key, with no permission check (unlink's
/// key argument need only be found).
private func id2key(_ t: Task, _ id: Int32) -> Key? {
    if id < 0 { return try? t.specialKeyring(id, create: false).get() }
    return t.keyStore.keys[id]
}

/// The description- and security-style answer: the whole string is copied
/// only when it fits; its length is returned either way.
private func copyOutIfRoom(_ t: Task, _ s: [UInt8], _ buf: UInt64, _ len: UInt64) -> Int {
    if buf != 0 && len >= UInt64(s.count) && !t.copyOut(buf, s) { return err(EFAULT) }
    return s.count
}
