import CCramfs
import Foundation
import Testing

/// Our writer's image checked by fsck.cramfs, by a PyPI reader and by our reader, and compared
/// with mkfs.cramfs's image of the same tree staged on disk.
@Suite("CCramfs round trip")
struct CramfsRoundTripTests {
    @Test func versionAndStatusNames() {
        #expect(ccramfs_version() == 2)
        #expect(ccramfs_version() == CCRAMFS_API_VERSION)
        #expect(String(cString: ccramfs_status_name(CCRAMFS_ERR_FILE_TOO_LARGE)) == "CCRAMFS_ERR_FILE_TOO_LARGE")
        #expect(String(cString: ccramfs_status_name(CCRAMFS_OK)) == "CCRAMFS_OK")
    }

    @Test func fsckCramfsAcceptsOurImage() throws {
        let spec = CramfsSpec.standard()
        let (image, result) = try spec.build().write()
        #expect(image.count == Int(result.image_size))
        #expect(image.count % 4096 == 0)
        #expect(result.files == UInt32(spec.expected.count))
        #expect(result.shared == 1)  // the hard link
        let dir = try TempDir()
        try Data(image).write(to: URL(fileURLWithPath: dir.file("img")))
        // Superblock and CRC.
        let check = try run(fsckCramfs, ["-v", dir.file("img")])
        #expect(check.status == 0, "\(check.output)")
        // Every inode walked and every block decompressed (no extraction directory).
        let full = try run(fsckCramfs, ["-v", "--extract", dir.file("img")])
        #expect(full.status == 0, "\(full.output)")
        #expect(full.output.contains("/dir/sub/deeper/x"))
        #expect(!full.output.contains("warning"), "\(full.output)")
    }

    @Test(.enabled(if: isRoot, "fsck.cramfs creates device nodes and owners only as root"))
    func fsckCramfsExtractsTheIntendedTree() throws {
        let spec = CramfsSpec.standard()
        let (image, _) = try spec.build().write()
        let dir = try TempDir()
        try Data(image).write(to: URL(fileURLWithPath: dir.file("img")))
        let x = try run(fsckCramfs, ["--extract=" + dir.file("x"), dir.file("img")])
        #expect(x.status == 0, "\(x.output)")
        expectSameTree(try readDirectoryTree(dir.file("x")), spec.expected, "fsck.cramfs --extract")
    }

    @Test(.enabled(if: isRoot, "staging device nodes and owners needs root"))
    func mkfsCramfsOfTheStagedTreeExtractsEqualAndIsByteIdentical() throws {
        let spec = CramfsSpec.standard()
        let (ours, _) = try spec.build().write()
        let dir = try TempDir()
        try stageTree(spec, at: dir.file("stage"))
        // The staging itself is faithful.
        expectSameTree(try readDirectoryTree(dir.file("stage")), spec.expected, "staged tree")
        let mk = try run(mkfsCramfs, [dir.file("stage"), dir.file("mkfs.img")])
        #expect(mk.status == 0, "\(mk.output)")
        let x = try run(fsckCramfs, ["--extract=" + dir.file("x"), dir.file("mkfs.img")])
        #expect(x.status == 0, "\(x.output)")
        expectSameTree(try readDirectoryTree(dir.file("x")), spec.expected, "fsck.cramfs --extract of mkfs.cramfs's image")
        let theirs = Array(try Data(contentsOf: URL(fileURLWithPath: dir.file("mkfs.img"))))
        // Same layout, same zlib, same padding and CRC: the images are identical.
        #expect(theirs.count == ours.count)
        #expect(theirs == ours, "first difference at \((0..<min(theirs.count, ours.count)).first { theirs[$0] != ours[$0] } ?? -1)")
        expectSameTree(try readWithOurReader(theirs), spec.expected, "our reader on mkfs.cramfs's image")
    }

