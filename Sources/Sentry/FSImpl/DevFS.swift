// devfs: a tmpfs directory holding emulated character devices.

import CMoat
import Glibc

enum DeviceKind {
    case null, zero, full, random, tty, console

    /// The character devices the Sentry emulates, by (major << 8 | minor):
    /// mem's null, zero, full, random and urandom, and /dev/tty.
    static let emulated: [UInt64: DeviceKind] = [0x103: .null, 0x105: .zero, 0x107: .full, 0x108: .random, 0x109: .random, 0x500: .tty]
}

/// Opens a device node that a program made with mknod (in a Sentry tmpfs):
/// a character node with the number of an emulated device is that device;
/// any other number, and every block node, is a device the sandbox does not
/// have (Linux without the driver: ENXIO).
func openDeviceNode(_ t: Task, _ node: Inode, flags: Int32) -> Result<FileDescription, Errno> {
    let r = node.rdev
    let major = (r >> 8) & 0xfff, minor = (r & 0xff) | ((r >> 12) & 0xfff00)
    guard node.mode & S_IFMT_ == S_IFCHR_, let kind = DeviceKind.emulated[major << 8 | minor] else { return .failure(Errno(ENXIO)) }
    return DeviceInode(kind: kind, major: major, minor: minor, dev: node.dev).open(t, flags: flags)
}

/// The identity of /dev/console (5,1) in the sandbox's devfs (always device
/// 5). The sandbox's own terminal (a host tty it inherited) presents itself
/// as this node, so that ttyname() finds it: /proc/self/fd/N names
/// /dev/console, and fstat of the fd matches stat of that path.
enum ConsoleNode {
    static let dev: UInt64 = 5
    static let ino: UInt64 = 0x1000 + 5 * 256 + 1
    static let rdev: UInt64 = (5 << 8) | 1
}

final class DeviceInode: Inode {
    let kind: DeviceKind
    init(kind: DeviceKind, major: UInt64, minor: UInt64, dev: UInt64) {
        self.kind = kind
        super.init(ino: 0x1000 + major * 256 + minor, mode: S_IFCHR_ | 0o666, dev: dev)
        rdev = (major << 8) | minor
    }
    override func open(_ t: Task, flags: Int32) -> Result<FileDescription, Errno> {
        if kind == .tty || kind == .console {
            // /dev/tty: the controlling terminal, a pty of the caller's
            // session, or else the launcher's terminal. /dev/console: the
            // sandbox's terminal (what the launcher or the OCI console
            // socket gave it), as runtimes bind the container's pty there.
            if kind == .tty, let p = t.kernel.ptys.ptys.values.first(where: { $0.sid == t.tg.sid && $0.sid != 0 }) {
                return .success(PtySlaveFD(pty: p, flags: flags))
            }
            for fd in Int32(0)...2 {
                if let f = t.fds.get(fd) as? HostFileFD, f.isTTY {
                    let d = dup(f.fd)
                    if d < 0 { return .failure(Errno(errno)) }
                    return .success(HostFileFD(fd: d, flags: flags, path: nil))
                }
            }
            return .failure(Errno(ENXIO))
        }
        return .success(DeviceFD(kind: kind, flags: flags))
    }
}

final class DeviceFD: FileDescription {
    let kind: DeviceKind
    init(kind: DeviceKind, flags: Int32) { self.kind = kind; super.init(flags: flags, path: nil) }

    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        switch kind {
        case .null: return 0
        case .zero, .full:
            var done = 0
            for i in 0..<min(count, t.scratch.count) { t.scratch[i] = 0 }
            while done < count {
                let n = min(count - done, t.scratch.count)
                if !t.scratch.withUnsafeBytes({ t.copyOut(buf &+ UInt64(done), $0.baseAddress!, n) }) { return done > 0 ? done : err(EFAULT) }
                done += n
            }
            return done
        case .random:
            let n = min(count, t.scratch.count)
            let r = t.scratch.withUnsafeMutableBytes { getrandom($0.baseAddress!, n, 0) }
            if r < 0 { return err(errno) }
            return t.scratch.withUnsafeBytes { t.copyOut(buf, $0.baseAddress!, r) } ? r : err(EFAULT)
        case .tty, .console: return err(EIO)
        }
    }
    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        switch kind {
        case .full: return err(ENOSPC)
        default: return count
        }
    }
    override func seek(_ off: Int64, _ whence: Int32) -> Int { 0 }

    /// /dev/random and /dev/urandom's ioctls: RNDGETENTCNT tells a full
    /// pool (the host's getrandom serves reads); the ones that feed or
    /// clear the pool need CAP_SYS_ADMIN and change nothing here.
    override func ioctl(_ t: Task, _ cmd: UInt64, _ arg: UInt64) -> Int {
        guard kind == .random else { return err(ENOTTY) }
        switch cmd {
        case 0x8004_5200: return t.writeI32(arg, 256) ? 0 : err(EFAULT)              // RNDGETENTCNT
        case 0x4004_5201, 0x4008_5203, 0x5204, 0x5206, 0x5207:                     // RNDADDTOENTCNT ... RNDRESEEDCRNG
            return t.creds.has(Cap.sysAdmin) ? 0 : err(EPERM)
        default: return err(ENOTTY)
        }
    }
}

func makeDevFS(dev: UInt64) -> TmpfsInode {
    let root = TmpfsInode(mode: S_IFDIR_ | 0o755, dev: dev)
    func add(_ n: String, _ i: Inode) {
        root.entries[Array(n.utf8)] = i
        root.order.append(Array(n.utf8))
    }
    add("null", DeviceInode(kind: .null, major: 1, minor: 3, dev: dev))
    add("zero", DeviceInode(kind: .zero, major: 1, minor: 5, dev: dev))
    add("full", DeviceInode(kind: .full, major: 1, minor: 7, dev: dev))
    add("random", DeviceInode(kind: .random, major: 1, minor: 8, dev: dev))
    add("urandom", DeviceInode(kind: .random, major: 1, minor: 9, dev: dev))
    add("tty", DeviceInode(kind: .tty, major: 5, minor: 0, dev: dev))
    add("console", DeviceInode(kind: .console, major: 5, minor: 1, dev: ConsoleNode.dev))
    for (n, target) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")] {
        let l = TmpfsInode(mode: S_IFLNK_ | 0o777, dev: dev)
        l.target = Array(target.utf8)
        add(n, l)
    }
    add("shm", TmpfsInode(mode: S_IFDIR_ | 0o1777, dev: dev))
    if let k = Kernel.shared {
        add("ptmx", PtmxInode(kernel: k, dev: dev))
        add("pts", DevPtsInode(kernel: k, dev: 9))
    } else {
        add("pts", TmpfsInode(mode: S_IFDIR_ | 0o755, dev: dev))
    }
    return root
}
