import CCramfs
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - The intended tree

/// One entry of a tree as every reader should see it (path relative to the root, "" = root).
struct CramfsItem: Equatable, CustomStringConvertible {
    enum Kind: Equatable { case directory, file, symlink, charDevice, blockDevice, fifo }
    var kind: Kind
    var mode: UInt32  // permission bits (07777)
    var uid: UInt32 = 0
    var gid: UInt32 = 0
    var content: [UInt8] = []  // files
    var target: String = ""  // symlinks
    var major: UInt32 = 0
    var minor: UInt32 = 0

    var typeBits: UInt32 {
        switch kind {
        case .directory: return CCRAMFS_S_IFDIR
        case .file: return CCRAMFS_S_IFREG
        case .symlink: return CCRAMFS_S_IFLNK
        case .charDevice: return CCRAMFS_S_IFCHR
        case .blockDevice: return CCRAMFS_S_IFBLK
        case .fifo: return CCRAMFS_S_IFIFO
        }
    }

    var description: String {
        let extra: String
        switch kind {
        case .file: extra = " \(content.count) bytes fnv=\(String(fnv1a(content), radix: 16))"
        case .symlink: extra = " -> \(target)"
        case .charDevice, .blockDevice: extra = " \(major):\(minor)"
        default: extra = ""
        }
        return "\(kind) 0\(String(mode, radix: 8)) \(uid):\(gid)\(extra)"
    }
}

/// A NUL-terminated C buffer as a String.
func cstr(_ a: [CChar]) -> String {
    String(decoding: a.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// glibc's dev_t encoding (major()/minor()/makedev() are macros Swift cannot see).
func devMajor(_ d: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: ((d >> 8) & 0xFFF) | ((d >> 32) & ~0xFFF)) }
func devMinor(_ d: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: (d & 0xFF) | ((d >> 12) & ~0xFF)) }
func makeDev(_ major: UInt32, _ minor: UInt32) -> UInt64 {
    let ma = UInt64(major), mi = UInt64(minor)
    return (mi & 0xFF) | ((ma & 0xFFF) << 8) | ((mi & ~0xFF) << 12) | ((ma & ~0xFFF) << 32)
}

/// Byte equality with memcmp ([UInt8] == compares element by element in debug builds).
func sameBytes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    a.count == b.count && a.withUnsafeBytes { x in b.withUnsafeBytes { y in memcmp(x.baseAddress!, y.baseAddress!, a.count) == 0 } }
}

func fnv1a(_ bytes: [UInt8]) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}

/// Deterministic pseudo-random bytes (xorshift64*).
func pseudoRandomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var s = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    var out = [UInt8](repeating: 0, count: count)
    out.withUnsafeMutableBytes { raw in
        var i = 0
        while i < count {
            s ^= s >> 12
            s ^= s << 25
            s ^= s >> 27
            var v = s &* 0x2545_F491_4F6C_DD1D
            let n = min(8, count - i)
            withUnsafeBytes(of: &v) { vb in
                raw.baseAddress!.advanced(by: i).copyMemory(from: vb.baseAddress!, byteCount: n)
            }
            i += n
        }
    }
    return out
}

/// A tree to write: items by path, plus hard-link groups (paths sharing a data cookie).
struct CramfsSpec {
    var root = CramfsItem(kind: .directory, mode: 0o755)
    var items: [String: CramfsItem] = [:]
    /// Extra names for files: link path -> target path (same cookie, same data).
    var hardLinks: [String: String] = [:]

    /// Every path with its expected item, hard links resolved, root as "".
    var expected: [String: CramfsItem] {
        var all = items
        for (link, target) in hardLinks { all[link] = items[target] }
        all[""] = root
        return all
    }

