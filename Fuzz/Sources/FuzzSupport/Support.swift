// Shared pieces of the fuzz targets: the image file the readers open, the sparse input form,
// and the one property every target checks (hostile input ends in `invalid-image`, nothing else).
#if canImport(Glibc)
import Glibc
#endif
@testable import BootMedium

/// The readers open images by path (`ImageBytes(path:)`, libblkid), so every input is written to
/// one unlinked file in /dev/shm (tmpfs) and handed over as `/proc/self/fd/N`: no disk I/O, no
/// file left behind, and the readers run exactly as `bootmedium inspect` runs them.
public final class FuzzImageFile: @unchecked Sendable {
    public let fd: Int32
    public let path: String

    public static let shared = FuzzImageFile()

    private init() {
        var template = Array("/dev/shm/bootmedium-fuzz-XXXXXX".utf8CString)
        var fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        if fd < 0 {
            template = Array("/tmp/bootmedium-fuzz-XXXXXX".utf8CString)
            fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        }
        precondition(fd >= 0, "cannot create the fuzz image file")
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        self.fd = fd
        self.path = "/proc/self/fd/\(fd)"
    }

    /// Replaces the file's content with `image` (see ``SparseImage``) and returns its path.
    public func load(_ image: SparseImage) -> String {
        guard ftruncate(fd, 0) == 0, ftruncate(fd, off_t(image.size)) == 0 else { fatalError("ftruncate: \(errno)") }
        for (offset, bytes) in image.chunks {
            var done = 0
            while done < bytes.count {
                let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, bytes.count - done, off_t(offset + done)) }
                guard n > 0 else { fatalError("pwrite: \(errno)") }
                done += n
            }
        }
        return path
    }
}

/// An image described either raw (the input's bytes are the image) or sparse, so that a FAT32
/// volume (≥ 33 MiB) or a mostly-zero USB image fits in a small fuzz input:
///
///     "BMSP" | u32le image size | { u32le offset | u16le length | length bytes }...
///
/// Chunks are applied in order over zeros; a chunk reaching past the image is cut, a truncated
/// record ends the list. The size is capped at ``maximumSize``.
public struct SparseImage {
    public static let magic: [UInt8] = Array("BMSP".utf8)
    public static let maximumSize = 40 << 20

    public var size: Int
    public var chunks: [(Int, ArraySlice<UInt8>)]

    public init(decoding input: [UInt8]) {
        guard input.count >= 8, Array(input[0..<4]) == Self.magic else {
            size = input.count
            chunks = [(0, input[...])]
            return
        }
        func le32(_ at: Int) -> Int { Int(input[at]) | Int(input[at + 1]) << 8 | Int(input[at + 2]) << 16 | Int(input[at + 3]) << 24 }
        size = min(le32(4), Self.maximumSize)
        chunks = []
        var at = 8
        while at + 6 <= input.count {
            let offset = le32(at)
            let length = Int(input[at + 4]) | Int(input[at + 5]) << 8
            at += 6
            let end = min(at + length, input.count)
            if offset < size {
                let kept = min(end - at, size - offset)
                if kept > 0 { chunks.append((offset, input[at..<(at + kept)])) }
            }
            at = end
        }
    }
}

/// The bytes of a libFuzzer input.
public func fuzzBytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
    guard let data, size > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: size))
}

/// The property every target checks: a reader may only reject hostile input with
/// `invalid-image` (a clear error), never another code (e.g. `io-error` for an image that is only
/// malformed). Anything else aborts, which libFuzzer records as a crash.
public func expectInvalidImage(_ error: BootMediumError, _ step: StaticString) {
    guard error.code == .invalidImage else {
        fatalError("\(step): expected invalid-image, got \(error)")
    }
    _ = error.description
}

/// Runs `body`; a thrown error must be `invalid-image`.
@inline(__always)
public func step<T>(_ name: StaticString, _ body: () throws(BootMediumError) -> T) -> T? {
    do {
        return try body()
    } catch {
        expectInvalidImage(error, name)
        return nil
    }
}
