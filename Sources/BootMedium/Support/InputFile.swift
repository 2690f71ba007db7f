#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Foundation
import Synchronization

/// What a file is to bootmedium: the name people know it by, the most bytes it may have, and
/// the error its absence is. Every input has a cap that fits its role (docs/inputs.md), so no
/// input can make memory or time grow without bound.
public struct InputRole: Sendable {
    /// How messages name the file's role ("the PLC configuration").
    public let what: String
    /// The most bytes the file may have.
    public let limit: Int64
    /// The error when the file does not exist.
    let missing: @Sendable (_ path: String) -> BootMediumError

    private static func missingTreeFile(_ path: String) -> BootMediumError {
        BootMediumError(.missingBootcd, "The bootcd tree lacks \(path)", context: ["path": path])
    }

    /// `etc/planetlab/plc_config`: 1 MiB.
    public static let plcConfig = InputRole(what: "the PLC configuration", limit: 1 << 20) { path in
        BootMediumError(.invalidConfiguration, "Cannot read the PLC configuration \(path)", context: ["path": path])
    }
    /// `etc/planetlab/nodefamily`: 64 KiB.
    public static let nodefamily = InputRole(what: "the nodefamily file", limit: 64 << 10) { path in
        BootMediumError(.invalidConfiguration, "Cannot read the nodefamily file \(path)", context: ["path": path])
    }
    /// A file a `plc_config` key names (`PLC_BOOT_CA_SSL_CRT`, `PLC_ROOT_GPG_KEY_PUB`): 1 MiB.
    public static func serverFile(_ key: String) -> InputRole {
        InputRole(what: "the \(key) file", limit: 1 << 20) { path in
            BootMediumError(.invalidConfiguration, "Cannot read \(key) file \(path)", context: ["key": key, "path": path])
        }
    }
    /// A small text file of the bootcd tree (`version.txt`, `passwd`): 1 MiB.
    public static let treeText = InputRole(what: "a bootcd tree text file", limit: 1 << 20, missing: missingTreeFile)
    /// A boot loader file of the tree (ISOLINUX, SYSLINUX, shim, GRUB): 16 MiB, read whole.
    public static let loader = InputRole(what: "a boot loader file", limit: 16 << 20, missing: missingTreeFile)
    /// The tree's kernel: 256 MiB (copied in the kernel, never held in memory).
    public static let kernel = InputRole(what: "the kernel", limit: 256 << 20, missing: missingTreeFile)
    /// The tree's `bootcd.img`: 4 GiB - 1 (the largest file FAT and one ISO 9660 extent hold).
    public static let bootcd = InputRole(what: "bootcd.img", limit: (4 << 30) - 1, missing: missingTreeFile)
    /// The work dir's `.tree-facts.json`: 1 MiB (256 entries of ~200 bytes).
    public static let treeFacts = InputRole(what: "the tree-facts cache", limit: 1 << 20) { path in
        BootMediumError(.io, "No tree-facts cache at \(path)", context: ["path": path])
    }
    /// The server's persons file (`--users`): 64 MiB.
    public static let personStore = InputRole(what: "the persons file", limit: 64 << 20) { path in
        BootMediumError(.invalidPersonStore, "Cannot read the persons file \(path)", context: ["path": path])
    }
    /// The server's configuration file (`--config`): 1 MiB.
    public static let serverConfig = InputRole(what: "the server configuration", limit: 1 << 20) { path in
        BootMediumError(.invalidConfiguration, "Cannot read the server configuration \(path)", context: ["path": path])
    }
    /// A file a caller of the FAT writer names (``FATFileSpec/file(path:contentsOf:)``): no cap
    /// here, the FAT layout itself refuses a file of 4 GiB or more.
    static let volumeFile = InputRole(what: "a file for a FAT volume", limit: .max) { path in
        .io("open", path: path, errno: ENOENT)
    }
    /// A medium template of the work dir's cache: 64 GiB (a bootcd of 4 GiB, several times).
    static let template = InputRole(what: "a medium template", limit: 64 << 30) { path in
        BootMediumError(.io, "No medium template at \(path)", context: ["path": path])
    }
}

