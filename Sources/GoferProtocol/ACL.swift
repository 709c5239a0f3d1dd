// POSIX ACL values as they cross the wire (getacl/setacl, Wire.swift): the
// xattr format of system.posix_acl_access/_default, a u32 version (2) and
// then 8-byte entries {u16 tag, u16 perm, u32 id}, little-endian.
//
// The Gofer checks every value the Sentry asks it to set with `validate`
// before the host sees it, even though the Sentry checked it already: the
// Gofer does not trust the Sentry, and a value the host kernel would refuse
// anyway must still not depend on the host's checks being as strict as
// Linux's. The rules are Linux's (posix_acl_from_xattr, posix_acl_valid).

/// Which ACL of a file a getacl/setacl request names.
public enum GoferACLKind: UInt8, Sendable {
    /// system.posix_acl_access
    case access = 0
    /// system.posix_acl_default (directories only)
    case `default` = 1

    /// The host xattr name.
    public var xattrName: String {
        self == .access ? "system.posix_acl_access" : "system.posix_acl_default"
    }
}

public enum GoferACL {
    public static let version: UInt32 = 2
    public static let userObj: UInt16 = 0x01, user: UInt16 = 0x02, groupObj: UInt16 = 0x04
    public static let group: UInt16 = 0x08, mask: UInt16 = 0x10, other: UInt16 = 0x20
    /// ACL_UNDEFINED_ID: the id of a base entry, never a named one's.
    public static let undefinedID: UInt32 = 0xffff_ffff

    /// 0 if `value` is a complete, valid ACL (at least the three base
    /// entries), else EINVAL: a short or partial value, another version, an
    /// unknown tag, a permission outside rwx, entries out of order or
    /// repeated, a named entry without a mask or with the undefined id.
    public static func validate(_ value: [UInt8]) -> Int32 {
        let EINVAL: Int32 = 22
        let n = value.count
        guard n >= 4 + 3 * 8, (n - 4) % 8 == 0, n <= 4 + 8 * 8192 else { return EINVAL }
        func u16(_ o: Int) -> UInt16 { UInt16(value[o]) | UInt16(value[o + 1]) << 8 }
        func u32(_ o: Int) -> UInt32 { UInt32(u16(o)) | UInt32(u16(o + 2)) << 16 }
        guard u32(0) == version else { return EINVAL }
        // States: 0 want USER_OBJ, 1 in USER, 2 in GROUP, 3 want OTHER, 4 done.
        var state = 0, named = false
        for o in stride(from: 4, to: n, by: 8) {
            let tag = u16(o), perm = u16(o + 2), id = u32(o + 4)
            if perm & ~7 != 0 { return EINVAL }
            switch tag {
            case userObj: guard state == 0 else { return EINVAL }; state = 1
            case user: guard state == 1, id != undefinedID else { return EINVAL }; named = true
            case groupObj: guard state == 1 else { return EINVAL }; state = 2
            case group: guard state == 2, id != undefinedID else { return EINVAL }; named = true
            case mask: guard state == 2 else { return EINVAL }; state = 3
            case other:
                guard state == 3 || (state == 2 && !named) else { return EINVAL }
                state = 4
            default: return EINVAL
            }
        }
        return state == 4 ? 0 : EINVAL
    }
}
