import CIsofs
import Foundation
import Synchronization

/// One file at the root of an ISO image.
struct ISOFile: Sendable {
    /// Where a file's bytes come from.
    enum Source: Sendable {
        /// A file on disk, read while the image is written.
        case path(String)
        /// Bytes in memory.
        case bytes([UInt8])
    }
    /// The name in the root directory.
    let name: String
    /// The content.
    let source: Source
}

/// Everything libisofs needs to write one ISO image.
struct ISOLayout: Sendable {
    /// The volume id (at most 32 characters).
    var volumeID: String
    /// The files, all in the root directory.
    var files: [ISOFile]
    /// The name of the El Torito no-emulation boot image (in `files`).
    var bootImage: String
    /// The name of the boot catalog.
    var bootCatalog = "boot.cat"
    /// 512-byte sectors loaded by the BIOS.
    var loadSize: Int16 = 4
    /// The isohybrid MBR template (`isohdpfx.bin`), or nil for a CD-only image.
    var isohybridMBR: [UInt8]?
    /// Every timestamp of the image (seconds since the epoch, UTC).
    var timestamp: Int64
}

/// The only place that talks to libisofs.
///
/// libisofs keeps process-wide state (its message queue, its init) and is not safe for
/// concurrent use, so every build holds ``lock`` from the first call to the last. Messages of
/// severity MISHAP or worse make the build fail (and libisofs aborts at MISHAP), so a source
/// file that vanishes or changes size while being read is an error, never zeros in the image.
enum Isofs {
    private static let lock = Mutex<Bool>(false)

    /// Called, when set, after the tree is complete and before bytes are produced (tests use it
    /// to change a source file under the writer).
    nonisolated(unsafe) static var beforeWriteHook: (@Sendable (ISOLayout) -> Void)?