/// A file bootmedium reads, opened once for a request and read only through its descriptor:
/// what is measured (size, identity, digest) and what is copied are the same file, and
/// ``checkUnchanged()`` tells whether it was written to since.
///
/// Opening is the one place that enforces what an input may be (docs/inputs.md):
/// - inside the PLC root, every component resolves beneath it (`openat2` with
///   `RESOLVE_BENEATH`): a `..` or a symbolic link that leaves the root (absolute links
///   included, since they name the host's file system) is `outside-root`, so no host file can
///   end up in a medium;
/// - the open never blocks (`O_NONBLOCK`) and only a regular file is accepted: a FIFO or a
///   device is `invalid-input` at once instead of a hang or an endless read;
/// - its size must fit the role's cap (`invalid-input`).
public final class InputFile: @unchecked Sendable {
    /// The path people know the file by (absolute, as given).
    public let path: String
    /// The open file (read only; positioned reads only, so users never share an offset).
    private let file: OwnedDescriptor
    /// The open descriptor, while this input lives.
    var descriptor: Int32 { file.rawValue }
    /// The file's identity when it was opened.
    let identity: FileIdentity
    /// The file's size when it was opened.
    public var size: Int64 { identity.size }
    /// A path that opens this very file again (`/proc/self/fd/N`), for libraries that take names.
    var reopenPath: String { "/proc/self/fd/\(descriptor)" }

    private init(path: String, file: OwnedDescriptor, identity: FileIdentity) {
        self.path = path
        self.file = file
        self.identity = identity
        Self.names.withLock { $0[file.rawValue] = path }
    }

    deinit {
        Self.names.withLock { _ = $0.removeValue(forKey: file.rawValue) }
    }

    /// The paths of the open input files by descriptor, so that messages about a
    /// ``reopenPath`` name the file people know.
    private static let names = Mutex<[Int32: String]>([:])

    /// `path` as people know it: an open input's ``path`` for its ``reopenPath``, else `path`.
    static func shown(_ path: String) -> String {
        guard path.hasPrefix("/proc/self/fd/"), let fd = Int32(path.dropFirst(14)) else { return path }
        return names.withLock { $0[fd] } ?? path
    }

    /// Wraps a file bootmedium made itself (the cramfs scratch file), known by `path`, as an
    /// input: `made` is duplicated, so the input owns its own descriptor.
    convenience init(made: OwnedDescriptor, path: String) throws(BootMediumError) {
        let own: OwnedDescriptor
        let info: stat
        do { own = try made.duplicate() } catch { throw .io("duplicate the descriptor of", path: path, errno: error.code) }
        do { info = try own.status() } catch { throw .io("stat", path: path, errno: error.code) }
        self.init(path: path, file: own, identity: FileIdentity(info))
    }

