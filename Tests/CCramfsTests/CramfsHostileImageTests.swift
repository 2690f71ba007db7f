import CCramfs
import Foundation
import Testing

/// The reader on damaged and malicious images: every case must end in an error code, quickly.
@Suite("CCramfs reader on hostile images", .tags(.slow)) struct CramfsHostileImageTests {
    static let good: [UInt8] = try! CramfsSpec.standard().build().write().image

    /// Runs `body` and fails if it takes longer than `limit` seconds.
    func timed<T>(_ what: String, limit: Double = 5, _ body: () throws -> T) rethrows -> T {
        let start = Date()
        let r = try body()
        let elapsed = Date().timeIntervalSince(start)
        #expect(elapsed < limit, "\(what) took \(elapsed) s")
        return r
    }

    @Test func theUndamagedImageIsAccepted() {
        #expect(hostileStatus(Self.good, flags: 0) == CCRAMFS_OK)
    }

    @Test func truncatedAtManyOffsets() {
        let img = Self.good
        var cuts = Array(0..<1100)  // every offset through the superblock and directories
        cuts += Array(stride(from: 1100, to: img.count, by: 97))
        cuts.append(img.count - 1)
        var statuses: [String: Int] = [:]
        timed("truncations") {
            for cut in cuts {
                let st = hostileStatus(Array(img[0..<cut]))
                #expect(st != CCRAMFS_OK, "truncated to \(cut) bytes accepted")
                statuses[String(cString: ccramfs_status_name(st)), default: 0] += 1
            }
        }
        #expect(statuses["CCRAMFS_ERR_TRUNCATED", default: 0] > 1000, "\(statuses)")
        #expect(hostileStatus([]) == CCRAMFS_ERR_TRUNCATED)
    }

    @Test func badMagicWrongEndiannessAndFlags() {
        var img = Self.good
        img.setU32(0x1234_5678, at: 0)
        #expect(hostileStatus(img) == CCRAMFS_ERR_BAD_MAGIC)
        img.setU32(0x453d_cd28, at: 0)
        #expect(hostileStatus(img) == CCRAMFS_ERR_WRONG_ENDIANNESS)
        img = Self.good
        img.setU32(3 | 0x800, at: 8)  // extended block pointers: not supported
        img.fixCRC()
        #expect(hostileStatus(img) == CCRAMFS_ERR_UNSUPPORTED)
        img = Self.good
        img.setU32(0, at: 44)  // zero file count
        img.fixCRC()
        #expect(hostileStatus(img) == CCRAMFS_ERR_CORRUPT)
        img = Self.good
        img.setU32(0xFFFF_FFFF, at: 4)  // huge declared size
        #expect(hostileStatus(img) == CCRAMFS_ERR_TRUNCATED)
        img = Self.good
        img.setU32(10, at: 4)  // size smaller than the superblock
        #expect(hostileStatus(img) == CCRAMFS_ERR_CORRUPT)
        img = Self.good
        img[64] = 0x00  // root mode: type bits gone
        img[65] = 0x80
        img.fixCRC()
        #expect(hostileStatus(img) == CCRAMFS_ERR_CORRUPT)
        img = Self.good
        img.setU32(img.u32(at: 72) &+ (1 << 6), at: 72)  // root offset 80
        img.fixCRC()
        #expect(hostileStatus(img) == CCRAMFS_ERR_CORRUPT)
    }

    @Test func badCRC() throws {
        var img = Self.good
        let rand = try lookupNode(img, "rand100k")
        img[Int(rand.offset) + 500] ^= 0x01
        #expect(hostileStatus(img, flags: 0) == CCRAMFS_ERR_BAD_CRC)
        try withReader(img, flags: CCRAMFS_OPEN_IGNORE_CRC) { reader in
            var info = ccramfs_info()
            ccramfs_get_info(reader, &info)
            #expect(info.crc_ok == 0)
            #expect(info.crc_stored != info.crc_computed)
            // The damage is then found when the data is decompressed.
            #expect(ccramfs_walk(reader, CCRAMFS_WALK_VERIFY_DATA, nil, nil) == CCRAMFS_ERR_DECOMPRESS)
            #expect(ccramfs_walk(reader, 0, nil, nil) == CCRAMFS_OK)  // metadata is intact
        }
        img[Int(rand.offset) + 500] ^= 0x01
        img[100] ^= 0x40
        #expect(hostileStatus(img, flags: 0) == CCRAMFS_ERR_BAD_CRC)
    }

    /// Rewrites the offset field of the inode at `path`.
    func withOffset(_ path: String, _ offset: UInt32, size: UInt32? = nil) throws -> [UInt8] {
        var img = Self.good
        let node = try lookupNode(img, path)
        let at = Int(node.handle)
        let w2 = img.u32(at: at + 8)
        img.setU32((w2 & 0x3F) | ((offset >> 2) << 6), at: at + 8)
        if let size {
            let w1 = img.u32(at: at + 4)
            img.setU32((w1 & 0xFF00_0000) | (size & 0xFF_FFFF), at: at + 4)
        }
        img.fixCRC()
        return img
    }

    @Test func offsetsPointingPastTheEnd() throws {
        let far: UInt32 = 0x0FFF_FFFC
        #expect(hostileStatus(try withOffset("rand100k", far)) == CCRAMFS_ERR_CORRUPT)
        #expect(hostileStatus(try withOffset("dir", far)) == CCRAMFS_ERR_CORRUPT)
        #expect(hostileStatus(try withOffset("dir/link", far)) == CCRAMFS_ERR_CORRUPT)
        #expect(hostileStatus(try withOffset("one", UInt32(Self.good.count) - 4)) != CCRAMFS_OK)
        // Into the superblock.
        #expect(hostileStatus(try withOffset("dir", 0)) == CCRAMFS_ERR_CORRUPT)
        #expect(hostileStatus(try withOffset("dir", 8)) == CCRAMFS_ERR_CORRUPT)
        #expect(hostileStatus(try withOffset("f4097", 40)) == CCRAMFS_ERR_CORRUPT)
        // Data offset on a device is only rejected by the strict walk (the kernel ignores it).
        let dev = try withOffset("chr", 512)
        #expect(hostileStatus(dev, strict: true) == CCRAMFS_ERR_CORRUPT)
        #expect(hostileStatus(dev, strict: false) == CCRAMFS_OK)
    }

    @Test func directoryLoops() throws {
        // dir/sub's entries pointed at the root's entries (which contain dir): a cycle.
        let sub = try lookupNode(Self.good, "dir/sub")
        let loop = try withOffset("dir/sub", 76, size: sub.size)
        #expect(timed("loop") { hostileStatus(loop) } == CCRAMFS_ERR_LOOP)
        #expect(hostileStatus(loop, strict: false) == CCRAMFS_ERR_LOOP)
        // The helper itself changes nothing when given the current values.
        let dir = try lookupNode(Self.good, "dir")
        #expect(hostileStatus(try withOffset("dir", dir.offset, size: dir.size)) == CCRAMFS_OK)
        // dir/sub containing dir's entries, i.e. itself.
        let dirEntryBlock = try lookupNode(Self.good, "dir/abs").handle  // first entry of dir
        let intoItself = try withOffset("dir/sub", UInt32(dirEntryBlock), size: dir.size)
        #expect(hostileStatus(intoItself) == CCRAMFS_ERR_LOOP)
        // Two directories sharing entries (overlap without a cycle).
        let shared = try withOffset("empty", dir.offset, size: dir.size)
        #expect(hostileStatus(shared) == CCRAMFS_ERR_LOOP)
        // Directory entries overlapping file data (only seen when data is verified).
        let text = try lookupNode(Self.good, "dir/text")
        let intoData = try withOffset("empty", text.offset, size: 24)
        #expect(hostileStatus(intoData) != CCRAMFS_OK)
    }

    @Test func hugeDeclaredSizes() throws {
        // A one-byte file claiming 16 MiB: its block table runs over other data or off the end.
        let one = try lookupNode(Self.good, "one")
        let img = try withOffset("one", one.offset, size: 0xFF_FFFF)
        #expect(timed("huge file") { hostileStatus(img) } != CCRAMFS_OK)
        // A directory claiming 16 MiB of entries.
        let dir = try lookupNode(Self.good, "dir")
        #expect(hostileStatus(try withOffset("dir", dir.offset, size: 0xFF_FFFF)) == CCRAMFS_ERR_CORRUPT)
        // A symlink claiming more than a block.
        let link = try lookupNode(Self.good, "dir/link")
        #expect(hostileStatus(try withOffset("dir/link", link.offset, size: 5000)) == CCRAMFS_ERR_CORRUPT)
        // A file declared shorter than its data: the last block decompresses to too much.
        let rand = try lookupNode(Self.good, "rand100k")
        #expect(hostileStatus(try withOffset("rand100k", rand.offset, size: 99_000)) == CCRAMFS_ERR_DECOMPRESS)
        // ... or longer.
        #expect(hostileStatus(try withOffset("rand100k", rand.offset, size: 100_001)) != CCRAMFS_OK)
    }

    @Test func hostileNamesAndModes() throws {
        // A name containing '/' (path traversal for an extractor).
        var img = Self.good
        let one = try lookupNode(img, "one")
        img[Int(one.handle) + 12] = UInt8(ascii: "/")
        img.fixCRC()
        #expect(hostileStatus(img) == CCRAMFS_ERR_CORRUPT)
        // ".." as a name.
        img = Self.good
        let aa = try lookupNode(img, "b/aa")
        img[Int(aa.handle) + 12] = UInt8(ascii: ".")
        img[Int(aa.handle) + 13] = UInt8(ascii: ".")
        img.fixCRC()
        #expect(hostileStatus(img) == CCRAMFS_ERR_CORRUPT)
        // Name length zero.
        img = Self.good
        img[Int(one.handle) + 8] &= 0xC0
        img.fixCRC()
        #expect(hostileStatus(img) == CCRAMFS_ERR_CORRUPT)
        // Unknown file type.
        img = Self.good
        img[Int(one.handle) + 1] = 0xF1  // mode 0170xxx
        img.fixCRC()
        #expect(hostileStatus(img) == CCRAMFS_ERR_CORRUPT)
        // Unsorted names: only the strict walk cares.
        img = Self.good
        let alpha = try lookupNode(img, "b/alpha")
        img[Int(alpha.handle) + 12] = UInt8(ascii: "z")
        img.fixCRC()
        #expect(hostileStatus(img, strict: true) == CCRAMFS_ERR_CORRUPT)
        #expect(hostileStatus(img, strict: false) == CCRAMFS_OK)
    }

    @Test func nestingAndPathLengthAreCapped() throws {
        // 300 nested directories: a valid image, but deeper than the reader walks.
        var deep = CramfsSpec()
        var path = ""
        for _ in 0..<300 {
            path += path.isEmpty ? "d" : "/d"
            deep.items[path] = CramfsItem(kind: .directory, mode: 0o755)
        }
        deep.items[path + "/leaf"] = CramfsItem(kind: .file, mode: 0o644, content: [1])
        let deepImage = try deep.build().write().image
        #expect(hostileStatus(deepImage) == CCRAMFS_ERR_TOO_DEEP)
        #expect(try lookupNode(deepImage, path + "/leaf").size == 1)  // lookups still work
        // 20 levels of 252-byte names: paths longer than 4096 bytes.
        var long = CramfsSpec()
        path = ""
        let n = String(repeating: "n", count: 252)
        for _ in 0..<20 {
            path += path.isEmpty ? n : "/" + n
            long.items[path] = CramfsItem(kind: .directory, mode: 0o755)
        }
        long.items[path + "/f"] = CramfsItem(kind: .file, mode: 0o644, content: [2])
        #expect(hostileStatus(try long.build().write().image) == CCRAMFS_ERR_TOO_DEEP)
    }

    @Test func walkCallbackCanStop() throws {
        try withReader(Self.good) { reader in
            var count = 0
            let st = withUnsafeMutablePointer(to: &count) { p in
                ccramfs_walk(reader, 0, { ctx, _, _, _ in
                    let c = ctx!.assumingMemoryBound(to: Int.self)
                    c.pointee += 1
                    return c.pointee == 5 ? 1 : 0
                }, p)
            }
            #expect(st == CCRAMFS_ERR_ABORTED)
            #expect(count == 5)
        }
    }

    @Test func randomBytes() {
        var statuses: [String: Int] = [:]
        timed("random images", limit: 10) {
            for i in 0..<600 {
                var img = pseudoRandomBytes(76 + (i * 7919) % 30000, seed: UInt64(i) + 1000)
                if i % 2 == 1 {  // a plausible superblock in front of garbage
                    img.setU32(0x28cd_3d45, at: 0)
                    img.setU32(UInt32(img.count), at: 4)
                    img.setU32(3, at: 8)
                    img.setU32(0o40755 | (img.u32(at: 64) & 0xFFFF_0000), at: 64)
                    img.setU32((76 >> 2) << 6, at: 72)
                    if i % 4 == 3 { img.fixCRC() }
                }
                let st = hostileStatus(img)
                statuses[String(cString: ccramfs_status_name(st)), default: 0] += 1
            }
        }
        #expect(statuses["CCRAMFS_OK", default: 0] < 10, "\(statuses)")
    }

    @Test func everyMetadataByteFlipped() throws {
        let meta = Int(try lookupNode(Self.good, "dir/abs").handle) + 64  // well into the entries
        var statuses: [String: Int] = [:]
        timed("byte flips", limit: 20) {
            for pos in 0..<meta {
                for pattern: UInt8 in [0xFF, 0x01, 0x80] {
                    var img = Self.good
                    img[pos] ^= pattern
                    if pos < 32 || pos >= 36 { img.fixCRC() }
                    let st = hostileStatus(img)
                    statuses[String(cString: ccramfs_status_name(st)), default: 0] += 1
                }
            }
        }
        #expect(statuses.count > 3, "\(statuses)")
    }
}

extension Tag {
    /// Takes minutes (thousands of damaged images): outside `tools/test --fast`.
    @Tag static var slow: Self
}
