#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Sequential, buffered writing of a disk image into an ``ImageSink``: bytes are collected in a
/// fixed buffer (1 MiB) and handed to the sink when it is full; `cancellation` is checked before
/// every hand-over. Files on disk go to the sink directly (``FileCopy``: in the kernel when the
/// sink can, else through the same buffer), so memory stays bounded whatever the image size.
final class ImageStream {
    static let chunkSize = 1 << 20

    private let sink: any ImageSink
    private let cancellation: CancellationFlag
    private let buffer: UnsafeMutableRawBufferPointer
    private var filled = 0
    /// Bytes accepted so far (buffered or written).
    private(set) var offset: Int64 = 0

    init(sink: any ImageSink, cancellation: CancellationFlag, chunkSize: Int = ImageStream.chunkSize) {
        self.sink = sink
        self.cancellation = cancellation
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// Appends `bytes`.
    func append(_ bytes: [UInt8]) throws(BootMediumError) {
        var index = 0
        while index < bytes.count {
            if filled == buffer.count { try flush() }
            let n = min(buffer.count - filled, bytes.count - index)
            bytes.withUnsafeBytes { source in
                (buffer.baseAddress! + filled).copyMemory(from: source.baseAddress! + index, byteCount: n)
            }
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
            _ = memset(buffer.baseAddress! + filled, 0, n)
            filled += n
            remaining -= Int64(n)
            offset += Int64(n)
        }
    }

    /// Appends the `size` bytes of `file` (``FileCopy``). Throws `imageBuildFailed` when the
    /// file's size is not `size` (changed since it was measured) or it ends early.
    func appendFile(_ file: InputFile, size: Int64) throws(BootMediumError) {
        try flush()
        try FileCopy.append(file, size: size, at: offset, to: sink, buffer: buffer, cancellation: cancellation)
        offset += size
    }

    /// Hands the buffered bytes to the sink.
    func flush() throws(BootMediumError) {
        try cancellation.check()
        guard filled > 0 else { return }
        try sink.write(UnsafeRawBufferPointer(rebasing: buffer[0..<filled]))
        filled = 0
    }
}
