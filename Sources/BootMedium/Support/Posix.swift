#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CLinux
import Foundation
import Synchronization

/// The `errno` of a failed system call, before it is given a meaning (most become
/// ``BootMediumError/io(_:path:errno:)``; some, such as `EEXIST` or `EXDEV`, are answers).
struct Errno: Error, Equatable, Sendable {
    let code: Int32
}

/// The system calls bootmedium makes, and the one place their failures are read: ``syscall(_:)``
/// retries `EINTR` and reads `errno` right after the failing call (``Errno``), and
/// ``syscall(_:path:_:)`` turns it into an `io` error. Descriptors are owned by
/// ``OwnedDescriptor``.
enum Posix {
    /// Calls `body`, a system call that returns -1 and sets `errno` when it fails, again while
    /// it fails with `EINTR`; its other failures throw their ``Errno``.
    @discardableResult
    static func syscall<T: SignedInteger>(_ body: () -> T) throws(Errno) -> T {
        while true {
            let result = body()
            if result != -1 { return result }
            let code = errno
            if code != EINTR { throw Errno(code: code) }
        }
    }

    /// ``syscall(_:)`` whose failure is an `io` error: `operation` on `path` failed.
    @discardableResult
    static func syscall<T: SignedInteger>(_ operation: String, path: String, _ body: () -> T) throws(BootMediumError) -> T {
        do {
            return try syscall(body)
        } catch {
            throw .io(operation, path: path, errno: error.code)
        }
    }

