#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

extension ImageSink {
    /// No kernel copy: ``FileCopy`` reads and writes.
    public func copy(from fd: Int32, offset: Int64, count: Int) throws(BootMediumError) -> Int? { nil }

    /// Nothing to reserve.
    public func reserve(_ byteCount: Int64) throws(BootMediumError) {}
}

extension OutputFile: ImageSink {
    func write(_ bytes: UnsafeRawBufferPointer) throws(BootMediumError) {
        try Posix.writeAll(fd, bytes, path: path)
        noteWritten(bytes.count)
    }

    func copy(from source: Int32, offset: Int64, count: Int) throws(BootMediumError) -> Int? {
        let n = try Posix.copyFileRange(from: source, offset: offset, to: fd, count: count, path: path)
        if let n { noteWritten(n) }
        return n
    }

    func reserve(_ byteCount: Int64) throws(BootMediumError) {
        try Posix.reserve(fd, count: byteCount, path: path)
    }
}

extension OutputFile: RandomAccessSink {
    func copy(from source: Int32, offset: Int64, count: Int, at: Int64) throws(BootMediumError) -> Int? {
        let n = try Posix.copyFileRange(from: source, offset: offset, to: fd, at: at, count: count, path: path)
        if let n, n > 0 { startWriteback(at: at, count: Int64(n)) }
        return n
    }

    func write(_ bytes: UnsafeRawBufferPointer, at: Int64) throws(BootMediumError) {
        try Posix.writeAll(fd, bytes, at: at, path: path)
        startWriteback(at: at, count: Int64(bytes.count))
    }

    func setLength(_ length: Int64) throws(BootMediumError) {
        if Posix.retrying({ ftruncate(fd, off_t(length)) }) != 0 { throw .io("truncate", path: path, errno: errno) }
    }

    func clone(from source: Int32) throws(BootMediumError) -> Bool {
        try Posix.clone(source, into: fd, path: path)
    }
}

/// Collects an image in memory (inline results).
final class MemorySink: ImageSink {
    var data = Data()
    func write(_ bytes: UnsafeRawBufferPointer) throws(BootMediumError) {
        data.append(contentsOf: bytes)
    }
}

/// Writes to an already open descriptor (standard output).
final class DescriptorSink: ImageSink {
    let fd: Int32
    var count = 0
    init(fd: Int32) { self.fd = fd }
    func write(_ bytes: UnsafeRawBufferPointer) throws(BootMediumError) {
        try Posix.writeAll(fd, bytes, path: "fd \(fd)")
        count += bytes.count
    }

    func copy(from source: Int32, offset: Int64, count: Int) throws(BootMediumError) -> Int? {
        let n = try Posix.copyFileRange(from: source, offset: offset, to: fd, count: count, path: "fd \(fd)")
        if let n { self.count += n }
        return n
    }
}

/// Copies files on disk into image sinks: in the kernel when the sink can
/// (``ImageSink/copy(from:offset:count:)``), else through a caller's buffer.
enum FileCopy {
    /// The most one kernel copy moves between two cancellation checks.
    static let piece = 8 << 20
    /// Kernel copies start at image offsets that are multiples of this: the page cache writes
    /// whole large folios then (a copy to an offset aligned to 4 KiB only, like file data after
    /// an ISO head or a FAT's first cluster, runs about 25 % slower on Linux 6.x).
    static let alignment: Int64 = 64 << 10

    #if BOOTMEDIUM_TEST_SEAMS
    /// Tests: by source path, called before each piece with the bytes copied so far.
    static let beforePiece = Mutex<[String: @Sendable (Int64) -> Void]>([:])
    #endif

    /// Appends the `size` bytes of the regular file at `path` to `sink`, where they land at
    /// `imageOffset`, checking `cancellation` before every piece. Pieces are copied in the kernel
    /// while the sink can, from the first ``alignment`` boundary on (the bytes before it, and all
    /// of them when the sink cannot copy, are read into `buffer` and written, at most
    /// `buffer.count` bytes per `write`).
    ///
    /// The file must be `size` bytes when opened and still when done, and must not end early:
    /// otherwise `imageBuildFailed`, never zeros or a short image.
    static func append(
        path: String, size: Int64, at imageOffset: Int64, to sink: any ImageSink,
        buffer: UnsafeMutableRawBufferPointer, cancellation: CancellationFlag
    ) throws(BootMediumError) {
        try transfer(
            path: path, size: size, at: imageOffset, buffer: buffer,
            check: { () throws(BootMediumError) in try cancellation.check() },
            copy: { (fd, offset, count) throws(BootMediumError) in try sink.copy(from: fd, offset: offset, count: count) },
            write: { (bytes, _) throws(BootMediumError) in try sink.write(bytes) })
    }

