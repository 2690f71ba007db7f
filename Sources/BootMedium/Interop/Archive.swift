import CArchive
import Foundation

/// One entry of a cpio archive.
struct CpioEntry: Sendable, Equatable {
    /// What the entry is.
    enum Kind: Sendable, Equatable {
        case directory
        case file([UInt8])
        case symlink(String)
    }
    /// The path inside the archive, without a leading slash.
    let path: String
    /// The permission bits.
    let mode: mode_t
    /// The content.
    let kind: Kind
}

/// The only place that talks to libarchive.
enum Archive {
    /// A gzip-compressed cpio "newc" archive of `entries`, in the order given: owner 0:0, the
    /// given modes, every mtime `timestamp`, inode numbers 1, 2, 3... in order, and a gzip header
    /// without name or time. Returns the compressed bytes and the uncompressed size.
    static func gzippedNewc(_ entries: [CpioEntry], timestamp: Int64) throws(BootMediumError)
        -> (bytes: [UInt8], uncompressedSize: Int64)
    {
        guard let archive = archive_write_new() else {
            throw BootMediumError(.imageBuildFailed, "libarchive: cannot create a writer")
        }
        defer { archive_write_free(archive) }
        func check(_ code: Int32, _ what: String) throws(BootMediumError) {
            if code != ARCHIVE_OK {
                let text = archive_error_string(archive).map { String(cString: $0) } ?? "error \(code)"
                throw BootMediumError(.imageBuildFailed, "libarchive: \(what): \(text)")
            }
        }
        try check(archive_write_set_format_cpio_newc(archive), "newc format")
        try check(archive_write_add_filter_gzip(archive), "gzip filter")
        try check(archive_write_set_filter_option(archive, "gzip", "timestamp", nil), "gzip without time")
        try check(archive_write_set_bytes_per_block(archive, 0), "block size")
        let collector = ByteCollector()
        let opened = archive_write_open2(
            archive, Unmanaged.passUnretained(collector).toOpaque(), nil,
            { _, context, buffer, length in
                let collector = Unmanaged<ByteCollector>.fromOpaque(context!).takeUnretainedValue()
                collector.bytes.append(
                    contentsOf: UnsafeRawBufferPointer(start: buffer, count: length))
                return length
            }, nil, nil)
        try check(opened, "open")
        guard let entry = archive_entry_new() else {
            throw BootMediumError(.imageBuildFailed, "libarchive: cannot create an entry")
        }
        defer { archive_entry_free(entry) }
        for (index, item) in entries.enumerated() {
            archive_entry_clear(entry)
            archive_entry_set_pathname(entry, item.path)
            archive_entry_set_uid(entry, 0)
            archive_entry_set_gid(entry, 0)
            archive_entry_set_mtime(entry, time_t(timestamp), 0)
            archive_entry_set_ino64(entry, Int64(index + 1))
            archive_entry_set_dev(entry, 0)
            switch item.kind {
            case .directory:
                archive_entry_set_filetype(entry, 0o040000)
                archive_entry_set_perm(entry, item.mode)
                archive_entry_set_nlink(entry, 2)
                archive_entry_set_size(entry, 0)
            case .file(let bytes):
                archive_entry_set_filetype(entry, 0o100000)
                archive_entry_set_perm(entry, item.mode)
                archive_entry_set_nlink(entry, 1)
                archive_entry_set_size(entry, Int64(bytes.count))
            case .symlink(let target):
                archive_entry_set_filetype(entry, 0o120000)
                archive_entry_set_perm(entry, 0o777)
                archive_entry_set_nlink(entry, 1)
                archive_entry_set_symlink(entry, target)
                archive_entry_set_size(entry, 0)
            }
            try check(archive_write_header(archive, entry), "header of \(item.path)")
            if case .file(let bytes) = item.kind, !bytes.isEmpty {
                let written = bytes.withUnsafeBytes {
                    archive_write_data(archive, $0.baseAddress, $0.count)
                }
                if written != bytes.count {
                    throw BootMediumError(.imageBuildFailed, "libarchive: short write of \(item.path)")
                }
            }
        }
        try check(archive_write_close(archive), "close")
        // Filter 0 is the one nearest the format: the bytes it was given are the cpio stream.
        return (collector.bytes, archive_filter_bytes(archive, 0))
    }

    private final class ByteCollector {
        var bytes: [UInt8] = []
    }

