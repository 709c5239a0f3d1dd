// Pseudo-terminals: /dev/ptmx and /dev/pts, emulated in the Sentry.
//
// A pair is a master (what a terminal emulator or `script` holds) and a
// slave (the program's terminal). Between them sits a line discipline with
// what programs rely on: canonical mode with erase/kill/EOF, echo, CR/NL
// translation on input, NL to CR-NL on output, and the signal characters
// (INTR, QUIT, SUSP) sent to the terminal's foreground process group.
// Nothing here touches a host terminal.

import CMoat
import Glibc

/// struct termios as the kernel has it (36 bytes on x86_64).
struct Termios {
    var iflag: UInt32 = 0x500          // ICRNL | IXON
    var oflag: UInt32 = 0x5            // OPOST | ONLCR
    var cflag: UInt32 = 0xbf           // B38400 | CS8 | CREAD
    var lflag: UInt32 = 0x8a3b         // ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN
    var line: UInt8 = 0
    var cc: [UInt8] = [3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0]

    static let ICRNL: UInt32 = 0x100, INLCR: UInt32 = 0x40, IGNCR: UInt32 = 0x80
    static let OPOST: UInt32 = 0x1, ONLCR: UInt32 = 0x4
    static let ISIG: UInt32 = 0x1, ICANON: UInt32 = 0x2, ECHO: UInt32 = 0x8, ECHOE: UInt32 = 0x10, ECHONL: UInt32 = 0x40
    static let VINTR = 0, VQUIT = 1, VERASE = 2, VKILL = 3, VEOF = 4, VSUSP = 10

    func bytes() -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 36)
        put32(&b, 0, Int32(bitPattern: iflag)); put32(&b, 4, Int32(bitPattern: oflag))
        put32(&b, 8, Int32(bitPattern: cflag)); put32(&b, 12, Int32(bitPattern: lflag))
        b[16] = line
        for i in 0..<19 { b[17 + i] = cc[i] }
        return b
    }
    init() {}
    init(_ b: [UInt8]) {
        iflag = get32(b, 0); oflag = get32(b, 4)
        cflag = get32(b, 8); lflag = get32(b, 12)
        line = b[16]
        cc = Array(b[17..<36])
    }
}

final class Pty {
    let index: Int
    var termios = Termios()
    var winsize = [UInt8](repeating: 0, count: 8)
    var locked = true
    /// Bytes the slave can read (input after the line discipline).
    var input: [UInt8] = []
    /// In canonical mode: the line being edited, not yet readable.
    var editing: [UInt8] = []
    /// EOF markers (VEOF on an empty line): a read returns 0 for each.
    var pendingEOFs = 0
    /// Bytes the master can read (the slave's output, and echo).
    var output: [UInt8] = []
    var masterOpen = true
    var slaveOpens = 0
    var slaveEverOpened = false
    var waiters = WaitQueue()
    /// The session this is the controlling terminal of, and its foreground group.
    var sid: Int32 = 0
    var fgPgid: Int32 = 0
    unowned let kernel: Kernel

    init(kernel: Kernel, index: Int) { self.kernel = kernel; self.index = index }

    func notify() { waiters.notifyAll() }

    var canonical: Bool { termios.lflag & Termios.ICANON != 0 }

    /// What each direction holds at most before a writer waits (or gets
    /// EAGAIN): Linux bounds a pty's buffers too, and a terminal nobody
    /// reads must not grow without end (gVisor's pty FillUntilBlocked wrote
    /// for ever).
    static let bufferLimit = 65536
    var inputHeld: Int { input.count + editing.count }

