// dnotify: fcntl(fd, F_NOTIFY, mask) on a directory, as fcntl(2) describes
// it: the process that asked gets SIGIO, or the F_SETSIG signal with si_fd
// set to the fd (si_code POLL_MSG), when an entry of the directory is
// accessed, modified, created, deleted, renamed within it or has its
// attributes changed, and when the directory's own attributes (or
// contents) change; without DN_MULTISHOT only once. Marks ride on the
// inotify hooks (Inotify.swift: InotifyRegistry.emit sees every event) and
// end when their process closes the fd, as Linux's dnotify_flush does.

import Glibc

let DN_ACCESS_: UInt32 = 0x1, DN_MODIFY_: UInt32 = 0x2, DN_CREATE_: UInt32 = 0x4, DN_DELETE_: UInt32 = 0x8
let DN_RENAME_: UInt32 = 0x10, DN_ATTRIB_: UInt32 = 0x20, DN_MULTISHOT_: UInt32 = 0x8000_0000
let F_NOTIFY_: Int32 = 1026

final class DnotifyMark {
    weak var file: FileDescription?
    var fd: Int32
    var mask: UInt32
    let owner: Int32 // tgid of the process that set it
    let inode: Inode
    init(file: FileDescription, fd: Int32, mask: UInt32, owner: Int32, inode: Inode) {
        self.file = file; self.fd = fd; self.mask = mask; self.owner = owner; self.inode = inode
    }
}

extension InotifyRegistry {
    /// The dnotify events an inotify event `mask` stands for.
    static func dnotifyBits(_ mask: UInt32) -> UInt32 {
        var d: UInt32 = 0
        if mask & IN_ACCESS_ != 0 { d |= DN_ACCESS_ }
        if mask & IN_MODIFY_ != 0 { d |= DN_MODIFY_ }
        if mask & (IN_CREATE_ | IN_MOVED_TO_) != 0 { d |= DN_CREATE_ }
        if mask & (IN_DELETE_ | IN_MOVED_FROM_) != 0 { d |= DN_DELETE_ }
        if mask & IN_ATTRIB_ != 0 { d |= DN_ATTRIB_ }
        return d
    }

    /// Signals the marks on directory `dir` that want any of `bits`.
    /// Requires: Kernel.mu held.
    func dnotify(_ dir: Inode, _ bits: UInt32) {
        guard bits != 0, let ms = dnotifyMarks[ObjectIdentifier(dir)], let k = Kernel.shared else { return }
        for m in ms where m.mask & bits != 0 {
            guard let f = m.file, f.refs > 0 else { removeDnotify(m); continue }
            let o = f.asyncOwner ?? AsyncOwner()
            let sig = o.signal != 0 ? o.signal : SIGIO
            var info = SigInfo(signo: sig)
            if o.signal != 0 {
                info.code = 3                                   // POLL_MSG
                info.pollBand = Int64(POLLIN | 0x40 | 0x400)    // POLLIN|POLLRDNORM|POLLMSG
                info.pollFD = m.fd
            } else {
                info.code = 0x80                                // SI_KERNEL
            }
            if m.mask & DN_MULTISHOT_ == 0 { removeDnotify(m) }
            if o.id != 0 { k.threadGroup(o.id)?.sendSignal(sig, info) }
        }
    }

    func removeDnotify(_ m: DnotifyMark) {
        let key = ObjectIdentifier(m.inode)
        guard var ms = dnotifyMarks[key], let i = ms.firstIndex(where: { $0 === m }) else { return }
        ms.remove(at: i)
        dnotifyMarks[key] = ms.isEmpty ? nil : ms
        count -= 1
    }

    /// Process `tgid` closed an fd of `f`: its marks through `f` end.
    func dnotifyFlush(_ f: FileDescription, tgid: Int32) {
        guard let ino = f.inode, let ms = dnotifyMarks[ObjectIdentifier(ino)] else { return }
        for m in ms where m.file === f && m.owner == tgid { removeDnotify(m) }
    }
}

/// fcntl(fd, F_NOTIFY, arg).
func sysDnotify(_ t: Task, _ f: FileDescription, fd: Int32, _ arg: UInt32) -> Int {
    let reg = t.kernel.inotify
    // No event bit: the caller's mark through this description ends.
    if arg & ~DN_MULTISHOT_ == 0 { reg.dnotifyFlush(f, tgid: t.tg.tgid); return 0 }
    guard let ino = f.inode, ino.isDir else { return err(ENOTDIR) }
    // The signal goes to the process that asked (Linux sets the owner).
    var o = f.asyncOwner ?? AsyncOwner()
    o.kind = .process; o.id = t.tg.tgid
    f.asyncOwner = o
    let key = ObjectIdentifier(ino)
    if let m = reg.dnotifyMarks[key]?.first(where: { $0.file === f && $0.owner == t.tg.tgid }) {
        m.mask |= arg
        m.fd = fd
        return 0
    }
    reg.dnotifyMarks[key, default: []].append(DnotifyMark(file: f, fd: fd, mask: arg, owner: t.tg.tgid, inode: ino))
    reg.count += 1
    return 0
}
