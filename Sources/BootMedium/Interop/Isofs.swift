import CIsofs
import CLinux
import Foundation
import Synchronization

/// One file at the root of an ISO image.
struct ISOFile: Sendable {
    /// The name in the root directory.
    let name: String
    /// The content (a file on disk is read through its ``InputFile/reopenPath``).
    let source: FileBytes
}

/// Everything libisofs needs to write one ISO image.
struct ISOLayout: Sendable {
    /// The volume id (at most 32 characters).
    var volumeID: String
    /// The files; a name with `/` (`boot/grub/grub.cfg`) lies in directories made for it.
    var files: [ISOFile]
    /// The name of the El Torito no-emulation boot image (in `files`).
    var bootImage: String
    /// The name of the boot catalog.
    var bootCatalog = "boot.cat"
    /// 512-byte sectors loaded by the BIOS.
    var loadSize: Int16 = 4
    /// The isohybrid MBR template (`isohdpfx.bin`), or nil for a CD-only image.
    var isohybridMBR: [UInt8]?
    /// The EFI system partition (a FAT image), appended after the ISO 9660 data as GPT
    /// partition 2 (type EFI system; the GPT is then valid for every reader: partition 1, the
    /// ISO, starts at 64 after the table, behind a protective MBR) and loaded whole by a second
    /// El Torito entry (platform 0xEF), so that UEFI boots the image as a CD and as a disk; nil
    /// for a BIOS-only image.
    var espImage: [UInt8]?
    /// The GPT disk GUID (16 bytes, UEFI byte order) when a GPT is written.
    var gptGUID: [UInt8]?
    /// Every timestamp of the image (seconds since the epoch, UTC).
    var timestamp: Int64
}

/// The only place that talks to libisofs.
///
/// libisofs keeps process-wide state (its message queue, its init) and is not safe for
/// concurrent use, so every build holds ``lock`` from the first call to the last. Messages of
/// severity MISHAP or worse make the build fail (and libisofs aborts at MISHAP), so a source
/// file that vanishes or changes size while being read is an error, never zeros in the image.
///
/// File data is streamed by libisofs itself, files on disk through ``IsofsFileStream`` (1 MiB
/// reads): an image is written once per medium template (``TemplateCache``), so this path need
/// not be faster than that.
enum Isofs {
    private static let lock = Mutex<Bool>(false)

    #if BOOTMEDIUM_TEST_SEAMS
    /// Tests: called, when set, after the tree is complete and before bytes are produced (to
    /// change a source file under the writer, or to hold it there).
    nonisolated(unsafe) static var beforeWriteHook: (@Sendable (ISOLayout) -> Void)?
    #endif

    /// Writes the image described by `layout` into `sink`; returns its size in bytes.
    @discardableResult
    static func write(_ layout: ISOLayout, to sink: any ImageSink, cancellation: CancellationFlag) throws(BootMediumError) -> Int64 {
        try locked { () throws(BootMediumError) in
            try withImage(layout) { (source, streams) throws(BootMediumError) -> Int64 in
                do throws(BootMediumError) {
                    return try produce(source, to: sink, cancellation: cancellation)
                } catch {
                    // A file that changed or failed under its stream: say which, not libisofs's
                    // "read error".
                    throw streams.lazy.compactMap(\.failure).first ?? error
                }
            }
        }
    }