    /// Writes `count` bytes at `buf` into the direction holding `held()`,
    /// piece by piece as its reader makes room; a write interrupted or made
    /// non-blocking after some bytes returns their count.
    func boundedWrite(_ t: Task, _ buf: UInt64, _ count: Int, nonblocking: Bool, held: () -> Int,
                      open: () -> Bool, put: ([UInt8]) -> Void) -> Int {
        var done = 0
        while done < count {
            while held() >= Pty.bufferLimit {
                if !open() { return done > 0 ? done : err(EIO) }
                if nonblocking { return done > 0 ? done : err(EAGAIN) }
                waiters.add(t)
                let r = t.block(deadline: nil)
                waiters.remove(t)
                if r == .interrupted && held() >= Pty.bufferLimit { return done > 0 ? done : -ERESTARTSYS }
            }
            if !open() { return done > 0 ? done : err(EIO) }
            let n = min(count - done, Pty.bufferLimit - held())
            guard let b = t.copyIn(buf + UInt64(done), n) else { return done > 0 ? done : err(EFAULT) }
            put(b)
            done += n
        }
        return done
    }

    /// Bytes written to the master: through the input side of the discipline.
    func receive(_ bytes: [UInt8]) {
        let t = termios
        for var c in bytes {
            if c == 13 && t.iflag & Termios.IGNCR != 0 { continue }
            if c == 13 && t.iflag & Termios.ICRNL != 0 { c = 10 } else if c == 10 && t.iflag & Termios.INLCR != 0 { c = 13 }
            if t.lflag & Termios.ISIG != 0 {
                var sig: Int32 = 0
                if c == t.cc[Termios.VINTR] && c != 0 { sig = SIGINT }
                else if c == t.cc[Termios.VQUIT] && c != 0 { sig = SIGQUIT }
                else if c == t.cc[Termios.VSUSP] && c != 0 { sig = SIGTSTP }
                if sig != 0 {
                    editing.removeAll()
                    if t.lflag & Termios.ECHO != 0 { echoControl(c); }
                    signalForeground(sig)
                    continue
                }
            }
            if canonical {
                if c == t.cc[Termios.VERASE] && c != 0 {
                    if !editing.isEmpty {
                        editing.removeLast()
                        if t.lflag & Termios.ECHO != 0 && t.lflag & Termios.ECHOE != 0 { emit([8, 32, 8]) }
                    }
                    continue
                }
                if c == t.cc[Termios.VKILL] && c != 0 {
                    let n = editing.count
                    editing.removeAll()
                    if t.lflag & Termios.ECHO != 0 { for _ in 0..<n { emit([8, 32, 8]) } }
                    continue
                }
                if c == t.cc[Termios.VEOF] && c != 0 {
                    if editing.isEmpty { pendingEOFs += 1 } else { input += editing; editing.removeAll() }
                    continue
                }
                editing.append(c)
                if t.lflag & Termios.ECHO != 0 || (c == 10 && t.lflag & Termios.ECHONL != 0) { echo(c) }
                if c == 10 { input += editing; editing.removeAll() }
            } else {
                input.append(c)
                if t.lflag & Termios.ECHO != 0 { echo(c) }
            }
        }
        notify()
    }

    private func echo(_ c: UInt8) {
        if c < 32 && c != 10 && c != 9 { echoControl(c) } else { emit([c]) }
    }
    private func echoControl(_ c: UInt8) { emit([94, c ^ 0x40]) }   // ^C and friends

    /// Bytes the slave wrote: through the output side to the master.
    func emit(_ bytes: [UInt8]) {
        if termios.oflag & Termios.OPOST != 0 && termios.oflag & Termios.ONLCR != 0 {
            for c in bytes { if c == 10 { output += [13, 10] } else { output.append(c) } }
        } else {
            output += bytes
        }
        notify()
    }

    func signalForeground(_ sig: Int32) {
        let pg = fgPgid
        guard pg > 0 else { return }
        for tg in kernel.threadGroups.values where tg.pgid == pg && !tg.reaped {
            tg.sendSignal(sig, SigInfo(signo: sig))
        }
    }

    /// Opening the slave makes it the controlling terminal of a session
    /// leader's session that has none yet, unless O_NOCTTY.
    func adoptAsControllingTerminal(_ t: Task, flags: Int32) {
        if flags & O_NOCTTY == 0 && t.tg.sid == t.tg.tgid && sid == 0 {
            sid = t.tg.sid
            fgPgid = t.tg.pgid
        }
    }