    /// Writes the image described by `layout` into `sink`.
    static func write(_ layout: ISOLayout, to sink: any ImageSink, cancellation: CancellationFlag)
        throws(BootMediumError)
    {
        let result: Result<Void, BootMediumError> = lock.withLock { initialized in
            if !initialized {
                guard iso_init() >= 0 else {
                    return .failure(BootMediumError(.imageBuildFailed, "libisofs failed to initialize"))
                }
                var queue = Array("MISHAP".utf8CString)
                var print = Array("NEVER".utf8CString)
                var name = Array("bootmedium".utf8CString)
                var abort = Array("MISHAP".utf8CString)
                _ = iso_set_msgs_severities(&queue, &print, &name)
                _ = iso_set_abort_severity(&abort)
                initialized = true
            }
            _ = drainMessages()  // whatever an earlier build left
            do throws(BootMediumError) {
                try writeLocked(layout, to: sink, cancellation: cancellation)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    private static func failure(_ what: String, _ code: Int32) -> BootMediumError {
        let text = iso_error_to_msg(code).map { String(cString: $0) } ?? "error \(code)"
        return BootMediumError(
            .imageBuildFailed, "libisofs: \(what): \(text)", context: ["step": what])
    }

    private static func check(_ code: Int32, _ what: String) throws(BootMediumError) {
        if code < 0 { throw failure(what, code) }
    }

    /// Messages of severity MISHAP or worse queued since the last call.
    private static func drainMessages() -> [String] {
        var messages: [String] = []
        var code: Int32 = 0
        var imageID: Int32 = 0
        var text = [CChar](repeating: 0, count: 4096)
        var severity = [CChar](repeating: 0, count: 80)
        var minimum = Array("MISHAP".utf8CString)
        while iso_obtain_msgs(&minimum, &code, &imageID, &text, &severity) > 0 {
            messages.append("\(cString(severity)): \(cString(text))")
            if messages.count > 64 { break }
        }
        return messages
    }

    private static func cString(_ chars: [CChar]) -> String {
        let bytes = chars.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func stamp(_ node: OpaquePointer?, _ time: time_t, mode: mode_t) {
        iso_node_set_mtime(node, time)
        iso_node_set_atime(node, time)
        iso_node_set_ctime(node, time)
        iso_node_set_uid(node, 0)
        iso_node_set_gid(node, 0)
        iso_node_set_permissions(node, mode)
    }

    private static func writeLocked(
        _ layout: ISOLayout, to sink: any ImageSink, cancellation: CancellationFlag
    ) throws(BootMediumError) {
        let time = time_t(layout.timestamp)
        var image: OpaquePointer?
        try check(iso_image_new(layout.volumeID, &image), "create image")
        defer { iso_image_unref(image) }
        iso_image_set_volume_id(image, layout.volumeID)
        iso_image_set_application_id(image, "BOOTMEDIUM")
        iso_image_set_ignore_aclea(image, 3)
        let root = iso_image_get_root(image)
        stamp(root, time, mode: 0o555)

        for file in layout.files {
            let stream: UnsafeMutablePointer<IsoStream>?
            switch file.source {
            case .path(let path):
                stream = try IsofsFileStream.make(path: path)
            case .bytes(let bytes):
                // libisofs owns (and frees) the buffer of a memory stream.
                let buffer = malloc(max(bytes.count, 1))!.assumingMemoryBound(to: UInt8.self)
                bytes.withUnsafeBufferPointer { buffer.update(from: $0.baseAddress!, count: $0.count) }
                var memory: UnsafeMutablePointer<IsoStream>?
                let code = iso_memory_stream_new(buffer, bytes.count, &memory)
                if code < 0 {
                    free(buffer)
                    throw failure("add \(file.name)", code)
                }
                stream = memory
            }
            var node: OpaquePointer?
            let added = iso_tree_add_new_file(root, file.name, stream, &node)
            if added < 0 {
                iso_stream_unref(stream)
                throw failure("add \(file.name)", added)
            }
            stamp(node, time, mode: 0o444)
        }

        var boot: OpaquePointer?
        try check(
            iso_image_set_boot_image(
                image, "/" + layout.bootImage, ELTORITO_NO_EMUL, "/" + layout.bootCatalog, &boot),
            "El Torito boot image")
        el_torito_set_load_size(boot, layout.loadSize)
        // bit0: patch the boot info table; bit1: patch the isohybrid MBR.
        try check(
            el_torito_set_isolinux_options(boot, layout.isohybridMBR == nil ? 1 : 3, 0),
            "isolinux options")
        var bootNode: OpaquePointer?
        var catalogNode: OpaquePointer?
        if iso_image_get_boot_image(image, &boot, &bootNode, &catalogNode) >= 0 {
            stamp(catalogNode, time, mode: 0o444)
        }

        var opts: OpaquePointer?
        try check(iso_write_opts_new(&opts, 0), "write options")
        defer { iso_write_opts_free(opts) }
        _ = iso_write_opts_set_iso_level(opts, 2)
        _ = iso_write_opts_set_rockridge(opts, 1)
        _ = iso_write_opts_set_joliet(opts, 1)
        _ = iso_write_opts_set_always_gmt(opts, 1)
        _ = iso_write_opts_set_replace_mode(opts, 2, 2, 2, 2)
        _ = iso_write_opts_set_default_dir_mode(opts, 0o555)
        _ = iso_write_opts_set_default_file_mode(opts, 0o444)
        _ = iso_write_opts_set_default_uid(opts, 0)
        _ = iso_write_opts_set_default_gid(opts, 0)
        _ = iso_write_opts_set_replace_timestamps(opts, 2)
        _ = iso_write_opts_set_default_timestamp(opts, time)
        _ = iso_write_opts_set_dir_rec_mtime(opts, 7)
        _ = iso_write_opts_set_fifo_size(opts, 2048)  // 4 MiB between libisofs's writer and us
        var uuid = Array(Self.volumeTimeString(layout.timestamp).utf8CString)
        _ = iso_write_opts_set_pvd_times(opts, time, time, 0, time, &uuid)
        if let mbr = layout.isohybridMBR {
            guard mbr.count <= 512, mbr.count >= 432 else {
                throw BootMediumError(
                    .imageBuildFailed, "The isohybrid MBR template must be 432 to 512 bytes, not \(mbr.count)")
            }
            var area = [CChar](repeating: 0, count: 32768)
            for (i, byte) in mbr.enumerated() { area[i] = CChar(bitPattern: byte) }
            try check(iso_write_opts_set_system_area(opts, &area, 2, 0), "isohybrid MBR")
        }

        beforeWriteHook?(layout)

        var source: UnsafeMutablePointer<burn_source>?
        try check(iso_image_create_burn_source(image, opts, &source), "start writing")
        guard let source else { throw BootMediumError(.imageBuildFailed, "libisofs gave no output") }
        defer {
            source.pointee.free_data?(source)
            free(source)
        }
        // Large reads: libisofs's ring buffer wakes the reader once per read, not per block.
        let chunk = 512 * 2048
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: chunk)
        defer { buffer.deallocate() }
        while true {
            if cancellation.isCancelled {
                _ = source.pointee.cancel?(source)
                throw BootMediumError(.cancelled, "The request was cancelled")
            }
            // Let libisofs's writer fill its ring buffer before taking from it: a reader that
            // waits on a near-empty buffer is woken per 2 KiB block (a futex storm).
            var capacity = 0
            var free = 0
            for _ in 0..<200 {
                let state = iso_ring_buffer_get_status(source, &capacity, &free)
                guard state == 1, capacity - free < chunk else { break }
                usleep(200)
            }
            let n = source.pointee.read_xt?(source, buffer, Int32(chunk)) ?? -1
            if n < 0 {
                let messages = drainMessages()
                throw BootMediumError(
                    .imageBuildFailed,
                    "libisofs failed while writing the image"
                        + (messages.isEmpty ? "" : ": " + messages.joined(separator: "; ")))
            }
            if n == 0 { break }
            do throws(BootMediumError) {
                try sink.write(UnsafeRawBufferPointer(start: buffer, count: Int(n)))
            } catch {
                _ = source.pointee.cancel?(source)
                throw error
            }
        }
        let messages = drainMessages()
        if !messages.isEmpty {
            throw BootMediumError(
                .imageBuildFailed, "libisofs reported: " + messages.joined(separator: "; "))
        }
    }

    /// `YYYYMMDDhhmmss00` in UTC, libisofs's fully predictable volume time.
    static func volumeTimeString(_ seconds: Int64) -> String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        return String(
            format: "%04d%02d%02d%02d%02d%02d00", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
            Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    }
}
