#if canImport(Glibc)
import Glibc
#endif
import CCramfs
import Foundation

/// The only place that talks to the CCramfs C target: writes a ``RootTree`` as a cramfs image
/// and reads cramfs images (which may be hostile) back for inspection.
enum Cramfs {
    /// The most path components of an entry bootmedium writes: CCramfs's reader walks at most
    /// `CCRAMFS_MAX_DEPTH` (256) directory levels, the root being the first.
    static let maximumComponents = Int(CCRAMFS_MAX_DEPTH) - 1
    /// The most bytes of an entry's path (`/a/b`) the reader walks (`CCRAMFS_MAX_PATH`).
    static let maximumPathBytes = Int(CCRAMFS_MAX_PATH)

    /// What a write produced.
    struct WriteResult: Equatable {
        var imageSize: Int64
        var crc: UInt32
        var files: UInt32
        var blocks: UInt32
    }

    /// Supplies `buffer.count` bytes (1...4096) of a file's contents at `offset`. Pages of one
    /// file come in increasing order; files in the tree's depth-first sorted order.
    typealias ContentProvider = (_ file: RootTree.FileData, _ offset: Int64, _ buffer: UnsafeMutableRawBufferPointer)
        throws(BootMediumError) -> Void

    private final class WriteContext {
        let files: [RootTree.FileData]
        let provider: ContentProvider
        let fd: Int32
        let path: String
        let cancellation: CancellationFlag
        var error: BootMediumError?
        var pages = 0
        init(files: [RootTree.FileData], provider: @escaping ContentProvider, fd: Int32, path: String, cancellation: CancellationFlag) {
            self.files = files
            self.provider = provider
            self.fd = fd
            self.path = path
            self.cancellation = cancellation
        }
    }

    /// Writes the cramfs image of `tree` at offset 0 of `fd` (positional writes; `path` names
    /// it in errors). `threads` > 1 compresses on that many threads (same bytes).
    static func write(
        _ tree: RootTree, volumeName: String, threads: Int, to fd: Int32, path: String,
        cancellation: CancellationFlag, content: @escaping ContentProvider
    ) throws(BootMediumError) -> WriteResult {
        guard let handle = ccramfs_tree_new() else { throw BootMediumError(.imageBuildFailed, "cramfs: out of memory") }
        defer { ccramfs_tree_free(handle) }
        var files: [RootTree.FileData] = []
        var firstIndex: [ObjectIdentifier: UInt32] = [:]
        func check(_ status: ccramfs_status, _ path: String) throws(BootMediumError) {
            guard status == CCRAMFS_OK else {
                let detail = String(cString: ccramfs_tree_error(handle))
                throw BootMediumError(
                    .imageBuildFailed, "cramfs cannot hold /\(path): \(detail.isEmpty ? String(cString: ccramfs_status_name(status)) : detail)",
                    context: ["path": "/" + path, "status": String(cString: ccramfs_status_name(status))])
            }
        }
        try check(ccramfs_tree_set_root(handle, tree.root.permissions, tree.root.uid, tree.root.gid), "")
        func add(_ node: RootTree.Node, parent: UInt32, pathText: String) throws(BootMediumError) {
            for (name, child) in node.sortedChildren {
                let childPath = pathText.isEmpty ? String(decoding: name, as: UTF8.self) : pathText + "/" + String(decoding: name, as: UTF8.self)
                var entry = ccramfs_entry()
                entry.uid = child.uid
                entry.gid = child.gid
                var index: UInt32 = 0
                var linkTarget: [UInt8] = []
                switch child.kind {
                case .directory: entry.mode = CCRAMFS_S_IFDIR
                case .file(let data):
                    if let target = firstIndex[ObjectIdentifier(data)] {
                        try check(name.withUnsafeBufferPointer { n in
                            n.withMemoryRebound(to: CChar.self) { ccramfs_tree_add_hardlink(handle, parent, $0.baseAddress, $0.count, target, &index) }
                        }, childPath)
                        continue
                    }
                    entry.mode = CCRAMFS_S_IFREG
                    entry.size = UInt64(data.size)
                    entry.data_cookie = UInt64(files.count)
                    files.append(data)
                case .symlink(let target):
                    entry.mode = CCRAMFS_S_IFLNK
                    linkTarget = target
                case .characterDevice(let major, let minor):
                    entry.mode = CCRAMFS_S_IFCHR
                    entry.dev_major = major
                    entry.dev_minor = minor
                case .blockDevice(let major, let minor):
                    entry.mode = CCRAMFS_S_IFBLK
                    entry.dev_major = major
                    entry.dev_minor = minor
                case .fifo: entry.mode = CCRAMFS_S_IFIFO
                case .socket: entry.mode = CCRAMFS_S_IFSOCK
                }
                entry.mode |= child.permissions
                let status = linkTarget.withUnsafeBufferPointer { target in
                    target.withMemoryRebound(to: CChar.self) { target in
                        entry.link_target = target.baseAddress
                        entry.link_target_len = target.count
                        return name.withUnsafeBufferPointer { n in
                            n.withMemoryRebound(to: CChar.self) { ccramfs_tree_add(handle, parent, $0.baseAddress, $0.count, &entry, &index) }
                        }
                    }
                }
                try check(status, childPath)
                if case .file(let data) = child.kind { firstIndex[ObjectIdentifier(data)] = index }
                if child.isDirectory { try add(child, parent: index, pathText: childPath) }
            }
        }
        try add(tree.root, parent: CCRAMFS_ROOT, pathText: "")

        let context = WriteContext(files: files, provider: content, fd: fd, path: path, cancellation: cancellation)
        let opaque = Unmanaged.passUnretained(context).toOpaque()
        var options = ccramfs_write_options()
        Self.setThreads(&options, threads)
        let name = Array(volumeName.utf8.prefix(16))
        var result = ccramfs_write_result()
        var message = [CChar](repeating: 0, count: 512)
        let status = name.withUnsafeBufferPointer { nameBuffer in
            nameBuffer.withMemoryRebound(to: CChar.self) { nameBuffer in
                options.volume_name = nameBuffer.baseAddress
                options.volume_name_len = nameBuffer.count
                return withExtendedLifetime(context) {
                    ccramfs_write(
                        handle, &options,
                        { ctx, cookie, offset, buffer, length in
                            let context = Unmanaged<WriteContext>.fromOpaque(ctx!).takeUnretainedValue()
                            do throws(BootMediumError) {
                                context.pages += 1
                                if context.pages % 256 == 0 { try context.cancellation.check() }
                                guard cookie < UInt64(context.files.count) else {
                                    throw BootMediumError(.imageBuildFailed, "cramfs asked for unknown content \(cookie)")
                                }
                                try context.provider(
                                    context.files[Int(cookie)], Int64(offset), UnsafeMutableRawBufferPointer(start: buffer, count: length))
                                return 0
                            } catch {
                                context.error = error
                                return 1
                            }
                        }, opaque,
                        { ctx, offset, buffer, length in
                            let context = Unmanaged<WriteContext>.fromOpaque(ctx!).takeUnretainedValue()
                            do throws(BootMediumError) {
                                try Posix.writeAll(
                                    context.fd, UnsafeRawBufferPointer(start: buffer, count: length), at: Int64(offset), path: context.path)
                                return 0
                            } catch {
                                context.error = error
                                return 1
                            }
                        }, opaque, &result, &message, message.count)
                }
            }
        }
        if let error = context.error { throw error }
        guard status == CCRAMFS_OK else {
            throw BootMediumError(
                .imageBuildFailed, "cramfs: \(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))",
                context: ["status": String(cString: ccramfs_status_name(status))])
        }
        return WriteResult(imageSize: Int64(result.image_size), crc: result.crc, files: result.files, blocks: result.blocks)
    }