    /// What the slave may read now: a whole line in canonical mode.
    var slaveReadable: Bool { !input.isEmpty || pendingEOFs > 0 || !masterOpen }

    /// TCSETS* and TCSETA*: new settings, the input flushed first for the
    /// F variants; a line being edited becomes input when canonical mode ends.
    private func setTermios(_ n: Termios, flushInput: Bool) {
        let wasCanonical = canonical
        termios = n
        if flushInput { input.removeAll(); editing.removeAll(); pendingEOFs = 0 }
        if wasCanonical && !canonical { input += editing; editing.removeAll() }
        notify()
    }

    func ioctl(_ t: Task, _ cmd: UInt64, _ arg: UInt64, master: Bool) -> Int {
        switch cmd {
        case 0x5401: return t.copyOut(arg, termios.bytes()) ? 0 : err(EFAULT)            // TCGETS
        case 0x5402, 0x5403, 0x5404:                                                     // TCSETS, TCSETSW, TCSETSF
            guard let b = t.copyIn(arg, 36) else { return err(EFAULT) }
            setTermios(Termios(b), flushInput: cmd == 0x5404)
            return 0
        case 0x5405:                                                                     // TCGETA: struct termio
            var b = [UInt8](repeating: 0, count: 18)
            for (i, f) in [termios.iflag, termios.oflag, termios.cflag, termios.lflag].enumerated() {
                b[i * 2] = UInt8(f & 0xff); b[i * 2 + 1] = UInt8(f >> 8 & 0xff)
            }
            b[8] = termios.line
            for i in 0..<8 { b[9 + i] = termios.cc[i] }
            return t.copyOut(arg, b) ? 0 : err(EFAULT)
        case 0x5406, 0x5407, 0x5408:                                                     // TCSETA, TCSETAW, TCSETAF
            // The old struct termio sets the low 16 bits of each flag word,
            // the line discipline and the first 8 control characters.
            guard let b = t.copyIn(arg, 18) else { return err(EFAULT) }
            var n = termios
            func low(_ old: UInt32, _ i: Int) -> UInt32 { old & 0xffff_0000 | UInt32(b[i * 2]) | UInt32(b[i * 2 + 1]) << 8 }
            n.iflag = low(n.iflag, 0); n.oflag = low(n.oflag, 1); n.cflag = low(n.cflag, 2); n.lflag = low(n.lflag, 3)
            n.line = b[8]
            for i in 0..<8 { n.cc[i] = b[9 + i] }
            setTermios(n, flushInput: cmd == 0x5408)
            return 0
        case 0x5413: return t.copyOut(arg, winsize) ? 0 : err(EFAULT)                  // TIOCGWINSZ
        case 0x5414:                                                                     // TIOCSWINSZ
            guard let b = t.copyIn(arg, 8) else { return err(EFAULT) }
            if b != winsize { winsize = b; signalForeground(SIGWINCH) }
            return 0
        case 0x541B:                                                                     // FIONREAD
            let n = master ? output.count : input.count
            return t.writeI32(arg, Int32(n)) ? 0 : err(EFAULT)
        case 0x540F:                                                                     // TIOCGPGRP
            if !master && sid != t.tg.sid { return err(ENOTTY) }
            return t.writeI32(arg, t.vpid(fgPgid)) ? 0 : err(EFAULT)
        case 0x5410:                                                                     // TIOCSPGRP
            guard let local = t.readI32(arg) else { return err(EFAULT) }
            if !master && sid != t.tg.sid { return err(ENOTTY) }
            if local < 0 { return err(EINVAL) }
            let p = t.gpid(local)
            if !kernel.threadGroups.values.contains(where: { $0.pgid == p && $0.sid == t.tg.sid }) { return err(EPERM) }
            fgPgid = p
            return 0
        case 0x5429:                                                                     // TIOCGSID
            if sid == 0 { return err(ENOTTY) }
            return t.writeI32(arg, t.vpid(sid)) ? 0 : err(EFAULT)
        case 0x540E:                                                                     // TIOCSCTTY
            if t.tg.sid != t.tg.tgid { return err(EPERM) }                              // only a session leader
            if sid != 0 && sid != t.tg.sid && arg != 1 { return err(EPERM) }
            sid = t.tg.sid
            fgPgid = t.tg.pgid
            return 0
        case 0x5422:                                                                     // TIOCNOTTY
            // Only through the caller's controlling terminal (never its
            // master). A session leader letting it go sends its foreground
            // group SIGHUP then SIGCONT (Linux's disassociate_ctty: a child
            // waiting for them waited for ever).
            if master || sid == 0 || sid != t.tg.sid { return err(ENOTTY) }
            if t.tg.tgid != t.tg.sid { return 0 }
            let fg = fgPgid
            sid = 0; fgPgid = 0
            if fg != 0 {
                var info = SigInfo(signo: SIGHUP)
                info.code = 0x80                                                         // SI_KERNEL
                let group = kernel.threadGroups.values.filter { $0.pgid == fg && !$0.reaped }
                for g in group { g.sendSignal(SIGHUP, info) }
                info.signo = SIGCONT
                for g in group { g.sendSignal(SIGCONT, info) }
            }
            return 0
        case 0x540B:                                                                     // TCFLSH
            if arg == 0 || arg == 2 { input.removeAll(); editing.removeAll() }
            if arg == 1 || arg == 2 { output.removeAll() }
            notify()
            return 0
        case 0x5409, 0x540A: return 0                                                    // TCSBRK, TCXONC
        case 0x80045430:                                                                 // TIOCGPTN
            return master ? (t.writeI32(arg, Int32(index)) ? 0 : err(EFAULT)) : err(ENOTTY)
        case 0x40045431:                                                                 // TIOCSPTLCK
            guard master, let v = t.readI32(arg) else { return err(master ? EFAULT : ENOTTY) }
            locked = v != 0
            return 0
        case 0x80045439:                                                                 // TIOCGPTLCK
            return master ? (t.writeI32(arg, locked ? 1 : 0) ? 0 : err(EFAULT)) : err(ENOTTY)
        default:
            return err(ENOTTY)
        }
    }
}