    /// Runs `body` holding ``lock``, libisofs initialized and its message queue drained.
    private static func locked<T>(_ body: () throws(BootMediumError) -> T) throws(BootMediumError) -> T {
        try lock.withLock { (initialized) throws(BootMediumError) -> T in
            if !initialized {
                guard iso_init() >= 0 else {
                    throw BootMediumError(.imageBuildFailed, "libisofs failed to initialize")
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
            return try body()
        }
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

    /// The directory at `parts` under `root`, made (mode 0555, our times) where missing.
    private static func directory(
        _ parts: ArraySlice<String>, under root: OpaquePointer?, time: time_t, made: inout [String: OpaquePointer]
    ) throws(BootMediumError) -> OpaquePointer? {
        var current = root
        var path = ""
        for part in parts {
            path += "/" + part
            if let known = made[path] {
                current = known
                continue
            }
            var dir: OpaquePointer?
            let code = iso_tree_add_new_dir(current, part, &dir)
            guard code >= 0, let dir else { throw failure("add directory \(path)", code) }
            stamp(dir, time, mode: 0o555)
            made[path] = dir
            current = dir
        }
        return current
    }

    private static func stamp(_ node: OpaquePointer?, _ time: time_t, mode: mode_t) {
        iso_node_set_mtime(node, time)
        iso_node_set_atime(node, time)
        iso_node_set_ctime(node, time)
        iso_node_set_uid(node, 0)
        iso_node_set_gid(node, 0)
        iso_node_set_permissions(node, mode)
    }

    /// Builds libisofs's tree and options for `layout`, starts its burn source and runs `body`
    /// with the source and the streams of its files on disk; everything is freed afterwards.
    private static func withImage<T>(
        _ layout: ISOLayout, _ body: (UnsafeMutablePointer<burn_source>, [IsofsFileStream]) throws(BootMediumError) -> T
    ) throws(BootMediumError) -> T {
        let time = time_t(layout.timestamp)
        var image: OpaquePointer?
        try check(iso_image_new(layout.volumeID, &image), "create image")
        defer { iso_image_unref(image) }
        iso_image_set_volume_id(image, layout.volumeID)
        iso_image_set_application_id(image, "BOOTMEDIUM")
        iso_image_set_ignore_aclea(image, 3)
        let root = iso_image_get_root(image)
        stamp(root, time, mode: 0o555)

        // Directories made for names with `/` (`boot/grub/grub.cfg`), by path.
        var directories: [String: OpaquePointer] = [:]
        var streams: [IsofsFileStream] = []
        for file in layout.files {
            let stream: UnsafeMutablePointer<IsoStream>?
            switch file.source {
            case .file(let input):
                let made = try IsofsFileStream.make(path: input.reopenPath)
                stream = made.stream
                streams.append(made.object)
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
            let parts = file.name.split(separator: "/").map(String.init)
            let parent: OpaquePointer?
            do throws(BootMediumError) {
                parent = try directory(parts.dropLast(), under: root, time: time, made: &directories)
            } catch {
                iso_stream_unref(stream)
                throw error
            }
            let added = iso_tree_add_new_file(parent, parts.last ?? file.name, stream, &node)
            if added < 0 {
                iso_stream_unref(stream)
                throw failure("add \(file.name)", added)
            }
            stamp(node, time, mode: 0o444)
            // The boot catalog and boot image lead the data area (BIOS reads them early).
            if file.name == layout.bootImage { iso_node_set_sort_weight(node, 2) }
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
        if layout.espImage != nil {
            var efiBoot: OpaquePointer?
            try check(
                iso_image_add_boot_image(image, "--interval:appended_partition_2:all::", ELTORITO_NO_EMUL, 0, &efiBoot),
                "El Torito EFI image")
            try check(el_torito_set_boot_platform_id(efiBoot, 0xEF), "El Torito EFI platform")
            // The firmware sees as much of the partition as the entry's sector count says.
            el_torito_set_full_load(efiBoot, 1)
        }
        try check(iso_image_set_boot_catalog_weight(image, 3), "boot catalog weight")
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
        _ = iso_write_opts_set_sort_files(opts, 1)
        // RRIP 1.10: PX without a file serial number. libisofs numbers directories in an order
        // that differs from run to run, and the same inputs must give the same bytes.
        _ = iso_write_opts_set_rrip_version_1_10(opts, 1)
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
            // bit1: isohybrid patching; bit15: an active MBR entry, which some BIOSes need to
            // boot a USB disk (behind a protective MBR, a dummy one over block 0).
            let options: Int32 = layout.espImage == nil ? 2 : 2 | 1 << 15
            try check(iso_write_opts_set_system_area(opts, &area, options, 0), "isohybrid MBR")
        }
        // libisofs reads an appended partition from a path: the ESP's bytes in a memory file.
        var espFile: OwnedDescriptor?
        if let esp = layout.espImage {
            let file = OwnedDescriptor(adopting: try Posix.syscall("create", path: "the ESP image") { bootmedium_memfd("bootmedium-esp") })
            espFile = file
            try Posix.writeAll(file.rawValue, esp, path: "the ESP image")
            var path = Array("/proc/self/fd/\(file.rawValue)".utf8CString)
            try check(iso_write_opts_set_partition_img(opts, 2, 0xEF, &path, 0), "ESP partition")
            try check(iso_write_opts_set_appended_as_gpt(opts, 1), "ESP in the GPT")
            // The ISO as partition 1 from 32 KiB on: after the GPT's header and entries.
            try check(iso_write_opts_set_part_offset(opts, 16, 0, 0), "partition offset")
        }
        if var guid = layout.gptGUID, guid.count == 16 {
            try check(iso_write_opts_set_gpt_guid(opts, &guid, 1), "GPT disk GUID")
        }

        #if BOOTMEDIUM_TEST_SEAMS
        beforeWriteHook?(layout)
        #endif

        var source: UnsafeMutablePointer<burn_source>?
        try check(iso_image_create_burn_source(image, opts, &source), "start writing")
        guard let source else { throw BootMediumError(.imageBuildFailed, "libisofs gave no output") }
        defer {
            source.pointee.free_data?(source)
            free(source)
        }
        // libisofs reads the ESP through its path while the image is produced.
        return try withExtendedLifetime(espFile) { () throws(BootMediumError) in try body(source, streams) }
    }

    /// Reads the whole image out of libisofs's burn source into `sink`; returns its size.
    /// Large reads: its ring buffer wakes the reader once per read, not per block. Reads are
    /// exact (the ring reports a partial last read as its end), then one more must find the end.
    private static func produce(
        _ source: UnsafeMutablePointer<burn_source>, to sink: any ImageSink, cancellation: CancellationFlag
    ) throws(BootMediumError) -> Int64 {
        let imageBytes = Int64(source.pointee.get_size?(source) ?? 0)
        let chunk = 512 * 2048
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var written: Int64 = 0
        /// Reads exactly `count` (at most `chunk`) bytes of the image into `buffer`; false at its end.
        func take(_ count: Int) throws(BootMediumError) -> Bool {
            let n = source.pointee.read_xt?(source, buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(count)) ?? -1
            if n < 0 || (n > 0 && Int(n) != count) { throw writeFailure() }
            return n > 0
        }
        do throws(BootMediumError) {
            try sink.reserve(imageBytes)
            while written < imageBytes {
                try cancellation.check()
                // Let libisofs's writer fill its ring buffer before taking from it: a reader that
                // waits on a near-empty buffer is woken per 2 KiB block (a futex storm).
                var capacity = 0
                var free = 0
                for _ in 0..<200 {
                    let state = iso_ring_buffer_get_status(source, &capacity, &free)
                    guard state == 1, capacity - free < chunk else { break }
                    usleep(200)
                }
                let n = Int(min(Int64(chunk), imageBytes - written))
                guard try take(n) else { throw writeFailure() }
                try sink.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                written += Int64(n)
            }
            if try take(1) {
                throw BootMediumError(.imageBuildFailed, "libisofs wrote more than the image size it computed")
            }
        } catch {
            _ = source.pointee.cancel?(source)
            throw error
        }
        let messages = drainMessages()
        if !messages.isEmpty {
            throw BootMediumError(.imageBuildFailed, "libisofs reported: " + messages.joined(separator: "; "))
        }
        return imageBytes
    }

    /// libisofs stopped early or failed: the error with its messages.
    private static func writeFailure() -> BootMediumError {
        let messages = drainMessages()
        return BootMediumError(
            .imageBuildFailed,
            "libisofs failed while writing the image"
                + (messages.isEmpty ? "" : ": " + messages.joined(separator: "; ")))
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
