import CIsofs
import Foundation
import Synchronization

/// One file at the root of an ISO image.
struct ISOFile: Sendable {
    /// Where a file's bytes come from.
    enum Source: Sendable {
        /// A file on disk, read while the image is written (through its ``InputFile/reopenPath``).
        case file(InputFile)
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
    /// The name of the EFI system partition image (in `files`) of a second El Torito entry
    /// (platform 0xEF, loaded whole), also a partition of the isohybrid GPT so that UEFI boots
    /// the image as a disk too; nil for a BIOS-only image.
    var efiBootImage: String?
    /// The GPT disk GUID (16 bytes, UEFI byte order) when a GPT is written.
    var gptGUID: [UInt8]?
    /// Every timestamp of the image (seconds since the epoch, UTC).
    var timestamp: Int64
    /// Let libisofs stream the data of files on disk too (tests: the reference the copying
    /// path must equal byte for byte).
    var streamFileData = false
}

/// What ``Isofs/write(_:to:cancellation:)`` did.
struct ISOWriteReport: Sendable, Equatable {
    /// The image size in bytes.
    var imageBytes: Int64 = 0
    /// Bytes of files on disk copied into the sink by ``FileCopy`` rather than streamed through
    /// libisofs (0 when libisofs streamed everything).
    var copiedBytes: Int64 = 0
    /// Whether they were copied by an ``EarlyFileCopy`` started before the contents were ready.
    var copiedEarly = false
    /// Whether an ``EarlyFileCopy`` was given but the final layout put the files elsewhere.
    var predictionMissed = false
}

/// The only place that talks to libisofs.
///
/// libisofs keeps process-wide state (its message queue, its init) and is not safe for
/// concurrent use, so every build holds ``lock`` from the first call to the last. Messages of
/// severity MISHAP or worse make the build fail (and libisofs aborts at MISHAP), so a source
/// file that vanishes or changes size while being read is an error, never zeros in the image.
///
/// **File data.** The data area is sorted boot catalog, boot image, files on disk, files in
/// memory (``sortWeights``). libisofs lays the image out and writes its head: the streams of the
/// files on disk wait (``IsofsDataDecision``) while the reader takes the head (system area,
/// volume descriptors, root directory, which libisofs writes before any file data) and finds
/// where every file's data lie (``ISOCopyPlan``). When the files on disk are back to back, with
/// only files in memory after them, the reader takes libisofs's bytes up to the first of them
/// (boot catalog and patched boot image included), stops libisofs, and adds the files itself
/// with ``FileCopy`` (`copy_file_range`, no pass through libisofs's ring buffer), the files in
/// memory from their bytes, and the zero padding up to the size libisofs computed. Into a file
/// the files on disk may already be in place: an ``EarlyFileCopy`` started from
/// ``predictCopyPlan(_:)`` before the contents existed. The bytes are those libisofs would have
/// written (tests compare). When the layout is not that, the streams read their files and
/// libisofs writes every byte.
enum Isofs {
    private static let lock = Mutex<Bool>(false)

    /// Called, when set, after the tree is complete and before bytes are produced, for a
    /// prediction as for the image itself (tests use it to change a source file under the
    /// writer).
    nonisolated(unsafe) static var beforeWriteHook: (@Sendable (ISOLayout) -> Void)?

    /// Writes the image described by `layout` into `sink`. `early`, when given, is already
    /// copying the files on disk where ``predictCopyPlan(_:)`` said they go (a file sink only);
    /// when the final layout puts them elsewhere it is abandoned and they are copied again.
    @discardableResult
    static func write(
        _ layout: ISOLayout, to sink: any ImageSink, early: EarlyFileCopy? = nil, cancellation: CancellationFlag
    ) throws(BootMediumError) -> ISOWriteReport {
        defer { early?.abandon() }  // joined whatever happens: it writes into `sink`
        let report = try locked { () throws(BootMediumError) in
            try writeLocked(layout, to: sink, early: early, cancellation: cancellation)
        }
        if early != nil, let file = sink as? any RandomAccessSink {
            // Zeros up to the image's end after the last file written at its place; nothing of
            // an abandoned early copy past it.
            try file.setLength(report.imageBytes)
        }
        return report
    }

