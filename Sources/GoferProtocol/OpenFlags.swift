// Which open(2) flags may cross the wire, checked identically by the client
// (to fail fast) and the server (because it trusts nothing).

import Glibc

public enum GoferOpenFlags {
    /// The kernel's O_LARGEFILE bit. 64-bit glibc defines O_LARGEFILE as 0, but
    /// a guest may still pass the kernel value; it is accepted and ignored.
    #if arch(x86_64)
    public static let kernelLargeFile: Int32 = 0o100000
    #else
    public static let kernelLargeFile: Int32 = 0o400000
    #endif

    /// Flags that are accepted and then ignored because the Gofer always
    /// applies its own choice (O_NOFOLLOW and O_CLOEXEC always, O_NOCTTY always).
    public static let ignored: Int32 = O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | kernelLargeFile

    /// Flags `open` passes through to the host.
    public static let openPassThrough: Int32 = O_ACCMODE | O_TRUNC | O_APPEND | O_DIRECTORY | O_NONBLOCK | O_DSYNC | O_SYNC

    /// Flags `create` passes through to the host (O_CREAT|O_EXCL are implied).
    public static let createPassThrough: Int32 = O_ACCMODE | O_TRUNC | O_APPEND | O_NONBLOCK | O_DSYNC | O_SYNC

    /// 0 if `flags` is acceptable for `open`, else EINVAL.
    public static func validateOpen(_ flags: Int32) -> Int32 {
        if flags & O_ACCMODE == O_ACCMODE { return EINVAL }
        if flags & ~(openPassThrough | ignored) != 0 { return EINVAL }
        return 0
    }

    /// 0 if `flags` is acceptable for `create`, else EINVAL.
    public static func validateCreate(_ flags: Int32) -> Int32 {
        if flags & O_ACCMODE == O_ACCMODE { return EINVAL }
        if flags & ~(createPassThrough | ignored | O_CREAT | O_EXCL) != 0 { return EINVAL }
        return 0
    }

    /// 0 if `flags` is acceptable for `tmpfile`, else EINVAL: write access
    /// (as open(2) demands with O_TMPFILE), optionally O_EXCL and what
    /// `create` passes through. The O_TMPFILE bits themselves are implied.
    public static func validateTmpfile(_ flags: Int32) -> Int32 {
        let acc = flags & O_ACCMODE
        if acc != O_WRONLY && acc != O_RDWR { return EINVAL }
        if flags & ~(createPassThrough | ignored | O_EXCL) != 0 { return EINVAL }
        return 0
    }

    /// True if `flags` asks for write access or truncation.
    public static func wantsWrite(_ flags: Int32) -> Bool {
        let acc = flags & O_ACCMODE
        return acc == O_WRONLY || acc == O_RDWR || flags & O_TRUNC != 0
    }
}
