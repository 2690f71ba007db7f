import CIsofs
import Foundation

/// A libisofs stream over a file on disk that reads 1 MiB at a time.
///
/// libisofs's own file streams issue one `read(2)` per 2 KiB block (86 000 calls for a 170 MiB
/// bootcd); this one serves those blocks from a 1 MiB buffer. The file is opened once, its size
/// fixed at creation: reaching end-of-file early, or a file that changed size, is a read error,
/// which libisofs reports at MISHAP or worse and so fails the build.
final class IsofsFileStream {
    let path: String
    let size: off_t
    let device: dev_t
    let inode: ino_t
    /// The file while libisofs has the stream open.
    private var file: OwnedDescriptor?
    /// Why the stream failed, in our words (libisofs reports only "read error").
    private(set) var failure: BootMediumError?
    private var buffer: [UInt8] = []  // 1 MiB once a file is streamed
    private var start = 0
    private var end = 0
    private var delivered: off_t = 0

    private init(path: String, info: stat) {
        self.path = path
        self.size = info.st_size
        self.device = info.st_dev
        self.inode = info.st_ino
    }

    /// Creates a libisofs stream (reference count 1) for the file at `path`, and returns it with
    /// the file's size.
    static func make(path: String) throws(BootMediumError)
        -> (stream: UnsafeMutablePointer<IsoStream>, object: IsofsFileStream)
    {
        var info = stat()
        try Posix.syscall("stat", path: path) { stat(path, &info) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw BootMediumError(.missingBootcd, "\(path) is not a regular file", context: ["path": path])
        }
        let object = IsofsFileStream(path: path, info: info)
        let stream = malloc(MemoryLayout<IsoStream>.size)!.assumingMemoryBound(to: IsoStream.self)
        stream.initialize(to: IsoStream())
        stream.pointee.class = withUnsafeMutablePointer(to: &Self.interface) { $0 }
        stream.pointee.refcount = 1
        stream.pointee.data = Unmanaged.passRetained(object).toOpaque()
        return (stream, object)
    }

    private static func object(_ stream: UnsafeMutablePointer<IsoStream>?) -> IsofsFileStream {
        Unmanaged<IsofsFileStream>.fromOpaque(stream!.pointee.data).takeUnretainedValue()
    }

    nonisolated(unsafe) private static var interface: IsoStreamIface = {
        var iface = IsoStreamIface()
        iface.version = 0
        iface.type = (0x66, 0x69, 0x6C, 0x65)  // "file"
        iface.open = { stream in IsofsFileStream.object(stream).openFile() }
        iface.close = { stream in IsofsFileStream.object(stream).closeFile() }
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
            _ = object.takeUnretainedValue().closeFile()
            object.release()
        }
        return iface
    }()

    private static let readError = Int32(bitPattern: 0xE830_FF79)  // ISO_FILE_READ_ERROR

    private func openFile() -> Int32 {
        if file != nil { return Int32(bitPattern: 0xE830_FF7D) }  // ISO_FILE_ALREADY_OPENED
        start = 0
        end = 0
        delivered = 0
        #if BOOTMEDIUM_TEST_SEAMS
        FileCopy.beforePiece.withLock { $0.isEmpty ? nil : $0[InputFile.shown(path)] }?(0)  // tests: change the source
        #endif
        if buffer.isEmpty { buffer = [UInt8](repeating: 0, count: 1 << 20) }
        let info: stat
        do {
            let opened = try OwnedDescriptor.open(path, flags: O_RDONLY | O_CLOEXEC)
            info = try opened.status()
            file = opened
        } catch {
            return fail(.io("open", path: path, errno: error.code))
        }
        if info.st_size != size { return fail(FileCopy.changedSize(path, expected: Int64(size), actual: Int64(info.st_size))) }
        return 1
    }

    /// Records `error` and returns libisofs's read error.
    private func fail(_ error: BootMediumError) -> Int32 {
        if failure == nil { failure = error }
        return Self.readError
    }

    private func closeFile() -> Int32 {
        file = nil
        return 1
    }

    private func read(_ destination: UnsafeMutableRawPointer, _ count: Int) -> Int32 {
        guard let file else { return Int32(bitPattern: 0xE830_FF7C) }  // ISO_FILE_NOT_OPENED
        var copied = 0
        while copied < count {
            if start == end {
                if delivered + off_t(copied) >= size { break }
                #if BOOTMEDIUM_TEST_SEAMS
                FileCopy.beforePiece.withLock { $0.isEmpty ? nil : $0[InputFile.shown(path)] }?(Int64(delivered) + Int64(copied))
                #endif
                let descriptor = file.rawValue
                let n: Int
                do {
                    n = try buffer.withMutableBytes { (raw) throws(Errno) in try Posix.syscall { Glibc.read(descriptor, raw.baseAddress!, raw.count) } }
                } catch {
                    return fail(.io("read", path: path, errno: error.code))
                }
                if n == 0 { return fail(FileCopy.endedEarly(path, expected: Int64(size), read: Int64(delivered) + Int64(copied))) }
                start = 0
                end = n
            }
            let take = min(count - copied, end - start)
            buffer.withUnsafeBytes { (destination + copied).copyMemory(from: $0.baseAddress! + start, byteCount: take) }
            start += take
            copied += take
        }
        delivered += off_t(copied)
        if delivered > size { return fail(FileCopy.changedSize(path, expected: Int64(size), actual: Int64(delivered))) }
        return Int32(copied)
    }
}