/// The kernel's pseudo-terminals, by index.
final class PtyTable {
    var ptys: [Int: Pty] = [:]
    func allocate(_ k: Kernel) -> Pty {
        var i = 0
        while ptys[i] != nil { i += 1 }
        let p = Pty(kernel: k, index: i)
        ptys[i] = p
        return p
    }
}

final class PtyMasterFD: FileDescription {
    let pty: Pty
    init(pty: Pty, flags: Int32) { self.pty = pty; super.init(flags: flags, path: nil) }
    override var seekable: Bool { false }
    override func seek(_ off: Int64, _ whence: Int32) -> Int { err(ESPIPE) }

    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if count == 0 { return 0 }
        while pty.output.isEmpty {
            // Once the slave was opened and every slave is closed: EIO.
            if pty.slaveEverOpened && pty.slaveOpens == 0 { return err(EIO) }
            if nonblocking { return err(EAGAIN) }
            pty.waiters.add(t)
            let r = t.block(deadline: nil)
            pty.waiters.remove(t)
            if r == .interrupted && pty.output.isEmpty { return -ERESTARTSYS }
        }
        let n = min(count, pty.output.count)
        if !t.copyOut(buf, Array(pty.output[0..<n])) { return err(EFAULT) }
        pty.output.removeFirst(n)
        pty.notify()
        return n
    }
    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        let pty = pty
        return pty.boundedWrite(t, buf, count, nonblocking: nonblocking, held: { pty.inputHeld }, open: { true }, put: { pty.receive($0) })
    }
    override func ioctl(_ t: Task, _ cmd: UInt64, _ arg: UInt64) -> Int {
        if cmd == 0x5441 {                                                               // TIOCGPTPEER
            return openSlave(t, pty, flags: Int32(truncatingIfNeeded: arg))
        }
        return pty.ioctl(t, cmd, arg, master: true)
    }
    override func readiness() -> Int16 {
        var r: Int32 = pty.inputHeld < Pty.bufferLimit ? pollWritable : 0
        if !pty.output.isEmpty { r |= pollReadable }
        if pty.slaveEverOpened && pty.slaveOpens == 0 { r |= POLLHUP }
        return Int16(r)
    }
    override func addWaiter(_ t: Waiter) { pty.waiters.add(t) }
    override func wakeups() -> UInt64 { pty.waiters.wakeups }
    override func registerAsync() -> Bool { pty.waiters.addAsync(self); return true }
    override func removeWaiter(_ t: Waiter) { pty.waiters.remove(t) }
    override func stat() -> Result<Stat, Errno> {
        var s = Stat(); s.mode = S_IFCHR_ | 0o666; s.rdev = (5 << 8) | 2; s.blksize = 1024; s.ino = 2; s.dev = 5
        return .success(s)
    }
    override func release() {
        pty.masterOpen = false
        if pty.sid != 0 {
            for tg in pty.kernel.threadGroups.values where tg.sid == pty.sid && tg.tgid == tg.sid && !tg.reaped {
                tg.sendSignal(SIGHUP, SigInfo(signo: SIGHUP))
            }
        }
        pty.kernel.ptys.ptys[pty.index] = nil
        pty.notify()
    }
    override func linkName(_ k: Kernel) -> [UInt8] { Array("/dev/ptmx".utf8) }
}

