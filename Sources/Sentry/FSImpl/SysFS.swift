// A minimal sysfs: the few files runtimes read to size themselves (glibc's
// get_nprocs reads cpu/online; allocators read transparent_hugepage), as a
// read-only tmpfs tree built at mount time. Nothing of the host's sysfs.

import CMoat
import Glibc

func makeSysFS(dev: UInt64) -> TmpfsInode {
    let root = TmpfsInode(mode: S_IFDIR_ | 0o555, dev: dev)
    let n = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    let cpus = Array((n == 1 ? "0\n" : "0-\(n - 1)\n").utf8)
    func dir(_ parent: TmpfsInode, _ path: String) -> TmpfsInode {
        var cur = parent
        for c in path.split(separator: "/") {
            let name = Array(c.utf8)
            if case .success(let i) = cur.lookup(name), let d = i as? TmpfsInode { cur = d; continue }
            guard case .success(let i) = cur.mkdir(name, mode: 0o555, uid: 0, gid: 0), let d = i as? TmpfsInode else { return cur }
            cur = d
        }
        return cur
    }
    func file(_ path: String, _ content: [UInt8]) {
        let parts = path.split(separator: "/")
        let d = dir(root, parts.dropLast().joined(separator: "/"))
        if case .success(let (i, _)) = d.create(Array(parts.last!.utf8), mode: 0o444, uid: 0, gid: 0, flags: 0), let f = i as? TmpfsInode {
            f.data = content
        }
    }
    for f in ["online", "possible", "present"] { file("devices/system/cpu/" + f, cpus) }
    for i in 0..<n { _ = dir(root, "devices/system/cpu/cpu\(i)") }
    file("kernel/mm/transparent_hugepage/enabled", Array("always [madvise] never\n".utf8))
    for d in ["fs/cgroup", "class/net", "block", "bus", "firmware", "module"] { _ = dir(root, d) }
    return root
}
