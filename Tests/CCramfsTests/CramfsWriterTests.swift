import CCramfs
import Foundation
import Testing

/// Writer behaviour: determinism, output modes, data sharing, limits and callback failures.
@Suite("CCramfs writer")
struct CramfsWriterTests {
    @Test func twoWritesAreIdentical() throws {
        let spec = CramfsSpec.standard()
        let a = try spec.build().write().image
        let built = try spec.build()
        let b = try built.write().image
        let c = try built.write().image  // the same tree written twice
        #expect(a == b)
        #expect(b == c)
        #expect(crc32(a[0..<a.count]) == crc32(b[0..<b.count]))
    }

    @Test func defaultOutputCoversEveryByteOnceWithMetadataLast() throws {
        let sink = ImageSink()
        let (image, result) = try CramfsSpec.standard().build().write(sink: sink)
        let sorted = sink.calls.sorted { $0.offset < $1.offset }
        var next: UInt64 = 0
        for c in sorted {
            #expect(c.offset == next, "gap or overlap at \(c.offset)")
            next = c.offset + UInt64(c.length)
        }
        #expect(next == UInt64(image.count))
        #expect(sink.calls.last?.offset == 0)
        #expect(sink.calls.last?.length == Int(result.metadata_size))
    }

    @Test func sequentialOutputIsContiguousAndIdentical() throws {
        let built = try CramfsSpec.standard().build()
        let plain = try built.write().image
        let sink = ImageSink()
        let (seq, _) = try built.write(flags: CCRAMFS_WRITE_SEQUENTIAL, sink: sink)
        #expect(seq == plain)
        var next: UInt64 = 0
        for c in sink.calls {
            #expect(c.offset == next, "non-sequential write at \(c.offset), expected \(next)")
            next = c.offset + UInt64(c.length)
        }
        #expect(next == UInt64(plain.count))
    }

