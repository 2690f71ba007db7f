#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A medium being written to its final path, safely (docs/behaviour.md §1 flaws fixed):
///
/// - the parent directory is resolved (symlinks and `..`) and, when confined, must lie inside
///   the work dir's real path; missing directories are created `0755`, one `mkdirat` at a time
///   below an already-resolved directory, and the final directory is re-checked through its
///   open descriptor, so a symlink swapped in meanwhile cannot redirect the write;
/// - bytes go to an anonymous file (`O_TMPFILE`) in the target directory (mode `0644`): it has
///   no name until ``commit()``, so no signal, not even SIGKILL or a power cut, can leave a
///   partial image or its reserved blocks behind. Where the file system has no `O_TMPFILE`, a
///   temp file `.<name>.bootmedium-XXXXXXXXXXXX` is used instead, registered for removal on
///   SIGTERM/SIGINT/SIGHUP;
/// - while bytes are written, their writeback to the device is started every 8 MiB
///   (`sync_file_range`), so the disk works while the image is produced;
/// - ``commit()`` fsyncs (unless made with `syncs: false`), then `linkat`s the file to the final
///   name, which never replaces an existing file (an existing regular file older than 5 minutes
///   is stale and removed first, as later PLCAPI did), or, when publishing, links it to a temp
///   name and `renameat`s that over the final name (the only moment a named temp file exists,
///   between two system calls, with the whole image in it);
/// - any failure, or dropping the value uncommitted, removes the temp file.
final class OutputFile {
    /// An existing output older than this (seconds) is stale and may be replaced.
    static let staleAfter: Int64 = 300

    let path: String
    let name: String
    private let directoryFD: Int32
    /// Whether the bytes go to an anonymous file (else to the named temp file `tempName`).
    private let anonymous: Bool
    private let tempName: String
    /// What messages call the file being written (the output's path when anonymous).
    private let tempPath: String
    private(set) var fd: Int32
    /// Bytes written so far, and up to where writeback was started (``noteWritten(_:)``).
    private var written: Int64 = 0
    private var writebackStarted: Int64 = 0
    /// Starts writeback off the writing thread, on its own duplicate of `fd` (closed by its last
    /// block), so neither ``commit()`` nor ``discard()`` waits for it.
    private let writeback = DispatchQueue(label: "bootmedium.writeback")
    private var writebackFD: Int32 = -1
    private let replaces: Bool
    /// Whether ``commit()`` flushes the file to the device first (and writeback is started
    /// while writing).
    private let syncs: Bool
    private var state: State = .writing
    private enum State { case writing, committed, removed }

