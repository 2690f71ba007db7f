// The C cramfs reader (Sources/CCramfs) on hostile images, as the inspector will use it: open
// (superblock, root; the CRC is ignored so that mutations get past it), a strict verifying walk,
// then a plain walk, reading every file and symlink and listing every directory on the way.
// Input: a raw cramfs image (superblock at 0 or 512).
import CCramfs
import FuzzSupport
#if canImport(Glibc)
import Glibc
#endif

final class Visit {
    let reader: OpaquePointer
    var nodes = 0
    var buffer = [UInt8](repeating: 0, count: 4096)
    init(_ reader: OpaquePointer) { self.reader = reader }
}

/// A status must be one of the header's codes and come with a NUL-terminated message.
func check(_ status: ccramfs_status, _ reader: OpaquePointer?, _ what: StaticString) {
    guard status.rawValue <= CCRAMFS_ERR_IO.rawValue else { fatalError("\(what): unknown status \(status.rawValue)") }
    _ = String(cString: ccramfs_status_name(status))
    if let reader { _ = String(cString: ccramfs_reader_error(reader)) }
}

let visitNode: ccramfs_walk_fn = { context, path, pathLength, node in
    let visit = Unmanaged<Visit>.fromOpaque(context!).takeUnretainedValue()
    guard let path, let node else { fatalError("walk callback without path or node") }
    guard strlen(path) == pathLength else { fatalError("path length \(pathLength) != strlen \(strlen(path))") }
    visit.nodes += 1
    if visit.nodes > 4096 { return 1 }  // bounded work per input; the walk then says ABORTED
    let reader = visit.reader
    var found = ccramfs_node()
    check(ccramfs_lookup(reader, path, pathLength, &found), reader, "lookup")
    switch node.pointee.mode & CCRAMFS_S_IFMT {
    case CCRAMFS_S_IFREG:
        var offset: UInt64 = 0
        while true {
            var got = 0
            let status = visit.buffer.withUnsafeMutableBytes { ccramfs_read(reader, node, offset, $0.baseAddress, $0.count, &got) }
            check(status, reader, "read")
            guard status == CCRAMFS_OK, got > 0 else { break }
            guard got <= visit.buffer.count else { fatalError("read returned \(got) bytes into \(visit.buffer.count)") }
            offset += UInt64(got)
            guard offset <= UInt64(node.pointee.size) else { fatalError("read past the file's size") }
        }
    case CCRAMFS_S_IFLNK:
        var target = [CChar](repeating: 0, count: Int(node.pointee.size) + 1)
        var length = 0
        let status = ccramfs_readlink(reader, node, &target, target.count, &length)
        check(status, reader, "readlink")
        if status == CCRAMFS_OK, length >= target.count || target[length] != 0 { fatalError("readlink: bad length \(length)") }
    case CCRAMFS_S_IFDIR:
        var cursor: UInt32 = 0
        var child = ccramfs_node()
        for _ in 0..<1024 {
            let status = ccramfs_readdir(reader, node, &cursor, &child)
            check(status, reader, "readdir")
            guard status == CCRAMFS_OK else { break }
            let nameLength = withUnsafeBytes(of: child.name) { $0.firstIndex(of: 0) ?? -1 }
            guard child.name_len <= CCRAMFS_MAX_NAME_LEN, nameLength == Int(child.name_len) else {
                fatalError("readdir: name length \(child.name_len)")
            }
        }
    default: break
    }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCramfs(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    // The reader keeps a pointer to the image: an exact-size copy so ASan sees any overread.
    let image = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 1), alignment: 1)
    defer { image.deallocate() }
    if let data, size > 0 { image.copyMemory(from: UnsafeRawBufferPointer(start: data, count: size)) }
    var reader: OpaquePointer?
    var message = [CChar](repeating: 0x41, count: 256)
    let opened = ccramfs_open_memory(image.baseAddress, size, CCRAMFS_OPEN_IGNORE_CRC, &reader, &message, message.count)
    check(opened, nil, "open")
    guard message.contains(0) else { fatalError("open: message not NUL-terminated") }
    guard opened == CCRAMFS_OK, let reader else { return 0 }
    defer { ccramfs_close(reader) }
    var info = ccramfs_info()
    check(ccramfs_get_info(reader, &info), reader, "info")
    var root = ccramfs_node()
    check(ccramfs_root(reader, &root), reader, "root")
    let visit = Visit(reader)
    let context = Unmanaged.passUnretained(visit).toOpaque()
    check(ccramfs_walk(reader, CCRAMFS_WALK_VERIFY_DATA | CCRAMFS_WALK_STRICT, visitNode, context), reader, "strict walk")
    visit.nodes = 0
    check(ccramfs_walk(reader, 0, visitNode, context), reader, "walk")
    return 0
}