final class PtySlaveFD: FileDescription {
    let pty: Pty
    init(pty: Pty, flags: Int32) {
        self.pty = pty
        super.init(flags: flags, path: nil)
        pty.slaveOpens += 1
        pty.slaveEverOpened = true
    }
    override var seekable: Bool { false }
    override func seek(_ off: Int64, _ whence: Int32) -> Int { err(ESPIPE) }

    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if count == 0 { return 0 }
        // A background process reading its terminal is stopped (SIGTTIN).
        if pty.sid == t.tg.sid && pty.fgPgid != 0 && t.tg.pgid != pty.fgPgid {
            t.tg.sendSignal(SIGTTIN, SigInfo(signo: SIGTTIN))
            return -ERESTARTSYS
        }
        while !pty.slaveReadable {
            if nonblocking { return err(EAGAIN) }
            pty.waiters.add(t)
            let r = t.block(deadline: nil)
            pty.waiters.remove(t)
            if r == .interrupted && !pty.slaveReadable { return -ERESTARTSYS }
        }
        if pty.input.isEmpty {
            if pty.pendingEOFs > 0 { pty.pendingEOFs -= 1; return 0 }
            return 0                                           // master closed: EOF
        }
        var n = min(count, pty.input.count)
        if pty.canonical, let nl = pty.input.firstIndex(of: 10) { n = min(n, nl + 1) }
        if !t.copyOut(buf, Array(pty.input[0..<n])) { return err(EFAULT) }
        pty.input.removeFirst(n)
        pty.notify()
        return n
    }
    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if !pty.masterOpen { return err(EIO) }
        let pty = pty
        return pty.boundedWrite(t, buf, count, nonblocking: nonblocking, held: { pty.output.count }, open: { pty.masterOpen }, put: { pty.emit($0) })
    }
    override func ioctl(_ t: Task, _ cmd: UInt64, _ arg: UInt64) -> Int { pty.ioctl(t, cmd, arg, master: false) }
    override func readiness() -> Int16 {
        var r: Int32 = pty.masterOpen ? (pty.output.count < Pty.bufferLimit ? pollWritable : 0) : POLLHUP
        if pty.slaveReadable { r |= pollReadable }
        return Int16(r)
    }
    override func addWaiter(_ t: Waiter) { pty.waiters.add(t) }
    override func wakeups() -> UInt64 { pty.waiters.wakeups }
    override func registerAsync() -> Bool { pty.waiters.addAsync(self); return true }
    override func removeWaiter(_ t: Waiter) { pty.waiters.remove(t) }
    override func stat() -> Result<Stat, Errno> {
        var s = Stat(); s.mode = S_IFCHR_ | 0o620; s.rdev = (136 << 8) | UInt64(pty.index); s.blksize = 1024
        s.ino = UInt64(pty.index + 3); s.dev = 9
        return .success(s)
    }
    override func release() {
        pty.slaveOpens -= 1
        pty.notify()
    }
    override func linkName(_ k: Kernel) -> [UInt8] { Array("/dev/pts/\(pty.index)".utf8) }
}

