// IPC and UTS namespaces inside the sandbox (issue 15). Unlike pid
// namespaces (PidNamespaces.swift) they have no hierarchy and no numbering
// to fit: a namespace is an object (IPCNamespace in Syscalls/IPC.swift,
// UTSNamespace in Kernel.swift) a task points at (Task.ownIPC, ownUTS; nil
// for the sandbox's own, Kernel.ipc and rootUTS), inherited by clone and
// replaced by:
//   - clone, clone3 or unshare with CLONE_NEWIPC (CAP_SYS_ADMIN, as Linux):
//     an empty IPC namespace (SysV segments, semaphore sets, message queues
//     and POSIX message queues). unshare implies CLONE_SYSVSEM (the caller
//     leaves its semaphore undo list) and clone refuses CLONE_NEWIPC with
//     CLONE_SYSVSEM (EINVAL), as Linux does. A process's attached segments
//     stay attached after it moves (the attachment names its namespace:
//     Kernel.shmAttached), so shmdt, fork, exec and exit keep working on
//     them, while shmctl and shmat by id see the new namespace only.
//   - clone, clone3 or unshare with CLONE_NEWUTS: a copy of the caller's
//     host and domain name.
//   - setns(2) with an fd of /proc/PID/ns/ipc or uts, or a pidfd with
//     CLONE_NEWIPC / CLONE_NEWUTS (Syscalls/Process.swift): that namespace.
// A namespace lives while a task, a NamespaceFile or (IPC) an attachment
// refers to it; an IPC namespace's objects go with it, as Linux frees them
// when its last process leaves.
//
// Sysctls: Linux keeps kernel.msgmax, msgmnb, msgmni, sem, shmmax, shmall,
// shmmni, shm_rmid_forced, {shm,sem,msg}_next_id and fs.mqueue.* per IPC
// namespace, a new namespace starting from the defaults. Moat does the
// same: /proc/sys reads and writes the caller's namespace's values
// (IPCNamespace.sysctl, FSImpl/ProcSys.swift), and the limits the IPC calls
// honour are that namespace's. A configured value (OCI linux.sysctl, `moat
// run --sysctl`) sets the sandbox's own namespace only, as a runtime's
// sysctl applies to the container's namespace and not to ones made inside.
// kernel.hostname and domainname are the caller's UTS namespace's.
//
// /proc/PID/ns/ipc and uts read ipc:[N] and uts:[N]: the initial ones
// Linux's fixed inode numbers, the others numbers from newNamespaceInode.
// The nsfs ioctls on them: NS_GET_NSTYPE, NS_GET_USERNS (the one user
// namespace), NS_GET_PARENT EINVAL (no hierarchy, as Linux answers),
// NS_GET_OWNER_UID EINVAL (not a user namespace).

import Synchronization

/// Inode numbers of namespaces other than the initial ones, as Linux's
/// proc_alloc_inum hands out from 0xF0000000; below 0xF0001000 are the pid
/// namespaces' (PidNS.inode), which are numbered by index.
private let namespaceInodes = Mutex<UInt64>(0xF000_1000)

/// A fresh namespace inode number.
func newNamespaceInode() -> UInt64 {
    namespaceInodes.withLock { n in
        n += 1
        return n
    }
}

extension IPCNamespace {
    /// The per-namespace sysctls in /proc/sys order, with Linux's defaults
    /// and, for those Linux bounds, the range a write must be in.
    static let sysctlKeys: [(key: String, value: String, range: ClosedRange<Int>?)] = [
        ("kernel/msgmax", "8192", 0...Int(Int32.max)), ("kernel/msgmnb", "16384", 0...Int(Int32.max)),
        ("kernel/msgmni", "32000", 0...32768), ("kernel/sem", "32000\t1024000000\t500\t32000", nil),
        ("kernel/shmmax", "18446744073692774399", nil), ("kernel/shmall", "18446744073692774399", nil),
        ("kernel/shmmni", "4096", 0...32768), ("kernel/shm_rmid_forced", "0", 0...1),
        ("fs/mqueue/queues_max", "256", Int(Int32.min)...Int(Int32.max)),
        ("fs/mqueue/msg_max", "10", 1...65536), ("fs/mqueue/msg_default", "10", 1...65536),
        ("fs/mqueue/msgsize_max", "8192", 128...(16 << 20)), ("fs/mqueue/msgsize_default", "8192", 128...(16 << 20)),
    ]
    static let sysctlDefaults = Dictionary(uniqueKeysWithValues: sysctlKeys.map { ($0.key, $0.value) })
}
