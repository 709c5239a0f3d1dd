// Kernel key management: request_key. The sandbox offers no keyrings
// (add_key and keyctl stay ENOSYS): every keyring a task could search is
// empty and nothing can construct a key (no /sbin/request-key upcall), so a
// well-formed request finds no key, ENOKEY, the answer Linux gives for a
// key that does not exist. The arguments are checked first as Linux checks
// them, so that a malformed request gets Linux's error rather than that.

import Glibc

func registerKeys(_ t: SyscallTable) {
    t[249] = sysRequestKey
}

/// Longest key type name with its NUL (Linux: char type[32]).
private let keyTypeSize = 32
/// Longest description and callout string, NUL included (KEY_MAX_DESC_SIZE, PAGE_SIZE).
private let keyDescSize = 4096

func sysRequestKey(_ t: Task, _ a: Args) -> Int {
    // The type: 1..31 bytes; a name starting with '.' is internal (EPERM).
    let (ty, typeTooLong) = t.copyInString(a.a0, max: keyTypeSize - 1)
    if typeTooLong { return err(EINVAL) }
    guard let type = ty else { return err(EFAULT) }
    if type.isEmpty { return err(EINVAL) }
    if type[0] == UInt8(ascii: ".") { return err(EPERM) }
    let (d, descTooLong) = t.copyInString(a.a1, max: keyDescSize - 1)
    if descTooLong { return err(EINVAL) }
    if d == nil { return err(EFAULT) }
    if a.a2 != 0 {
        let (c, calloutTooLong) = t.copyInString(a.a2, max: keyDescSize - 1)
        if calloutTooLong { return err(EINVAL) }
        if c == nil { return err(EFAULT) }
    }
    // The destination keyring: 0 (the default), a special keyring
    // (KEY_SPEC_THREAD_KEYRING -1 .. KEY_SPEC_REQUESTOR_KEYRING -8), or a
    // serial number, which names no key here.
    let dest = a.int(3)
    if dest > 0 { return err(ENOKEY) }
    if dest < -8 || dest == -6 { return err(EINVAL) }   // -6: group keyrings, which Linux has not either
    return err(ENOKEY)
}