    @Test func contentChangingBetweenSequentialPassesIsDetected() throws {
        let built = try CramfsSpec.standard().build()
        _ = try built.write()
        let readsPerPass = built.source.reads
        built.source.reads = 0
        // Change one file right after the measuring pass.
        built.source.mutateCookie = built.source.contents.keys.sorted().first { built.source.contents[$0]!.count > 5000 }
        built.source.mutateAfterReads = readsPerPass
        #expect { try built.write(flags: CCRAMFS_WRITE_SEQUENTIAL) } throws: {
            ($0 as? CramfsFailure)?.status == CCRAMFS_ERR_INPUT_CHANGED
        }
        do {
            _ = try built.write(flags: CCRAMFS_WRITE_SEQUENTIAL)
        } catch let e as CramfsFailure {
            Issue.record("second write should succeed (content stable again): \(e)")
        }
    }

    @Test func volumeNameEditionAndLevel() throws {
        let built = try CramfsSpec.standard().build()
        let (image, _) = try built.write(level: 9, name: "bootcd-5.4")
        try withReader(image) { reader in
            var info = ccramfs_info()
            ccramfs_get_info(reader, &info)
            let name = withUnsafeBytes(of: info.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            #expect(name == "bootcd-5.4")
        }
        expectSameTree(try readWithOurReader(image), CramfsSpec.standard().expected, "level 9 image")
        #expect(throws: CramfsFailure.self) { try built.write(name: "seventeen-bytes!!") }
        #expect(throws: CramfsFailure.self) { try built.write(level: 10) }
        let (full16, _) = try built.write(name: "exactly16bytes!!")
        #expect(Array(full16[48..<64]) == Array("exactly16bytes!!".utf8))
    }

    @Test func hardLinksShareOneDataRegion() throws {
        let spec = CramfsSpec.standard()
        let (image, result) = try spec.build().write()
        #expect(result.shared == 1)
        let h1 = try lookupNode(image, "b/h1")
        let h2 = try lookupNode(image, "dir/h2")
        #expect(h1.offset != 0 && h1.offset == h2.offset)
        #expect(h1.size == h2.size)
        // The same cookie with a different mode gets its own copy (the kernel derives the
        // inode number from the data offset, so sharing would merge the attributes).
        var s2 = spec
        s2.items["b/h1"] = nil
        s2.hardLinks = [:]
        let built = try s2.build()
        for (name, mode) in [("p1", UInt32(0o644)), ("p2", 0o644), ("p3", 0o600)] {
            var e = ccramfs_entry()
            e.mode = CCRAMFS_S_IFREG | mode
            e.size = 6
            e.data_cookie = 77
            try built.add("b/" + name, &e)
        }
        built.source.contents[77] = Array("same!\n".utf8)
        let (img2, r2) = try built.write()
        #expect(r2.shared == 1)
        let p1 = try lookupNode(img2, "b/p1"), p2 = try lookupNode(img2, "b/p2"), p3 = try lookupNode(img2, "b/p3")
        #expect(p1.offset == p2.offset)
        #expect(p3.offset != p1.offset)
        // A cookie reused with another size is a caller bug.
        var e = ccramfs_entry()
        e.mode = CCRAMFS_S_IFREG | 0o644
        e.size = 5
        e.data_cookie = 77
        try built.add("b/p4", &e)
        #expect { try built.write() } throws: { ($0 as? CramfsFailure)?.status == CCRAMFS_ERR_INCONSISTENT }
    }

    /// A tree with duplicate content: mkfs.cramfs always shares it; CCRAMFS_WRITE_DEDUPLICATE too.
    static func duplicatesSpec() -> CramfsSpec {
        var s = CramfsSpec.standard()
        s.items["dir/copy-of-rand"] = s.items["rand100k"]
        var t = s.items["dir/text"]!
        t.mode = 0o640
        s.items["b/copy-of-text"] = t  // same owner and mode as dir/text
        s.items["dir/sub/copy-of-x"] = s.items["dir/sub/deeper/x"]
        return s
    }

    @Test func deduplicateSharesEqualContent() throws {
        let spec = Self.duplicatesSpec()
        let built = try spec.build()
        let (plain, r1) = try built.write()
        let (dedup, r2) = try built.write(flags: CCRAMFS_WRITE_DEDUPLICATE)
        let (dedupSeq, _) = try built.write(flags: CCRAMFS_WRITE_DEDUPLICATE | CCRAMFS_WRITE_SEQUENTIAL)
        #expect(r1.shared == 1)
        #expect(r2.shared == 4)
        #expect(dedup.count < plain.count)
        #expect(dedupSeq == dedup)
        expectSameTree(try readWithOurReader(dedup), spec.expected, "deduplicated image")
        #expect(try lookupNode(dedup, "rand100k").offset == lookupNode(dedup, "dir/copy-of-rand").offset)
        try expectFsckAccepts(dedup, andMkfsCramfsGives: dedup, for: spec)
    }

    @Test func emptyTree() throws {
        let built = try BuiltTree(CramfsSpec())
        let (image, result) = try built.write()
        #expect(image.count == 4096)
        #expect(result.files == 1)
        #expect(try readWithOurReader(image) == ["": CramfsItem(kind: .directory, mode: 0o755)])
        let dir = try TempDir()
        try Data(image).write(to: URL(fileURLWithPath: dir.file("img")))
        #expect(try run(fsckCramfs, ["-v", "--extract", dir.file("img")]).status == 0)
    }

    // MARK: limits

    struct LimitCase: CustomStringConvertible, Sendable {
        var label: String
        var name: String = "x"
        var mode: UInt32 = CCRAMFS_S_IFREG | 0o644
        var uid: UInt32 = 0
        var gid: UInt32 = 0
        var size: UInt64 = 1
        var major: UInt32 = 0
        var minor: UInt32 = 0
        var target: String? = nil
        var parent: String = ""
        var expected: ccramfs_status
        var description: String { label }
    }

    static let limitCases: [LimitCase] = [
        LimitCase(label: "168 MiB pad file", name: "pad", size: 168 << 20, expected: CCRAMFS_ERR_FILE_TOO_LARGE),
        LimitCase(label: "file of exactly 16 MiB", size: 16 << 20, expected: CCRAMFS_ERR_FILE_TOO_LARGE),
        LimitCase(label: "uid 65536", uid: 65536, expected: CCRAMFS_ERR_UID_RANGE),
        LimitCase(label: "gid 256", gid: 256, expected: CCRAMFS_ERR_GID_RANGE),
        LimitCase(label: "name of 253 bytes", name: String(repeating: "n", count: 253), expected: CCRAMFS_ERR_BAD_NAME),
        LimitCase(label: "name with slash", name: "a/b", expected: CCRAMFS_ERR_BAD_NAME),
        LimitCase(label: "empty name", name: "", expected: CCRAMFS_ERR_BAD_NAME),
        LimitCase(label: "dot", name: ".", expected: CCRAMFS_ERR_BAD_NAME),
        LimitCase(label: "dot dot", name: "..", expected: CCRAMFS_ERR_BAD_NAME),
        LimitCase(label: "device major 256", mode: CCRAMFS_S_IFCHR | 0o600, major: 256, expected: CCRAMFS_ERR_DEVICE_RANGE),
        LimitCase(label: "device minor 256", mode: CCRAMFS_S_IFBLK | 0o600, minor: 256, expected: CCRAMFS_ERR_DEVICE_RANGE),
        LimitCase(label: "symlink target of 4096 bytes", mode: CCRAMFS_S_IFLNK | 0o777, target: String(repeating: "t", count: 4096), expected: CCRAMFS_ERR_SYMLINK_TARGET),
        LimitCase(label: "empty symlink target", mode: CCRAMFS_S_IFLNK | 0o777, target: "", expected: CCRAMFS_ERR_SYMLINK_TARGET),
        LimitCase(label: "no file type", mode: 0o644, expected: CCRAMFS_ERR_BAD_TYPE),
        LimitCase(label: "mode bits beyond 16", mode: CCRAMFS_S_IFREG | 0o644 | 0x10000, expected: CCRAMFS_ERR_BAD_TYPE),
        LimitCase(label: "duplicate name", name: "one", expected: CCRAMFS_ERR_DUPLICATE_NAME),
        LimitCase(label: "parent is a file", parent: "one", expected: CCRAMFS_ERR_NOT_A_DIRECTORY),
    ]

    @Test(arguments: limitCases)
    func limitsAreReportedWhenAdding(_ c: LimitCase) throws {
        let built = try CramfsSpec.standard().build()
        let before = ccramfs_tree_count(built.tree)
        var e = ccramfs_entry()
        e.mode = c.mode
        e.uid = c.uid
        e.gid = c.gid
        e.size = c.size
        e.dev_major = c.major
        e.dev_minor = c.minor
        let parent = built.indexOf[c.parent]!
        let target = c.target ?? ""
        let status = target.withCString { tp in
            if c.target != nil {
                e.link_target = tp
                e.link_target_len = target.utf8.count
            }
            return ccramfs_tree_add(built.tree, parent, c.name, c.name.utf8.count, &e, nil)
        }
        do {
            try built.check(status)
            Issue.record("\(c.label): accepted")
        } catch let f as CramfsFailure {
            #expect(f.status == c.expected, "\(f)")
            #expect(f.message.contains("/"), "message names the path: \(f.message)")
            if c.expected == CCRAMFS_ERR_FILE_TOO_LARGE {
                #expect(f.message.contains("/\(c.name): file is \(c.size) bytes"), "\(f.message)")
                #expect(f.message.contains("16 MiB"))
            }
        }
        #expect(ccramfs_tree_count(built.tree) == before, "a failed add leaves the tree unchanged")
        // The tree still writes.
        _ = try built.write()
    }

    @Test func rootOwnerLimits() throws {
        let t = ccramfs_tree_new()!
        defer { ccramfs_tree_free(t) }
        #expect(ccramfs_tree_set_root(t, 0o700, 65536, 0) == CCRAMFS_ERR_UID_RANGE)
        #expect(ccramfs_tree_set_root(t, 0o700, 0, 256) == CCRAMFS_ERR_GID_RANGE)
        #expect(ccramfs_tree_set_root(t, 0o700, 65535, 255) == CCRAMFS_OK)
        var idx: UInt32 = 0
        #expect(ccramfs_tree_lookup(t, 0, "x", 1, &idx) == CCRAMFS_ERR_NOT_FOUND)
        var e = ccramfs_entry()
        e.mode = CCRAMFS_S_IFDIR | 0o755
        #expect(ccramfs_tree_add(t, 5, "x", 1, &e, &idx) == CCRAMFS_ERR_INVALID_ARGUMENT)
        #expect(ccramfs_tree_add(t, 0, "x", 1, &e, &idx) == CCRAMFS_OK)
        var found: UInt32 = 0
        #expect(ccramfs_tree_lookup(t, 0, "x", 1, &found) == CCRAMFS_OK)
        #expect(found == idx)
        #expect(ccramfs_tree_add_hardlink(t, 0, "y", 1, idx, nil) == CCRAMFS_ERR_BAD_TYPE)  // not a file
    }

    @Test func largestValuesAreAccepted() throws {
        var spec = CramfsSpec()
        spec.root = CramfsItem(kind: .directory, mode: 0o711, uid: 65535, gid: 255)
        spec.items[String(repeating: "L", count: 252)] = CramfsItem(kind: .file, mode: 0o644, uid: 65535, gid: 255, content: Array("max\n".utf8))
        spec.items["dev"] = CramfsItem(kind: .charDevice, mode: 0o600, major: 255, minor: 255)
        spec.items["link"] = CramfsItem(kind: .symlink, mode: 0o777, target: String(repeating: "t/", count: 2047) + "x")
        var big = [UInt8](repeating: 0x41, count: Int(CCRAMFS_MAX_FILE_SIZE))  // 16 MiB - 1
        big[12345] = 0x42
        spec.items["big"] = CramfsItem(kind: .file, mode: 0o644, content: big)
        let (image, result) = try spec.build().write()
        #expect(result.blocks == 4096 + 1 + 1)
        expectSameTree(try readWithOurReader(image), spec.expected, "largest values")
        let dir = try TempDir()
        try Data(image).write(to: URL(fileURLWithPath: dir.file("img")))
        let check = try run(fsckCramfs, ["-v", "--extract", dir.file("img")])
        #expect(check.status == 0, "\(check.output)")
    }

    @Test func dataPastTheOffsetLimitIsAnError() throws {
        // 17 files of 16 MiB - 1 of incompressible data: the 17th would start beyond 256 MiB.
        let built = try BuiltTree(CramfsSpec())
        let random = pseudoRandomBytes(Int(CCRAMFS_MAX_FILE_SIZE), seed: 99)
        for i in 0..<17 {  // distinct cookies, so nothing is shared; g00 ... g16 in name order
            var e = ccramfs_entry()
            e.mode = CCRAMFS_S_IFREG | 0o644
            e.size = UInt64(random.count)
            e.data_cookie = UInt64(5000 + i)
            built.source.contents[UInt64(5000 + i)] = random
            try built.add(String(format: "g%02d", i), &e)
        }
        var opts = ccramfs_write_options()
        opts.compression_level = 1
        var err = [CChar](repeating: 0, count: 512)
        let discard: ccramfs_output_fn = { _, _, _, _ in 0 }
        let st = ccramfs_write(built.tree, &opts, contentReader, Unmanaged.passUnretained(built.source).toOpaque(),
                               discard, nil, nil, &err, err.count)
        #expect(st == CCRAMFS_ERR_IMAGE_TOO_LARGE)
        #expect(cstr(err).contains("/g16: data would start at offset"), "\(cstr(err))")
    }

    // MARK: callbacks

    @Test func callbackFailuresStopTheWrite() throws {
        let built = try CramfsSpec.standard().build()
        built.source.failWith = 5
        #expect { try built.write() } throws: {
            guard let f = $0 as? CramfsFailure else { return false }
            return f.status == CCRAMFS_ERR_READ_CALLBACK && f.message.contains("read callback failed with 5")
        }
        built.source.failWith = 0
        let sink = ImageSink()
        sink.failAfterCalls = 3
        #expect { try built.write(sink: sink) } throws: { ($0 as? CramfsFailure)?.status == CCRAMFS_ERR_OUTPUT_CALLBACK }
        var err = [CChar](repeating: 0, count: 256)
        let out = ImageSink()
        let st = ccramfs_write(built.tree, nil, nil, nil, imageWriter, Unmanaged.passUnretained(out).toOpaque(), nil, &err, err.count)
        #expect(st == CCRAMFS_ERR_INVALID_ARGUMENT)
        #expect(ccramfs_write(nil, nil, nil, nil, imageWriter, nil, nil, &err, err.count) == CCRAMFS_ERR_INVALID_ARGUMENT)
    }

    @Test func writesThroughTheFileDescriptorHelper() throws {
        let spec = CramfsSpec.standard()
        let built = try spec.build()
        let dir = try TempDir()
        var fd = open(dir.file("img"), O_RDWR | O_CREAT | O_TRUNC, 0o644)
        #expect(fd >= 0)
        var err = [CChar](repeating: 0, count: 256)
        var result = ccramfs_write_result()
        let st = ccramfs_write(built.tree, nil, contentReader, Unmanaged.passUnretained(built.source).toOpaque(),
                               ccramfs_output_to_fd, &fd, &result, &err, err.count)
        close(fd)
        #expect(st == CCRAMFS_OK, "\(cstr(err))")
        let image = Array(try Data(contentsOf: URL(fileURLWithPath: dir.file("img"))))
        #expect(image == (try built.write().image))
    }
}
