#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An open file descriptor with one owner: it is closed when the last reference to this object
/// goes, never by hand, so no error path can leak it or close it twice. Code that only uses a
/// descriptor takes its ``rawValue`` (an `Int32`) while the owner is alive.
final class OwnedDescriptor: Sendable {
    /// The descriptor number, valid while this object lives.
    let rawValue: Int32

    /// Takes ownership of the open descriptor `rawValue`: nothing else may close it.
    init(adopting rawValue: Int32) { self.rawValue = rawValue }

    // The one place bootmedium closes a descriptor it opened (errors of `close` are not
    // actionable: data integrity rests on the `fsync` calls before it).
    deinit { _ = close(rawValue) }

    /// `openat(directory, path, flags, mode)` (`AT_FDCWD`: relative to the working directory).
    static func open(_ path: String, at directory: Int32 = AT_FDCWD, flags: Int32, mode: mode_t = 0) throws(Errno)
        -> OwnedDescriptor
    {
        OwnedDescriptor(adopting: try Posix.syscall { openat(directory, path, flags, mode) })
    }

    /// A new descriptor of the same open file description (`F_DUPFD_CLOEXEC`).
    func duplicate() throws(Errno) -> OwnedDescriptor {
        let raw = rawValue
        return OwnedDescriptor(adopting: try Posix.syscall { fcntl(raw, F_DUPFD_CLOEXEC, 0) })
    }

    /// `fstat`.
    func status() throws(Errno) -> stat {
        var info = stat()
        let raw = rawValue
        try Posix.syscall { fstat(raw, &info) }
        return info
    }
}