    /// The standard round-trip tree: nested directories, files of sizes around block boundaries,
    /// a symlink, devices, a fifo, a hard-link pair and names that need byte-order sorting.
    static func standard() -> CramfsSpec {
        var s = CramfsSpec()
        // Added in a deliberately unsorted order.
        s.items["dir/sub/deeper"] = CramfsItem(kind: .directory, mode: 0o700)
        s.items["b"] = CramfsItem(kind: .directory, mode: 0o755)
        s.items["dir"] = CramfsItem(kind: .directory, mode: 0o755, uid: 1000, gid: 100)
        s.items["dir/sub"] = CramfsItem(kind: .directory, mode: 0o750)
        s.items["empty"] = CramfsItem(kind: .directory, mode: 0o755)
        s.items["zero"] = CramfsItem(kind: .file, mode: 0o644)
        s.items["one"] = CramfsItem(kind: .file, mode: 0o644, content: [0x78])
        s.items["f4095"] = CramfsItem(kind: .file, mode: 0o600, content: pseudoRandomBytes(4095, seed: 1))
        s.items["f4096"] = CramfsItem(kind: .file, mode: 0o4755, content: pseudoRandomBytes(4096, seed: 2))
        s.items["f4097"] = CramfsItem(kind: .file, mode: 0o644, content: pseudoRandomBytes(4097, seed: 3))
        s.items["rand100k"] = CramfsItem(
            kind: .file, mode: 0o644, content: pseudoRandomBytes(100 * 1024, seed: 4))
        let text = (1...20000).map { "line \($0) of some compressible text\n" }.joined()
        s.items["dir/text"] = CramfsItem(kind: .file, mode: 0o640, uid: 1000, gid: 100, content: Array(text.utf8))
        s.items["dir/sub/deeper/x"] = CramfsItem(kind: .file, mode: 0o644, content: Array("hi\n".utf8))
        s.items["dir/link"] = CramfsItem(kind: .symlink, mode: 0o777, target: "../one")
        s.items["dir/abs"] = CramfsItem(kind: .symlink, mode: 0o777, target: "/usr/share/some/where/else")
        s.items["chr"] = CramfsItem(kind: .charDevice, mode: 0o666, major: 5, minor: 1)
        s.items["blk"] = CramfsItem(kind: .blockDevice, mode: 0o660, gid: 6, major: 8, minor: 3)
        s.items["fifo"] = CramfsItem(kind: .fifo, mode: 0o644)
        for name in ["Zeta", "alpha", "Alpha", "_x", "a b", "ü.txt", "a", "aa", "a.b", "B", "~tilde", "0"] {
            s.items["b/" + name] = CramfsItem(kind: .file, mode: 0o644, content: Array("name \(name)\n".utf8))
        }
        s.items["b/" + String(repeating: "n", count: 252)] = CramfsItem(
            kind: .file, mode: 0o644, content: Array("longest name\n".utf8))
        s.items["b/h1"] = CramfsItem(kind: .file, mode: 0o644, content: Array("hard linked\n".utf8))
        s.hardLinks["dir/h2"] = "b/h1"
        return s
    }
}

// MARK: - Building and writing with the C API

/// Supplies file content to the writer by cookie.
final class ContentSource {
    var contents: [UInt64: [UInt8]] = [:]
    var failWith: Int32 = 0
    var reads = 0
    /// When set, the content of this cookie changes after this many reads (for INPUT_CHANGED).
    var mutateCookie: UInt64? = nil
    var mutateAfterReads = 0
    /// When > 0, the call with this number (1-based, counted in `calls`) fails with 55.
    var failAtCall = 0
    var calls = 0
    /// When set, every call appends cookie, offset, len.
    var log: [UInt64]? = nil
    /// The thread that called ccramfs_write; calls from any other thread are counted.
    var callerThread: pthread_t? = nil
    var callsFromOtherThreads = 0
}

let contentReader: ccramfs_read_fn = { ctx, cookie, offset, buf, len in
    let src = Unmanaged<ContentSource>.fromOpaque(ctx!).takeUnretainedValue()
    if let t = src.callerThread, pthread_equal(t, pthread_self()) == 0 { src.callsFromOtherThreads += 1 }
    src.calls += 1
    if src.log != nil { src.log!.append(contentsOf: [cookie, offset, UInt64(len)]) }
    if src.failAtCall > 0 && src.calls == src.failAtCall { return 55 }
    if src.failWith != 0 { return src.failWith }
    src.reads += 1
    if let m = src.mutateCookie, src.reads > src.mutateAfterReads, var c = src.contents[m] {
        c[0] ^= 0xFF
        src.contents[m] = c
        src.mutateCookie = nil
    }
    guard let data = src.contents[cookie], offset + UInt64(len) <= UInt64(data.count) else { return 99 }
    data.withUnsafeBytes { raw in
        buf!.copyMemory(from: raw.baseAddress!.advanced(by: Int(offset)), byteCount: len)
    }
    return 0
}