    /// Where the files on disk of `layout` will lie, from libisofs's layout of the same tree
    /// (sizes only, nothing written): they follow the boot catalog and the boot image, which
    /// come first in the data area (``sortWeights``), so the files in memory (whose bytes are
    /// not known yet: give each a placeholder of one byte, as they are not empty either) do not
    /// move them. Nil when nothing is to be copied.
    static func predictCopyPlan(_ layout: ISOLayout) throws(BootMediumError) -> (plan: ISOCopyPlan, imageBytes: Int64)? {
        try locked { () throws(BootMediumError) in
            try withImage(layout, decision: nil, willCancel: true) {
                (opts, source, files) throws(BootMediumError) -> (plan: ISOCopyPlan, imageBytes: Int64)? in
                let imageBytes = Int64(source.pointee.get_size?(source) ?? 0)
                var dataLBA: UInt32 = 0
                guard !files.onDisk.isEmpty, iso_write_opts_get_data_start(opts, &dataLBA, 0) >= 0 else { return nil }
                _ = source.pointee.cancel?(source)
                // The data area starts with one block libisofs keeps (empty files point at it),
                // then the boot catalog (one block), the boot image, and the files on disk in
                // layout order (a path given twice is stored once).
                var offset = (Int64(dataLBA) + 1 + 1 + ISOCopyPlan.blocks(files.bootImageSize)) * ISOCopyPlan.blockSize
                var extents: [ISOCopyPlan.Extent] = []
                for name in files.diskOrder {
                    guard let file = files.onDisk[name], !extents.contains(where: { $0.path == file.path }) else { continue }
                    extents.append(ISOCopyPlan.Extent(path: file.path, offset: offset, size: file.size))
                    offset += ISOCopyPlan.blocks(file.size) * ISOCopyPlan.blockSize
                }
                return (ISOCopyPlan(dataStart: extents[0].offset, extents: extents, tail: []), imageBytes)
            }
        }
    }

