import Crypto

/// SHA-256 helpers.
enum Digest {
    /// Lower-case hex. (Not `String(format:)`: its first call alone costs ~0.3 ms, then
    /// ~2.5 µs a byte, on every request.)
    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        var text: [UInt8] = []
        text.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            text.append(hexDigits[Int(byte >> 4)])
            text.append(hexDigits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// An incremental SHA-256.
    struct Hasher {
        private var state = SHA256()
        mutating func update(_ bytes: [UInt8]) { state.update(data: bytes) }
        func finalize() -> String { Digest.hex(state.finalize()) }
    }

    /// The SHA-256 of `bytes`, hex.
    static func sha256(_ bytes: [UInt8]) -> String { hex(SHA256.hash(data: bytes)) }

    /// The SHA-256 of `file` as measured when it was opened, read in 1 MiB chunks; fails if
    /// it changed meanwhile.
    static func sha256(of file: InputFile, cancellation: CancellationFlag) throws(BootMediumError) -> String {
        var hasher = SHA256()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var done: Int64 = 0
        while done < file.size {
            let n = try file.read(into: buffer, at: done)
            if n == 0 { break }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            done += Int64(n)
            try cancellation.check()
        }
        try file.checkUnchanged()
        return hex(hasher.finalize())
    }
}