    /// Writes every byte of `buffer` to `fd`, looping over short writes.
    static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, path: String)
        throws(BootMediumError)
    {
        try writeLoop(buffer, path: path) { base, count, _ in write(fd, base, count) }
    }

    /// Writes every byte of `buffer` to `fd` at `offset` (`pwrite`), looping over short writes.
    static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, at offset: Int64, path: String)
        throws(BootMediumError)
    {
        try writeLoop(buffer, path: path) { base, count, done in pwrite(fd, base, count, off_t(offset) + off_t(done)) }
    }

    /// Calls `call(start, count, done)` until all of `buffer` is written.
    private static func writeLoop(
        _ buffer: UnsafeRawBufferPointer, path: String, _ call: (UnsafeRawPointer, Int, Int) -> Int
    ) throws(BootMediumError) {
        var done = 0
        while done < buffer.count {
            let n = try syscall("write", path: path) { call(buffer.baseAddress! + done, buffer.count - done, done) }
            if n == 0 { throw .io("write", path: path, errno: EIO) }
            done += n
        }
    }

    /// Writes `bytes` to `fd`.
    static func writeAll(_ fd: Int32, _ bytes: some ContiguousBytes, path: String)
        throws(BootMediumError)
    {
        try bytes.withBytes { (buffer) throws(BootMediumError) in try writeAll(fd, buffer, path: path) }
    }

    /// Reads up to `buffer.count` bytes of `fd` at `offset` (`pread`); 0 at the end of the file.
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64, path: String)
        throws(BootMediumError) -> Int
    {
        try syscall("read", path: path) { pread(fd, buffer.baseAddress!, buffer.count, off_t(offset)) }
    }

    /// `copy_file_range(2)`, looked up at run time (Swift's Glibc module does not import it); nil
    /// when the C library lacks it.
    private typealias CopyFileRange = @convention(c) (
        Int32, UnsafeMutablePointer<Int64>?, Int32, UnsafeMutablePointer<Int64>?, Int, UInt32
    ) -> Int
    private static let copyFileRangeCall: CopyFileRange? = {
        guard let symbol = dlsym(nil, "copy_file_range") else { return nil }  // nil: RTLD_DEFAULT
        return unsafeBitCast(symbol, to: CopyFileRange.self)
    }()

    /// Errors that mean "the kernel cannot copy between these two descriptors" (other file
    /// systems, a pipe, an old kernel or C library), not that the copy failed.
    private static func cannotCopy(_ code: Int32) -> Bool {
        code == EXDEV || code == EINVAL || code == ENOSYS || code == EOPNOTSUPP || code == EBADF
    }

    /// How the kernel appends bytes to one destination, learnt from its refusals: a destination
    /// that refused `copy_file_range` (a pipe, another file system) is sent to by `sendfile`
    /// alone from then on.
    enum KernelAppend: Sendable {
        /// `copy_file_range(2)` first, then `sendfile(2)`.
        case copyFileRange
        /// `copy_file_range` was refused: `sendfile` only.
        case sendfile
    }

    /// Appends up to `count` bytes of `source`, read from `offset`, at `destination`'s file
    /// position, inside the kernel: `copy_file_range(2)` unless `method` says the destination
    /// refused it before (then `method` becomes ``KernelAppend/sendfile``), else `sendfile(2)`
    /// (which also takes a pipe or another file system). `source`'s own position is not used or
    /// moved.
    ///
    /// Returns the number of bytes appended (it may be short; 0 means `source` ends at
    /// `offset`), or nil when neither call can copy between these descriptors, so the caller
    /// reads and writes. Any other failure (`ENOSPC`, `EFBIG` past a file-size limit, `EIO`) is
    /// an `io` error on `path`, like a failed `write`.
    static func copyFileRange(
        from source: Int32, offset: Int64, to destination: Int32, count: Int, path: String, method: inout KernelAppend
    ) throws(BootMediumError) -> Int? {
        if method == .copyFileRange {
            if let n = try copyFileRange(from: source, offset: offset, to: destination, at: nil, count: count, path: path) {
                return n
            }
            method = .sendfile
        }
        var position = off_t(offset)
        do {
            return try syscall { sendfile(destination, source, &position, min(count, 0x7FFF_F000)) }
        } catch where cannotCopy(error.code) {
            return nil
        } catch {
            throw .io("write", path: path, errno: error.code)
        }
    }

    /// Copies up to `count` bytes of `source` from `offset` to `destination` at `at` (nil: at its
    /// file position, which moves), inside the kernel (`copy_file_range(2)`; `source`'s position
    /// is not used or moved). Returns the bytes copied (0: `source` ends at `offset`), or nil
    /// when the kernel cannot copy between these descriptors (the caller reads and writes);
    /// other failures are `io` errors on `path`.
    static func copyFileRange(from source: Int32, offset: Int64, to destination: Int32, at: Int64?, count: Int, path: String)
        throws(BootMediumError) -> Int?
    {
        precondition(offset >= 0 && (at ?? 0) >= 0 && count > 0)
        guard let call = copyFileRangeCall else { return nil }
        var sourceOffset = offset
        var destinationOffset = at ?? 0
        do {
            return try syscall {
                at == nil
                    ? call(source, &sourceOffset, destination, nil, count, 0)
                    : call(source, &sourceOffset, destination, &destinationOffset, count, 0)
            }
        } catch where cannotCopy(error.code) {
            return nil
        } catch {
            throw .io("write", path: path, errno: error.code)
        }
    }

    private typealias SyncFileRange = @convention(c) (Int32, Int64, Int64, UInt32) -> Int32
    private static let syncFileRangeCall: SyncFileRange? = {
        guard let symbol = dlsym(nil, "sync_file_range") else { return nil }
        return unsafeBitCast(symbol, to: SyncFileRange.self)
    }()

    /// Starts writing `count` bytes of `fd` from `offset` to the device without waiting
    /// (`sync_file_range(2)`, `SYNC_FILE_RANGE_WRITE`), so the disk works while more is written
    /// and the final `fsync` has little left to wait for. A hint: failures are ignored (the
    /// `fsync` that follows reports any error and guarantees durability).
    static func startWriteback(_ fd: Int32, offset: Int64, count: Int64) {
        guard count > 0, let call = syncFileRangeCall else { return }
        _ = call(fd, offset, count, 2)  // SYNC_FILE_RANGE_WRITE
    }

    private typealias Fallocate = @convention(c) (Int32, Int32, Int64, Int64) -> Int32
    private static let fallocateCall: Fallocate? = {
        guard let symbol = dlsym(nil, "fallocate64") ?? dlsym(nil, "fallocate") else { return nil }
        return unsafeBitCast(symbol, to: Fallocate.self)
    }()

    /// Makes `destination` share every extent of `source` (`FICLONE`): true when done; false
    /// where the file systems cannot (no reflinks, another file system); a full disk or quota
    /// is an error.
    static func clone(_ source: Int32, into destination: Int32, path: String) throws(BootMediumError) -> Bool {
        do {
            try syscall { bootmedium_ficlone(destination, source) }
            return true
        } catch {
            switch error.code {
            case EOPNOTSUPP, EXDEV, EINVAL, ENOTTY, ETXTBSY, EPERM: return false
            default: throw .io("clone into", path: path, errno: error.code)
            }
        }
    }

    /// Allocates the blocks of the first `count` bytes of `fd` before they are written
    /// (`fallocate(2)` with `FALLOC_FL_KEEP_SIZE`: the file's size still grows only as bytes are
    /// written). A full disk or quota fails here, before any byte is written; and on ext4 the
    /// writes that follow skip delayed allocation's per-block bookkeeping (a 166 MiB
    /// `copy_file_range` into reserved blocks takes ~45 ms instead of ~60 ms). Where the file
    /// system cannot reserve (`EOPNOTSUPP`: ext2, NFS v3, ...) nothing is done; never
    /// `posix_fallocate`, which would write zeros instead.
    static func reserve(_ fd: Int32, count: Int64, path: String) throws(BootMediumError) {
        guard count > 0, let call = fallocateCall else { return }
        do {
            try syscall { call(fd, 1, 0, count) }  // 1: FALLOC_FL_KEEP_SIZE
        } catch where error.code == ENOSPC || error.code == EDQUOT || error.code == EFBIG {
            throw .io("reserve space for", path: path, errno: error.code)
        } catch {}
    }

    /// `fsync(fd)`.
    static func sync(_ fd: Int32, path: String) throws(BootMediumError) {
        try syscall("fsync", path: path) { fsync(fd) }
    }

    /// Opens a directory for `*at` calls without following a final symlink.
    static func openDirectory(_ path: String, at base: Int32 = AT_FDCWD) throws(BootMediumError) -> OwnedDescriptor {
        do {
            return try OwnedDescriptor.open(path, at: base, flags: O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
        } catch {
            throw .io("open directory", path: path, errno: error.code)
        }
    }

    /// Opens an anonymous file (`O_TMPFILE`, read and write, `mode`) in the directory `dfd`:
    /// it has no name until ``linkAnonymous(_:in:as:)`` gives it one, so a process killed
    /// (even by SIGKILL) while writing it leaves nothing behind, not even its reserved blocks.
    /// Throws the errno (``lacksAnonymousFiles(_:)`` when the file system has no `O_TMPFILE`:
    /// the caller uses a named temp file then).
    static func openAnonymous(in dfd: Int32, mode: mode_t) throws(Errno) -> OwnedDescriptor {
        // O_TMPFILE (__O_TMPFILE | O_DIRECTORY on Linux) is a composite macro Swift does not import.
        let oTmpfile: Int32 = 0o20_200_000
        return try OwnedDescriptor.open(".", at: dfd, flags: oTmpfile | O_RDWR | O_CLOEXEC, mode: mode)
    }

    /// Whether `error` from ``openAnonymous(in:mode:)`` means "no `O_TMPFILE` here".
    static func lacksAnonymousFiles(_ error: Errno) -> Bool {
        error.code == EOPNOTSUPP || error.code == EISDIR || error.code == EINVAL
    }

    /// Gives the anonymous file `fd` the name `name` in `dfd` (`linkat` through
    /// `/proc/self/fd`, else `AT_EMPTY_PATH`); never replaces a file.
    static func linkAnonymous(_ fd: Int32, in dfd: Int32, as name: String) throws(Errno) {
        do {
            try syscall { linkat(AT_FDCWD, "/proc/self/fd/\(fd)", dfd, name, AT_SYMLINK_FOLLOW) }
        } catch where error.code == ENOENT {  // no /proc
            try syscall { linkat(fd, "", dfd, name, 0x1000) }  // 0x1000: AT_EMPTY_PATH
        }
    }

    /// A random file name fragment (12 hex digits) for temp files.
    static func randomSuffix() -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = String(generator.next() & 0xFFFF_FFFF_FFFF, radix: 16)
        return String(repeating: "0", count: 12 - digits.count) + digits
    }

    /// The real path of an existing `path`, or nil.
    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Replaces the file at `path` with `data` atomically: an anonymous file (``openAnonymous(in:mode:)``)
    /// in its directory is written and fsynced, linked to a temp name and renamed over `path`,
    /// and the directory fsynced; a named temp file exists only between those two calls, with
    /// all its bytes (a named temp file written in full, where there is no `O_TMPFILE`). The new
    /// file gets `mode`. With `replacing` false the file is linked to `path` itself, which fails
    /// (`EEXIST`) when `path` exists. With `durable` false nothing is flushed (a cache, which a
    /// crash may lose or tear: its readers check what they read).
    static func atomicReplace(
        _ path: String, with data: Data, mode: mode_t = 0o644, replacing: Bool = true, durable: Bool = true
    ) throws(BootMediumError) {
        let directory = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        let directoryFD = try openDirectory(directory.isEmpty ? "." : directory)
        let dfd = directoryFD.rawValue
        let tempName = ".\(name).tmp-\(randomSuffix())"
        let temp = (directory.isEmpty ? "." : directory) + "/" + tempName
        let file: OwnedDescriptor
        var anonymous = true
        do {
            file = try openAnonymous(in: dfd, mode: mode)
        } catch where lacksAnonymousFiles(error) {
            anonymous = false
            do {
                file = try TempFileRegistry.shared.create(temp) { () throws(Errno) in
                    try OwnedDescriptor.open(tempName, at: dfd, flags: O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode: mode)
                }
            } catch {
                throw .io("create", path: temp, errno: error.code)
            }
        } catch {
            throw .io("create a file in", path: directory, errno: error.code)
        }
        defer { TempFileRegistry.shared.unregister(temp) }
        do throws(BootMediumError) {
            let fd = file.rawValue
            try syscall("chmod", path: temp) { fchmod(fd, mode) }
            try writeAll(fd, data, path: temp)
            if durable { try sync(fd, path: temp) }
            if anonymous && !replacing {
                // The final name: nothing to clean up.
                do { try linkAnonymous(fd, in: dfd, as: name) } catch { throw .io("link", path: path, errno: error.code) }
            } else if anonymous {
                // Named (and registered for signal clean-up) only now, complete, until the rename.
                do {
                    try TempFileRegistry.shared.create(temp) { () throws(Errno) in try linkAnonymous(fd, in: dfd, as: tempName) }
                } catch {
                    throw .io("link", path: temp, errno: error.code)
                }
            }
        } catch {
            if !anonymous { unlinkat(dfd, tempName, 0) }
            throw error
        }
        if replacing || !anonymous {
            do {
                try syscall { replacing ? renameat(dfd, tempName, dfd, name) : linkat(dfd, tempName, dfd, name, 0) }
            } catch {
                unlinkat(dfd, tempName, 0)
                throw .io(replacing ? "rename" : "link", path: path, errno: error.code)
            }
            if !replacing { unlinkat(dfd, tempName, 0) }
        }
        if durable { _ = fsync(dfd) }
    }
}