    /// The uncompressed size of a gzip (or otherwise compressed) file, by decompressing it
    /// fully in bounded memory.
    static func uncompressedSize(ofFileAt path: String, cancellation: CancellationFlag)
        throws(BootMediumError) -> Int64
    {
        guard let archive = archive_read_new() else {
            throw BootMediumError(.imageBuildFailed, "libarchive: cannot create a reader")
        }
        defer { archive_read_free(archive) }
        archive_read_support_filter_all(archive)
        archive_read_support_format_raw(archive)
        func fail(_ what: String) -> BootMediumError {
            let text = archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
            return BootMediumError(
                .imageBuildFailed, "Cannot read \(path): \(what): \(text)", context: ["path": path])
        }
        guard archive_read_open_filename(archive, path, 1 << 20) == ARCHIVE_OK else {
            throw fail("open")
        }
        var entry: OpaquePointer?
        guard archive_read_next_header(archive, &entry) == ARCHIVE_OK else { throw fail("header") }
        var total: Int64 = 0
        let size = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = archive_read_data(archive, buffer, size)
            if n < 0 { throw fail("data") }
            if n == 0 { break }
            total += Int64(n)
            try cancellation.check()
        }
        return total
    }

    /// One file read back from a cpio archive.
    struct ReadEntry: Equatable, Sendable {
        var path: String
        var mode: UInt32
        var kind: String
        var size: Int64
        var contents: [UInt8]?
    }

    /// Limits for reading an archive that may be hostile.
    struct ReadLimits: Sendable {
        var maximumEntries = 10_000
        var maximumTotalBytes: Int64 = 256 << 20
        var maximumKeptFileBytes = 1 << 20
    }

    /// The entries of a (compressed) cpio archive held in memory; file contents are kept for
    /// files up to `limits.maximumKeptFileBytes` (others are read and counted, then dropped).
    /// More entries or more decompressed bytes than the limits is `invalid-image`.
    static func readArchive(_ bytes: [UInt8], limits: ReadLimits = ReadLimits()) throws(BootMediumError) -> [ReadEntry] {
        guard let archive = archive_read_new() else {
            throw BootMediumError(.invalidImage, "libarchive: cannot create a reader")
        }
        defer { archive_read_free(archive) }
        archive_read_support_filter_gzip(archive)
        archive_read_support_filter_none(archive)
        archive_read_support_format_cpio(archive)
        func fail(_ what: String) -> BootMediumError {
            let text = archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
            return BootMediumError(.invalidImage, "Archive \(what): \(text)")
        }
        let result: Result<[ReadEntry], BootMediumError> = bytes.withUnsafeBytes { raw in
            guard archive_read_open_memory(archive, raw.baseAddress, raw.count) == ARCHIVE_OK else {
                return .failure(fail("open"))
            }
            var entries: [ReadEntry] = []
            var total: Int64 = 0
            var entry: OpaquePointer?
            let chunk = 64 << 10
            var buffer = [UInt8](repeating: 0, count: chunk)
            while true {
                let status = archive_read_next_header(archive, &entry)
                if status == ARCHIVE_EOF { break }
                guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
                    return .failure(fail("header"))
                }
                guard entries.count < limits.maximumEntries else {
                    return .failure(BootMediumError(.invalidImage, "Archive has more than \(limits.maximumEntries) entries"))
                }
                let path = archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
                let mode = UInt32(archive_entry_mode(entry))
                let type = mode & 0o170000
                let kind = type == 0o040000 ? "directory" : type == 0o120000 ? "symlink" : type == 0o100000 ? "file" : "special"
                var kept: [UInt8]? = kind == "file" ? [] : nil
                var size: Int64 = 0
                while true {
                    let n = buffer.withUnsafeMutableBytes { archive_read_data(archive, $0.baseAddress, chunk) }
                    if n < 0 { return .failure(fail("data of \(path)")) }
                    if n == 0 { break }
                    size += Int64(n)
                    total += Int64(n)
                    guard total <= limits.maximumTotalBytes else {
                        return .failure(BootMediumError(.invalidImage, "Archive expands past \(limits.maximumTotalBytes) bytes"))
                    }
                    if kept != nil {
                        if size <= Int64(limits.maximumKeptFileBytes) { kept! += buffer[0..<n] } else { kept = nil }
                    }
                }
                entries.append(ReadEntry(path: path, mode: mode, kind: kind, size: size, contents: kept))
            }
            return .success(entries)
        }
        return try result.get()
    }
}