    @Test func ourReaderReadsOurImage() throws {
        let spec = CramfsSpec.standard()
        let (image, result) = try spec.build().write()
        expectSameTree(try readWithOurReader(image), spec.expected, "our reader (memory)")
        expectSameTree(try readWithOurReader(image, viaCallback: true), spec.expected, "our reader (callback)")
        try withReader(image) { reader in
            var info = ccramfs_info()
            #expect(ccramfs_get_info(reader, &info) == CCRAMFS_OK)
            #expect(info.crc_ok == 1)
            #expect(info.crc_stored == result.crc)
            #expect(info.fsid_version_2 == 1)
            #expect(info.signature_ok == 1)
            #expect(info.size == result.image_size)
            #expect(info.files == result.files)
            #expect(info.blocks == result.blocks)
            #expect(info.flags == 3)  // FSID_VERSION_2 | SORTED_DIRS
            let name = withUnsafeBytes(of: info.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            #expect(name == "Compressed")
        }
    }

    @Test func readerRandomAccessMatchesContent() throws {
        let spec = CramfsSpec.standard()
        let (image, _) = try spec.build().write()
        let content = spec.items["rand100k"]!.content
        try withReader(image) { reader in
            var node = ccramfs_node()
            #expect(ccramfs_lookup(reader, "/rand100k", 9, &node) == CCRAMFS_OK)
            // Reads straddling block boundaries, at the end, and past the end.
            for (offset, length) in [(0, 10), (4090, 20), (8191, 4098), (99_990, 100), (100_000, 5), (12_345, 50_000)] {
                var buf = [UInt8](repeating: 0, count: length)
                var got = 0
                let st = buf.withUnsafeMutableBytes { ccramfs_read(reader, &node, UInt64(offset), $0.baseAddress, length, &got) }
                #expect(st == CCRAMFS_OK)
                let want = Array(content[min(offset, content.count)..<min(offset + length, content.count)])
                #expect(Array(buf.prefix(got)) == want, "offset \(offset) length \(length)")
            }
            // Directory iteration is in sorted byte order.
            var dirNode = ccramfs_node()
            #expect(ccramfs_lookup(reader, "b", 1, &dirNode) == CCRAMFS_OK)
            var names: [String] = []
            var cursor: UInt32 = 0
            var entry = ccramfs_node()
            while ccramfs_readdir(reader, &dirNode, &cursor, &entry) == CCRAMFS_OK {
                names.append(withUnsafeBytes(of: entry.name) { String(decoding: $0.prefix(Int(entry.name_len)), as: UTF8.self) })
            }
            #expect(names == names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) })
            #expect(names.first == "0" && names.contains("ü.txt") && names.last == "ü.txt")
            // Errors of the random-access API.
            #expect(ccramfs_lookup(reader, "/nope", 5, &entry) == CCRAMFS_ERR_NOT_FOUND)
            #expect(ccramfs_lookup(reader, "/one/x", 6, &entry) == CCRAMFS_ERR_NOT_FOUND)
            #expect(ccramfs_lookup(reader, "/b/../one", 9, &entry) == CCRAMFS_ERR_INVALID_ARGUMENT)
            var c2: UInt32 = 0
            #expect(ccramfs_readdir(reader, &node, &c2, &entry) == CCRAMFS_ERR_WRONG_TYPE)
            var lbuf = [CChar](repeating: 0, count: 10)
            #expect(ccramfs_readlink(reader, &node, &lbuf, lbuf.count, nil) == CCRAMFS_ERR_WRONG_TYPE)
            #expect(ccramfs_read(reader, &dirNode, 0, &lbuf, 4, nil) == CCRAMFS_ERR_WRONG_TYPE)
            var link = ccramfs_node()
            #expect(ccramfs_lookup(reader, "dir/abs", 7, &link) == CCRAMFS_OK)
            #expect(ccramfs_readlink(reader, &link, &lbuf, lbuf.count, nil) == CCRAMFS_ERR_INVALID_ARGUMENT)  // too small
            var root = ccramfs_node()
            #expect(ccramfs_lookup(reader, "/", 1, &root) == CCRAMFS_OK)
            #expect(root.handle == 64)
        }
    }

    @Test func pythonPycramfsReadsOurImage() throws {
        guard FileManager.default.isExecutableFile(atPath: venvPython) else {
            Issue.record("no venv at \(venvPython): run tools/setup")
            return
        }
        let spec = CramfsSpec.standard()
        let (image, _) = try spec.build().write()
        let dir = try TempDir()
        try Data(image).write(to: URL(fileURLWithPath: dir.file("img")))
        let script = """
            import json, sys, stat
            from pycramfs import Cramfs
            out = {}
            with Cramfs.from_file(sys.argv[1]) as fs:
                assert fs.calculate_crc() == fs.super.fsid.crc, "crc"
                out["_files"] = len(fs)
                for f in fs:
                    e = {"mode": f.mode, "uid": f.uid, "gid": f.gid, "size": f.size}
                    if f.is_file: e["hex"] = f.read_bytes().hex()
                    if f.is_symlink: e["target"] = str(f.readlink())
                    out[str(f.path)] = e
            json.dump(out, sys.stdout)
            """
        let r = try run(venvPython, ["-c", script, dir.file("img")])
        #expect(r.status == 0, "pycramfs (is it installed? tools/setup): \(r.output)")
        guard r.status == 0,
            let json = try JSONSerialization.jsonObject(with: Data(r.output.utf8)) as? [String: Any]
        else { return }
        #expect(json["_files"] as? Int == spec.expected.count)
        var items: [String: CramfsItem] = [:]
        for (path, value) in json where path != "_files" {
            let e = value as! [String: Any]
            let mode = UInt32(e["mode"] as! Int)
            var item = CramfsItem(kind: .directory, mode: mode & 0o7777, uid: UInt32(e["uid"] as! Int), gid: UInt32(e["gid"] as! Int))
            let size = UInt32(e["size"] as! Int)
            switch mode & CCRAMFS_S_IFMT {
            case CCRAMFS_S_IFREG:
                item.kind = .file
                let hex = Array((e["hex"] as! String).utf8)
                item.content = stride(from: 0, to: hex.count, by: 2).map { UInt8(String(decoding: hex[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
            case CCRAMFS_S_IFLNK:
                item.kind = .symlink
                item.target = e["target"] as! String
            case CCRAMFS_S_IFCHR, CCRAMFS_S_IFBLK:
                item.kind = mode & CCRAMFS_S_IFMT == CCRAMFS_S_IFCHR ? .charDevice : .blockDevice
                item.major = size >> 8
                item.minor = size & 0xFF
            case CCRAMFS_S_IFIFO: item.kind = .fifo
            default: break
            }
            items[path == "/" ? "" : String(path.dropFirst())] = item
        }
        expectSameTree(items, spec.expected, "pycramfs")
    }

    @Test(.enabled(if: isRoot, "staging needs root"))
    func mkfsCramfsPaddedImageIsReadable() throws {
        // mkfs.cramfs -p leaves 512 bytes for boot code before the superblock.
        let spec = CramfsSpec.standard()
        let dir = try TempDir()
        try stageTree(spec, at: dir.file("stage"))
        let mk = try run(mkfsCramfs, ["-p", "-n", "padded", dir.file("stage"), dir.file("p.img")])
        #expect(mk.status == 0, "\(mk.output)")
        let image = Array(try Data(contentsOf: URL(fileURLWithPath: dir.file("p.img"))))
        expectSameTree(try readWithOurReader(image), spec.expected, "our reader on mkfs.cramfs -p")
        try withReader(image) { reader in
            var info = ccramfs_info()
            ccramfs_get_info(reader, &info)
            #expect(info.start == 512)
            #expect(info.crc_ok == 1)
        }
    }
}
