#if canImport(Glibc)
import Glibc
#endif
import Crypto
import Foundation
import Synchronization

/// Facts about a tree file (its uncompressed size, its SHA-256), computed once per file
/// identity.
///
/// The key is the file's device, inode, size, modification and change times (nanoseconds):
/// any rewrite of the file changes it. Facts live in memory for the process and in
/// `<work dir>/.tree-facts.json` (replaced atomically) across processes; a missing or
/// unreadable cache file only costs one more computation.
enum TreeFileFacts {
    private struct Memory {
        var facts: [String: String] = [:]
        /// Cache directories whose file has been merged into `facts` (read once per process).
        var loadedDirectories: Set<String> = []
    }
    private static let memory = Mutex(Memory())
    static let cacheName = ".tree-facts.json"

    /// The facts in `cacheDirectory`'s cache file (empty when missing or unreadable).
    private static func onDisk(_ cacheDirectory: String) -> [String: String] {
        guard let data = FileManager.default.contents(atPath: cachePath(cacheDirectory)),
            let decoded = try? JSONDecoder().decode([String: String].self, from: data)
        else { return [:] }
        return decoded
    }

    private static func cachePath(_ cacheDirectory: String) -> String { cacheDirectory + "/" + cacheName }

    /// The fact `kind` of the file at `path`, computed by `compute` when not cached.
    static func fact(
        _ kind: String, of path: String, cacheDirectory: String,
        compute: () throws(BootMediumError) -> String
    ) throws(BootMediumError) -> String {
        let key = "\(kind)|" + (try FileIdentity(path: path)).description
        if memory.withLock({ !$0.loadedDirectories.contains(cacheDirectory) }) {
            let facts = onDisk(cacheDirectory)
            memory.withLock {
                $0.loadedDirectories.insert(cacheDirectory)
                $0.facts.merge(facts) { mine, _ in mine }
            }
        }
        if let value = memory.withLock({ $0.facts[key] }) { return value }
        let value = try compute()
        memory.withLock { $0.facts[key] = value }
        // Re-read before replacing: another process may have added facts since.
        var facts = onDisk(cacheDirectory)
        facts[key] = value
        if facts.count > 256 { facts = [key: value] }
        if let data = try? JSONEncoder().encode(facts),
            (try? OutputFile.openCreatingDirectories(cacheDirectory, confinedTo: nil)).map({ close($0) }) != nil
        {
            try? Posix.atomicReplace(cachePath(cacheDirectory), with: data)
        }
        return value
    }

    /// The uncompressed size of the compressed file at `path`.
    static func uncompressedSize(of path: String, cacheDirectory: String, cancellation: CancellationFlag)
        throws(BootMediumError) -> Int64
    {
        let text = try fact("uncompressed-size", of: path, cacheDirectory: cacheDirectory) {
            () throws(BootMediumError) in
            String(try Archive.uncompressedSize(ofFileAt: path, cancellation: cancellation))
        }
        guard let size = Int64(text) else {
            throw BootMediumError(.imageBuildFailed, "Bad cached size for \(path)")
        }
        return size
    }

    /// The SHA-256 (hex) of the file at `path`.
    static func sha256(of path: String, cacheDirectory: String, cancellation: CancellationFlag)
        throws(BootMediumError) -> String
    {
        try fact("sha256", of: path, cacheDirectory: cacheDirectory) { () throws(BootMediumError) in
            try Digest.sha256(ofFileAt: path, cancellation: cancellation)
        }
    }
}

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

    /// The SHA-256 of a file, read in 1 MiB chunks.
    static func sha256(ofFileAt path: String, cancellation: CancellationFlag) throws(BootMediumError) -> String {
        let fd = Posix.retrying { open(path, O_RDONLY | O_CLOEXEC) }
        if fd < 0 { throw .io("open", path: path, errno: errno) }
        defer { close(fd) }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { raw in Posix.retrying { read(fd, raw.baseAddress!, raw.count) } }
            if n < 0 { throw .io("read", path: path, errno: errno) }
            if n == 0 { break }
            buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            try cancellation.check()
        }
        return hex(hasher.finalize())
    }
}