    /// Sets the compression thread count (1 = on the calling thread; the bytes are the same).
    private static func setThreads(_ options: inout ccramfs_write_options, _ threads: Int) {
        options.threads = UInt32(min(max(threads, 1), Int(CCRAMFS_MAX_WRITE_THREADS)))
    }
}

/// A cramfs image (possibly hostile) read through the bounded CCramfs reader, from `length`
/// bytes at `offset` of an image file (a whole cramfs, or `cramfs.img` inside an ISO or FAT).
final class CramfsReader {
    /// One inode found by the walk.
    struct Entry: Equatable {
        /// Absolute path (`/` for the root).
        var path: String
        var mode: UInt32
        var uid: UInt32
        var gid: UInt32
        /// Bytes of a file or symlink target (devices: 0).
        var size: Int64
        var deviceMajor: UInt32
        var deviceMinor: UInt32
        /// What an inode is, by its mode's type bits.
        enum Kind: String {
            case directory, file, symlink, fifo, socket, unknown
            case characterDevice = "character-device"
            case blockDevice = "block-device"
        }
        var kind: Kind {
            switch mode & 0o170000 {
            case 0o040000: .directory
            case 0o100000: .file
            case 0o120000: .symlink
            case 0o020000: .characterDevice
            case 0o060000: .blockDevice
            case 0o010000: .fifo
            case 0o140000: .socket
            default: .unknown
            }
        }
    }

    /// The superblock facts.
    struct Info: Equatable {
        var volumeName: String
        var size: Int64
        var crcOK: Bool
        var files: UInt32
        var blocks: UInt32
        var edition: UInt32
    }

    private final class Source {
        let image: ImageBytes
        let offset: Int64
        var error: BootMediumError?
        init(image: ImageBytes, offset: Int64) {
            self.image = image
            self.offset = offset
        }
    }

    private let source: Source
    private let reader: OpaquePointer
    let info: Info
    let what: String

