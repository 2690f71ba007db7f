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
    private let directory: OwnedDescriptor
    private var directoryFD: Int32 { directory.rawValue }
    /// Whether the bytes go to an anonymous file (else to the named temp file `tempName`).
    private let anonymous: Bool
    private let tempName: String
    /// What messages call the file being written (the output's path when anonymous).
    private let tempPath: String
    /// The file being written; nil once committed or discarded.
    private var file: OwnedDescriptor?
    /// The descriptor of the file being written (-1 once committed or discarded).
    var fd: Int32 { file?.rawValue ?? -1 }
    /// Bytes written so far, and up to where writeback was started (``noteWritten(_:)``).
    private var written: Int64 = 0
    private var writebackStarted: Int64 = 0
    /// Starts writeback off the writing thread, on its own duplicate of `fd` (held by every
    /// pending block, so closed after the last), so neither ``commit()`` nor ``discard()``
    /// waits for it.
    private let writeback = DispatchQueue(label: "bootmedium.writeback")
    private var writebackFile: OwnedDescriptor?
    /// How the kernel appends to this file (``ImageSink/copy(from:offset:count:)``).
    var kernelAppend = Posix.KernelAppend.copyFileRange
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
        let directoryPath = url.deletingLastPathComponent
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/") else {
            throw BootMediumError(
                .invalidOutput, "Output \(path.debugDescription) does not name a file",
                context: ["output": path])
        }
        var confinedReal: String?
        if let workDir {
            // The work dir itself may be created (0755) before checking against it.
            _ = try Self.openCreatingDirectories(workDir, confinedTo: nil)
            confinedReal = Posix.realPath(workDir)
        }
        let directory = try Self.openCreatingDirectories(directoryPath, confinedTo: confinedReal, shown: path)
        let dfd = directory.rawValue
        self.path = path
        self.name = name
        self.directory = directory
        self.replaces = replaces
        self.syncs = syncs
        if !replaces { try Self.checkAbsent(name, in: dfd, path: path, removeStale: false) }
        var tempName = ""
        var tempPath = path
        let file: OwnedDescriptor
        var anonymous = true
        do {
            file = try Posix.openAnonymous(in: dfd, mode: 0o600)
        } catch where Posix.lacksAnonymousFiles(error) {
            anonymous = false
            var made: OwnedDescriptor?
            var failure = error
            for _ in 0..<16 {
                tempName = ".\(name.prefix(200)).bootmedium-\(Posix.randomSuffix())"
                tempPath = (directoryPath.isEmpty ? "." : directoryPath) + "/" + tempName
                let candidate = tempName
                do {
                    made = try TempFileRegistry.shared.create(tempPath) { () throws(Errno) in
                        try OwnedDescriptor.open(candidate, at: dfd, flags: O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode: 0o600)
                    }
                    break
                } catch {
                    failure = error
                    if error.code != EEXIST { break }
                }
            }
            guard let made else { throw .io("create", path: tempPath, errno: failure.code) }
            file = made
        } catch {
            throw .io("create", path: tempPath, errno: error.code)
        }
        self.anonymous = anonymous
        self.tempName = tempName
        self.tempPath = tempPath
        self.file = file
        do {
            try Posix.syscall { fchmod(file.rawValue, 0o644) }
        } catch {
            discard()
            throw .io("chmod", path: tempPath, errno: error.code)
        }
    }

    deinit {
        if state == .writing { discard() }
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
        if writebackFile == nil { writebackFile = try? file?.duplicate() }
        if let copy = writebackFile {
            let start = writebackStarted, count = written - writebackStarted
            writeback.async { Posix.startWriteback(copy.rawValue, offset: start, count: count) }
        }
        writebackStarted = written
    }

    /// Starts the writeback of `count` bytes written at `at` by a positioned call (any thread),
    /// when the file is to be flushed.
    func startWriteback(at: Int64, count: Int64) {
        if syncs { Posix.startWriteback(fd, offset: at, count: count) }
    }

    /// Makes the file visible under its final name (see the type's notes).
    func commit() throws(BootMediumError) {
        precondition(state == .writing)
        writebackFile = nil
        do throws(BootMediumError) {
            if syncs { try Posix.sync(fd, path: tempPath) }
            if anonymous {
                try linkAnonymous()
            } else if replaces {
                try Posix.syscall("rename", path: path) { renameat(directoryFD, tempName, directoryFD, name) }
            } else {
                let dfd = directoryFD, tempName = tempName, name = name
                try linkFinal { () throws(Errno) in try Posix.syscall { linkat(dfd, tempName, dfd, name, 0) } }
                unlinkat(directoryFD, tempName, 0)
            }
        } catch {
            discard()
            throw error
        }
        file = nil
        TempFileRegistry.shared.unregister(tempPath)
        state = .committed
        if syncs { _ = fsync(directoryFD) }
    }

    /// Links the file to `name` by `link`, which never replaces a file: when `name` exists and
    /// is stale (``checkAbsent(_:in:path:removeStale:)``) it is removed and `link` tried again.
    private func linkFinal(_ link: () throws(Errno) -> Void) throws(BootMediumError) {
        do {
            try link()
        } catch where error.code == EEXIST {
            try Self.checkAbsent(name, in: directoryFD, path: path, removeStale: true)
            do {
                try link()
            } catch where error.code == EEXIST {
                throw Self.exists(path)
            } catch {
                throw .io("link", path: path, errno: error.code)
            }
        } catch {
            throw .io("link", path: path, errno: error.code)
        }
    }

    /// Names the anonymous file: `name` when it is free (or stale), or, publishing, a temp name
    /// renamed over `name`.
    private func linkAnonymous() throws(BootMediumError) {
        let descriptor = fd, dfd = directoryFD
        guard replaces else {
            let name = name
            try linkFinal { () throws(Errno) in try Posix.linkAnonymous(descriptor, in: dfd, as: name) }
            return
        }
        let temp = ".\(name.prefix(200)).bootmedium-\(Posix.randomSuffix())"
        let directory = (path as NSString).deletingLastPathComponent
        let shown = (directory.isEmpty ? "." : directory) + "/" + temp
        do {
            try TempFileRegistry.shared.create(shown) { () throws(Errno) in try Posix.linkAnonymous(descriptor, in: dfd, as: temp) }
        } catch {
            throw .io("link", path: shown, errno: error.code)
        }
        defer { TempFileRegistry.shared.unregister(shown) }
        do {
            try Posix.syscall { renameat(dfd, temp, dfd, name) }
        } catch {
            unlinkat(dfd, temp, 0)
            throw .io("rename", path: path, errno: error.code)
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
        writebackFile = nil
        file = nil
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
        do {
            try Posix.syscall { fstatat(dfd, name, &info, AT_SYMLINK_NOFOLLOW) }
        } catch where error.code == ENOENT {
            return
        } catch {
            throw .io("stat", path: path, errno: error.code)
        }
        let isRegular = (info.st_mode & S_IFMT) == S_IFREG
        let age = Int64(Date().timeIntervalSince1970) - Int64(info.st_mtim.tv_sec)
        guard isRegular, age > staleAfter else { throw exists(path) }
        guard removeStale else { return }
        do {
            try Posix.syscall { unlinkat(dfd, name, 0) }
        } catch where error.code != ENOENT {
            throw .io("remove stale", path: path, errno: error.code)
        } catch {}
    }

    /// Opens `directory`, creating missing components `0755`. With `confinedTo` (a real path),
    /// the resolved directory must lie inside it.
    static func openCreatingDirectories(
        _ directory: String, confinedTo: String?, shown: String? = nil
    ) throws(BootMediumError) -> OwnedDescriptor {
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
        var opened = try Posix.openDirectory(existing)
        for part in missing {
            let fd = opened.rawValue
            do {
                try Posix.syscall { mkdirat(fd, part, 0o755) }
            } catch where error.code != EEXIST {
                throw .io("create directory", path: directory, errno: error.code)
            } catch {}
            _ = fchmodat(fd, part, 0o755, 0)
            do {
                opened = try OwnedDescriptor.open(part, at: fd, flags: O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
            } catch {
                throw .io("open directory", path: directory, errno: error.code)
            }
        }
        if let confinedTo {
            // Re-check what was actually opened.
            let actual = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(opened.rawValue)"))
            try checkInside(actual ?? "", confinedTo, shown ?? directory)
        }
        return opened
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
