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

    /// The decompressors a bootcd.img may use, as libarchive names them: only those libarchive
    /// runs in the process. `archive_read_support_filter_all` would also let it run external
    /// programs found on `PATH` (`lrzip`, `lzop`, `grzip`, ... and `gzip -d` itself when built
    /// without zlib) on data carrying their magic; libarchive signals that fallback by
    /// `ARCHIVE_WARN`, so a filter that does not give `ARCHIVE_OK` is never enabled.
    private static let inProcessFilters: [(name: String, enable: @Sendable (OpaquePointer) -> Int32)] = [
        ("gzip", { archive_read_support_filter_gzip($0) }),
        ("bzip2", { archive_read_support_filter_bzip2($0) }),
        ("xz", { archive_read_support_filter_xz($0) }),
        ("lzma", { archive_read_support_filter_lzma($0) }),
        ("zstd", { archive_read_support_filter_zstd($0) }),
        ("lz4", { archive_read_support_filter_lz4($0) }),
    ]

    /// Which of ``inProcessFilters`` this libarchive runs in the process, probed once on a
    /// scratch reader.
    private static let usableFilters: [(name: String, enable: @Sendable (OpaquePointer) -> Int32)] = {
        guard let probe = archive_read_new() else { return [] }
        defer { archive_read_free(probe) }
        return inProcessFilters.filter { $0.enable(probe) == ARCHIVE_OK }
    }()

    /// The names of the decompressors bootmedium accepts, for messages and docs.
    static var acceptedCompressions: [String] { usableFilters.map(\.name) }

    /// A reader for `format` (`archive_read_support_format_*`) with only the in-process
    /// decompressors enabled (those named in `only`, when given) and uncompressed input;
    /// nil when libarchive cannot make one. The caller frees it.
    static func newReader(format: (OpaquePointer) -> Int32, only: Set<String>? = nil) -> OpaquePointer? {
        guard let archive = archive_read_new() else { return nil }
        for filter in usableFilters where only?.contains(filter.name) ?? true { _ = filter.enable(archive) }
        _ = archive_read_support_filter_none(archive)
        _ = format(archive)
        return archive
    }

    /// The uncompressed size of bootcd.img, by decompressing it fully in bounded memory. It
    /// must be a cpio archive (the kernel's initramfs format), compressed with one of the
    /// in-process decompressors or not at all; anything else is `missing-bootcd`, not a
    /// medium with a wrong `ramdisk_size`.
    static func uncompressedSize(of file: InputFile, cancellation: CancellationFlag)
        throws(BootMediumError) -> Int64
    {
        guard let archive = newReader(format: { archive_read_support_format_raw($0) }) else {
            throw BootMediumError(.imageBuildFailed, "libarchive: cannot create a reader")
        }
        defer { archive_read_free(archive) }
        let path = file.path
        func fail(_ what: String) -> BootMediumError {
            let text = archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
            return BootMediumError(
                .missingBootcd, "Cannot read \(path): \(what): \(text)", context: ["path": path])
        }
        guard archive_read_open_filename(archive, file.reopenPath, 1 << 20) == ARCHIVE_OK else {
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
            if total == 0 {
                // newc (070701), newc with CRC (070702) or odc (070707): what the kernel unpacks.
                let magic = Array(UnsafeRawBufferPointer(start: buffer, count: min(n, 6)))
                guard magic.count == 6, magic.starts(with: Array("07070".utf8)), [0x31, 0x32, 0x37].contains(magic[5]) else {
                    throw BootMediumError(
                        .missingBootcd,
                        "\(path) is not a cpio archive (the kernel's initramfs format), plain or compressed with "
                            + acceptedCompressions.joined(separator: ", "),
                        context: ["path": path])
                }
            }
            total += Int64(n)
            try cancellation.check()
        }
        try file.checkUnchanged()
        return total
    }

    /// One file read back from a cpio archive.
    struct ReadEntry: Equatable, Sendable {
        var path: String
        var mode: UInt32
        var kind: InspectionReport.EntryKind
        var size: Int64
        var contents: [UInt8]?
    }

    /// Limits for reading an archive that may be hostile.
    struct ReadLimits: Sendable {
        var maximumEntries = 10_000
        var maximumTotalBytes: Int64 = 256 << 20
        var maximumKeptFileBytes = 1 << 20
        /// Contents kept over all files: past it, further files are counted but not kept.
        var maximumKeptTotalBytes = 32 << 20
        /// The longest path a newc header may declare (bytes, without the NUL).
        var maximumNameBytes = 4096
    }

    /// The entries of a (compressed) cpio archive held in memory; file contents are kept for
    /// files up to `limits.maximumKeptFileBytes` while the kept total stays within
    /// `limits.maximumKeptTotalBytes` (others are read and counted, then dropped).
    /// More entries or more decompressed bytes than the limits is `invalid-image`, and so is a
    /// newc header libarchive would act on unchecked (see ``checkNewcHeaders(_:limits:)``).
    static func readArchive(_ bytes: [UInt8], limits: ReadLimits = ReadLimits()) throws(BootMediumError) -> [ReadEntry] {
        try checkNewcHeaders(bytes, limits: limits)
        guard let archive = newReader(format: { archive_read_support_format_cpio($0) }, only: ["gzip"]) else {
            throw BootMediumError(.invalidImage, "libarchive: cannot create a reader")
        }
        defer { archive_read_free(archive) }
        func fail(_ what: String) -> BootMediumError {
            let text = archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
            return BootMediumError(.invalidImage, "Archive \(what): \(text)")
        }
        return try bytes.withBytes { (raw) throws(BootMediumError) -> [ReadEntry] in
            guard archive_read_open_memory(archive, raw.baseAddress, raw.count) == ARCHIVE_OK else {
                throw fail("open")
            }
            var entries: [ReadEntry] = []
            var total: Int64 = 0
            var keptTotal = 0
            var entry: OpaquePointer?
            let chunk = 64 << 10
            var buffer = [UInt8](repeating: 0, count: chunk)
            while true {
                let status = archive_read_next_header(archive, &entry)
                if status == ARCHIVE_EOF { break }
                guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
                    throw fail("header")
                }
                guard entries.count < limits.maximumEntries else {
                    throw BootMediumError(.invalidImage, "Archive has more than \(limits.maximumEntries) entries")
                }
                let path = archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
                let mode = UInt32(archive_entry_mode(entry))
                let type = mode & 0o170000
                let kind: InspectionReport.EntryKind =
                    type == 0o040000 ? .directory : type == 0o120000 ? .symlink : type == 0o100000 ? .file : .special
                var kept: [UInt8]? = kind == .file ? [] : nil
                var size: Int64 = 0
                while true {
                    let n = buffer.withUnsafeMutableBytes { archive_read_data(archive, $0.baseAddress, chunk) }
                    if n < 0 { throw fail("data of \(path)") }
                    if n == 0 { break }
                    size += Int64(n)
                    total += Int64(n)
                    guard total <= limits.maximumTotalBytes else {
                        throw BootMediumError(.invalidImage, "Archive expands past \(limits.maximumTotalBytes) bytes")
                    }
                    if kept != nil {
                        if size <= Int64(limits.maximumKeptFileBytes) && keptTotal + n <= limits.maximumKeptTotalBytes {
                            kept! += buffer[0..<n]
                            keptTotal += n
                        } else {
                            keptTotal -= kept!.count
                            kept = nil
                        }
                    }
                }
                entries.append(ReadEntry(path: path, mode: mode, kind: kind, size: size, contents: kept))
            }
            return entries
        }
    }

    /// libarchive's cpio reader asks for a newc header's whole name (its size is 8 hex digits:
    /// up to 4 GiB) in one piece, and allocates that much before it finds the input too short
    /// (a 100-byte overlay made it ask for 2 GiB). So the headers of a newc/crc archive are
    /// walked here first, on the decompressed stream read through libarchive's raw format:
    /// each must be well formed (magic `070701`/`070702` and hex digits only, as libarchive
    /// wants them, so it never skips ahead to a header this walk did not see) with a name of
    /// 1...`limits.maximumNameBytes` bytes plus its NUL, and the entry count and data bytes
    /// stay within the limits. The walk stops at `TRAILER!!!`, where libarchive stops, and at a
    /// short header or name (libarchive's pass then says what is wrong). The other cpio variants
    /// store name sizes in 16 bits or 6 octal digits and are left to libarchive (which refuses
    /// symlink targets above 1 MiB in every variant).
    static func checkNewcHeaders(_ bytes: [UInt8], limits: ReadLimits) throws(BootMediumError) {
        guard let archive = newReader(format: { archive_read_support_format_raw($0) }, only: ["gzip"]) else {
            throw BootMediumError(.invalidImage, "libarchive: cannot create a reader")
        }
        defer { archive_read_free(archive) }
        try bytes.withBytes { (raw) throws(BootMediumError) in
            var entry: OpaquePointer?
            guard archive_read_open_memory(archive, raw.baseAddress, raw.count) == ARCHIVE_OK,
                archive_read_next_header(archive, &entry) == ARCHIVE_OK
            else { throw RawStream.failure(archive, "open") }
            try walkNewcHeaders(RawStream(archive), limits: limits)
        }
    }

    private static func walkNewcHeaders(_ stream: RawStream, limits: ReadLimits) throws(BootMediumError) {
        let header = UnsafeMutableRawBufferPointer.allocate(byteCount: 110, alignment: 8)
        defer { header.deallocate() }
        let name = UnsafeMutableRawBufferPointer.allocate(byteCount: limits.maximumNameBytes + 1, alignment: 8)
        defer { name.deallocate() }
        let magic = Array("07070".utf8)
        let trailer = Array("TRAILER!!!\0".utf8)
        var entries = 0
        var dataBytes: Int64 = 0
        while true {
            let at = stream.position
            guard try stream.read(into: header, 110) == 110 else { return }
            func bad(_ what: String) -> BootMediumError {
                BootMediumError(.invalidImage, "Archive header at byte \(at): \(what)")
            }
            // "07070" then 1 (newc) or 2 (crc).
            guard (0..<5).allSatisfy({ header[$0] == magic[$0] }), header[5] == 0x31 || header[5] == 0x32 else {
                if at == 0 { return }  // another cpio variant (or none): libarchive's to judge
                throw bad("no newc magic")
            }
            // 13 fields of 8 hex digits: ..., file size (6), ..., name size (11, with the NUL), check.
            var fileSize: Int64 = 0
            var nameSize = 0
            for field in 0..<13 {
                var value: Int64 = 0
                for i in (6 + 8 * field)..<(14 + 8 * field) {
                    let byte = header[i]
                    let digit: UInt8
                    switch byte {
                    case 0x30...0x39: digit = byte - 0x30
                    case 0x41...0x46: digit = byte - 0x41 + 10
                    case 0x61...0x66: digit = byte - 0x61 + 10
                    default: throw bad("not hexadecimal")
                    }
                    value = value << 4 | Int64(digit)
                }
                if field == 6 { fileSize = value } else if field == 11 { nameSize = Int(value) }
            }
            guard nameSize >= 1, nameSize <= limits.maximumNameBytes + 1 else {
                throw bad("a name of \(nameSize) bytes (at most \(limits.maximumNameBytes + 1))")
            }
            guard try stream.read(into: name, nameSize) == nameSize else { return }
            if nameSize == trailer.count && (0..<nameSize).allSatisfy({ name[$0] == trailer[$0] }) { return }
            entries += 1
            dataBytes += fileSize
            guard entries <= limits.maximumEntries else {
                throw BootMediumError(.invalidImage, "Archive has more than \(limits.maximumEntries) entries")
            }
            guard dataBytes <= limits.maximumTotalBytes else {
                throw BootMediumError(.invalidImage, "Archive expands past \(limits.maximumTotalBytes) bytes")
            }
            // Header and name are padded to 4 bytes, and so are the data.
            let padding = Int64((4 - (110 + nameSize) % 4) % 4) + (4 - fileSize % 4) % 4
            guard try stream.skip(fileSize + padding) else { return }
        }
    }

    /// The decompressed bytes of a libarchive reader opened with the raw format, read forward
    /// through one 64 KiB buffer.
    private final class RawStream {
        let archive: OpaquePointer
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)
        var start = 0
        var end = 0
        /// Bytes consumed so far.
        private(set) var position: Int64 = 0

        init(_ archive: OpaquePointer) { self.archive = archive }
        deinit { chunk.deallocate() }

        static func failure(_ archive: OpaquePointer, _ what: String) -> BootMediumError {
            let text = archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
            return BootMediumError(.invalidImage, "Archive \(what): \(text)")
        }

        /// Whether bytes are available (reading the next piece when the buffer is used up).
        private func available() throws(BootMediumError) -> Bool {
            if start < end { return true }
            let n = archive_read_data(archive, chunk.baseAddress, chunk.count)
            if n < 0 { throw Self.failure(archive, "data") }
            start = 0
            end = n
            return n > 0
        }

        /// Copies the next `count` bytes into `target`; fewer only where the stream ends.
        func read(into target: UnsafeMutableRawBufferPointer, _ count: Int) throws(BootMediumError) -> Int {
            var done = 0
            while done < count, try available() {
                let take = min(count - done, end - start)
                (target.baseAddress! + done).copyMemory(from: chunk.baseAddress! + start, byteCount: take)
                start += take
                done += take
                position += Int64(take)
            }
            return done
        }

        /// Skips `count` bytes; false when the stream ends first.
        func skip(_ count: Int64) throws(BootMediumError) -> Bool {
            var left = count
            while left > 0 {
                guard try available() else { return false }
                let take = Int(min(left, Int64(end - start)))
                start += take
                left -= Int64(take)
                position += Int64(take)
            }
            return true
        }
    }
}