/// Collects the image in memory from positional writes; records the call offsets.
final class ImageSink {
    var bytes: [UInt8] = []
    /// Offset and length of every successful call, in call order.
    var offsets: [UInt64] = []
    var lengths: [Int] = []
    var calls: [(offset: UInt64, length: Int)] { zip(offsets, lengths).map { ($0, $1) } }
    var failAfterCalls: Int? = nil
    /// The thread that called ccramfs_write; calls from any other thread are counted.
    var callerThread: pthread_t? = nil
    var callsFromOtherThreads = 0
}

let imageWriter: ccramfs_output_fn = { ctx, offset, buf, len in
    let sink = Unmanaged<ImageSink>.fromOpaque(ctx!).takeUnretainedValue()
    if let t = sink.callerThread, pthread_equal(t, pthread_self()) == 0 { sink.callsFromOtherThreads += 1 }
    if let limit = sink.failAfterCalls, sink.offsets.count >= limit { return 7 }
    sink.offsets.append(offset)
    sink.lengths.append(len)
    let end = Int(offset) + len
    if sink.bytes.count < end {  // zero-fill the gap (memset: this runs unoptimised in tests)
        let grow = end - sink.bytes.count
        sink.bytes.append(contentsOf: [UInt8](unsafeUninitializedCapacity: grow) { b, n in
            memset(b.baseAddress!, 0, grow)
            n = grow
        })
    }
    sink.bytes.withUnsafeMutableBytes { raw in
        raw.baseAddress!.advanced(by: Int(offset)).copyMemory(from: buf!, byteCount: len)
    }
    return 0
}

struct CramfsFailure: Error, CustomStringConvertible {
    var status: ccramfs_status
    var message: String
    var description: String { "\(String(cString: ccramfs_status_name(status))): \(message)" }
}

/// A C tree built from a spec, with the content source keyed by the cookies it assigned.
final class BuiltTree {
    let tree: OpaquePointer
    let source = ContentSource()
    var indexOf: [String: UInt32] = ["": CCRAMFS_ROOT]

    init(_ spec: CramfsSpec) throws {
        tree = ccramfs_tree_new()!
        try check(ccramfs_tree_set_root(tree, spec.root.mode, spec.root.uid, spec.root.gid))
        // Parents first: sort paths by depth, keep the dictionary order otherwise arbitrary.
        let paths = spec.items.keys.sorted { a, b in
            let da = a.split(separator: "/").count, db = b.split(separator: "/").count
            return da != db ? da < db : a > b  // reverse name order so the writer must sort
        }
        var cookie: UInt64 = 1000
        for path in paths {
            let item = spec.items[path]!
            var e = ccramfs_entry()
            e.mode = item.typeBits | item.mode
            e.uid = item.uid
            e.gid = item.gid
            e.dev_major = item.major
            e.dev_minor = item.minor
            if item.kind == .file {
                e.size = UInt64(item.content.count)
                e.data_cookie = cookie
                source.contents[cookie] = item.content
                cookie += 1
            }
            try add(path, &e, target: item.kind == .symlink ? item.target : nil)
        }
        for (link, target) in spec.hardLinks.sorted(by: { $0.key < $1.key }) {
            let (parent, name) = try split(link)
            var idx: UInt32 = 0
            try check(ccramfs_tree_add_hardlink(tree, parent, name, name.utf8.count, indexOf[target]!, &idx))
            indexOf[link] = idx
        }
    }

    deinit { ccramfs_tree_free(tree) }

    func split(_ path: String) throws -> (UInt32, String) {
        let comps = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        let parentPath = comps.dropLast().joined(separator: "/")
        guard let parent = indexOf[parentPath] else {
            throw CramfsFailure(status: CCRAMFS_ERR_NOT_FOUND, message: "no parent for \(path)")
        }
        return (parent, comps.last!)
    }