    /// Opens `path`, which must lie inside the PLC root `root` (absolute, no trailing slash;
    /// empty for `/`), resolving every component beneath the root.
    public static func open(_ path: String, inRoot root: String, role: InputRole) throws(BootMediumError)
        -> InputFile
    {
        let file: OwnedDescriptor
        do {
            file = try openBeneath(path, inRoot: root, flags: O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        } catch {
            switch error {
            case .opening(let code): throw failure(code, path: path, role: role)
            case .checking(let meant): throw meant
            }
        }
        return try checked(file, path: path, role: role)
    }

    /// Whether `path` (inside the PLC root `root`) is a directory, resolved like ``open(_:inRoot:role:)``.
    public static func isDirectory(_ path: String, inRoot root: String) throws(BootMediumError) -> Bool {
        do {
            _ = try openBeneath(path, inRoot: root, flags: bootmedium_o_path | O_DIRECTORY | O_CLOEXEC)
            return true
        } catch {
            switch error {
            case .opening(let code) where code.code == ENOENT || code.code == ENOTDIR: return false
            case .opening(let code): throw .io("open directory", path: path, errno: code.code)
            case .checking(let meant): throw meant
            }
        }
    }

    /// Why ``openBeneath(_:inRoot:flags:)`` failed: the open's errno (whose meaning depends on
    /// the file's role), or an error already given its meaning.
    private enum OpenFailure: Error {
        case opening(Errno)
        case checking(BootMediumError)
    }

    /// `openat2(root, path relative to it, flags, RESOLVE_BENEATH)`; an escape from the root is
    /// `outside-root`.
    private static func openBeneath(_ path: String, inRoot root: String, flags: Int32) throws(OpenFailure) -> OwnedDescriptor {
        let relative: String
        if root.isEmpty {
            relative = String(path.drop { $0 == "/" })
        } else if path.hasPrefix(root + "/") {
            relative = String(path.dropFirst(root.count).drop { $0 == "/" })
        } else {
            throw .checking(outside(path, root: root))
        }
        let rootDirectory: OwnedDescriptor
        do {
            rootDirectory = try OwnedDescriptor.open(root.isEmpty ? "/" : root, flags: bootmedium_o_path | O_DIRECTORY | O_CLOEXEC)
        } catch {
            throw .checking(.io("open the PLC root", path: root.isEmpty ? "/" : root, errno: error.code))
        }
        // Under `/` every path is inside: absolute links there are the server's own.
        let resolve = root.isEmpty
            ? bootmedium_resolve_no_magiclinks : bootmedium_resolve_beneath | bootmedium_resolve_no_magiclinks
        do {
            return OwnedDescriptor(adopting: try Posix.syscall {
                bootmedium_openat2(rootDirectory.rawValue, relative.isEmpty ? "." : relative, UInt64(flags), 0, resolve)
            })
        } catch where error.code == EXDEV {
            throw .checking(outside(path, root: root))
        } catch {
            throw .opening(error)
        }
    }

    /// Opens `path` as given (an operator's explicit choice, such as `--nodes FILE`), with the
    /// same type and size checks.
    public static func open(_ path: String, role: InputRole) throws(BootMediumError) -> InputFile {
        let file: OwnedDescriptor
        do {
            file = try OwnedDescriptor.open(path, flags: O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        } catch {
            throw failure(error, path: path, role: role)
        }
        return try checked(file, path: path, role: role)
    }

    private static func checked(_ file: OwnedDescriptor, path: String, role: InputRole) throws(BootMediumError) -> InputFile {
        let info: stat
        do { info = try file.status() } catch { throw .io("stat", path: path, errno: error.code) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw BootMediumError(
                .invalidInput, "\(path) (\(role.what)) is \(kind(info.st_mode)), not a regular file",
                context: ["path": path])
        }
        guard Int64(info.st_size) <= role.limit else {
            throw BootMediumError(
                .invalidInput,
                "\(path) (\(role.what)) has \(info.st_size) bytes, more than the \(role.limit) it may have",
                context: ["path": path, "size": String(info.st_size), "limit": String(role.limit)])
        }
        return InputFile(path: path, file: file, identity: FileIdentity(info))
    }

    private static func outside(_ path: String, root: String) -> BootMediumError {
        BootMediumError(
            .outsideRoot,
            "\(path) resolves outside the PLC root \(root) (through `..` or a symbolic link leaving it); refusing to read it",
            context: ["path": path, "root": root])
    }

    private static func failure(_ error: Errno, path: String, role: InputRole) -> BootMediumError {
        if error.code == ENOENT || error.code == ENOTDIR { return role.missing(path) }
        return .io("open", path: path, errno: error.code)
    }

    private static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        default: "not a regular file"
        }
    }

    /// Reads up to `buffer.count` bytes at `offset`, never past the size measured at open.
    /// Returns the bytes read (0 at the measured end).
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(BootMediumError) -> Int {
        let want = Int(max(0, min(Int64(buffer.count), size - offset)))
        if want == 0 { return 0 }
        return try Posix.read(descriptor, into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<want]), at: offset, path: path)
    }

    /// Up to `count` bytes at `offset` (fewer at the measured end).
    func bytes(at offset: Int64, count: Int) throws(BootMediumError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(max(0, min(Int64(count), size - offset))))
        var done = 0
        while done < bytes.count {
            let n = try bytes.withMutableBytes { (raw) throws(BootMediumError) in
                try read(into: UnsafeMutableRawBufferPointer(rebasing: raw[done...]), at: offset + Int64(done))
            }
            if n == 0 { break }
            done += n
        }
        return Array(bytes[..<done])
    }

    /// The whole file as measured at open; fails if it changed meanwhile.
    public func readAll() throws(BootMediumError) -> [UInt8] {
        let bytes = try bytes(at: 0, count: Int(size))
        if bytes.count != Int(size) { throw changed() }
        try checkUnchanged()
        return bytes
    }

    /// Fails unless the file is still as it was opened (same size and modification time): a
    /// build that read or copied it meanwhile may have seen a mix of two versions. The change
    /// time is not compared: adding or removing a hard link to the file (trees copied with
    /// `cp -al`) changes it without changing a byte.
    func checkUnchanged() throws(BootMediumError) {
        let now = try FileIdentity(fd: descriptor, path: path)
        guard now.size == identity.size, now.modified == identity.modified else { throw changed() }
    }

    private func changed() -> BootMediumError {
        BootMediumError(
            .imageBuildFailed, "\(path) changed while the image was built", context: ["path": path])
    }
}