    /// Prepares the directory of `path` and opens the temp file.
    /// - Parameters:
    ///   - confinedTo: the work dir a non-admin's output must resolve inside, or nil.
    ///   - replaces: publish mode: replace an existing file atomically.
    ///   - syncs: flush the file to the device before it gets its final name.
    init(path: String, confinedTo workDir: String?, replaces: Bool = false, syncs: Bool = true)
        throws(BootMediumError)
    {
        let url = path as NSString
        let name = url.lastPathComponent
        let directory = url.deletingLastPathComponent
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/") else {
            throw BootMediumError(
                .invalidOutput, "Output \(path.debugDescription) does not name a file",
                context: ["output": path])
        }
        var confinedReal: String?
        if let workDir {
            // The work dir itself may be created (0755) before checking against it.
            let fd = try Self.openCreatingDirectories(workDir, confinedTo: nil)
            close(fd)
            confinedReal = Posix.realPath(workDir)
        }
        let dfd = try Self.openCreatingDirectories(directory, confinedTo: confinedReal, shown: path)
        self.path = path
        self.name = name
        self.directoryFD = dfd
        self.replaces = replaces
        self.syncs = syncs
        if !replaces {
            do throws(BootMediumError) {
                try Self.checkAbsent(name, in: dfd, path: path, removeStale: false)
            } catch {
                close(dfd)
                throw error
            }
        }
        var tempName = ""
        var tempPath = path
        var (tempFD, code) = Posix.openAnonymous(in: dfd, mode: 0o600)
        let anonymous = tempFD >= 0
        if !anonymous && Posix.lacksAnonymousFiles(code) {
            for _ in 0..<16 {
                tempName = ".\(name.prefix(200)).bootmedium-\(Posix.randomSuffix())"
                tempPath = (directory.isEmpty ? "." : directory) + "/" + tempName
                let candidate = tempName
                (tempFD, code) = TempFileRegistry.shared.create(tempPath) {
                    Posix.retrying { openat(dfd, candidate, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600) }
                }
                if tempFD >= 0 || code != EEXIST { break }
            }
        }
        if tempFD < 0 {
            close(dfd)
            throw .io("create", path: tempPath, errno: code)
        }
        self.anonymous = anonymous
        self.tempName = tempName
        self.tempPath = tempPath
        self.fd = tempFD
        if fchmod(tempFD, 0o644) != 0 {
            let code = errno
            discard()
            throw .io("chmod", path: tempPath, errno: code)
        }
    }

    deinit {
        if state == .writing { discard() }
        close(directoryFD)
    }

    /// Appends bytes to the temp file.
    func write(_ bytes: some ContiguousBytes) throws(BootMediumError) {
        try Posix.writeAll(fd, bytes, path: tempPath)
        noteWritten(bytes.withUnsafeBytes { $0.count })
    }

    /// Writeback is started every this many bytes.
    static let writebackStep: Int64 = 8 << 20

    /// Counts `count` more bytes written and, every ``writebackStep``, starts their writeback
    /// (``Posix/startWriteback(_:offset:count:)``) on another thread: the device writes while
    /// the image is still being produced, and ``commit()``'s `fsync` (which durability still
    /// rests on) finds little left to write.
    func noteWritten(_ count: Int) {
        written += Int64(count)
        guard syncs, written - writebackStarted >= Self.writebackStep else { return }
        if writebackFD < 0 { writebackFD = fcntl(fd, F_DUPFD_CLOEXEC, 0) }
        if writebackFD >= 0 {
            let fd = writebackFD, start = writebackStarted, count = written - writebackStarted
            writeback.async { Posix.startWriteback(fd, offset: start, count: count) }
        }
        writebackStarted = written
    }

    /// Starts the writeback of `count` bytes written at `at` by a positioned call (any thread),
    /// when the file is to be flushed.
    func startWriteback(at: Int64, count: Int64) {
        if syncs { Posix.startWriteback(fd, offset: at, count: count) }
    }

    /// No more writeback hints: the queue closes its descriptor after the pending ones.
    private func endWriteback() {
        guard writebackFD >= 0 else { return }
        let fd = writebackFD
        writeback.async { close(fd) }
        writebackFD = -1
    }

    /// Makes the file visible under its final name (see the type's notes).
    func commit() throws(BootMediumError) {
        precondition(state == .writing)
        endWriteback()
        do throws(BootMediumError) {
            if syncs { try Posix.sync(fd, path: tempPath) }
            if anonymous {
                try linkAnonymous()
            } else if replaces {
                if renameat(directoryFD, tempName, directoryFD, name) != 0 {
                    throw .io("rename", path: path, errno: errno)
                }
            } else {
                if linkat(directoryFD, tempName, directoryFD, name, 0) != 0 {
                    guard errno == EEXIST else { throw .io("link", path: path, errno: errno) }
                    try Self.checkAbsent(name, in: directoryFD, path: path, removeStale: true)
                    if linkat(directoryFD, tempName, directoryFD, name, 0) != 0 {
                        if errno == EEXIST { throw Self.exists(path) }
                        throw .io("link", path: path, errno: errno)
                    }
                }
                unlinkat(directoryFD, tempName, 0)
            }
        } catch {
            discard()
            throw error
        }
        close(fd)
        fd = -1
        TempFileRegistry.shared.unregister(tempPath)
        state = .committed
        if syncs { _ = fsync(directoryFD) }
    }

    /// Names the anonymous file: `name` when it is free (or stale), or, publishing, a temp name
    /// renamed over `name`.
    private func linkAnonymous() throws(BootMediumError) {
        guard replaces else {
            var code = Posix.linkAnonymous(fd, in: directoryFD, as: name)
            if code == EEXIST {
                try Self.checkAbsent(name, in: directoryFD, path: path, removeStale: true)
                code = Posix.linkAnonymous(fd, in: directoryFD, as: name)
                if code == EEXIST { throw Self.exists(path) }
            }
            if code != 0 { throw .io("link", path: path, errno: code) }
            return
        }
        let temp = ".\(name.prefix(200)).bootmedium-\(Posix.randomSuffix())"
        let directory = (path as NSString).deletingLastPathComponent
        let shown = (directory.isEmpty ? "." : directory) + "/" + temp
        let descriptor = fd, dfd = directoryFD
        let (linked, code) = TempFileRegistry.shared.create(shown) { () -> Int32 in
            let code = Posix.linkAnonymous(descriptor, in: dfd, as: temp)
            errno = code
            return code == 0 ? 0 : -1
        }
        if linked < 0 { throw .io("link", path: shown, errno: code) }
        defer { TempFileRegistry.shared.unregister(shown) }
        if renameat(directoryFD, temp, directoryFD, name) != 0 {
            let code = errno
            unlinkat(directoryFD, temp, 0)
            throw .io("rename", path: path, errno: code)
        }
    }

    /// Removes a committed file again (when what must follow delivery failed).
    func withdraw() {
        guard state == .committed else { return }
        unlinkat(directoryFD, name, 0)
        _ = fsync(directoryFD)
        state = .removed
    }

    /// Drops the temp file.
    func discard() {
        guard state == .writing else { return }
        endWriteback()
        if fd >= 0 { close(fd) }
        fd = -1
        if !anonymous {
            unlinkat(directoryFD, tempName, 0)
            TempFileRegistry.shared.unregister(tempPath)
        }
        state = .removed
    }

    private static func exists(_ path: String) -> BootMediumError {
        BootMediumError(
            .outputExists, "Resulting file \(path) already exists", context: ["output": path])
    }

    /// Fails when `name` exists in the directory, unless it is a regular file older than
    /// ``staleAfter`` (then it is removed if `removeStale`).
    private static func checkAbsent(_ name: String, in dfd: Int32, path: String, removeStale: Bool)
        throws(BootMediumError)
    {
        var info = stat()
        if fstatat(dfd, name, &info, AT_SYMLINK_NOFOLLOW) != 0 {
            if errno == ENOENT { return }
            throw .io("stat", path: path, errno: errno)
        }
        let isRegular = (info.st_mode & S_IFMT) == S_IFREG
        let age = Int64(Date().timeIntervalSince1970) - Int64(info.st_mtim.tv_sec)
        guard isRegular, age > staleAfter else { throw exists(path) }
        if removeStale, unlinkat(dfd, name, 0) != 0, errno != ENOENT {
            throw .io("remove stale", path: path, errno: errno)
        }
    }

    /// Opens `directory`, creating missing components `0755`. With `confinedTo` (a real path),
    /// the resolved directory must lie inside it.
    static func openCreatingDirectories(
        _ directory: String, confinedTo: String?, shown: String? = nil
    ) throws(BootMediumError) -> Int32 {
        let absolute =
            directory.isEmpty
            ? FileManager.default.currentDirectoryPath
            : (directory.hasPrefix("/")
                ? directory : FileManager.default.currentDirectoryPath + "/" + directory)
        // Longest existing prefix, resolved; the rest must be plain new names.
        var components = absolute.split(separator: "/").map(String.init)
        var missing: [String] = []
        var existing = "/"
        while true {
            let candidate = "/" + components.joined(separator: "/")
            if let real = Posix.realPath(candidate) {
                existing = real
                break
            }
            guard let last = components.popLast() else { break }
            missing.insert(last, at: 0)
        }
        // `.` and `..` below the existing part are applied by name: nothing there exists yet.
        var normalized: [String] = []
        for part in missing {
            if part == "." { continue }
            if part == ".." {
                if normalized.popLast() == nil {
                    existing = (existing as NSString).deletingLastPathComponent
                    if existing.isEmpty { existing = "/" }
                }
                continue
            }
            normalized.append(part)
        }
        missing = normalized
        let resolved = ([existing == "/" ? "" : existing] + missing).joined(separator: "/")
        if let confinedTo { try checkInside(resolved.isEmpty ? "/" : resolved, confinedTo, shown ?? directory) }
        var fd = try Posix.openDirectory(existing)
        for part in missing {
            if mkdirat(fd, part, 0o755) != 0 && errno != EEXIST {
                let code = errno
                close(fd)
                throw .io("create directory", path: directory, errno: code)
            }
            _ = fchmodat(fd, part, 0o755, 0)
            let next = Posix.retrying {
                openat(fd, part, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
            }
            let code = errno
            close(fd)
            if next < 0 { throw .io("open directory", path: directory, errno: code) }
            fd = next
        }
        if let confinedTo {
            // Re-check what was actually opened.
            let actual = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)"))
            do throws(BootMediumError) {
                try checkInside(actual ?? "", confinedTo, shown ?? directory)
            } catch {
                close(fd)
                throw error
            }
        }
        return fd
    }

    private static func checkInside(_ path: String, _ root: String, _ shown: String)
        throws(BootMediumError)
    {
        let base = root.hasSuffix("/") ? String(root.dropLast()) : root
        guard path == base || path.hasPrefix(base + "/") else {
            throw BootMediumError(
                .outputOutsideWorkDir,
                "File \(shown) not under \(base): non-admins must write into the work dir (%d in an output template)",
                context: ["output": shown, "workdir": base])
        }
    }
}
