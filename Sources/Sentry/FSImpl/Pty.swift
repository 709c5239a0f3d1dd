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

    static let ICRNL: UInt32 = 0x100, INLCR: UInt32 = 0x40, IGNCR: UInt32 = 0x80, IUTF8: UInt32 = 0x4000
    static let OPOST: UInt32 = 0x1, ONLCR: UInt32 = 0x4, OCRNL: UInt32 = 0x8, ONOCR: UInt32 = 0x10, ONLRET: UInt32 = 0x20
    static let ISIG: UInt32 = 0x1, ICANON: UInt32 = 0x2, ECHO: UInt32 = 0x8, ECHOE: UInt32 = 0x10, ECHONL: UInt32 = 0x40
    static let IEXTEN: UInt32 = 0x8000
    static let VINTR = 0, VQUIT = 1, VERASE = 2, VKILL = 3, VEOF = 4, VSUSP = 10, VEOL = 11, VWERASE = 14, VEOL2 = 16

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
    /// In canonical mode: where each complete line of `input` ends. A line
    /// VEOF ends on an empty line has length 0: a read returns 0 for it.
    var lineEnds: [Int] = []
    /// In canonical mode: the line being edited, not yet readable.
    var editing: [UInt8] = []
    /// Bytes the master wrote that the line discipline has no room for yet
    /// (Linux's flip buffer): they go in as the slave reads.
    var pending: [UInt8] = []
    /// Bytes the master can read (the slave's output, and echo).
    var output: [UInt8] = []
    /// The output column (ONOCR, tabs, backspace).
    var column = 0
    /// TCSETS2's line speeds (the pty has no line: only kept).
    var ispeed: UInt32 = 38400, ospeed: UInt32 = 38400
    /// Packet mode (TIOCPKT on the master): every master read starts with
    /// a status byte, 0 before data; `ctrlStatus` holds events (a flush by
    /// the slave: TIOCPKT_FLUSHREAD 1, TIOCPKT_FLUSHWRITE 2) read alone.
    var packet = false
    var ctrlStatus: UInt8 = 0
    var masterOpen = true
    var slaveOpens = 0
    var slaveEverOpened = false
    var waiters = WaitQueue()
    /// The session this is the controlling terminal of, and its foreground group.
    var sid: Int32 = 0
    var fgPgid: Int32 = 0
    /// The devpts instance the pair belongs to (mount's "newinstance"):
    /// its slave shows only there. nil: the sandbox's /dev/pts.
    var instance: ObjectIdentifier? = nil
    unowned let kernel: Kernel

    init(kernel: Kernel, index: Int) { self.kernel = kernel; self.index = index }

    func notify() { waiters.notifyAll() }

    var canonical: Bool { termios.lflag & Termios.ICANON != 0 }

    /// What each direction holds at most before a writer waits (or gets
    /// EAGAIN): Linux bounds a pty's buffers too, and a terminal nobody
    /// reads must not grow without end (gVisor's pty FillUntilBlocked wrote
    /// for ever).
    static let bufferLimit = 65536
    var inputHeld: Int { input.count + editing.count + pending.count }
    /// The line discipline's read buffer (N_TTY_BUF_SIZE): a canonical line
    /// holds 4095 characters and its end; more of it is dropped.
    static let ldiscSize = 4096

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
        pending += bytes
        process()
        notify()
    }

    /// Moves what the master wrote into the line discipline while it has room.
    func process() {
        var i = 0
        while i < pending.count && accept(pending[i]) { i += 1 }
        if i > 0 { pending.removeFirst(i) }
    }

    private func isLineEnd(_ c: UInt8) -> Bool {
        let t = termios
        return c == 10 || (c == t.cc[Termios.VEOL] && c != 0) || (t.lflag & Termios.IEXTEN != 0 && c == t.cc[Termios.VEOL2] && c != 0)
    }

    /// One input byte through the discipline; false when there is no room
    /// for it yet (it stays pending).
    private func accept(_ raw: UInt8) -> Bool {
        let t = termios
        var c = raw
        if c == 13 && t.iflag & Termios.IGNCR != 0 { return true }
        if c == 13 && t.iflag & Termios.ICRNL != 0 { c = 10 } else if c == 10 && t.iflag & Termios.INLCR != 0 { c = 13 }
        let full = input.count + editing.count >= Pty.ldiscSize - 1
        // Unread input waits for the reader; in canonical mode one line
        // alone filling the buffer takes only its end (below).
        if full && (!canonical || !input.isEmpty) { return false }
        if t.lflag & Termios.ISIG != 0 {
            var sig: Int32 = 0
            if c == t.cc[Termios.VINTR] && c != 0 { sig = SIGINT }
            else if c == t.cc[Termios.VQUIT] && c != 0 { sig = SIGQUIT }
            else if c == t.cc[Termios.VSUSP] && c != 0 { sig = SIGTSTP }
            if sig != 0 {
                editing.removeAll()
                if t.lflag & Termios.ECHO != 0 { echoControl(c); }
                signalForeground(sig)
                return true
            }
        }
        guard canonical else {
            input.append(c)
            if t.lflag & Termios.ECHO != 0 { echo(c) }
            return true
        }
        if c == t.cc[Termios.VERASE] && c != 0 {
            eraseChar()
            return true
        }
        if c == t.cc[Termios.VWERASE] && c != 0 && t.lflag & Termios.IEXTEN != 0 {
            // A word: the blanks before it, then letters, digits and '_'.
            var seenWord = false
            while let last = editing.last {
                let word = last == 95 || (last >= 48 && last <= 57) || (last | 0x20 >= 97 && last | 0x20 <= 122)
                if word { seenWord = true } else if seenWord { break }
                eraseChar()
            }
            return true
        }
        if c == t.cc[Termios.VKILL] && c != 0 {
            let n = editing.count
            editing.removeAll()
            if t.lflag & Termios.ECHO != 0 { for _ in 0..<n { emit([8, 32, 8]) } }
            return true
        }
        if c == t.cc[Termios.VEOF] && c != 0 {
            input += editing; editing.removeAll()
            lineEnds.append(input.count)
            return true
        }
        let end = isLineEnd(c)
        if full && !end {                                     // past 4095: echoed, dropped
            if t.lflag & Termios.ECHO != 0 { echo(c) }
            return true
        }
        editing.append(c)
        if t.lflag & Termios.ECHO != 0 || (c == 10 && t.lflag & Termios.ECHONL != 0) { echo(c) }
        if end { input += editing; editing.removeAll(); lineEnds.append(input.count) }
        return true
    }

    /// VERASE: the last character of the line (with IUTF8, a whole UTF-8
    /// sequence, never part of one), "\b \b" echoed for it under ECHOE.
    private func eraseChar() {
        guard !editing.isEmpty else { return }
        let utf8 = termios.iflag & Termios.IUTF8 != 0
        var i = editing.count - 1
        while utf8 && editing[i] & 0xc0 == 0x80 && i > 0 { i -= 1 }
        if utf8 && editing[i] & 0xc0 == 0x80 { return }
        editing.removeSubrange(i...)
        if termios.lflag & Termios.ECHO != 0 && termios.lflag & Termios.ECHOE != 0 { emit([8, 32, 8]) }
    }

    private func echo(_ c: UInt8) {
        if c < 32 && c != 10 && c != 9 { echoControl(c) } else { emit([c]) }
    }
    private func echoControl(_ c: UInt8) { emit([94, c ^ 0x40]) }   // ^C and friends

    /// Bytes the slave wrote: through the output side to the master
    /// (OPOST: ONLCR, OCRNL, ONOCR, ONLRET, with the column they need).
    func emit(_ bytes: [UInt8]) {
        let o = termios.oflag
        guard o & Termios.OPOST != 0 else { output += bytes; notify(); return }
        for var c in bytes {
            switch c {
            case 10:
                if o & Termios.ONLRET != 0 { column = 0 }
                if o & Termios.ONLCR != 0 { column = 0; output += [13, 10]; continue }
            case 13:
                if o & Termios.ONOCR != 0 && column == 0 { continue }
                if o & Termios.OCRNL != 0 {
                    c = 10
                    if o & Termios.ONLRET != 0 { column = 0 }
                } else {
                    column = 0
                }
            case 9: column = (column | 7) + 1
            case 8: if column > 0 { column -= 1 }
            default:
                if c >= 32 && c != 127 && !(termios.iflag & Termios.IUTF8 != 0 && c & 0xc0 == 0x80) { column += 1 }
            }
            output.append(c)
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
    var slaveReadable: Bool { (canonical ? !lineEnds.isEmpty : !input.isEmpty) || !masterOpen }

    /// What the master may read now: output, or a packet-mode event.
    var masterReadable: Bool { !output.isEmpty || (packet && ctrlStatus != 0) }

    /// Takes up to `count` bytes of the slave's input: in canonical mode no
    /// more than the first line (0 bytes for an end-of-file mark). Then
    /// the bytes waiting for room go in.
    func takeInput(_ count: Int) -> [UInt8] {
        var n = min(count, input.count)
        if canonical, let end = lineEnds.first {
            n = min(count, end)
            lineEnds = lineEnds.map { $0 - n }
            if lineEnds[0] == 0 && n == end { lineEnds.removeFirst() }
        }
        let b = Array(input[0..<n])
        input.removeFirst(n)
        process()
        notify()
        return b
    }

    func flushInput() { input.removeAll(); editing.removeAll(); pending.removeAll(); lineEnds.removeAll() }

    /// TCSETS* and TCSETA*: new settings, the input flushed first for the
    /// F variants. A line being edited becomes input when canonical mode
    /// ends; input waiting when it starts becomes a line (Linux pushes it).
    private func setTermios(_ n: Termios, flushInput flush: Bool) {
        let wasCanonical = canonical
        termios = n
        if flush { flushInput() }
        if wasCanonical && !canonical { input += editing; editing.removeAll(); lineEnds.removeAll() }
        if !wasCanonical && canonical && !input.isEmpty { lineEnds = [input.count] }
        process()
        notify()
    }

    func ioctl(_ t: Task, _ cmd: UInt64, _ arg: UInt64, master: Bool) -> Int {
        switch cmd {
        case 0x5401: return t.copyOut(arg, termios.bytes()) ? 0 : err(EFAULT)            // TCGETS
        case 0x5402, 0x5403, 0x5404:                                                     // TCSETS, TCSETSW, TCSETSF
            guard let b = t.copyIn(arg, 36) else { return err(EFAULT) }
            setTermios(Termios(b), flushInput: cmd == 0x5404)
            return 0
        case 0x802c542a:                                                                 // TCGETS2
            var b = termios.bytes()
            b += [UInt8](repeating: 0, count: 8)
            put32(&b, 36, Int32(bitPattern: ispeed)); put32(&b, 40, Int32(bitPattern: ospeed))
            return t.copyOut(arg, b) ? 0 : err(EFAULT)
        case 0x402c542b, 0x402c542c, 0x402c542d:                                         // TCSETS2, TCSETSW2, TCSETSF2
            guard let b = t.copyIn(arg, 44) else { return err(EFAULT) }
            setTermios(Termios(Array(b[0..<36])), flushInput: cmd == 0x402c542d)
            ispeed = get32(b, 36); ospeed = get32(b, 40)
            return 0
        case 0x5420:                                                                     // TIOCPKT
            guard master else { return err(ENOTTY) }
            guard let v = t.readI32(arg) else { return err(EFAULT) }
            if v != 0 && !packet { ctrlStatus = 0 }
            packet = v != 0
            notify()
            return 0
        case 0x80045438:                                                                 // TIOCGPKT
            return t.writeI32(arg, packet ? 1 : 0) ? 0 : err(EFAULT)
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
            let n = master ? output.count : (canonical ? lineEnds.last ?? 0 : input.count)
            return t.writeI32(arg, Int32(n)) ? 0 : err(EFAULT)
        case 0x540F:                                                                     // TIOCGPGRP
            if !master && sid != t.tg.sid { return err(ENOTTY) }
            return t.writeI32(arg, t.vpid(fgPgid)) ? 0 : err(EFAULT)
        case 0x5410:                                                                     // TIOCSPGRP
            guard let local = t.readI32(arg) else { return err(EFAULT) }
            if !master && sid != t.tg.sid { return err(ENOTTY) }
            // A background process changing its terminal is stopped
            // (SIGTTOU) unless it ignores or blocks the signal (tty_check_change).
            if !master && fgPgid != 0 && t.tg.pgid != fgPgid && !t.tg.isIgnored(SIGTTOU) && t.sigMask & sigBit(SIGTTOU) == 0 {
                for g in kernel.threadGroups.values where g.pgid == t.tg.pgid && !g.reaped { g.sendSignal(SIGTTOU, SigInfo(signo: SIGTTOU)) }
                return -ERESTARTSYS
            }
            if local < 0 { return err(EINVAL) }
            let p = t.gpid(local)
            // No such group: ESRCH; one of another session: EPERM.
            let members = kernel.threadGroups.values.filter { $0.pgid == p && !$0.zombie && !$0.reaped }
            if members.isEmpty { return err(ESRCH) }
            if !members.contains(where: { $0.sid == t.tg.sid }) { return err(EPERM) }
            fgPgid = p
            return 0
        case 0x5429:                                                                     // TIOCGSID
            if sid == 0 { return err(ENOTTY) }
            return t.writeI32(arg, t.vpid(sid)) ? 0 : err(EFAULT)
        case 0x540E:                                                                     // TIOCSCTTY
            if t.tg.sid != t.tg.tgid { return err(EPERM) }                              // only a session leader
            // A session whose leader exited let its terminal go (Linux's
            // disassociate_ctty at the leader's exit).
            if sid != 0 && !kernel.threadGroups.values.contains(where: { $0.tgid == sid && !$0.zombie && !$0.reaped }) { sid = 0; fgPgid = 0 }
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
            // TCIFLUSH 0, TCOFLUSH 1, TCIOFLUSH 2, from the caller's side:
            // the master's input is the slave's output. A flush by the slave
            // is an event for a master in packet mode.
            if arg > 2 { return err(EINVAL) }
            let ownInput = arg != 1, ownOutput = arg != 0
            if master ? ownOutput : ownInput { flushInput() }
            if master ? ownInput : ownOutput { output.removeAll() }
            if !master && packet { ctrlStatus |= (ownInput ? 1 : 0) | (ownOutput ? 2 : 0) }
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
    func allocate(_ k: Kernel, instance: ObjectIdentifier? = nil) -> Pty {
        var i = 0
        while ptys[i] != nil { i += 1 }
        let p = Pty(kernel: k, index: i)
        p.instance = instance
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
        while !pty.masterReadable {
            // Once the slave was opened and every slave is closed: EIO.
            if pty.slaveEverOpened && pty.slaveOpens == 0 { return err(EIO) }
            if nonblocking { return err(EAGAIN) }
            pty.waiters.add(t)
            let r = t.block(deadline: nil)
            pty.waiters.remove(t)
            if r == .interrupted && !pty.masterReadable { return -ERESTARTSYS }
        }
        // Packet mode: an event is read alone; data follows a 0 byte.
        if pty.packet && pty.ctrlStatus != 0 {
            if !t.copyOut(buf, [pty.ctrlStatus]) { return err(EFAULT) }
            pty.ctrlStatus = 0
            return 1
        }
        let head: [UInt8] = pty.packet ? [0] : []
        let n = min(count - head.count, pty.output.count)
        if !t.copyOut(buf, head + Array(pty.output[0..<n])) { return err(EFAULT) }
        pty.output.removeFirst(n)
        pty.notify()
        return n + head.count
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
        if pty.masterReadable { r |= pollReadable }
        if pty.packet && pty.ctrlStatus != 0 { r |= POLLPRI }
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
        // Nothing left with the master closed: end of file.
        if pty.canonical ? pty.lineEnds.isEmpty : pty.input.isEmpty { return 0 }
        let b = pty.takeInput(count)
        if !b.isEmpty && !t.copyOut(buf, b) { return err(EFAULT) }
        return b.count
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
    let instance: ObjectIdentifier?
    init(kernel: Kernel, dev: UInt64, mode: UInt32 = 0o666, instance: ObjectIdentifier? = nil) {
        self.kernel = kernel
        self.instance = instance
        super.init(ino: 0x1502, mode: S_IFCHR_ | mode, dev: dev)
        rdev = (5 << 8) | 2
    }
    override func open(_ t: Task, flags: Int32) -> Result<FileDescription, Errno> {
        .success(PtyMasterFD(pty: kernel.ptys.allocate(kernel, instance: instance), flags: flags))
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

/// /dev/pts: the open pairs' slaves, and ptmx. A devpts mounted with
/// "newinstance" is an instance of its own: its ptmx makes pairs that
/// show only in it (and its options set the directory's and ptmx's modes).
final class DevPtsInode: Inode {
    unowned let kernel: Kernel
    let isInstance: Bool
    let ptmxMode: UInt32
    init(kernel: Kernel, dev: UInt64, mode: UInt32 = 0o755, ptmxMode: UInt32 = 0o666, newInstance: Bool = false) {
        self.kernel = kernel
        self.ptmxMode = ptmxMode
        isInstance = newInstance
        super.init(ino: 0x1500, mode: S_IFDIR_ | mode, dev: dev)
        nlink = 2
    }
    override var cacheable: Bool { false }
    /// Which pairs are this directory's.
    private var key: ObjectIdentifier? { isInstance ? ObjectIdentifier(self) : nil }
    override func lookup(_ name: [UInt8]) -> Result<Inode, Errno> {
        if name == Array("ptmx".utf8) { return .success(PtmxInode(kernel: kernel, dev: dev, mode: ptmxMode, instance: key)) }
        let s = String(decoding: name, as: UTF8.self)
        guard let i = Int(s), String(i) == s, let p = kernel.ptys.ptys[i], p.instance == key else {
            return .failure(Errno(ENOENT))
        }
        return .success(PtySlaveInode(pty: p, dev: dev))
    }
    override func open(_ t: Task, flags: Int32) -> Result<FileDescription, Errno> { .success(DirectoryFD(flags: flags, path: nil)) }
    override func readdir() -> Result<[DirEntry], Errno> {
        var out = [DirEntry(ino: 0x1502, type: 2, name: Array("ptmx".utf8))]
        for i in kernel.ptys.ptys.keys.sorted() where kernel.ptys.ptys[i]?.instance == key {
            out.append(DirEntry(ino: UInt64(i + 3), type: 2, name: Array("\(i)".utf8)))
        }
        return .success(out)
    }
    override var fsMagic: Int64 { 0x1cd1 }
}