    /// Runs `body` holding ``lock``, libisofs initialized and its message queue drained.
    private static func locked<T>(_ body: () throws(BootMediumError) -> T) throws(BootMediumError) -> T {
        let result: Result<T, BootMediumError> = lock.withLock { initialized in
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
                return .success(try body())
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
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

    /// What ``withImage(_:decision:willCancel:_:)`` put in the tree.
    private struct TreeFiles {
        /// Files on disk whose data may be copied, by name (empty ones left out).
        var onDisk: [String: ISOCopyPlan.File] = [:]
        /// Their names in layout order.
        var diskOrder: [String] = []
        /// Files in memory, by name.
        var memory: [String: [UInt8]] = [:]
        /// The El Torito boot image's size.
        var bootImageSize: Int64 = 0
    }

    /// The sort weights of the data area, highest first: the boot catalog, the boot image, the
    /// files on disk in layout order, then the files in memory (weight 0). Files on disk thus
    /// lie where the sizes of the files in memory cannot move them, back to back; the files in
    /// memory end the image.
    private static func sortWeights(diskFiles: Int) -> (catalog: Int32, bootImage: Int32, disk: (Int) -> Int32) {
        (Int32(diskFiles + 2), Int32(diskFiles + 1), { index in Int32(diskFiles - index) })
    }

    /// Builds libisofs's tree and options for `layout`, starts its burn source (no writer thread
    /// when `willCancel`) and runs `body` with the options, the source and what the tree holds;
    /// everything is freed afterwards.
    private static func withImage<T>(
        _ layout: ISOLayout, decision: IsofsDataDecision?, willCancel: Bool,
        _ body: (OpaquePointer?, UnsafeMutablePointer<burn_source>, TreeFiles) throws(BootMediumError) -> T
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

        var files = TreeFiles()
        // Directories made for names with `/` (`boot/grub/grub.cfg`), by path.
        var directories: [String: OpaquePointer] = [:]
        let copiedCount = layout.files.filter { if case .file = $0.source { $0.name != layout.bootImage } else { false } }.count
        let weights = sortWeights(diskFiles: copiedCount)
        var diskIndex = 0
        for file in layout.files {
            let stream: UnsafeMutablePointer<IsoStream>?
            let weight: Int32
            switch file.source {
            case .file(let input):
                let path = input.reopenPath
                // libisofs reads the El Torito boot image while laying out (to patch it): that
                // one always streams.
                let copied = file.name != layout.bootImage
                let made = try IsofsFileStream.make(path: path, decision: copied ? decision : nil)
                stream = made.stream
                if copied {
                    weight = weights.disk(diskIndex)
                    diskIndex += 1
                    if made.size > 0 {
                        files.onDisk[file.name] = ISOCopyPlan.File(path: path, size: made.size)
                        files.diskOrder.append(file.name)
                    }
                } else {
                    weight = weights.bootImage
                    files.bootImageSize = made.size
                }
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
                if file.name == layout.bootImage {
                    weight = weights.bootImage
                    files.bootImageSize = Int64(bytes.count)
                } else {
                    weight = 0
                    files.memory[file.name] = bytes
                }
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
            iso_node_set_sort_weight(node, weight)
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
        if let efi = layout.efiBootImage {
            var efiBoot: OpaquePointer?
            try check(iso_image_add_boot_image(image, "/" + efi, ELTORITO_NO_EMUL, 0, &efiBoot), "El Torito EFI image")
            try check(el_torito_set_boot_platform_id(efiBoot, 0xEF), "El Torito EFI platform")
            // The firmware sees as much of the image as the entry's sector count says.
            el_torito_set_full_load(efiBoot, 1)
            // bits 2-7 = 1: a GPT partition (Basic Data) over the image, when isohybrid.
            try check(el_torito_set_isolinux_options(efiBoot, layout.isohybridMBR == nil ? 0 : 1 << 2, 0), "EFI image in the GPT")
        }
        try check(iso_image_set_boot_catalog_weight(image, weights.catalog), "boot catalog weight")
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
        if willCancel { _ = iso_write_opts_set_will_cancel(opts, 1) }
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
        if var guid = layout.gptGUID, guid.count == 16 {
            try check(iso_write_opts_set_gpt_guid(opts, &guid, 1), "GPT disk GUID")
        }

        beforeWriteHook?(layout)  // also before a prediction: early copies produce bytes then

        var source: UnsafeMutablePointer<burn_source>?
        try check(iso_image_create_burn_source(image, opts, &source), "start writing")
        guard let source else { throw BootMediumError(.imageBuildFailed, "libisofs gave no output") }
        defer {
            source.pointee.free_data?(source)
            free(source)
        }
        return try body(opts, source, files)
    }

    private static func writeLocked(
        _ layout: ISOLayout, to sink: any ImageSink, early: EarlyFileCopy?, cancellation: CancellationFlag
    ) throws(BootMediumError) -> ISOWriteReport {
        let decision: IsofsDataDecision? = layout.streamFileData ? nil : IsofsDataDecision()
        // From here on, streams waiting for the decision must never block libisofs's writer
        // thread, which cancelling and freeing the burn source join.
        defer { decision?.decide(.abandon) }
        return try withImage(layout, decision: decision, willCancel: false) {
            (opts, source, files) throws(BootMediumError) -> ISOWriteReport in
            try produce(source, opts: opts, files: files, decision: decision, to: sink, early: early, cancellation: cancellation)
        }
    }

    /// Reads the image out of libisofs's burn source into `sink`; see the type's notes.
    private static func produce(
        _ source: UnsafeMutablePointer<burn_source>, opts: OpaquePointer?, files: TreeFiles,
        decision: IsofsDataDecision?, to sink: any ImageSink, early: EarlyFileCopy?, cancellation: CancellationFlag
    ) throws(BootMediumError) -> ISOWriteReport {
        let imageBytes = Int64(source.pointee.get_size?(source) ?? 0)
        let chunk = 512 * 2048
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var report = ISOWriteReport(imageBytes: imageBytes)
        var written: Int64 = 0

        /// Reads exactly `count` (at most `chunk`) bytes of the image into `buffer`; false at its end.
        func take(_ count: Int) throws(BootMediumError) -> Bool {
            let n = source.pointee.read_xt?(source, buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(count)) ?? -1
            if n < 0 || (n > 0 && Int(n) != count) { throw writeFailure() }
            return n > 0
        }
        func send(_ bytes: UnsafeRawBufferPointer) throws(BootMediumError) {
            try sink.write(bytes)
            written += Int64(bytes.count)
        }
        func sendZeros(_ count: Int64) throws(BootMediumError) {
            memset(buffer.baseAddress!, 0, Int(min(Int64(chunk), count)))
            try FileCopy.appendZeros(count, to: sink, zeros: UnsafeRawBufferPointer(buffer))
            written += count
        }
        func send(_ bytes: [UInt8]) throws(BootMediumError) {
            var index = 0
            while index < bytes.count {  // through `buffer`: `withUnsafeBytes` drops typed errors
                let n = min(chunk, bytes.count - index)
                bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + index, byteCount: n) }
                try send(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                index += n
            }
        }

        do throws(BootMediumError) {
            try sink.reserve(imageBytes)
            if let decision {
                // The head of the image, until the root directory's end (before any file data).
                var head: [UInt8] = []
                var ended = false
                var dataLBA: UInt32 = 0
                let known = iso_write_opts_get_data_start(opts, &dataLBA, 0) >= 0
                let plan = files.onDisk.isEmpty || !known ? nil : try ISOCopyPlan.make(
                    files: files.onDisk, memory: files.memory, imageBytes: imageBytes, fileDataStart: Int64(dataLBA) * 2048
                ) { (length: Int) throws(BootMediumError) -> [UInt8]? in
                    while head.count < length && !ended {
                        try cancellation.check()
                        let n = min(chunk, length - head.count)
                        if try take(n) {
                            head.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                        } else {
                            ended = true
                        }
                    }
                    return head.count >= length ? head : nil
                }
                if ended { throw writeFailure() }
                let mode = decision.decide(plan == nil ? .stream : .copy)
                try send(head)
                if let plan, mode == .copy {
                    // libisofs's bytes up to the first copied file's data.
                    while written < plan.dataStart {
                        try cancellation.check()
                        let n = Int(min(Int64(chunk), plan.dataStart - written))
                        guard try take(n) else { throw writeFailure() }
                        try send(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                    }
                    // Whatever went wrong up to here fails the build; past here libisofs only
                    // writes what is copied or written below.
                    let messages = drainMessages()
                    if !messages.isEmpty {
                        throw BootMediumError(.imageBuildFailed, "libisofs reported: " + messages.joined(separator: "; "))
                    }
                    // Stops and joins libisofs's writer while the files are copied.
                    let stop = BurnSourceStop(source)
                    defer {
                        stop.wait()
                        _ = drainMessages()  // its note about being cancelled
                    }
                    if let early, let file = sink as? any RandomAccessSink, early.plan.extents == plan.extents {
                        // Already being copied into place: the files in memory go after them.
                        try early.finish()
                        report.copiedBytes = plan.extents.reduce(0) { $0 + $1.size }
                        report.copiedEarly = true
                        for tail in plan.tail {
                            try file.write(tail.bytes, at: tail.offset)
                        }
                        try cancellation.check()
                        return report
                    }
                    if let early {
                        // Predicted elsewhere: stop it; everything below is written in order over
                        // whatever it wrote, and the file is cut to the image's size. A file that
                        // changed size since the prediction fails the build (the manifest was
                        // made from the earlier facts).
                        try early.stop()
                        report.predictionMissed = true
                        for extent in plan.extents {
                            if let predicted = early.plan.extents.first(where: { $0.path == extent.path }), predicted.size != extent.size {
                                throw FileCopy.changedSize(extent.path, expected: predicted.size, actual: extent.size)
                            }
                        }
                    }
                    for extent in plan.extents {
                        guard written == extent.offset else {
                            throw BootMediumError(.imageBuildFailed, "Internal error: ISO file data out of place")
                        }
                        try FileCopy.append(
                            path: extent.path, size: extent.size, at: written, to: sink, buffer: buffer,
                            cancellation: cancellation)
                        written += extent.size
                        report.copiedBytes += extent.size
                        try sendZeros(ISOCopyPlan.blocks(extent.size) * 2048 - extent.size)
                    }
                    for tail in plan.tail {
                        guard written <= tail.offset else {
                            throw BootMediumError(.imageBuildFailed, "Internal error: ISO file data out of place")
                        }
                        try sendZeros(tail.offset - written)
                        try send(tail.bytes)
                    }
                    guard written <= imageBytes else {
                        throw BootMediumError(.imageBuildFailed, "Internal error: ISO file data past the image's end")
                    }
                    try sendZeros(imageBytes - written)  // libisofs's tail padding
                    try cancellation.check()
                    return report
                }
            }
            // libisofs streams every byte. Large reads: its ring buffer wakes the reader once per
            // read, not per block. Reads are exact (the ring reports a partial last read as its
            // end), then one more must find the end.
            try early?.stop()
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
                try send(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            }
            if try take(1) {
                throw BootMediumError(.imageBuildFailed, "libisofs wrote more than the image size it computed")
            }
        } catch {
            decision?.decide(.abandon)
            _ = source.pointee.cancel?(source)
            throw error
        }
        let messages = drainMessages()
        if !messages.isEmpty {
            throw BootMediumError(
                .imageBuildFailed, "libisofs reported: " + messages.joined(separator: "; "))
        }
        return report
    }

    /// Cancels a burn source on another thread: libisofs then joins its writer thread (~1.5 ms),
    /// which overlaps the copy of the files. ``wait()`` must return before the source is freed.
    private final class BurnSourceStop: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)

        init(_ source: UnsafeMutablePointer<burn_source>) {
            nonisolated(unsafe) let source = source
            DispatchQueue.global().async { [done] in
                _ = source.pointee.cancel?(source)
                done.signal()
            }
        }

        /// Returns once the writer is stopped (call once).
        func wait() { done.wait() }
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

/// Where libisofs put the data of an image's files on disk, read from the image's head: the
/// ECMA-119 volume descriptors and root directory, with Rock Ridge names (``Isofs``).
///
/// A plan exists only when every such file is in the root directory with its full size and their
/// data are back to back from `dataStart`, each padded to a whole block; every other extent
/// (directories, path tables, boot catalog, boot image) ends before `dataStart`, except files in
/// memory, which may follow the files on disk (the ``tail``, whose bytes are known); and the
/// volume is `imageBytes` long. Everything else up to `imageBytes` is libisofs's zero padding (no
/// checksums, GPT or appended partitions are requested).
struct ISOCopyPlan: Equatable, Sendable {
    /// A file on disk, by root name.
    struct File: Equatable, Sendable {
        let path: String
        let size: Int64
    }

    /// One file's data in the image.
    struct Extent: Equatable, Sendable {
        let path: String
        let offset: Int64
        let size: Int64
    }

    /// A file in memory after the files on disk.
    struct TailFile: Equatable, Sendable {
        let offset: Int64
        let bytes: [UInt8]
    }

    /// The offset of the first file's data.
    let dataStart: Int64
    /// The files' data in image order (a file given under two names is copied once).
    let extents: [Extent]
    /// The files in memory after them, in image order.
    let tail: [TailFile]

    static let blockSize: Int64 = 2048

    /// 2048-byte blocks holding `bytes`.
    static func blocks(_ bytes: Int64) -> Int64 { (bytes + blockSize - 1) / blockSize }

    /// Reads the head through `head(length)` (the image's first `length` bytes, nil when it is
    /// shorter), never asking past `fileDataStart` (where libisofs starts writing file data), and
    /// plans `files` (on disk) and `memory` (bytes, by name); nil when the image is not laid out
    /// as described above.
    static func make(
        files: [String: File], memory: [String: [UInt8]] = [:], imageBytes: Int64, fileDataStart: Int64,
        head: (Int) throws(BootMediumError) -> [UInt8]?
    ) throws(BootMediumError) -> ISOCopyPlan? {
        let block = Int(blockSize)
        func read(_ length: Int) throws(BootMediumError) -> [UInt8]? {
            guard length <= fileDataStart else { return nil }
            return try head(length)
        }
        // Volume descriptors from block 16 up to the terminator.
        var descriptors: [UInt8: Int] = [:]
        var index = 16
        var bytes: [UInt8] = []
        while true {
            guard index < 64, let got = try read((index + 1) * block) else { return nil }
            bytes = got
            let at = index * block
            guard Array(bytes[(at + 1)..<(at + 6)]) == Array("CD001".utf8) else { return nil }
            let type = bytes[at]
            if type == 255 { break }
            if descriptors[type] == nil { descriptors[type] = at }
            index += 1
        }
        guard let primary = descriptors[1] else { return nil }
        guard Int64(bytes.le32(at: primary + 80)) * blockSize == imageBytes else { return nil }
        // Every metadata extent must end before the first file's data.
        var metadataEnd = Int64(index + 1) * blockSize
        for type: UInt8 in [1, 2] {
            guard let at = descriptors[type] else { continue }
            let tableBlocks = blocks(Int64(bytes.le32(at: at + 132)))
            metadataEnd = max(
                metadataEnd, Int64(bytes.le32(at: at + 158)) * blockSize + Int64(bytes.le32(at: at + 166)),
                (Int64(bytes.le32(at: at + 140)) + tableBlocks) * blockSize,
                (Int64(be32(bytes, at + 148)) + tableBlocks) * blockSize)
        }
        if let boot = descriptors[0] {
            metadataEnd = max(metadataEnd, (Int64(bytes.le32(at: boot + 71)) + 1) * blockSize)
        }
        // The root directory and the directories below it (GRUB's `boot/grub`, `.disk`): their
        // extents are metadata; files are found by their path.
        let rootStart = Int(bytes.le32(at: primary + 158)) * block
        let rootLength = Int(bytes.le32(at: primary + 166))
        guard rootStart >= (index + 1) * block, rootLength > 0, rootLength % block == 0 else { return nil }
        var found: [String: (offset: Int64, size: Int64)] = [:]
        var others: [(offset: Int64, size: Int64)] = []
        var pending: [(start: Int, length: Int, prefix: String, depth: Int)] = [(rootStart, rootLength, "", 0)]
        while let directory = pending.popLast() {
            guard directory.length > 0, directory.length % block == 0, directory.depth < 8,
                let all = try read(directory.start + directory.length)
            else { return nil }
            bytes = all
            var position = directory.start
            let end = directory.start + directory.length
            while position < end {
                let length = Int(bytes[position])
                if length == 0 {  // the rest of this block is unused
                    position = (position / block + 1) * block
                    continue
                }
                guard length >= 34, position % block + length <= block else { return nil }
                let record = Array(bytes[position..<(position + length)])
                position += length
                let nameLength = Int(record[32])
                guard 33 + nameLength <= length else { return nil }
                if nameLength == 1 && record[33] <= 1 { continue }  // "." and ".."
                let flags = record[25]
                guard flags & 0x80 == 0 else { return nil }  // no multi-extent files
                let extent = (offset: Int64(record.le32(at: 2)) * blockSize, size: Int64(record.le32(at: 10)))
                guard let name = rockRidgeName(record, systemUseStart: 33 + nameLength + (nameLength % 2 == 0 ? 1 : 0)) else {
                    return nil
                }
                let path = directory.prefix + name
                if flags & 0x02 != 0 {
                    others.append(extent)
                    pending.append((Int(extent.offset), Int(extent.size), path + "/", directory.depth + 1))
                } else if (directory.depth == 0 && files[path] != nil) || memory[path] != nil {
                    guard found[path] == nil else { return nil }
                    found[path] = extent
                } else {
                    others.append(extent)
                }
            }
        }
        // The files on disk, in image order, back to back.
        var extents: [Extent] = []
        for (name, file) in files {
            guard let extent = found[name], extent.size == file.size else { return nil }
            extents.append(Extent(path: file.path, offset: extent.offset, size: extent.size))
        }
        extents.sort { ($0.offset, $0.path) < ($1.offset, $1.path) }
        var unique: [Extent] = []
        for extent in extents {
            if let last = unique.last, last.offset == extent.offset {
                guard last.size == extent.size else { return nil }
                continue
            }
            if let last = unique.last, last.offset + blocks(last.size) * blockSize != extent.offset { return nil }
            unique.append(extent)
        }
        guard let first = unique.first, let last = unique.last else { return nil }
        let dataStart = first.offset
        let dataEnd = last.offset + blocks(last.size) * blockSize
        // Files in memory: before the files on disk (libisofs writes them), or after (the tail).
        var tail: [TailFile] = []
        for (name, bytes) in memory {
            guard let extent = found[name], extent.size == Int64(bytes.count) else { return nil }
            if extent.size == 0 || extent.offset + extent.size <= dataStart { continue }
            guard extent.offset >= dataEnd else { return nil }
            tail.append(TailFile(offset: extent.offset, bytes: bytes))
        }
        // The backup GPT libisofs writes at the image's end (an isohybrid GPT): made here from
        // the primary one in the system area, as libisofs makes it.
        if let system = try read(32 * block), let backup = backupGPT(systemArea: system, imageBytes: imageBytes) {
            tail.append(backup)
        }
        tail.sort { $0.offset < $1.offset }
        var tailEnd = dataEnd
        for file in tail {
            guard file.offset >= tailEnd else { return nil }
            // Exact ends: the backup GPT ends with the image, inside a 2 KiB block.
            tailEnd = file.offset + Int64(file.bytes.count)
        }
        guard dataStart >= fileDataStart, metadataEnd <= dataStart,
            others.allSatisfy({ $0.size == 0 || $0.offset + $0.size <= dataStart }),
            tailEnd <= imageBytes
        else { return nil }
        return ISOCopyPlan(dataStart: dataStart, extents: unique, tail: tail)
    }

    /// The backup GPT of an image whose system area (its first 64 KiB) holds a primary GPT at
    /// LBA 1: the same partition entries and a header whose own and alternate LBAs and entry
    /// LBA are swapped to the image's end (UEFI 2.x §5.3), CRC-32 recomputed. Nil without a GPT.
    static func backupGPT(systemArea bytes: [UInt8], imageBytes: Int64) -> TailFile? {
        guard bytes.count >= 1024, Array(bytes[512..<520]) == Array("EFI PART".utf8) else { return nil }
        let headerSize = Int(bytes.le32(at: 512 + 12))
        let entriesLBA = Int(bytes.le64(at: 512 + 72))
        let entryCount = Int(bytes.le32(at: 512 + 80))
        let entrySize = Int(bytes.le32(at: 512 + 84))
        let entryBytes = entryCount * entrySize
        let entrySectors = (entryBytes + 511) / 512
        let lastLBA = Int64(bytes.le64(at: 512 + 32))
        guard headerSize >= 92, headerSize <= 512, entryCount > 0, entrySize >= 128,
            entriesLBA * 512 + entryBytes <= bytes.count, lastLBA == imageBytes / 512 - 1
        else { return nil }
        var header = Array(bytes[512..<(512 + headerSize)])
        let backupEntriesLBA = lastLBA - Int64(entrySectors)
        header.putLE64(UInt64(lastLBA), at: 24)  // this header's LBA
        header.putLE64(bytes.le64(at: 512 + 24), at: 32)  // the primary's
        header.putLE64(UInt64(backupEntriesLBA), at: 72)
        header.putLE32(0, at: 16)
        header.putLE32(CRC32.of(header), at: 16)
        var result = Array(bytes[(entriesLBA * 512)..<(entriesLBA * 512 + entryBytes)])
        result += [UInt8](repeating: 0, count: entrySectors * 512 - entryBytes)
        result += header + [UInt8](repeating: 0, count: 512 - headerSize)
        return TailFile(offset: backupEntriesLBA * 512, bytes: result)
    }

    /// The Rock Ridge name (NM entries) in a directory record's system use area; nil when there
    /// is none or it continues elsewhere.
    static func rockRidgeName(_ record: [UInt8], systemUseStart: Int) -> String? {
        var name: [UInt8] = []
        var complete = false
        var position = systemUseStart
        while position + 4 <= record.count {
            let length = Int(record[position + 2])
            guard length >= 4, position + length <= record.count else { return nil }
            if record[position] == 0x4E && record[position + 1] == 0x4D && length >= 5 {  // "NM"
                let flags = record[position + 4]
                guard flags & 0x06 == 0 else { return nil }  // "." or ".." names
                name += record[(position + 5)..<(position + length)]
                complete = flags & 0x01 == 0
            } else if record[position] == 0x53 && record[position + 1] == 0x54 {  // "ST"
                break
            }
            position += length
        }
        guard complete else { return nil }
        return String(bytes: name, encoding: .utf8)
    }

    private static func be32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])
    }
}
