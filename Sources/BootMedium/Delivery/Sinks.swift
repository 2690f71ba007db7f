import Foundation

extension OutputFile: ImageSink {
    func write(_ bytes: UnsafeRawBufferPointer) throws(BootMediumError) {
        try Posix.writeAll(fd, bytes, path: path)
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
}
