// landlock_create_ruleset(2), landlock_add_rule(2), landlock_restrict_self(2):
// the calls that build a Landlock ruleset and apply it (Kernel/LandlockDomain.swift
// holds the domain and its checks). Arguments are checked in Linux's order,
// which LTP's landlock01-03 pin: the flags first, then the attribute's
// address and size, then its contents.

import Glibc

/// A ruleset descriptor: anon_inode:[landlock-ruleset], read-write, with
/// neither read nor write (EINVAL, as Linux's ruleset file).
final class LandlockRulesetFD: FileDescription {
    let ruleset: LandlockRuleset
    init(_ r: LandlockRuleset) {
        ruleset = r
        super.init(flags: O_RDWR, path: nil)
    }
    override var seekable: Bool { false }
    override func seek(_ off: Int64, _ whence: Int32) -> Int { err(ESPIPE) }
    override func stat() -> Result<Stat, Errno> {
        var s = Stat(); s.mode = 0o600; s.dev = 13; s.ino = 1
        return .success(s)
    }
    override func linkName(_ k: Kernel) -> [UInt8] { Array("anon_inode:[landlock-ruleset]".utf8) }
}

func registerLandlock(_ t: SyscallTable) {
    t[444] = sysLandlockCreateRuleset
    t[445] = sysLandlockAddRule
    t[446] = sysLandlockRestrictSelf
}

private let LANDLOCK_CREATE_RULESET_VERSION: UInt32 = 1
private let LANDLOCK_RULE_PATH_BENEATH: Int32 = 1, LANDLOCK_RULE_NET_PORT: Int32 = 2
/// struct landlock_ruleset_attr as of ABI 6: handled_access_fs,
/// handled_access_net, scoped (u64 each); the first alone is the smallest
/// a caller may pass.
private let rulesetAttrSize = 24, rulesetAttrMinSize = 8

/// landlock_create_ruleset(attr, size, flags).
func sysLandlockCreateRuleset(_ t: Task, _ a: Args) -> Int {
    let attr = a.a0, size = Int(clamping: a.a1), flags = a.uint(2)     // a size_t: past Int.max is E2BIG below
    if flags != 0 {
        if flags == LANDLOCK_CREATE_RULESET_VERSION && attr == 0 && size == 0 { return Landlock.abiVersion }
        return err(EINVAL)
    }
    if attr == 0 { return err(EFAULT) }
    if size < rulesetAttrMinSize { return err(EINVAL) }
    if size > 4096 { return err(E2BIG) }
    // A bigger struct than Moat knows is fine if the rest is zero (E2BIG
    // otherwise); a smaller one reads as zeros past its end.
    guard var b = t.copyIn(attr, size) else { return err(EFAULT) }
    if size > rulesetAttrSize {
        if b[rulesetAttrSize...].contains(where: { $0 != 0 }) { return err(E2BIG) }
        b.removeLast(size - rulesetAttrSize)
    }
    b += [UInt8](repeating: 0, count: rulesetAttrSize - b.count)
    let fs = get64(b, 0), net = get64(b, 8), scoped = get64(b, 16)
    if fs & ~Landlock.fsAll != 0 || net & ~Landlock.netAll != 0 || scoped & ~Landlock.scopeAll != 0 { return err(EINVAL) }
    if fs == 0 && net == 0 && scoped == 0 { return err(ENOMSG) }
    let f = LandlockRulesetFD(LandlockRuleset(handledFS: fs, handledNet: net, scoped: scoped))
    let fd = t.fds.install(f, cloexec: true, limit: fdLimit(t))
    if fd < 0 { f.release() }
    return fd
}

/// The ruleset behind `fd`: EBADF for no descriptor (or an O_PATH one),
/// EBADFD for another kind of file.
private func rulesetOf(_ t: Task, _ fd: Int32) -> Result<LandlockRuleset, Errno> {
    guard let f = t.fds.getIO(fd) else { return .failure(Errno(EBADF)) }
    guard let r = f as? LandlockRulesetFD else { return .failure(Errno(EBADFD)) }
    return .success(r.ruleset)
}

/// landlock_add_rule(ruleset_fd, rule_type, rule_attr, flags).
func sysLandlockAddRule(_ t: Task, _ a: Args) -> Int {
    if a.uint(3) != 0 { return err(EINVAL) }
    let r: LandlockRuleset
    switch rulesetOf(t, a.int(0)) { case .success(let x): r = x; case .failure(let e): return e.ret }
    switch a.int(1) {
    case LANDLOCK_RULE_PATH_BENEATH:
        // struct landlock_path_beneath_attr (packed): allowed_access u64, parent_fd s32.
        guard let b = t.copyIn(a.a2, 12) else { return err(EFAULT) }
        let access = get64(b, 0), parent = Int32(bitPattern: get32(b, 8))
        if access == 0 { return err(ENOMSG) }
        if access & ~r.handledFS != 0 { return err(EINVAL) }
        guard let f = t.fds.get(parent) else { return err(EBADF) }
        // A ruleset, a pipe, a socket or another file with no place in a
        // mounted tree cannot anchor a rule.
        guard let p = f.path, !(f is LandlockRulesetFD) else { return err(EBADFD) }
        if !p.inode.isDir && access & ~Landlock.fileRights != 0 { return err(EINVAL) }
        r.addFSRule(p.inode, access)
        return 0
    case LANDLOCK_RULE_NET_PORT:
        // struct landlock_net_port_attr: allowed_access u64, port u64.
        guard let b = t.copyIn(a.a2, 16) else { return err(EFAULT) }
        let access = get64(b, 0), port = get64(b, 8)
        if access == 0 { return err(ENOMSG) }
        if access & ~r.handledNet != 0 { return err(EINVAL) }
        if port > 65535 { return err(EINVAL) }
        r.netRules[UInt16(port), default: 0] |= access
        return 0
    default:
        return err(EINVAL)
    }
}

/// landlock_restrict_self(ruleset_fd, flags): a new layer on the calling
/// thread's domain (no other thread's), for a thread with no_new_privs or
/// CAP_SYS_ADMIN.
func sysLandlockRestrictSelf(_ t: Task, _ a: Args) -> Int {
    if a.uint(1) != 0 { return err(EINVAL) }
    if !t.creds.noNewPrivs && !t.creds.has(Cap.sysAdmin) { return err(EPERM) }
    let r: LandlockRuleset
    switch rulesetOf(t, a.int(0)) { case .success(let x): r = x; case .failure(let e): return e.ret }
    let old = t.creds.landlock?.layers ?? []
    if old.count >= Landlock.maxLayers { return err(E2BIG) }
    t.creds.landlock = LandlockDomain(old + [LandlockLayer(r)])
    return 0
}
