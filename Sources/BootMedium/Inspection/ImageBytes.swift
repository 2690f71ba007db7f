#if canImport(Glibc)
import Glibc
#endif
import Crypto
import Foundation

/// A value computed once, on first use, by a reader that is otherwise immutable (a directory
/// walk that every later lookup reuses).
final class Memo<Value> {
    private var value: Value?
    func get(_ compute: () throws(BootMediumError) -> Value) throws(BootMediumError) -> Value {
        if let value { return value }
        let computed = try compute()
        value = computed
        return computed
    }
}

/// Random access to an image file for the readers, with every read checked against the file's
/// size and capped, so a hostile offset or length is an error, never a huge allocation.
final class ImageBytes {
    /// The largest single read a reader may ask for.
    static let maximumRead = 64 << 20

    let path: String
    let size: Int64
    /// The open image (read only, positioned reads).
    private let file: OwnedDescriptor
    /// The open image's descriptor, while this value lives.
    var fd: Int32 { file.rawValue }

    /// Opens the image at `path`: a regular file or a block device (a USB stick). The open
    /// never blocks, so a FIFO or a character device such as `/dev/zero` is refused at once.
    init(path: String) throws(BootMediumError) {
        let file: OwnedDescriptor
        let info: stat
        do { file = try OwnedDescriptor.open(path, flags: O_RDONLY | O_NONBLOCK | O_CLOEXEC) } catch { throw .io("open", path: path, errno: error.code) }
        do { info = try file.status() } catch { throw .io("stat", path: path, errno: error.code) }
        guard (info.st_mode & S_IFMT) == S_IFREG || (info.st_mode & S_IFMT) == S_IFBLK else {
            throw BootMediumError(.invalidImage, "\(path) is not a file or a block device", context: ["path": path])
        }
        self.path = path
        self.file = file
        // A block device's size is where it ends, not its st_size (0).
        self.size = (info.st_mode & S_IFMT) == S_IFBLK ? Int64(max(0, lseek(file.rawValue, 0, SEEK_END))) : Int64(info.st_size)
    }

    /// `count` bytes at `offset`; out of the image or over ``maximumRead`` is `invalid-image`.
    func read(_ offset: Int64, _ count: Int, what: String) throws(BootMediumError) -> [UInt8] {
        guard offset >= 0, count >= 0, count <= Self.maximumRead, offset <= size,
            Int64(count) <= size - offset
        else {
            throw BootMediumError(
                .invalidImage,
                "\(what): \(count) bytes at offset \(offset) lie outside the image (\(size) bytes)",
                context: ["path": path, "offset": String(offset)])
        }
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = try bytes.withMutableBytes { (raw) throws(BootMediumError) in
                try Posix.read(fd, into: UnsafeMutableRawBufferPointer(rebasing: raw[done...]), at: offset + Int64(done), path: path)
            }
            if n == 0 {
                throw BootMediumError(.invalidImage, "\(what): the image ends early", context: ["path": path])
            }
            done += n
        }
        return bytes
    }
}

extension ImageBytes {
    /// The SHA-256 (hex) of `count` bytes at `offset`, read in 1 MiB chunks, with `zeroed`
    /// ranges (relative to `offset`) hashed as zeros.
    func sha256(_ offset: Int64, _ count: Int64, zeroed: [[Int64]]? = nil, what: String) throws(BootMediumError) -> String {
        guard offset >= 0, count >= 0, offset <= size, count <= size - offset else {
            throw BootMediumError(.invalidImage, "\(what) lies outside the image", context: ["path": path])
        }
        var hasher = SHA256()
        var done: Int64 = 0
        while done < count {
            let n = Int(min(Int64(1 << 20), count - done))
            var chunk = try read(offset + done, n, what: what)
            Manifest.zero(&chunk, at: done, ranges: zeroed)
            hasher.update(data: chunk)
            done += Int64(n)
        }
        return Digest.hex(hasher.finalize())
    }
}

/// An entry of a reader's directory walk (ISO 9660, FAT).
protocol WalkedEntry {
    var path: String { get }
    var isDirectory: Bool { get }
}

extension Memo {
    /// The regular files of `walk` by lower-cased path (the first of duplicates), built once and
    /// looked up by `path`; a missing file is `invalid-image` naming `volume`.
    func file<Entry: WalkedEntry>(_ path: String, in volume: String, walk: () throws(BootMediumError) -> [Entry])
        throws(BootMediumError) -> Entry where Value == [String: Entry]
    {
        let index = try get { () throws(BootMediumError) in
            var index: [String: Entry] = [:]
            for entry in try walk() where !entry.isDirectory && index[entry.path.lowercased()] == nil {
                index[entry.path.lowercased()] = entry
            }
            return index
        }
        guard let found = index[path.lowercased()] else {
            throw BootMediumError(.invalidImage, "No \(path) in \(volume)")
        }
        return found
    }
}

/// Text fields of on-disk structures (little-endian numbers: `le16(at:)`/`le32(at:)` of the FAT
/// code; callers check bounds first).
extension Array where Element == UInt8 {
    /// The bytes of `range` as text, trimmed; empty when the range is out of bounds.
    func ascii(_ range: Range<Int>) -> String {
        guard range.lowerBound >= 0, range.upperBound <= count else { return "" }
        return String(decoding: self[range], as: UTF8.self).trimmingCharacters(in: .whitespaces.union(.controlCharacters))
    }
}