    /// Adds one entry (symlink targets taken from `target`).
    func add(_ path: String, _ e: inout ccramfs_entry, target: String? = nil) throws {
        let (parent, name) = try split(path)
        var idx: UInt32 = 0
        var status = CCRAMFS_OK
        if cc_isSymlink(e.mode) {
            let t = target ?? ""
            status = t.withCString { tp in
                e.link_target = tp
                e.link_target_len = t.utf8.count
                return ccramfs_tree_add(tree, parent, name, name.utf8.count, &e, &idx)
            }
            e.link_target = nil
        } else {
            status = ccramfs_tree_add(tree, parent, name, name.utf8.count, &e, &idx)
        }
        try check(status)
        indexOf[path] = idx
    }

    func check(_ status: ccramfs_status) throws {
        if status != CCRAMFS_OK {
            throw CramfsFailure(status: status, message: String(cString: ccramfs_tree_error(tree)))
        }
    }

    /// Writes the image into memory.
    func write(
        flags: UInt32 = 0, level: Int32 = 0, name: String? = nil, threads: UInt32 = 0,
        sink: ImageSink = ImageSink()
    ) throws -> (image: [UInt8], result: ccramfs_write_result) {
        var opts = ccramfs_write_options()
        opts.flags = flags
        opts.compression_level = level
        opts.threads = threads
        source.callerThread = pthread_self()
        sink.callerThread = pthread_self()
        var result = ccramfs_write_result()
        var err = [CChar](repeating: 0, count: 1024)
        let src = Unmanaged.passUnretained(source).toOpaque()
        let out = Unmanaged.passUnretained(sink).toOpaque()
        let status: ccramfs_status
        if let name {
            status = name.withCString { np in
                opts.volume_name = np
                opts.volume_name_len = name.utf8.count
                return ccramfs_write(tree, &opts, contentReader, src, imageWriter, out, &result, &err, err.count)
            }
        } else {
            status = ccramfs_write(tree, &opts, contentReader, src, imageWriter, out, &result, &err, err.count)
        }
        if status != CCRAMFS_OK {
            throw CramfsFailure(status: status, message: cstr(err))
        }
        return (sink.bytes, result)
    }
}

func cc_isSymlink(_ mode: UInt32) -> Bool { mode & CCRAMFS_S_IFMT == CCRAMFS_S_IFLNK }

extension CramfsSpec {
    func build() throws -> BuiltTree { try BuiltTree(self) }
}

// MARK: - Reading back

/// Opens `image` in memory and runs `body` with the reader (closed afterwards).
func withReader<T>(
    _ image: [UInt8], flags: UInt32 = 0, _ body: (OpaquePointer) throws -> T
) throws -> T {
    try image.withUnsafeBytes { raw in
        var reader: OpaquePointer? = nil
        var err = [CChar](repeating: 0, count: 512)
        let st = ccramfs_open_memory(raw.baseAddress, raw.count, flags, &reader, &err, err.count)
        guard st == CCRAMFS_OK, let reader else { throw CramfsFailure(status: st, message: cstr(err)) }
        defer { ccramfs_close(reader) }
        return try body(reader)
    }
}

/// Reads a whole image with our reader (strict walk, data verified) into path -> item.
func readWithOurReader(_ image: [UInt8], viaCallback: Bool = false) throws -> [String: CramfsItem] {
    if !viaCallback { return try withReader(image) { try readAll($0) } }
    let dir = try TempDir()
    try Data(image).write(to: URL(fileURLWithPath: dir.file("img")))
    var fd = open(dir.file("img"), O_RDONLY)
    defer { close(fd) }
    var reader: OpaquePointer? = nil
    var err = [CChar](repeating: 0, count: 512)
    let st = ccramfs_open_callback(UInt64(image.count), ccramfs_pread_from_fd, &fd, 0, &reader, &err, err.count)
    guard st == CCRAMFS_OK, let reader else { throw CramfsFailure(status: st, message: cstr(err)) }
    defer { ccramfs_close(reader) }
    return try readAll(reader)
}

