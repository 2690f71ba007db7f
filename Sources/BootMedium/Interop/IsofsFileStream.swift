import CIsofs
import Foundation

/// Decides once per image whether libisofs streams the data of files on disk itself or the
/// reader copies them behind its back (``Isofs``): the streams of such files wait for the
/// decision before they open.
final class IsofsDataDecision: @unchecked Sendable {
    enum Mode {
        /// Not decided yet: streams wait.
        case undecided
        /// Streams read their files (libisofs writes every byte).
        case stream
        /// The reader copies the files: streams yield zeros that are never read.
        case copy
        /// The image is being given up: streams fail.
        case abandon
    }

    private let condition = NSCondition()
    private var mode = Mode.undecided

    /// Decides `mode` unless already decided; returns the mode in force.
    @discardableResult
    func decide(_ mode: Mode) -> Mode {
        condition.lock()
        defer { condition.unlock() }
        if self.mode == .undecided {
            self.mode = mode
            condition.broadcast()
        }
        return self.mode
    }

    /// Waits for the decision; gives the image up after `timeout` seconds (a reader that never
    /// decides is a bug, not a reason to hang).
    func wait(timeout: TimeInterval = 60) -> Mode {
        condition.lock()
        let deadline = Date(timeIntervalSinceNow: timeout)
        while mode == .undecided {
            if !condition.wait(until: deadline) { break }
        }
        condition.unlock()
        return decide(.abandon)
    }
}

/// A libisofs stream over a file on disk that reads 1 MiB at a time.
///
/// libisofs's own file streams issue one `read(2)` per 2 KiB block (86 000 calls for a 170 MiB
/// bootcd); this one serves those blocks from a 1 MiB buffer. The file is opened once, its size
/// fixed at creation: reaching end-of-file early, or a file that changed size, is a read error,
/// which libisofs reports at MISHAP or worse and so fails the build.
///
/// With a ``IsofsDataDecision``, `open` first waits for it: when the reader copies the file itself
/// the stream yields `size` zeros without touching the file (libisofs lays the image out as
/// usual; the reader stops taking its bytes before this file's data).
final class IsofsFileStream {
    let path: String
    let size: off_t
    let device: dev_t
    let inode: ino_t
    private let decision: IsofsDataDecision?
    private var fd: Int32 = -1
    private var zeros = false
    private var buffer: [UInt8] = []  // 1 MiB once a file is streamed
    private var start = 0
    private var end = 0
    private var delivered: off_t = 0

    private init(path: String, info: stat, decision: IsofsDataDecision?) {
        self.path = path
        self.size = info.st_size
        self.device = info.st_dev
        self.inode = info.st_ino
        self.decision = decision
    }

    /// Creates a libisofs stream (reference count 1) for the file at `path`, and returns it with
    /// the file's size.
    static func make(path: String, decision: IsofsDataDecision? = nil) throws(BootMediumError)
        -> (stream: UnsafeMutablePointer<IsoStream>, size: Int64)
    {
        var info = stat()
        guard stat(path, &info) == 0 else { throw .io("stat", path: path, errno: errno) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw BootMediumError(.missingBootcd, "\(path) is not a regular file", context: ["path": path])
        }
        let object = IsofsFileStream(path: path, info: info, decision: decision)
        let stream = malloc(MemoryLayout<IsoStream>.size)!.assumingMemoryBound(to: IsoStream.self)
        stream.initialize(to: IsoStream())
        stream.pointee.class = withUnsafeMutablePointer(to: &Self.interface) { $0 }
        stream.pointee.refcount = 1
        stream.pointee.data = Unmanaged.passRetained(object).toOpaque()
        return (stream, Int64(info.st_size))
    }

    private static func object(_ stream: UnsafeMutablePointer<IsoStream>?) -> IsofsFileStream {
        Unmanaged<IsofsFileStream>.fromOpaque(stream!.pointee.data).takeUnretainedValue()
    }

    nonisolated(unsafe) private static var interface: IsoStreamIface = {
        var iface = IsoStreamIface()
        iface.version = 0
        iface.type = (0x66, 0x69, 0x6C, 0x65)  // "file"
        iface.open = { stream in IsofsFileStream.object(stream).open() }
        iface.close = { stream in IsofsFileStream.object(stream).close() }
        iface.get_size = { stream in IsofsFileStream.object(stream).size }
        iface.read = { stream, buf, count in IsofsFileStream.object(stream).read(buf!, count) }
        iface.is_repeatable = { _ in 1 }
        iface.get_id = { stream, fsID, devID, inoID in
            let object = IsofsFileStream.object(stream)
            fsID?.pointee = 0x424D_4653  // "BMFS": this stream class's file system id
            devID?.pointee = object.device
            inoID?.pointee = object.inode
        }
        iface.free = { stream in
            let object = Unmanaged<IsofsFileStream>.fromOpaque(stream!.pointee.data)
            _ = object.takeUnretainedValue().close()
            object.release()
        }
        return iface
    }()

    private static let readError = Int32(bitPattern: 0xE830_FF79)  // ISO_FILE_READ_ERROR

    private func open() -> Int32 {
        if fd >= 0 || zeros { return Int32(bitPattern: 0xE830_FF7D) }  // ISO_FILE_ALREADY_OPENED
        start = 0
        end = 0
        delivered = 0
        if let decision {
            switch decision.wait() {
            case .copy:
                zeros = true
                return 1
            case .stream: break
            case .undecided, .abandon: return Self.readError
            }
        }
        FileCopy.beforePiece.withLock { $0.isEmpty ? nil : $0[InputFile.shown(path)] }?(0)  // tests: change the source
        if buffer.isEmpty { buffer = [UInt8](repeating: 0, count: 1 << 20) }
        fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        var info = stat()
        if fd < 0 || fstat(fd, &info) != 0 || info.st_size != size { return Self.readError }
        return 1
    }

    private func close() -> Int32 {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
        zeros = false
        return 1
    }

    private func read(_ destination: UnsafeMutableRawPointer, _ count: Int) -> Int32 {
        if zeros {
            let n = Int(min(off_t(count), size - delivered))
            memset(destination, 0, n)
            delivered += off_t(n)
            return Int32(n)
        }
        guard fd >= 0 else { return Int32(bitPattern: 0xE830_FF7C) }  // ISO_FILE_NOT_OPENED
        var copied = 0
        while copied < count {
            if start == end {
                if delivered + off_t(copied) >= size { break }
                let descriptor = fd
                let n = buffer.withUnsafeMutableBytes { raw in Posix.retrying { Glibc.read(descriptor, raw.baseAddress!, raw.count) } }
                if n < 0 { return Self.readError }
                if n == 0 { return Self.readError }  // shorter than when the image was planned
                start = 0
                end = n
            }
            let take = min(count - copied, end - start)
            buffer.withUnsafeBytes { (destination + copied).copyMemory(from: $0.baseAddress! + start, byteCount: take) }
            start += take
            copied += take
        }
        delivered += off_t(copied)
        if delivered > size { return Self.readError }  // grew since planned
        return Int32(copied)
    }
}
