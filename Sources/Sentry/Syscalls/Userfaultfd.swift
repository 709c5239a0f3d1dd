// userfaultfd(2) (the fd: FSImpl/UserfaultfdFile.swift; the faults:
// MM/Userfault.swift).

import CMoat
import Glibc

func registerUserfaultfd(_ t: SyscallTable) {
    t[323] = { t, a in                                                        // userfaultfd
        let flags = a.int(0), userModeOnly: Int32 = 1 // UFFD_USER_MODE_ONLY
        if flags & ~(O_CLOEXEC | O_NONBLOCK | userModeOnly) != 0 { return err(EINVAL) }
        // Faults reach the Sentry through the stub's host protections: no
        // such path on KVM.
        if !t.thread.hasStub { return err(ENOSYS) }
        // Kernel faults are not handled (vm.unprivileged_userfaultfd 0):
        // without UFFD_USER_MODE_ONLY, CAP_SYS_PTRACE is needed.
        if flags & userModeOnly == 0 && !t.creds.has(Cap.sysPtrace) { return err(EPERM) }
        let f = UserfaultFD(mm: t.mm, flags: O_RDONLY | (flags & O_NONBLOCK), userModeOnly: flags & userModeOnly != 0)
        let fd = t.fds.install(f, cloexec: flags & O_CLOEXEC != 0, limit: fdLimit(t))
        if fd < 0 { f.release() }
        return fd
    }
}