    /// Opens the cramfs; checks the superblock and the CRC.
    init(_ image: ImageBytes, offset: Int64 = 0, length: Int64? = nil, what: String = "cramfs") throws(BootMediumError) {
        let length = length ?? image.size - offset
        guard offset >= 0, length >= 0, offset <= image.size, length <= image.size - offset else {
            throw BootMediumError(.invalidImage, "\(what) lies outside the image", context: ["path": image.path])
        }
        self.what = what
        source = Source(image: image, offset: offset)
        var handle: OpaquePointer?
        var message = [CChar](repeating: 0, count: 512)
        let status = ccramfs_open_callback(
            UInt64(length),
            { ctx, offset, buffer, length in
                let source = Unmanaged<Source>.fromOpaque(ctx!).takeUnretainedValue()
                do throws(BootMediumError) {
                    let bytes = try source.image.read(source.offset + Int64(offset), length, what: "cramfs")
                    bytes.withUnsafeBytes { buffer!.copyMemory(from: $0.baseAddress!, byteCount: length) }
                    return 0
                } catch {
                    source.error = error
                    return 1
                }
            }, Unmanaged.passUnretained(source).toOpaque(), 0, &handle, &message, message.count)
        if let error = source.error { throw error }
        guard status == CCRAMFS_OK, let handle else {
            throw BootMediumError(
                .invalidImage, "\(what): \(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))",
                context: ["path": image.path, "status": String(cString: ccramfs_status_name(status))])
        }
        reader = handle
        var raw = ccramfs_info()
        _ = ccramfs_get_info(handle, &raw)
        let name = withUnsafeBytes(of: raw.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        info = Info(
            volumeName: name, size: Int64(raw.size), crcOK: raw.crc_ok != 0, files: raw.files, blocks: raw.blocks,
            edition: raw.edition)
    }

    deinit { ccramfs_close(reader) }

    private func failure(_ status: ccramfs_status, _ action: String) -> BootMediumError {
        if let error = source.error { return error }
        return BootMediumError(
            .invalidImage, "\(what): \(action): \(String(cString: ccramfs_reader_error(reader)))",
            context: ["path": source.image.path, "status": String(cString: ccramfs_status_name(status))])
    }

    private final class WalkCollector {
        var entries: [Entry] = []
    }

    /// Every inode, depth-first, after checking the whole structure and (with `verifyData`)
    /// decompressing every block: loops, overlaps, depth and counts are bounded by the reader.
    func walk(verifyData: Bool = true) throws(BootMediumError) -> [Entry] {
        let collector = WalkCollector()
        let flags = UInt32(CCRAMFS_WALK_STRICT) | (verifyData ? UInt32(CCRAMFS_WALK_VERIFY_DATA) : 0)
        let status = ccramfs_walk(
            reader, flags,
            { ctx, path, length, node in
                let collector = Unmanaged<WalkCollector>.fromOpaque(ctx!).takeUnretainedValue()
                let node = node!.pointee
                let text = String(decoding: UnsafeRawBufferPointer(start: path, count: length), as: UTF8.self)
                let type = node.mode & 0o170000
                let isDevice = type == 0o020000 || type == 0o060000
                collector.entries.append(
                    Entry(
                        path: text, mode: node.mode, uid: node.uid, gid: node.gid, size: isDevice ? 0 : Int64(node.size),
                        deviceMajor: node.dev_major, deviceMinor: node.dev_minor))
                return 0
            }, Unmanaged.passUnretained(collector).toOpaque())
        guard status == CCRAMFS_OK else { throw failure(status, "walk") }
        return collector.entries
    }

    /// Reads a regular file (at most `limit` bytes) or a symlink's target.
    func read(_ path: String, limit: Int = ImageBytes.maximumRead) throws(BootMediumError) -> [UInt8] {
        var node = ccramfs_node()
        let status = path.withCString { ccramfs_lookup(reader, $0, strlen($0), &node) }
        guard status == CCRAMFS_OK else { throw failure(status, "look up \(path)") }
        guard Int(node.size) <= limit else {
            throw BootMediumError(.invalidImage, "\(what): \(path) is larger than \(limit) bytes", context: ["path": source.image.path])
        }
        var bytes = [UInt8](repeating: 0, count: Int(node.size))
        if node.mode & 0o170000 == 0o120000 {
            var buffer = [CChar](repeating: 0, count: Int(node.size) + 1)
            var length = 0
            let status = ccramfs_readlink(reader, &node, &buffer, buffer.count, &length)
            guard status == CCRAMFS_OK else { throw failure(status, "read link \(path)") }
            return buffer.prefix(length).map { UInt8(bitPattern: $0) }
        }
        var done = 0
        while done < bytes.count {
            var got = 0
            let status = bytes.withUnsafeMutableBytes {
                ccramfs_read(reader, &node, UInt64(done), $0.baseAddress! + done, $0.count - done, &got)
            }
            guard status == CCRAMFS_OK else { throw failure(status, "read \(path)") }
            if got == 0 { throw BootMediumError(.invalidImage, "\(what): \(path) ends early", context: ["path": source.image.path]) }
            done += got
        }
        return bytes
    }
}
