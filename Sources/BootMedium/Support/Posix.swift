#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Thin wrappers that turn C return codes into ``BootMediumError``: the one place of the library
/// where `errno` is read for file work.
enum Posix {
    /// Retries `body` while it fails with `EINTR`.
    static func retrying<T: BinaryInteger>(_ body: () -> T) -> T {
        while true {
            let result = body()
            if result == -1 && errno == EINTR { continue }
            return result
        }
    }

    /// Writes every byte of `buffer` to `fd`, looping over short writes.
    static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, path: String)
        throws(BootMediumError)
    {
        var offset = 0
        while offset < buffer.count {
            let n = retrying { write(fd, buffer.baseAddress! + offset, buffer.count - offset) }
            if n < 0 { throw .io("write", path: path, errno: errno) }
            if n == 0 { throw .io("write", path: path, errno: EIO) }
            offset += n
        }
    }

    /// Writes `bytes` to `fd`.
    static func writeAll(_ fd: Int32, _ bytes: some ContiguousBytes, path: String)
        throws(BootMediumError)
    {
        let result: Result<Void, BootMediumError> = bytes.withUnsafeBytes { buffer in
            do throws(BootMediumError) {
                try writeAll(fd, buffer, path: path)
                return .success(())
            } catch { return .failure(error) }
        }
        try result.get()
    }

    /// `fsync(fd)`.
    static func sync(_ fd: Int32, path: String) throws(BootMediumError) {
        if retrying({ fsync(fd) }) != 0 { throw .io("fsync", path: path, errno: errno) }
    }

    /// Opens a directory for `*at` calls without following a final symlink.
    static func openDirectory(_ path: String, at base: Int32 = AT_FDCWD) throws(BootMediumError)
        -> Int32
    {
        let fd = retrying { openat(base, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW) }
        if fd < 0 { throw .io("open directory", path: path, errno: errno) }
        return fd
    }

    /// A random file name fragment (12 hex digits) for temp files.
    static func randomSuffix() -> String {
        var generator = SystemRandomNumberGenerator()
        return String(format: "%012llx", generator.next() & 0xFFFF_FFFF_FFFF)
    }

    /// The real path of an existing `path`, or nil.
    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Replaces the file at `path` with `data` atomically: temp file beside it, fsync, rename,
    /// fsync of the directory. The new file gets `mode`.
    static func atomicReplace(_ path: String, with data: Data, mode: mode_t = 0o644)
        throws(BootMediumError)
    {
        let directory = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        let temp = (directory.isEmpty ? "." : directory) + "/.\(name).tmp-\(randomSuffix())"
        let fd = retrying { open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode) }
        if fd < 0 { throw .io("create", path: temp, errno: errno) }
        TempFileRegistry.shared.register(temp)
        defer { TempFileRegistry.shared.unregister(temp) }
        do throws(BootMediumError) {
            if fchmod(fd, mode) != 0 { throw .io("chmod", path: temp, errno: errno) }
            try writeAll(fd, data, path: temp)
            try sync(fd, path: temp)
            close(fd)
            if rename(temp, path) != 0 { throw .io("rename", path: path, errno: errno) }
        } catch {
            close(fd)
            unlink(temp)
            throw error
        }
        let dfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }
}

/// The temp files this process has open, so that a signal handler (SIGTERM, SIGINT, SIGHUP)
/// can remove them before the process exits.
public final class TempFileRegistry: Sendable {
    /// The process-wide registry.
    public static let shared = TempFileRegistry()
    private let paths = Mutex<Set<String>>([])

    func register(_ path: String) { paths.withLock { _ = $0.insert(path) } }
    func unregister(_ path: String) { paths.withLock { _ = $0.remove(path) } }

    /// Removes every registered temp file. Called on the way out of a signalled process.
    public func removeAll() {
        paths.withLock { set in
            for path in set { unlink(path) }
            set.removeAll()
        }
    }
}

import Synchronization
