import Foundation
import Testing

@testable import BootMedium

/// What the libFuzzer targets of `Fuzz/` (issue #9, `tools/fuzz`) found, each kept as a test:
/// the inputs they wrote are in `Tests/BootMediumTests/Fuzz/` (in the targets' input forms),
/// and the hostile shapes found while reading the readers for the fuzz harnesses are built here.
/// Every reader must turn hostile input into `invalid-image` in bounded time and memory.
@Suite struct FuzzRegressionTests {
    /// An input file of `Tests/BootMediumTests/Fuzz/`.
    static func input(_ name: String) throws -> [UInt8] {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fuzz")
        return [UInt8](try Data(contentsOf: dir.appendingPathComponent(name)))
    }

    /// The image of a fuzz input in the sparse form of `Fuzz/Sources/FuzzSupport` ("BMSP", u32le
    /// size, then u32le offset + u16le length + bytes chunks over zeros), written to a file.
    static func sparseImage(_ input: [UInt8], scratch: FATScratch, name: String = "image") throws -> String {
        #expect(input.starts(with: Array("BMSP".utf8)))
        func le32(_ at: Int) -> Int { Int(input[at]) | Int(input[at + 1]) << 8 | Int(input[at + 2]) << 16 | Int(input[at + 3]) << 24 }
        var image = [UInt8](repeating: 0, count: le32(4))
        var at = 8
        while at + 6 <= input.count {
            let offset = le32(at)
            let length = Int(input[at + 4]) | Int(input[at + 5]) << 8
            at += 6
            let end = min(at + length, input.count)
            if offset < image.count {
                let kept = min(end - at, image.count - offset)
                if kept > 0 { image.replaceSubrange(offset..<(offset + kept), with: input[at..<(at + kept)]) }
            }
            at = end
        }
        let path = scratch.file(name)
        try Data(image).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func elapsed(_ body: () -> Void) -> Double {
        let start = Date()
        body()
        return Date().timeIntervalSince(start)
    }

    // MARK: - Overlay archives (FuzzCpioOverlay, FuzzInspect)

    /// FuzzCpioOverlay, oom-0587cb15 (minimised, 145 bytes): a gzip stream whose newc header
    /// declares a name of 0xFFFFFFxx bytes. libarchive allocated that much (572 MB here, 2 GiB
    /// for the corpus's `cpio-absurd-name-size`) before finding the input short; the header is
    /// now refused before libarchive's pass.
    @Test func newcNameSizeIsRefusedBeforeLibarchiveAllocatesIt() throws {
        let input = try Self.input("cpio-newc-name-size-oom.bin")
        #expect(input.first == 0)  // FuzzCpioOverlay form: byte 0 = 0, the archive as is
        #expect(throws: BootMediumError.self) { try Archive.readArchive(Array(input.dropFirst())) }
        do throws(BootMediumError) {
            _ = try Archive.readArchive(Array(input.dropFirst()))
        } catch {
            #expect(error.code == .invalidImage)
            #expect(error.message.contains("a name of"), "\(error)")
        }
    }

    /// FuzzInspect, oom-3b436493 (a seed: Tests/Hostile/make-corpus's `cpio-absurd-name-size`
    /// made from a small bootmedium ISO, sparse form): the same 2 GiB request through inspect.
    @Test func inspectRefusesTheOverlayNameSizeBeforeLibarchiveAllocatesIt() throws {
        let scratch = try FATScratch()
        let path = try Self.sparseImage(try Self.input("inspect-iso-overlay-name-size-oom.bmsp"), scratch: scratch, name: "x.iso")
        do throws(BootMediumError) {
            _ = try ImageInspector.inspect(path: path)
            Issue.record("inspect accepted the overlay")
        } catch {
            #expect(error.code == .invalidImage)
            #expect(error.message.contains("a name of 2147483647 bytes"), "\(error)")
        }
    }

    /// A newc archive whose names and sizes are all well formed still reads as before, with the
    /// header walk stopping at the trailer like libarchive (bytes after it are ignored).
    @Test func wellFormedNewcStillReadsAndTheWalkStopsAtTheTrailer() throws {
        let entries: [CpioEntry] = [
            CpioEntry(path: "usr", mode: 0o755, kind: .directory),
            CpioEntry(path: "usr/boot/plnode.txt", mode: 0o600, kind: .file(Array("NODE_ID=\"1\"\n".utf8))),
            CpioEntry(path: "usr/boot/empty", mode: 0o644, kind: .file([])),
            CpioEntry(path: "usr/boot/link", mode: 0o777, kind: .symlink("plnode.txt")),
            CpioEntry(path: String(repeating: "n", count: 4096), mode: 0o644, kind: .file([1, 2, 3])),
        ]
        let archive = try Archive.gzippedNewc(entries, timestamp: 0).bytes
        let read = try Archive.readArchive(archive)
        #expect(read.map(\.path) == entries.map(\.path))
        #expect(read[1].contents == Array("NODE_ID=\"1\"\n".utf8))
        #expect(read[3].kind == .symlink)
        // A name one byte over the limit is refused.
        let long = try Archive.gzippedNewc([CpioEntry(path: String(repeating: "n", count: 4097), mode: 0o644, kind: .file([]))], timestamp: 0)
        #expect((try? Archive.readArchive(long.bytes)) == nil)
    }

    /// Found reading readArchive for the harness: every file up to 1 MiB was kept, so 250 files
    /// of 1 MiB of zeros (a 250 KB overlay) held 250 MiB. The kept total is now capped; files
    /// past it are still counted (size, kind) without contents.
    @Test func keptContentsAreBoundedInTotal() throws {
        let mib = [UInt8](repeating: 0, count: 1 << 20)
        let entries = (0..<48).map { CpioEntry(path: "f\($0)", mode: 0o644, kind: .file(mib)) }
        let archive = try Archive.gzippedNewc(entries, timestamp: 0).bytes
        #expect(archive.count < 200 << 10)
        let read = try Archive.readArchive(archive)
        #expect(read.count == 48 && read.allSatisfy { $0.size == 1 << 20 })
        let kept = read.reduce(0) { $0 + ($1.contents?.count ?? 0) }
        #expect(kept <= 32 << 20, "\(kept) bytes kept")  // ReadLimits.maximumKeptTotalBytes
        #expect(read.first?.contents == mib)
    }

    // MARK: - Boot configs (FuzzBootConfig)

    /// Found writing the FuzzBootConfig seeds: `\r\n` is one Character in Swift, so a config with
    /// DOS line ends (which SYSLINUX reads line by line) parsed as one line: SERIAL swallowed
    /// the whole file and no label was found.
    @Test func bootConfigWithDOSLineEndsParsesLineByLine() {
        let text = "SERIAL 0 115200\r\nDEFAULT b\r\nLABEL a\r\n  LINUX k1\r\n  INITRD i1,i2\r\nLABEL b\r\n  KERNEL k2\r\n  APPEND x=1 initrd=i3\r\n"
        let config = ParsedBootConfig(path: "/syslinux.cfg", text: text)
        #expect(config.serial == .init(port: 0, baud: 115200))
        #expect(config.defaultLabel == "b")
        #expect(config.labels.map(\.name) == ["a", "b"])
        #expect(config.defaultEntry == .init(name: "b", kernel: "k2", initrds: ["i3"], append: ["x=1"]))
        #expect(config.labels.first?.initrds == ["i1", "i2"])
        // The same with \n only, and a line-separator character inside a line stays in it.
        #expect(ParsedBootConfig(path: "/syslinux.cfg", text: text.replacingOccurrences(of: "\r\n", with: "\n")) == config)
        #expect(ParsedBootConfig(path: "/c", text: "DEFAULT a\u{2028}b\n").defaultLabel == "a\u{2028}b")
    }

    // MARK: - plc_config (FuzzPLCConfig)

    /// FuzzPLCConfig, crash-9e5f90f7 (minimised to 4 bytes, `S=\r\n`): `\r\n` is one Character
    /// in Swift, so plc_config, split into lines at "\n", had no line end in a CRLF file: the whole
    /// file was one line, whose unquoted first value ran on over the next lines (a PLC_NAME that
    /// swallowed PLC_ROOT_PASSWORD would carry it into the image's etc/issue and pl_version), and
    /// a CRLF file starting with a comment read as empty.
    @Test func plcConfigWithDOSLineEndsParsesLineByLine() throws {
        let input = try Self.input("plc-config-crlf-value.txt")
        #expect(input == Array("S=\r\n".utf8))
        #expect(PLCConfiguration(parsing: String(decoding: input, as: UTF8.self)).values == ["S": ""])
        let text = "# generated\r\nPLC_NAME=Demo\r\nPLC_ROOT_PASSWORD=\"secret\"\r\nexport PLC_BOOT_HOST='boot.example.org'\r\n"
        let config = PLCConfiguration(parsing: text)
        #expect(config.values == ["PLC_NAME": "Demo", "PLC_ROOT_PASSWORD": "secret", "PLC_BOOT_HOST": "boot.example.org"])
        #expect(PLCConfiguration(parsing: text.replacingOccurrences(of: "\r\n", with: "\n")) == config)
        // No value holds a line end, whatever the quoting; a lone CR is no line end (as in sh).
        let mixed = PLCConfiguration(parsing: "A=x\r\nB=y\nC=\"z\r\nD='w\r\nE=v\rF=u\n")
        #expect(mixed.values == ["A": "x", "B": "y", "C": "z", "D": "w", "E": "v\rF=u"])
    }

    // MARK: - ISO 9660 (FuzzISO9660)

    /// A minimal ISO: PVD at 16, terminator at 17, a root directory at 20 whose records are
    /// `directories` subdirectories at distinct, consecutive extents, each declared 1 MiB and
    /// all overlapping one area filled with `.` records (parsed, then skipped: never counted).
    static func overlappingDirectoriesISO(directories: Int) -> [UInt8] {
        func both16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        func both32(_ v: Int) -> [UInt8] {
            let le = (0..<4).map { UInt8(v >> (8 * $0) & 0xFF) }
            return le + le.reversed()
        }
        func record(extent: Int, size: Int, name: [UInt8], directory: Bool) -> [UInt8] {
            var r: [UInt8] = [0, 0] + both32(extent) + both32(size) + [UInt8](repeating: 0, count: 7)
            r += [directory ? 2 : 0, 0, 0] + both16(1) + [UInt8(name.count)] + name
            if r.count % 2 == 1 { r.append(0) }
            r[0] = UInt8(r.count)
            return r
        }
        let first = 24
        let sectors = first + directories + 512 + 1
        var image = [UInt8](repeating: 0, count: sectors * 2048)
        var root = record(extent: 20, size: 2048 * 4, name: [0], directory: true) + record(extent: 20, size: 2048 * 4, name: [1], directory: true)
        for i in 0..<directories { root += record(extent: first + i, size: 1 << 20, name: Array("D\(i)".utf8), directory: true) }
        precondition(root.count <= 2048 * 4)
        image.replaceSubrange(20 * 2048..<(20 * 2048 + root.count), with: root)
        var pvd = [UInt8](repeating: 0, count: 2048)
        pvd.replaceSubrange(0..<7, with: [1] + Array("CD001".utf8) + [1])
        pvd.replaceSubrange(80..<88, with: both32(sectors))
        pvd.replaceSubrange(128..<132, with: both16(2048))
        pvd.replaceSubrange(156..<190, with: record(extent: 20, size: 2048 * 4, name: [0], directory: true))
        image.replaceSubrange(16 * 2048..<17 * 2048, with: pvd)
        image.replaceSubrange(17 * 2048..<(17 * 2048 + 7), with: [255] + Array("CD001".utf8) + [1])
        let dot = record(extent: 0, size: 0, name: [0], directory: false)
        var sector = [UInt8]()
        while sector.count + dot.count <= 2048 { sector += dot }
        sector += [UInt8](repeating: 0, count: 2048 - sector.count)
        for s in first..<sectors { image.replaceSubrange(s * 2048..<(s + 1) * 2048, with: sector) }
        return image
    }

    /// Found reading ISO9660Reader for the harness: directories may overlap and `.`/`..` records
    /// are parsed but never counted, so N directories of 1 MiB of `.` records cost N MiB of
    /// parsing with no entry-count limit reached (3000 of them in an 8 MB image: 36 s). The
    /// directory bytes one walk reads (Rock Ridge continuations included) are now capped.
    @Test func overlappingDirectoriesCannotMakeTheWalkQuadratic() throws {
        let scratch = try FATScratch()
        let path = scratch.file("dirs.iso")
        try Data(Self.overlappingDirectoriesISO(directories: 64)).write(to: URL(fileURLWithPath: path))
        let iso = try ISO9660Reader(ImageBytes(path: path))
        var thrown: BootMediumError?
        let seconds = Self.elapsed {
            do throws(BootMediumError) { _ = try iso.walk() } catch { thrown = error }
        }
        #expect(seconds < 2)
        #expect(thrown?.code == .invalidImage && thrown?.message.contains("MiB of directories") == true, "\(String(describing: thrown))")
        // A few such directories stay within the budget and read as an empty tree.
        let small = scratch.file("few.iso")
        try Data(Self.overlappingDirectoriesISO(directories: 8)).write(to: URL(fileURLWithPath: small))
        #expect(try ISO9660Reader(ImageBytes(path: small)).walk().count == 8)
    }

    // MARK: - FAT (FuzzFAT)

    /// A FAT16 superfloppy (512-byte clusters) whose root holds `directories` directory entries
    /// starting at consecutive clusters of one long chain: directory k's chain is the chain's
    /// tail from cluster k, so every directory is distinct (no loop) and under 4 MiB, and the
    /// clusters read add up to directories²/2.
    static func chainedDirectoriesFAT(directories: Int) -> [UInt8] {
        let rootEntries = (directories + 16 + 15) / 16 * 16
        let clusters = 32768
        let fatSectors = (clusters + 2) * 2 / 512 + 1
        let rootSectors = rootEntries * 32 / 512
        let total = 1 + fatSectors + rootSectors + clusters
        var image = [UInt8](repeating: 0, count: total * 512)
        var boot = FATBootSector(type: .fat16)
        boot.sectorsPerCluster = 1
        boot.reservedSectors = 1
        boot.fatCount = 1
        boot.rootEntryCount = UInt16(rootEntries)
        boot.totalSectors16 = 0
        boot.totalSectors32 = UInt32(total)
        boot.sectorsPerFAT16 = UInt16(fatSectors)
        image.replaceSubrange(0..<512, with: boot.encode())
        var fat = FileAllocationTable(type: .fat16, clusterCount: clusters)
        let first = 100
        fat.allocateChain(first: first, count: directories)
        image.replaceSubrange(512..<(512 + fatSectors * 512), with: fat.encode(sectors: fatSectors))
        let rootAt = (1 + fatSectors) * 512
        for i in 0..<directories {
            let entry = DirectoryEntry(
                name: Array(String(format: "D%07d   ", i).utf8), attributes: 0x10, timestamp: FATTimestamp(unixSeconds: 0),
                firstCluster: UInt32(first + i), fileSize: 0)
            image.replaceSubrange((rootAt + 32 * i)..<(rootAt + 32 * i + 32), with: entry.encode())
        }
        return image
    }

    /// Found reading FATReader for the harness: 2000 such directories took 5 s, 4000 took 20 s
    /// (quadratic; up to ~8192 fit under the 4 MiB directory limit). The directory bytes one
    /// walk reads are now capped, and a directory's chain is followed only as far as that limit.
    @Test func chainedDirectoriesCannotMakeTheWalkQuadratic() throws {
        let scratch = try FATScratch()
        let path = scratch.file("chain.img")
        try Data(Self.chainedDirectoriesFAT(directories: 1200)).write(to: URL(fileURLWithPath: path))
        let fat = try FATReader(ImageBytes(path: path))
        var thrown: BootMediumError?
        let seconds = Self.elapsed {
            do throws(BootMediumError) { _ = try fat.walk() } catch { thrown = error }
        }
        #expect(seconds < 2)
        #expect(thrown?.code == .invalidImage && thrown?.message.contains("MiB of directories") == true, "\(String(describing: thrown))")
        // A few such directories stay within the budget.
        let small = scratch.file("few.img")
        try Data(Self.chainedDirectoriesFAT(directories: 16)).write(to: URL(fileURLWithPath: small))
        #expect(try FATReader(ImageBytes(path: small)).walk().count == 16)
    }
}
