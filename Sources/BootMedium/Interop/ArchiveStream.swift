import CArchive
import Foundation

/// One header of a cpio archive read as a stream (no contents).
struct CpioHeader: Sendable, Equatable {
    /// The path as stored, without a leading `./` or `/` (empty for the root entry `.`).
    var path: [UInt8]
    /// File type and permission bits (`st_mode`).
    var mode: UInt32
    var uid: Int64
    var gid: Int64
    /// The content length of a regular file.
    var size: Int64
    /// The target of a symbolic link.
    var symlinkTarget: [UInt8]?
    /// The earlier path this entry is a hard link to (libarchive's view of newc links).
    var hardlinkTarget: [UInt8]?
    /// Device numbers of a character or block device.
    var deviceMajor: UInt32
    var deviceMinor: UInt32
}

/// A (compressed) cpio archive on disk, read forward once with libarchive: headers in archive
/// order, and the contents of the current entry in pieces. Memory stays at libarchive's buffers.
final class ArchiveStream {
    private let archive: OpaquePointer
    let path: String
    /// Index of the entry whose header was returned last (-1 before the first).
    private(set) var index = -1
    /// Bytes of the current entry's contents already read.
    private(set) var offsetInEntry: Int64 = 0

    /// Opens `file` (a cpio archive, compressed with an in-process decompressor or not at all).
    ///
    /// The handle is opened completely before the stream exists, so the stream owns exactly
    /// one open handle, freed once by `deinit`. (Before, a failed open freed the handle and then
    /// threw from a fully initialized object, whose `deinit` freed it again: a crash for every
    /// bootcd.img libarchive could not open.)
    init(file: InputFile) throws(BootMediumError) {
        archive = try Self.open(file)
        path = file.path
    }

    deinit { archive_read_free(archive) }

    private static func open(_ file: InputFile) throws(BootMediumError) -> OpaquePointer {
        guard let archive = Archive.newReader(format: { archive_read_support_format_cpio($0) }) else {
            throw BootMediumError(.imageBuildFailed, "libarchive: cannot create a reader")
        }
        guard archive_read_open_filename(archive, file.reopenPath, 1 << 20) == ARCHIVE_OK else {
            let error = failure(archive, path: file.path, "open")
            archive_read_free(archive)
            throw error
        }
        return archive
    }

    private static func failure(_ archive: OpaquePointer, path: String, _ what: String) -> BootMediumError {
        let text = archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
        return BootMediumError(.missingBootcd, "Cannot read \(path): \(what): \(text)", context: ["path": path])
    }

    private func fail(_ what: String) -> BootMediumError { Self.failure(archive, path: path, what) }

    /// The next header, or nil at the end of the archive. Skips what is left of the current entry.
    func next() throws(BootMediumError) -> CpioHeader? {
        var entry: OpaquePointer?
        let status = archive_read_next_header(archive, &entry)
        if status == ARCHIVE_EOF { return nil }
        guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else { throw fail("header") }
        index += 1
        offsetInEntry = 0
        func bytes(_ pointer: UnsafePointer<CChar>?) -> [UInt8]? {
            guard let pointer else { return nil }
            return Array(UnsafeRawBufferPointer(start: pointer, count: strlen(pointer)))
        }
        var path = bytes(archive_entry_pathname(entry)) ?? []
        Self.normalize(&path)
        var link = bytes(archive_entry_hardlink(entry))
        if link != nil { Self.normalize(&link!) }
        return CpioHeader(
            path: path, mode: UInt32(archive_entry_mode(entry)), uid: archive_entry_uid(entry),
            gid: archive_entry_gid(entry), size: archive_entry_size(entry),
            symlinkTarget: bytes(archive_entry_symlink(entry)), hardlinkTarget: link,
            deviceMajor: UInt32(archive_entry_rdevmajor(entry)), deviceMinor: UInt32(archive_entry_rdevminor(entry)))
    }

    /// Drops a leading `./` or `/` (repeatedly) and a trailing `/`; `.` becomes empty.
    static func normalize(_ path: inout [UInt8]) {
        while true {
            if path.starts(with: [0x2E, 0x2F]) { path.removeFirst(2) } else if path.first == 0x2F { path.removeFirst() } else { break }
        }
        while path.last == 0x2F { path.removeLast() }
        if path == [0x2E] { path = [] }
    }

    /// Reads up to `buffer.count` bytes of the current entry's contents; 0 at its end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(BootMediumError) -> Int {
        let n = archive_read_data(archive, buffer.baseAddress, buffer.count)
        if n < 0 { throw fail("contents of entry \(index)") }
        offsetInEntry += Int64(n)
        return n
    }

    /// Reads exactly `buffer.count` bytes of the current entry; a short entry is an error.
    func readFully(into buffer: UnsafeMutableRawBufferPointer) throws(BootMediumError) {
        var done = 0
        while done < buffer.count {
            let n = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
            if n == 0 { throw BootMediumError(.missingBootcd, "\(path): entry \(index) ends early", context: ["path": path]) }
            done += n
        }
    }
}
