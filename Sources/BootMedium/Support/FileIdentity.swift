#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What tells one version of a file from another without reading it: device, inode, size,
/// modification and change times (nanoseconds). Replacing the file (a new inode) or rewriting it
/// in place (new times) gives another identity; caches of what was computed from a file are
/// keyed by it.
struct FileIdentity: Hashable, Sendable, CustomStringConvertible {
    let device: UInt64
    let inode: UInt64
    let size: Int64
    let modified: Int64
    let changed: Int64
    /// The owner's uid and the permission bits (not part of ``description``).
    let owner: UInt32
    let permissions: UInt32

    init(_ info: stat) {
        owner = UInt32(info.st_uid)
        permissions = UInt32(info.st_mode & 0o7777)
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modified = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        changed = Int64(info.st_ctim.tv_sec) * 1_000_000_000 + Int64(info.st_ctim.tv_nsec)
    }

    /// The identity of the file at `path` (following symlinks).
    init(path: String) throws(BootMediumError) {
        var info = stat()
        try Posix.syscall("stat", path: path) { stat(path, &info) }
        self.init(info)
    }

    /// The identity of the open file `fd`.
    init(fd: Int32, path: String) throws(BootMediumError) {
        var info = stat()
        try Posix.syscall("stat", path: path) { fstat(fd, &info) }
        self.init(info)
    }

    /// `device:inode:size:mtime:ctime`, the times as seconds.nanoseconds (the tree-facts cache's
    /// key format).
    var description: String {
        func time(_ ns: Int64) -> String { "\(ns / 1_000_000_000).\(ns % 1_000_000_000)" }
        return "\(device):\(inode):\(size):\(time(modified)):\(time(changed))"
    }
}
