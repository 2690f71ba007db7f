#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Sequential, buffered writing of a disk image into an ``ImageSink``: bytes are collected in a
/// fixed buffer (1 MiB) and handed to the sink when it is full; `cancellation` is checked before
/// every hand-over. Files on disk are copied through the same buffer, so memory stays bounded
/// whatever the image size.
final class ImageStream {
    static let chunkSize = 1 << 20

    private let sink: any ImageSink
    private let cancellation: CancellationFlag
    private var buffer: [UInt8]
    private var filled = 0
    /// Bytes accepted so far (buffered or written).
    private(set) var offset: Int64 = 0

    init(sink: any ImageSink, cancellation: CancellationFlag, chunkSize: Int = ImageStream.chunkSize) {
        self.sink = sink
        self.cancellation = cancellation
        buffer = [UInt8](repeating: 0, count: chunkSize)
    }

    /// Appends `bytes`.
    func append(_ bytes: [UInt8]) throws(BootMediumError) {
        var index = 0
        while index < bytes.count {
            if filled == buffer.count { try flush() }
            let n = min(buffer.count - filled, bytes.count - index)
            buffer.replaceSubrange(filled..<(filled + n), with: bytes[index..<(index + n)])
            filled += n
            index += n
            offset += Int64(n)
        }
    }

    /// Appends `count` zero bytes.
    func appendZeros(_ count: Int64) throws(BootMediumError) {
        var remaining = count
        while remaining > 0 {
            if filled == buffer.count { try flush() }
            let n = Int(min(Int64(buffer.count - filled), remaining))
            buffer.withUnsafeMutableBytes { raw in
                _ = memset(raw.baseAddress! + filled, 0, n)
            }
            filled += n
            remaining -= Int64(n)
            offset += Int64(n)
        }
    }

    /// Appends the `size` bytes of the regular file at `path`, read in chunks. Throws
    /// `imageBuildFailed` when the file's size is not `size` (changed since it was measured).
    func appendFile(path: String, size: Int64) throws(BootMediumError) {
        let fd = Posix.retrying { open(path, O_RDONLY | O_CLOEXEC) }
        if fd < 0 { throw .io("open", path: path, errno: errno) }
        defer { close(fd) }
        var info = stat()
        if fstat(fd, &info) != 0 { throw .io("stat", path: path, errno: errno) }
        guard Int64(info.st_size) == size else {
            throw BootMediumError(
                .imageBuildFailed, "\(path) changed size while the image was built",
                context: ["path": path, "expected": String(size), "actual": String(info.st_size)])
        }
        var remaining = size
        while remaining > 0 {
            if filled == buffer.count { try flush() }
            let want = Int(min(Int64(buffer.count - filled), remaining))
            let start = filled
            let n = buffer.withUnsafeMutableBytes { raw in
                Posix.retrying { read(fd, raw.baseAddress! + start, want) }
            }
            if n < 0 { throw .io("read", path: path, errno: errno) }
            if n == 0 {
                throw BootMediumError(
                    .imageBuildFailed, "\(path) ended early while the image was built", context: ["path": path])
            }
            filled += n
            remaining -= Int64(n)
            offset += Int64(n)
        }
    }

    /// Hands the buffered bytes to the sink.
    func flush() throws(BootMediumError) {
        try cancellation.check()
        guard filled > 0 else { return }
        let count = filled
        let result: Result<Void, BootMediumError> = buffer.withUnsafeBytes { raw in
            do throws(BootMediumError) {
                try sink.write(UnsafeRawBufferPointer(rebasing: raw[0..<count]))
                return .success(())
            } catch { return .failure(error) }
        }
        try result.get()
        filled = 0
    }
}
