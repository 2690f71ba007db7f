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
        let n = try Posix.copyFileRange(from: source, offset: offset, to: fd, count: count, path: path, method: &kernelAppend)
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
        let fd = fd
        try Posix.syscall("truncate", path: path) { ftruncate(fd, off_t(length)) }
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
    private var kernelAppend = Posix.KernelAppend.copyFileRange
    init(fd: Int32) { self.fd = fd }
    func write(_ bytes: UnsafeRawBufferPointer) throws(BootMediumError) {
        try Posix.writeAll(fd, bytes, path: "fd \(fd)")
        count += bytes.count
    }

    func copy(from source: Int32, offset: Int64, count: Int) throws(BootMediumError) -> Int? {
        let n = try Posix.copyFileRange(from: source, offset: offset, to: fd, count: count, path: "fd \(fd)", method: &kernelAppend)
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
    /// Tests: by source path (``InputFile/path``), called before each piece with the offset
    /// copied up to.
    static let beforePiece = Mutex<[String: @Sendable (Int64) -> Void]>([:])
    #endif

    /// Appends the `size` bytes of `file` to `sink`, where they land at `imageOffset`, checking
    /// `cancellation` before every piece. Pieces are copied in the kernel while the sink can,
    /// from the first ``alignment`` boundary on (the bytes before it, and all of them when the
    /// sink cannot copy, are read into `buffer` and written, at most `buffer.count` bytes per
    /// `write`).
    ///
    /// The file must be `size` bytes when the copy starts and still when done, and must not end
    /// early: otherwise `imageBuildFailed`, never zeros or a short image.
    static func append(
        _ file: InputFile, size: Int64, at imageOffset: Int64, to sink: any ImageSink,
        buffer: UnsafeMutableRawBufferPointer, cancellation: CancellationFlag
    ) throws(BootMediumError) {
        try transferWhole(
            file, size: size, at: imageOffset, buffer: buffer,
            check: { () throws(BootMediumError) in try cancellation.check() },
            copy: { (offset, count) throws(BootMediumError) in try sink.copy(from: file.descriptor, offset: offset, count: count) },
            write: { (bytes, _) throws(BootMediumError) in try sink.write(bytes) })
    }

    /// Like ``append(_:size:at:to:buffer:cancellation:)``, by positioned calls: the bytes land
    /// at `imageOffset` in `sink` whatever its file position; `check` runs before every piece.
    static func place(
        _ file: InputFile, size: Int64, at imageOffset: Int64, into sink: any RandomAccessSink,
        buffer: UnsafeMutableRawBufferPointer, check: () throws(BootMediumError) -> Void
    ) throws(BootMediumError) {
        try transferWhole(
            file, size: size, at: imageOffset, buffer: buffer, check: check,
            copy: { (offset, count) throws(BootMediumError) in
                try sink.copy(from: file.descriptor, offset: offset, count: count, at: imageOffset + offset)
            },
            write: { (bytes, offset) throws(BootMediumError) in try sink.write(bytes, at: imageOffset + offset) })
    }

    /// Appends the bytes `range` of `file` to `sink` (in the kernel while it can, else read
    /// through `buffer`), checking `cancellation` before every piece; a file that ends before
    /// `range` does is `endedEarly`.
    static func append(
        _ range: Range<Int64>, of file: InputFile, to sink: any ImageSink, buffer: UnsafeMutableRawBufferPointer,
        cancellation: CancellationFlag, endedEarly: () -> BootMediumError
    ) throws(BootMediumError) {
        try transfer(
            range, of: file, kernelFrom: range.lowerBound, buffer: buffer,
            check: { () throws(BootMediumError) in try cancellation.check() },
            copy: { (offset, count) throws(BootMediumError) in try sink.copy(from: file.descriptor, offset: offset, count: count) },
            write: { (bytes, _) throws(BootMediumError) in try sink.write(bytes) },
            endedEarly: { _ in endedEarly() })
    }

    /// ``transfer(_:of:kernelFrom:buffer:check:copy:write:endedEarly:)`` of all of `file`, which
    /// must be `size` bytes before and after, its kernel copies aligned in the image.
    private static func transferWhole(
        _ file: InputFile, size: Int64, at imageOffset: Int64, buffer: UnsafeMutableRawBufferPointer,
        check: () throws(BootMediumError) -> Void,
        copy: (Int64, Int) throws(BootMediumError) -> Int?,
        write: (UnsafeRawBufferPointer, Int64) throws(BootMediumError) -> Void
    ) throws(BootMediumError) {
        try checkSize(file, size: size)
        let prefix = min(size, (alignment - imageOffset % alignment) % alignment)
        try transfer(
            0..<size, of: file, kernelFrom: prefix, buffer: buffer, check: check, copy: copy, write: write,
            endedEarly: { read in endedEarly(file.path, expected: size, read: read) })
        try checkSize(file, size: size)
    }

    /// The loop of every copy: the bytes `range` of `file`, `check` run before every piece;
    /// `copy(fileOffset, count)` copies in the kernel (nil: cannot) from `kernelFrom` on,
    /// `write(bytes, fileOffset)` writes bytes read from the file before it or once the kernel
    /// cannot; a file that ends early is `endedEarly(offset)`.
    private static func transfer(
        _ range: Range<Int64>, of file: InputFile, kernelFrom: Int64, buffer: UnsafeMutableRawBufferPointer,
        check: () throws(BootMediumError) -> Void,
        copy: (Int64, Int) throws(BootMediumError) -> Int?,
        write: (UnsafeRawBufferPointer, Int64) throws(BootMediumError) -> Void,
        endedEarly: (Int64) -> BootMediumError
    ) throws(BootMediumError) {
        #if BOOTMEDIUM_TEST_SEAMS
        let hook = beforePiece.withLock { $0.isEmpty ? nil : $0[file.path] }
        #endif
        var done = range.lowerBound
        var kernel = true
        while done < range.upperBound {
            try check()
            #if BOOTMEDIUM_TEST_SEAMS
            hook?(done)
            #endif
            if kernel && done >= kernelFrom {
                let want = Int(min(Int64(piece), range.upperBound - done))
                if let n = try copy(done, want), n > 0 {
                    done += Int64(n)
                    continue
                }
                // Cannot copy (or no bytes: confirmed by reading below): read and write from here.
                kernel = false
            }
            let want = Int(min(Int64(buffer.count), (kernel ? kernelFrom : range.upperBound) - done))
            let n = try Posix.read(file.descriptor, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]), at: done, path: file.path)
            if n == 0 { throw endedEarly(done) }
            try write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), done)
            done += Int64(n)
        }
    }

    private static func checkSize(_ file: InputFile, size: Int64) throws(BootMediumError) {
        var info = stat()
        let fd = file.descriptor
        try Posix.syscall("stat", path: file.path) { fstat(fd, &info) }
        guard Int64(info.st_size) == size else { throw changedSize(file.path, expected: size, actual: Int64(info.st_size)) }
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
