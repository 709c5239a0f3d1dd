// Guest-visible errors are negative Linux errno values in a syscall's Int
// result, as the kernel returns them. The restart codes below are internal:
// the dispatcher turns them into EINTR or a restarted syscall before the
// application can see them (Syscalls/Dispatch.swift).

import CMoat
import Glibc

@inline(__always) func err(_ e: Int32) -> Int { -Int(e) }

let ERESTARTSYS = 512
let ERESTARTNOINTR = 513
let ERESTARTNOHAND = 514
let ERESTART_RESTARTBLOCK = 516

@inline(__always) func isRestart(_ r: Int) -> Bool {
    r == -ERESTARTSYS || r == -ERESTARTNOINTR || r == -ERESTARTNOHAND || r == -ERESTART_RESTARTBLOCK
}

/// A Result error carrying a Linux errno.
struct Errno: Error, Equatable {
    var code: Int32
    init(_ c: Int32) { code = c }
    var ret: Int { -Int(code) }
}