func readAll(_ reader: OpaquePointer) throws -> [String: CramfsItem] {
    final class Box {
        var reader: OpaquePointer? = nil
        var items: [String: CramfsItem] = [:]
        var error: String? = nil
    }
    let box = Box()
    box.reader = reader
    let walkStatus = ccramfs_walk(
        reader, CCRAMFS_WALK_VERIFY_DATA | CCRAMFS_WALK_STRICT,
        { ctx, path, _, node in
            let box = Unmanaged<Box>.fromOpaque(ctx!).takeUnretainedValue()
            let n = node!.pointee
            var p = String(cString: path!)
            p = p == "/" ? "" : String(p.dropFirst())
            var item = CramfsItem(kind: .directory, mode: n.mode & 0o7777, uid: n.uid, gid: n.gid)
            switch n.mode & CCRAMFS_S_IFMT {
            case CCRAMFS_S_IFDIR: item.kind = .directory
            case CCRAMFS_S_IFREG:
                item.kind = .file
                var buf = [UInt8](repeating: 0, count: Int(n.size))
                var got = 0
                var node = n
                let st = buf.withUnsafeMutableBytes { raw in
                    ccramfs_read(box.reader, &node, 0, raw.baseAddress, raw.count, &got)
                }
                if st != CCRAMFS_OK || got != Int(n.size) {
                    box.error = "read \(p): \(String(cString: ccramfs_reader_error(box.reader)))"
                    return 1
                }
                item.content = buf
            case CCRAMFS_S_IFLNK:
                item.kind = .symlink
                var buf = [CChar](repeating: 0, count: 4097)
                var node = n
                var got = 0
                if ccramfs_readlink(box.reader, &node, &buf, buf.count, &got) != CCRAMFS_OK {
                    box.error = "readlink \(p): \(String(cString: ccramfs_reader_error(box.reader)))"
                    return 1
                }
                item.target = cstr(buf)
            case CCRAMFS_S_IFCHR:
                item.kind = .charDevice
                item.major = n.dev_major
                item.minor = n.dev_minor
            case CCRAMFS_S_IFBLK:
                item.kind = .blockDevice
                item.major = n.dev_major
                item.minor = n.dev_minor
            case CCRAMFS_S_IFIFO: item.kind = .fifo
            default:
                box.error = "unexpected mode \(n.mode) at \(p)"
                return 1
            }
            box.items[p] = item
            return 0
        }, Unmanaged.passUnretained(box).toOpaque())
    if walkStatus != CCRAMFS_OK {
        throw CramfsFailure(
            status: walkStatus, message: box.error ?? String(cString: ccramfs_reader_error(reader)))
    }
    return box.items
}

/// Reads a directory tree on disk (as extracted by fsck.cramfs) into path -> item.
func readDirectoryTree(_ root: String) throws -> [String: CramfsItem] {
    var items: [String: CramfsItem] = [:]
    func visit(_ rel: String) throws {
        let full = rel.isEmpty ? root : root + "/" + rel
        var st = stat()
        guard lstat(full, &st) == 0 else {
            throw CramfsFailure(status: CCRAMFS_ERR_IO, message: "lstat \(full) failed")
        }
        let mode = UInt32(st.st_mode)
        var item = CramfsItem(kind: .directory, mode: mode & 0o7777, uid: UInt32(st.st_uid), gid: UInt32(st.st_gid))
        switch mode & CCRAMFS_S_IFMT {
        case CCRAMFS_S_IFDIR:
            item.kind = .directory
            for name in try FileManager.default.contentsOfDirectory(atPath: full) {
                try visit(rel.isEmpty ? name : rel + "/" + name)
            }
        case CCRAMFS_S_IFREG:
            item.kind = .file
            item.content = Array(try Data(contentsOf: URL(fileURLWithPath: full)))
        case CCRAMFS_S_IFLNK:
            item.kind = .symlink
            item.target = try FileManager.default.destinationOfSymbolicLink(atPath: full)
        case CCRAMFS_S_IFCHR, CCRAMFS_S_IFBLK:
            item.kind = mode & CCRAMFS_S_IFMT == CCRAMFS_S_IFCHR ? .charDevice : .blockDevice
            item.major = UInt32(devMajor(UInt64(st.st_rdev)))
            item.minor = UInt32(devMinor(UInt64(st.st_rdev)))
        case CCRAMFS_S_IFIFO: item.kind = .fifo
        default: throw CramfsFailure(status: CCRAMFS_ERR_BAD_TYPE, message: "odd file \(full)")
        }
        items[rel] = item
    }
    try visit("")
    return items
}