/// The temp files this process has open, so that a signal handler (SIGTERM, SIGINT, SIGHUP)
/// can remove them before the process exits.
///
/// A temp file is created and registered in one step under the registry's lock, so the
/// cleanup either runs before the file exists (and no temp file is created after it) or
/// removes it: a signal that lands between `open` and the registration cannot leave one behind.
public final class TempFileRegistry: Sendable {
    /// The process-wide registry.
    public static let shared = TempFileRegistry()
    private struct State {
        var paths: Set<String> = []
        /// Set by ``removeAll()``: the process is going away, no more temp files.
        var closed = false
    }
    private let state = Mutex(State())

    /// Creates the temp file `path` with `create` (an `open`/`openat` with `O_CREAT | O_EXCL`,
    /// or a `linkat`) and registers it. Throws `create`'s error, or `ECANCELED` once
    /// ``removeAll()`` has run.
    func create<T>(_ path: String, _ create: () throws(Errno) -> T) throws(Errno) -> T {
        try state.withLock { (state) throws(Errno) -> T in
            guard !state.closed else { throw Errno(code: ECANCELED) }
            let made = try create()
            state.paths.insert(path)
            return made
        }
    }

    func unregister(_ path: String) { state.withLock { _ = $0.paths.remove(path) } }

    /// Removes every registered temp file and refuses new ones. Called on the way out of a
    /// signalled process.
    public func removeAll() {
        state.withLock { state in
            state.closed = true
            for path in state.paths { unlink(path) }
            state.paths.removeAll()
        }
    }
}