    /// Like ``append(path:size:at:to:buffer:cancellation:)``, by positioned calls: the bytes
    /// land at `imageOffset` in `sink` whatever its file position; `check` runs before every
    /// piece.
    static func place(
        path: String, size: Int64, at imageOffset: Int64, into sink: any RandomAccessSink,
        buffer: UnsafeMutableRawBufferPointer, check: () throws(BootMediumError) -> Void
    ) throws(BootMediumError) {
        try transfer(
            path: path, size: size, at: imageOffset, buffer: buffer, check: check,
            copy: { (fd, offset, count) throws(BootMediumError) in
                try sink.copy(from: fd, offset: offset, count: count, at: imageOffset + offset)
            },
            write: { (bytes, offset) throws(BootMediumError) in try sink.write(bytes, at: imageOffset + offset) })
    }

    /// The loop of ``append`` and ``place``: `copy(fd, fileOffset, count)` copies in the kernel
    /// (nil: cannot), `write(bytes, fileOffset)` writes bytes read from the file.
    private static func transfer(
        path: String, size: Int64, at imageOffset: Int64, buffer: UnsafeMutableRawBufferPointer,
        check: () throws(BootMediumError) -> Void,
        copy: (Int32, Int64, Int) throws(BootMediumError) -> Int?,
        write: (UnsafeRawBufferPointer, Int64) throws(BootMediumError) -> Void
    ) throws(BootMediumError) {
        let fd = Posix.retrying { open(path, O_RDONLY | O_CLOEXEC) }
        if fd < 0 { throw .io("open", path: path, errno: errno) }
        defer { close(fd) }
        try checkSize(fd, path: path, size: size)
        #if BOOTMEDIUM_TEST_SEAMS
        let hook = beforePiece.withLock { $0.isEmpty ? nil : $0[InputFile.shown(path)] }
        #endif
        let prefix = min(size, (alignment - imageOffset % alignment) % alignment)
        var done: Int64 = 0
        var kernel = true
        while done < size {
            try check()
            #if BOOTMEDIUM_TEST_SEAMS
            hook?(done)
            #endif
            if kernel && done >= prefix {
                let want = Int(min(Int64(piece), size - done))
                if let n = try copy(fd, done, want), n > 0 {
                    done += Int64(n)
                    continue
                }
                // Cannot copy (or no bytes: confirmed by reading below): read and write from here.
                kernel = false
            }
            let want = Int(min(Int64(buffer.count), (kernel ? prefix : size) - done))
            let offset = done
            let n = Posix.retrying { pread(fd, buffer.baseAddress!, want, off_t(offset)) }
            if n < 0 { throw .io("read", path: path, errno: errno) }
            if n == 0 { throw endedEarly(path, expected: size, read: done) }
            try write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), offset)
            done += Int64(n)
        }
        try checkSize(fd, path: path, size: size)
    }

    private static func checkSize(_ fd: Int32, path: String, size: Int64) throws(BootMediumError) {
        var info = stat()
        if fstat(fd, &info) != 0 { throw .io("stat", path: path, errno: errno) }
        guard Int64(info.st_size) == size else { throw changedSize(path, expected: size, actual: Int64(info.st_size)) }
    }

    /// A source file that ended before the size the image was laid out for.
    static func endedEarly(_ path: String, expected: Int64, read: Int64) -> BootMediumError {
        let shown = InputFile.shown(path)
        return BootMediumError(
            .imageBuildFailed, "\(shown) ended early while the image was built",
            context: ["path": shown, "expected": String(expected), "read": String(read)])
    }

    /// A source file found at another size than the image was laid out for.
    static func changedSize(_ path: String, expected: Int64, actual: Int64) -> BootMediumError {
        let path = InputFile.shown(path)
        return BootMediumError(
            .imageBuildFailed, "\(path) changed size while the image was built",
            context: ["path": path, "expected": String(expected), "actual": String(actual)])
    }

    /// Appends `bytes` to `sink` through `buffer` (at most its size per `write`).
    static func appendBytes(_ bytes: [UInt8], to sink: any ImageSink, buffer: UnsafeMutableRawBufferPointer) throws(BootMediumError) {
        var index = 0
        while index < bytes.count {
            let n = min(buffer.count, bytes.count - index)
            bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + index, byteCount: n) }
            try sink.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            index += n
        }
    }

    /// Appends `count` zero bytes to `sink`, at most `zeros.count` per `write`. `zeros` must hold
    /// zeros.
    static func appendZeros(_ count: Int64, to sink: any ImageSink, zeros: UnsafeRawBufferPointer) throws(BootMediumError) {
        var remaining = count
        while remaining > 0 {
            let n = Int(min(Int64(zeros.count), remaining))
            try sink.write(UnsafeRawBufferPointer(rebasing: zeros[0..<n]))
            remaining -= Int64(n)
        }
    }
}