/// `fsck.cramfs -v --extract` accepts `image`, and, as root (mkfs.cramfs keeps owners only then),
/// mkfs.cramfs of `spec` staged on disk gives exactly `mkfsBytes`: mkfs.cramfs shares equal content
/// the way `CCRAMFS_WRITE_DEDUPLICATE` does, so `mkfsBytes` is our deduplicated image of `spec`.
func expectFsckAccepts(_ image: [UInt8], andMkfsCramfsGives mkfsBytes: [UInt8], for spec: CramfsSpec) throws {
    let dir = try TempDir()
    try Data(image).write(to: URL(fileURLWithPath: dir.file("img")))
    let check = try run(fsckCramfs, ["-v", "--extract", dir.file("img")])
    #expect(check.status == 0, "\(check.output)")
    guard isRoot else { return }
    try stageTree(spec, at: dir.file("stage"))
    let mk = try run(mkfsCramfs, [dir.file("stage"), dir.file("mkfs.img")])
    #expect(mk.status == 0, "\(mk.output)")
    let theirs = Array(try Data(contentsOf: URL(fileURLWithPath: dir.file("mkfs.img"))))
    #expect(sameBytes(theirs, mkfsBytes), "mkfs.cramfs shares identical files the same way")
}

/// Creates the spec's tree on disk (for mkfs.cramfs). Needs root for devices and ownership.
func stageTree(_ spec: CramfsSpec, at root: String) throws {
    let fm = FileManager.default
    try fm.createDirectory(atPath: root, withIntermediateDirectories: true)
    func apply(_ path: String, _ item: CramfsItem) throws {
        guard lchown(path, item.uid, item.gid) == 0 else {
            throw CramfsFailure(status: CCRAMFS_ERR_IO, message: "lchown \(path): errno \(errno)")
        }
        if item.kind != .symlink { guard chmod(path, mode_t(item.mode)) == 0 else {
            throw CramfsFailure(status: CCRAMFS_ERR_IO, message: "chmod \(path)")
        } }
    }
    let paths = spec.items.keys.sorted { $0.split(separator: "/").count < $1.split(separator: "/").count }
    for p in paths {
        let item = spec.items[p]!
        let full = root + "/" + p
        switch item.kind {
        case .directory: guard mkdir(full, 0o700) == 0 else {
            throw CramfsFailure(status: CCRAMFS_ERR_IO, message: "mkdir \(full)")
        }
        case .file: try Data(item.content).write(to: URL(fileURLWithPath: full))
        case .symlink: guard symlink(item.target, full) == 0 else {
            throw CramfsFailure(status: CCRAMFS_ERR_IO, message: "symlink \(full)")
        }
        case .charDevice, .blockDevice:
            let type = item.kind == .charDevice ? S_IFCHR : S_IFBLK
            guard mknod(full, type | 0o600, dev_t(makeDev(item.major, item.minor))) == 0 else {
                throw CramfsFailure(status: CCRAMFS_ERR_IO, message: "mknod \(full): errno \(errno)")
            }
        case .fifo: guard mkfifo(full, 0o600) == 0 else {
            throw CramfsFailure(status: CCRAMFS_ERR_IO, message: "mkfifo \(full)")
        }
        }
    }
    for (link, target) in spec.hardLinks {
        guard Glibc.link(root + "/" + target, root + "/" + link) == 0 else {
            throw CramfsFailure(status: CCRAMFS_ERR_IO, message: "link \(link)")
        }
    }
    // Ownership and modes last (deepest first so directories stay writable while filling).
    for p in paths.reversed() { try apply(root + "/" + p, spec.items[p]!) }
    try apply(root, spec.root)
}

