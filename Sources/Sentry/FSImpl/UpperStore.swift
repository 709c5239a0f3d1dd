// Where the overlay's upper layer keeps the bytes of its big and mapped
// files (gVisor's overlay2 medium "self" against "memory").
//
// A tmpfs file keeps small contents in Sentry memory and moves them to a
// host file once it grows past TmpfsInode.bigFile, takes a big write or is
// mapped (TmpfsInode.promoteToMemfd). That host file is a memfd by default:
// shmem pages, allocated and charged 4 KiB at a time on this kind of host
// (shmem THP off), so a 1 MiB write into it runs at about half the speed of
// one into an ext4 file. The rootfs overlay's upper layer instead asks its
// Gofer for an unnamed file in the rootfs's own host file system (opcode 23,
// `scratch`): page cache of a disk file system, written back by the host
// and reclaimable under memory pressure, like a real overlayfs upper
// directory. The file is O_TMPFILE | O_EXCL: it has no name, cannot get
// one, and its blocks go back to the file system with its last fd (the
// Sentry's, a stub's kept copy, a mapping), however the sandbox ends.
//
// What the application sees does not change: sizes, st_blocks (counted
// from the file's data extents, as a memfd counts its pages), SEEK_DATA,
// seals and the tmpfs limits are the Sentry's as before. /tmp and other
// tmpfs mounts, memfd_create files and SysV segments keep memfds.
//
// Invariants: the Sentry opens no host path (the fd comes from the Gofer)
// and checks what it got: a regular, empty, unlinked file.

import Glibc
import GoferProtocol

final class UpperStore {
    let client: GoferClient
    /// Names the layer in the one log line a refusal gets ("the root file
    /// system", "container ID's root file system").
    let label: String
    /// The Gofer cannot make these files (older, started without --scratch,
    /// a read-only or O_TMPFILE-less file system): memfds from then on.
    private(set) var refused = false

    init(client: GoferClient, label: String = "the root file system") { self.client = client; self.label = label }

    /// From now on memfds; said once in Moat's log (never the application's
    /// output), so that a user who asked for medium self learns why host
    /// memory grows.
    private func refuse(_ why: String) {
        refused = true
        Log.shared.info("overlay of \(label): \(why); its upper files are kept in memory (memfds) from now on")
    }

    /// A new empty host file for one upper-layer file's bytes, or -1 (the
    /// caller makes a memfd). Requires: Kernel.mu held.
    func newFile() -> Int32 {
        if refused { return -1 }
        switch client.scratch() {
        case .success(let fd):
            var st = Glibc.stat()
            if fstat(fd, &st) == 0 && UInt32(st.st_mode) & UInt32(S_IFMT) == UInt32(S_IFREG) && st.st_size == 0 && st.st_nlink == 0 { return fd }
            close(fd)
            refuse("the Gofer's scratch file is not a new, empty, unnamed regular file")
            return -1
        case .failure(let e):
            // Only a lack of room or of fds may pass; the rest will not.
            if ![ENOSPC, EDQUOT, EMFILE, ENFILE, ENOMEM, EINTR].contains(e.rawValue) {
                refuse(e.rawValue == EPERM ? "the Gofer has no scratch mount"
                       : "the Gofer cannot make unnamed files on its host file system (errno \(e.rawValue))")
            }
            return -1
        }
    }

    /// st_blocks of an upper file kept in `fd`: 8 per 4 KiB page that holds
    /// data, read from the data extents (SEEK_DATA, SEEK_HOLE) as a memfd's
    /// st_blocks counts its pages; a disk file system's own count adds its
    /// metadata blocks and preallocation. A file of many extents (past
    /// `maxExtents`) takes the host's count.
    static func blocks(_ fd: Int32, size: Int) -> Int64 {
        var pages = 0, pos = 0, extents = 0, counted = 0   // pages below `counted` are in
        while pos < size {
            let data = Int(lseek(fd, off_t(pos), 3 /* SEEK_DATA */))
            if data < 0 || data >= size { break }
            let hole = min(Int(lseek(fd, off_t(data), 4 /* SEEK_HOLE */)), size)
            if hole <= data { break }
            let end = (hole + 4095) / 4096
            pages += max(0, end - max(data / 4096, counted))
            counted = end
            pos = hole
            extents += 1
            if extents == maxExtents {
                var st = Glibc.stat()
                return fstat(fd, &st) == 0 ? Int64(st.st_blocks) : 0
            }
        }
        return Int64(pages) * 8
    }
    static let maxExtents = 4096
}