/// Opens the slave side; the first open by a session leader without a
/// controlling terminal makes it the session's terminal (unless O_NOCTTY).
func openSlave(_ t: Task, _ pty: Pty, flags: Int32) -> Int {
    let f = PtySlaveFD(pty: pty, flags: flags & ~O_CLOEXEC)
    pty.adoptAsControllingTerminal(t, flags: flags)
    let fd = t.fds.install(f, cloexec: flags & O_CLOEXEC != 0, limit: fdLimit(t))
    if fd < 0 { f.release() }
    return fd
}

/// /dev/ptmx (and /dev/pts/ptmx): each open makes a new pair.
final class PtmxInode: Inode {
    unowned let kernel: Kernel
    init(kernel: Kernel, dev: UInt64) {
        self.kernel = kernel
        super.init(ino: 0x1502, mode: S_IFCHR_ | 0o666, dev: dev)
        rdev = (5 << 8) | 2
    }
    override func open(_ t: Task, flags: Int32) -> Result<FileDescription, Errno> {
        .success(PtyMasterFD(pty: kernel.ptys.allocate(kernel), flags: flags))
    }
}

/// /dev/pts/N for an open pair.
final class PtySlaveInode: Inode {
    let pty: Pty
    init(pty: Pty, dev: UInt64) {
        self.pty = pty
        super.init(ino: UInt64(pty.index + 3), mode: S_IFCHR_ | 0o620, dev: dev)
        rdev = (136 << 8) | UInt64(pty.index)
    }
    override var cacheable: Bool { false }
    override func open(_ t: Task, flags: Int32) -> Result<FileDescription, Errno> {
        if pty.locked || !pty.masterOpen { return .failure(Errno(EIO)) }
        let f = PtySlaveFD(pty: pty, flags: flags)
        pty.adoptAsControllingTerminal(t, flags: flags)
        return .success(f)
    }
}

/// /dev/pts: the open pairs' slaves, and ptmx.
final class DevPtsInode: Inode {
    unowned let kernel: Kernel
    init(kernel: Kernel, dev: UInt64) {
        self.kernel = kernel
        super.init(ino: 0x1500, mode: S_IFDIR_ | 0o755, dev: dev)
        nlink = 2
    }
    override var cacheable: Bool { false }
    override func lookup(_ name: [UInt8]) -> Result<Inode, Errno> {
        if name == Array("ptmx".utf8) { return .success(PtmxInode(kernel: kernel, dev: dev)) }
        let s = String(decoding: name, as: UTF8.self)
        guard let i = Int(s), String(i) == s, let p = kernel.ptys.ptys[i] else {
            return .failure(Errno(ENOENT))
        }
        return .success(PtySlaveInode(pty: p, dev: dev))
    }
    override func open(_ t: Task, flags: Int32) -> Result<FileDescription, Errno> { .success(DirectoryFD(flags: flags, path: nil)) }
    override func readdir() -> Result<[DirEntry], Errno> {
        var out = [DirEntry(ino: 0x1502, type: 2, name: Array("ptmx".utf8))]
        for i in kernel.ptys.ptys.keys.sorted() { out.append(DirEntry(ino: UInt64(i + 3), type: 2, name: Array("\(i)".utf8))) }
        return .success(out)
    }
    override var fsMagic: Int64 { 0x1cd1 }
}