/// Compares two path -> item maps, recording one issue per difference.
func expectSameTree(
    _ actual: [String: CramfsItem], _ expected: [String: CramfsItem], _ what: String,
    ignoreRootMode: Bool = false, sourceLocation: SourceLocation = #_sourceLocation
) {
    for path in Set(actual.keys).union(expected.keys).sorted() {
        var a = actual[path]
        var e = expected[path]
        if path.isEmpty && ignoreRootMode { a?.mode = 0; e?.mode = 0 }
        if a != e {
            Issue.record(
                "\(what): /\(path): got \(a.map(\.description) ?? "nothing"), expected \(e.map(\.description) ?? "nothing")",
                sourceLocation: sourceLocation)
        }
    }
}

// MARK: - Processes and files

@discardableResult
func run(_ executable: String, _ args: [String]) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    let outURL = FileManager.default.temporaryDirectory.appendingPathComponent("cramfs-out-\(UUID().uuidString)")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: outURL) }
    let h = try FileHandle(forWritingTo: outURL)
    p.standardOutput = h
    p.standardError = h
    try p.run()
    p.waitUntilExit()
    try h.close()
    let out = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
    return (p.terminationStatus, out)
}

/// A temporary directory removed at deinit.
final class TempDir {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("ccramfs-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
}

let fsckCramfs = "/usr/sbin/fsck.cramfs"
let mkfsCramfs = "/usr/sbin/mkfs.cramfs"
let isRoot = getuid() == 0
let venvPython: String = {
    let cache = ProcessInfo.processInfo.environment["BOOTMEDIUM_CACHE"]
        ?? (NSHomeDirectory() + "/.cache/bootmedium")
    return cache + "/venv/bin/python3"
}()

// MARK: - Image surgery for hostile inputs

let crcTable: [UInt32] = (0..<256).map { i in
    var c = UInt32(i)
    for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    return c
}

/// CRC-32 (zlib's), independent of the C code under test.
func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
    crcTable.withUnsafeBufferPointer { table in
        bytes.withUnsafeBufferPointer { buf in
            var crc: UInt32 = 0xFFFF_FFFF
            for b in buf { crc = table[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
            return crc ^ 0xFFFF_FFFF
        }
    }
}

extension Array where Element == UInt8 {
    func u32(at o: Int) -> UInt32 {
        UInt32(self[o]) | UInt32(self[o + 1]) << 8 | UInt32(self[o + 2]) << 16 | UInt32(self[o + 3]) << 24
    }
    mutating func setU32(_ v: UInt32, at o: Int) {
        for k in 0..<4 { self[o + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(k))) }
    }
    /// Recomputes fsid.crc (superblock at 0) so structural damage gets past the CRC check.
    mutating func fixCRC() {
        setU32(0, at: 32)
        let size = Int(u32(at: 4))
        setU32(crc32(self[0..<Swift.min(size, count)]), at: 32)
    }
}

/// One inode looked up with our reader (handle = byte offset of its 12-byte inode).
func lookupNode(_ image: [UInt8], _ path: String) throws -> ccramfs_node {
    try withReader(image) { reader in
        var node = ccramfs_node()
        let st = ccramfs_lookup(reader, path, path.utf8.count, &node)
        guard st == CCRAMFS_OK else {
            throw CramfsFailure(status: st, message: String(cString: ccramfs_reader_error(reader)))
        }
        return node
    }
}

/// Opens (CRC ignored unless asked) and walks with data verification; returns the first failure.
func hostileStatus(_ image: [UInt8], flags: UInt32 = CCRAMFS_OPEN_IGNORE_CRC, strict: Bool = true) -> ccramfs_status {
    image.withUnsafeBytes { raw -> ccramfs_status in
        var reader: OpaquePointer? = nil
        var err = [CChar](repeating: 0, count: 512)
        let st = ccramfs_open_memory(raw.baseAddress, raw.count, flags, &reader, &err, err.count)
        guard st == CCRAMFS_OK, let reader else { return st }
        defer { ccramfs_close(reader) }
        let walk = CCRAMFS_WALK_VERIFY_DATA | (strict ? CCRAMFS_WALK_STRICT : 0)
        return ccramfs_walk(reader, walk, nil, nil)
    }
}
