// Archive.readArchive (libarchive: gzip or plain cpio, any cpio variant) as inspect uses it on
// overlay.img, then plnode.txt parsed out of it.
// Input: byte 0 selects the form, the rest is the archive:
//   bit 0 set: the rest is gzip-compressed here first (so the fuzzer mutates the cpio stream,
//              not the deflate bits), else it is handed over as is (gzip or plain cpio);
//   bit 1 set: tight limits (8 entries, 64 KiB in total, 4 KiB kept per file), else the defaults.
import CArchive
import FuzzSupport

@testable import BootMedium

/// `bytes` gzip-compressed by libarchive (raw format, gzip filter).
func gzip(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
    final class Sink { var bytes: [UInt8] = [] }
    let sink = Sink()
    guard let archive = archive_write_new() else { fatalError("archive_write_new") }
    defer { archive_write_free(archive) }
    guard archive_write_set_format_raw(archive) == ARCHIVE_OK, archive_write_add_filter_gzip(archive) == ARCHIVE_OK,
        archive_write_set_bytes_per_block(archive, 0) == ARCHIVE_OK,
        archive_write_open2(
            archive, Unmanaged.passUnretained(sink).toOpaque(), nil,
            { _, context, buffer, length in
                Unmanaged<Sink>.fromOpaque(context!).takeUnretainedValue().bytes.append(
                    contentsOf: UnsafeRawBufferPointer(start: buffer, count: length))
                return length
            }, nil, nil) == ARCHIVE_OK,
        let entry = archive_entry_new()
    else { fatalError("libarchive writer setup") }
    defer { archive_entry_free(entry) }
    archive_entry_set_pathname(entry, "data")
    archive_entry_set_filetype(entry, 0o100000)
    archive_entry_set_size(entry, Int64(bytes.count))
    guard archive_write_header(archive, entry) == ARCHIVE_OK else { fatalError("archive_write_header") }
    if !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, $0.count) }
        guard written == bytes.count else { fatalError("archive_write_data") }
    }
    guard archive_write_close(archive) == ARCHIVE_OK else { fatalError("archive_write_close") }
    return sink.bytes
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCpioOverlay(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = fuzzBytes(data, size)
    guard let mode = input.first else { return 0 }
    let body = input.dropFirst()
    let archive = mode & 1 != 0 ? gzip(body) : Array(body)
    var limits = Archive.ReadLimits()
    if mode & 2 != 0 {
        limits = Archive.ReadLimits(maximumEntries: 8, maximumTotalBytes: 64 << 10, maximumKeptFileBytes: 4 << 10)
    }
    guard let entries = step("readArchive", { () throws(BootMediumError) in try Archive.readArchive(archive, limits: limits) })
    else { return 0 }
    // What the limits promise.
    if entries.count > limits.maximumEntries { fatalError("\(entries.count) entries") }
    var total: Int64 = 0
    for entry in entries {
        total += entry.size
        if let kept = entry.contents, kept.count != entry.size || kept.count > limits.maximumKeptFileBytes {
            fatalError("\(entry.path): kept \(kept.count) of \(entry.size) bytes")
        }
        _ = Digest.sha256(entry.contents ?? [])
    }
    if total > limits.maximumTotalBytes { fatalError("\(total) bytes") }
    if let plnode = entries.first(where: { $0.path == "usr/boot/plnode.txt" }), let bytes = plnode.contents {
        _ = ParsedNodeConfig(text: String(decoding: bytes, as: UTF8.self), showSecrets: false)
    }
    return 0
}
