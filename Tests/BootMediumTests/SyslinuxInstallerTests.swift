import Foundation
import Testing

@testable import BootMedium

@Suite struct SyslinuxInstallerTests {
    @Test func payloadIsTheDocumentedBuild() throws {
        let payload = try TestSyslinux.payload()
        #expect(payload.bootSectorTemplate.count == 512)
        #expect(payload.ldlinuxSys.count == 58368)
        #expect(payload.ldlinuxC32.count == 119532)
        #expect(payload.installedSysSize == 59392)
        let area = payload.patchArea
        // The values docs/syslinux-install.md measured for this build, found here by scanning.
        #expect(area.offset == 0x18)
        #expect(area.epaOffset == 0x1446)
        #expect(area.advPointers == 0x16D8)
        #expect(area.directoryField == 0x145C && area.directoryLength == 256)
        #expect(area.extentTable == 0x1EE && area.extentSlots == 192)
        #expect(area.bootSectorPointerLow == 0x11A && area.bootSectorPointerHigh == 0x120)
        #expect(area.bootSectorRAID == 0x1CA)
    }

    @Test func rejectsMismatchedOrBrokenPayloads() throws {
        let payload = try TestSyslinux.payload()
        #expect(throws: BootMediumError.self) {
            try SyslinuxPayload(bootSectorTemplate: [UInt8](repeating: 0, count: 512), ldlinuxSys: payload.ldlinuxSys, ldlinuxC32: payload.ldlinuxC32)
        }
        var otherBuild = payload.ldlinuxSys
        otherBuild[0x1C] ^= 0xFF  // build instance
        #expect(throws: BootMediumError.self) {
            try SyslinuxPayload(bootSectorTemplate: payload.bootSectorTemplate, ldlinuxSys: otherBuild, ldlinuxC32: payload.ldlinuxC32)
        }
        #expect(throws: BootMediumError.self) {
            try SyslinuxPayload(
                bootSectorTemplate: payload.bootSectorTemplate, ldlinuxSys: [UInt8](repeating: 0, count: 4096),
                ldlinuxC32: payload.ldlinuxC32)
        }
        #expect(throws: BootMediumError.self) {
            try SyslinuxPayload(bootSectorTemplate: payload.bootSectorTemplate, ldlinuxSys: payload.ldlinuxSys, ldlinuxC32: [1, 2, 3])
        }
    }

    @Test func blankADVChecksums() {
        let adv = SyslinuxInstaller.blankADV()
        #expect(adv.le32(at: 0) == 0x5A2D_2FA5 && adv.le32(at: 508) == 0xDD28_BF64)
        var sum: UInt32 = 0
        for i in stride(from: 4, to: 508, by: 4) { sum &+= adv.le32(at: i) }
        #expect(sum == 0xA304_1767)
        #expect(adv.le32(at: 4) == 0xA304_1767)
    }

    @Test func extentsSplitAtGapsAnd127Sectors() {
        let contiguous = SyslinuxInstaller.extents(of: ArraySlice((100..<400).map { UInt64($0) }))
        #expect(contiguous.map { $0.lba } == [100, 227, 354])
        #expect(contiguous.map { $0.count } == [127, 127, 46])
        let gaps = SyslinuxInstaller.extents(of: [5, 6, 7, 20, 21, 9])
        #expect(gaps.map { $0.lba } == [5, 20, 9])
        #expect(gaps.map { $0.count } == [3, 2, 1])
    }

    /// mkfs.fat + the real `syslinux --install`, then our installer on the same layout (the
    /// sectors the real one chose, found with our decoders): ldlinux.sys (as mcopy reads it)
    /// and the boot sector must be byte-identical.
    @Test(arguments: [
        ("fat16-64M", ["-C", "-i", "1234ABCD", "-n", "PLTEST"], 65536, ""),
        ("fat32-100M", ["-C", "-F", "32", "-i", "0BADF00D"], 102_400, ""),
        ("fat32-300M-4K", ["-C", "-F", "32", "-s", "8", "-i", "0BADF00D"], 307_200, ""),
        ("fat16-fragmented", ["-C", "-i", "12345678"], 16384, "fragment"),
    ])
    func matchesTheRealInstaller(name: String, mkfs: [String], kib: Int, mode: String) throws {
        let scratch = try FATScratch()
        let image = scratch.file("\(name).img")
        let made = try fatTool("/usr/sbin/mkfs.fat", mkfs + [image, String(kib)])
        #expect(made.status == 0, "\(made.text)")
        if mode == "fragment" {
            // Leave holes of one cluster so that ldlinux.sys is scattered.
            var names: [String] = []
            for i in 0..<40 {
                let file = scratch.file("f\(i)")
                try Data(fatTestBytes(1500, seed: UInt64(i))).write(to: URL(fileURLWithPath: file))
                #expect(try fatTool("/usr/bin/mcopy", ["-i", image, file, "::/f\(i)"]).status == 0)
                names.append("::/f\(i)")
            }
            let odd = names.enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
            #expect(try fatTool("/usr/bin/mdel", ["-i", image] + odd).status == 0)
        }
        let before = try readBytes(image, count: 512)
        let installed = try fatTool("/usr/bin/syslinux", ["--install", image])
        #expect(installed.status == 0, "\(installed.text)")

        let reader = try TestFATReader(image: image)
        let entry = try reader.rootEntry("ldlinux.sys")
        let payload = try TestSyslinux.payload()
        #expect(Int(entry.fileSize) == payload.installedSysSize)
        #expect(entry.attributes == SyslinuxInstaller.fileAttributes)
        #expect(entry.caseFlags == SyslinuxInstaller.caseFlags)
        let sectors = Array(try reader.sectors(ofChain: Int(entry.firstCluster)).prefix(payload.installedSysSize / 512))
        if mode == "fragment" {
            #expect(SyslinuxInstaller.extents(of: ArraySlice(sectors.map { UInt64($0) })).count > 1)
        }
        let ours = try SyslinuxInstaller(payload: payload).install(sectors: sectors.map { UInt64($0) }, bootSector: before)

        let copied = scratch.file("ldlinux.sys.out")
        #expect(try fatTool("/usr/bin/mcopy", ["-n", "-i", image, "::/ldlinux.sys", copied]).status == 0)
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: copied))) == ours.ldlinuxSys)
        #expect(try readBytes(image, count: 512) == ours.bootSector)
        // ldlinux.c32 is copied unchanged.
        let c32 = scratch.file("ldlinux.c32.out")
        #expect(try fatTool("/usr/bin/mcopy", ["-n", "-i", image, "::/ldlinux.c32", c32]).status == 0)
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: c32))) == payload.ldlinuxC32)
    }

    /// The same at a partition offset: `syslinux --offset` on a volume made with
    /// `mkfs.fat --offset=32 -h 32` keeps every stored LBA relative to the volume.
    @Test func matchesTheRealInstallerAtAnOffset() throws {
        let scratch = try FATScratch()
        let image = scratch.file("part.img")
        #expect(try fatTool("/usr/bin/truncate", ["-s", "40M", image]).status == 0)
        let made = try fatTool("/usr/sbin/mkfs.fat", ["--offset=32", "-h", "32", "-i", "AABBCCDD", image, String(40 * 1024 - 16)])
        #expect(made.status == 0, "\(made.text)")
        let before = try readBytes(image, offset: 32 * 512, count: 512)
        let installed = try fatTool("/usr/bin/syslinux", ["--offset", String(32 * 512), "--install", image])
        #expect(installed.status == 0, "\(installed.text)")
        let reader = try TestFATReader(image: image, volumeOffset: 32 * 512)
        #expect(reader.boot.hiddenSectors == 32)
        let payload = try TestSyslinux.payload()
        let entry = try reader.rootEntry("ldlinux.sys")
        let sectors = Array(try reader.sectors(ofChain: Int(entry.firstCluster)).prefix(payload.installedSysSize / 512))
        let ours = try SyslinuxInstaller(payload: payload).install(sectors: sectors.map { UInt64($0) }, bootSector: before)
        let copied = scratch.file("ldlinux.sys.out")
        #expect(try fatTool("/usr/bin/mcopy", ["-n", "-i", image + "@@16384", "::/ldlinux.sys", copied]).status == 0)
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: copied))) == ours.ldlinuxSys)
        #expect(try readBytes(image, offset: 32 * 512, count: 512) == ours.bootSector)
        #expect(try readBytes(image, count: 512) == [UInt8](repeating: 0, count: 512))  // MBR untouched
    }

    /// End to end: the real `syslinux --install` run over a FAT16 image we wrote changes nothing
    /// but the dates and times of the ldlinux.sys / ldlinux.c32 directory entries (mtools
    /// rewrites both files into the same clusters; boot sector and FAT come out byte for byte).
    /// On FAT32 mtools allocates from the FSInfo next-free hint, so ldlinux.sys moves behind our
    /// files: there our installer, given the sectors it chose, must reproduce its bytes.
    @Test(arguments: [("fat16", false), ("fat16-partitioned", true), ("fat32", false)])
    func realInstallerOverOurImageChangesOnlyTimes(name: String, partitioned: Bool) throws {
        let scratch = try FATScratch()
        var files = [
            FATFileSpec(path: ["kernel"], bytes: fatTestBytes(300_000, seed: 7)),
            FATFileSpec(path: ["pl_version"], bytes: Array("PlanetLab BootCD 5.4\n".utf8)),
            FATFileSpec(path: ["syslinux.cfg"], bytes: Array("DEFAULT kernel\n".utf8)),
        ]
        if name == "fat32" {
            let big = scratch.file("bootcd.img")
            let fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            #expect(fd >= 0 && ftruncate(fd, 510 << 20) == 0)
            close(fd)
            files.append(try FATFileSpec.file(path: ["bootcd.img"], contentsOf: big))
        }
        let partitioning: USBPartitioning =
            partitioned ? .mbr(bootCode: try TestSyslinux.mbrCode(), diskSignature: 42) : .superfloppy
        let options = USBImageOptions(label: "PL", volumeID: 7, timestamp: 1_600_000_000, partitioning: partitioning)
        let layout = try USBImageLayout(files: files, syslinux: try TestSyslinux.payload(), options: options)
        #expect(layout.fatType == (name == "fat32" ? .fat32 : .fat16))
        let ours = scratch.file("ours.img"), theirs = scratch.file("theirs.img")
        try layout.write(to: try FATFileSink(path: ours), cancellation: CancellationFlag())
        #expect(try fatTool("/bin/cp", ["--sparse=always", ours, theirs]).status == 0)
        let offset = Int64(layout.volumeStart) * 512
        let installed = try fatTool("/usr/bin/syslinux", (partitioned ? ["--offset", String(offset)] : []) + ["--install", theirs])
        #expect(installed.status == 0, "\(installed.text)")

        if name == "fat32" {
            let payload = try TestSyslinux.payload()
            let reader = try TestFATReader(image: theirs, volumeOffset: offset)
            let entry = try reader.rootEntry("ldlinux.sys")
            let sectors = Array(try reader.sectors(ofChain: Int(entry.firstCluster)).prefix(payload.installedSysSize / 512))
            let ourBoot = try readBytes(ours, offset: offset, count: 512)
            let rebuilt = try SyslinuxInstaller(payload: payload).install(sectors: sectors.map { UInt64($0) }, bootSector: ourBoot)
            #expect(try readBytes(theirs, offset: offset, count: 512) == rebuilt.bootSector)
            #expect(try reader.read(sectors: sectors) == rebuilt.ldlinuxSys)
            #expect(sectors[0] > reader.dataStart + 510 * 2048)  // behind bootcd.img
            return
        }
        // Allowed differences: bytes 13-19 and 22-25 of the two entries.
        let reader = try TestFATReader(image: ours, volumeOffset: offset)
        let root = try TestFATReader.entries(try reader.rootDirectory())
        let rootStart =
            reader.boot.type == .fat16
            ? Int(reader.boot.reservedSectors) + Int(reader.boot.fatCount) * Int(reader.boot.sectorsPerFAT) : reader.dataStart
        var allowed = Set<Int64>()
        for (index, entry) in root.enumerated() where ["ldlinux.sys", "ldlinux.c32"].contains(entry.name) {
            let base = offset + Int64(rootStart) * 512 + Int64(index) * 32
            for field in Array(13...19) + Array(22...25) { allowed.insert(base + Int64(field)) }
        }
        #expect(allowed.count == 22)
        let cmp = try fatTool("/usr/bin/cmp", ["-l", ours, theirs])
        let differing = cmp.text.split(separator: "\n").compactMap { line in
            line.split(separator: " ").first.flatMap { Int64($0) }.map { $0 - 1 }
        }
        #expect(!differing.isEmpty && differing.count <= 22, "\(differing.count) bytes differ")
        #expect(Set(differing).isSubset(of: allowed), "\(differing.prefix(40))")
    }

    /// An image written entirely by us: ldlinux.sys's checksum verifies, its extents and ADV
    /// pointers are its FAT chain, and the boot sector points at its first sector.
    @Test(arguments: [false, true])
    func ourImageIsSelfConsistent(partitioned: Bool) throws {
        let scratch = try FATScratch()
        let image = scratch.file("usb.img")
        let payload = try TestSyslinux.payload()
        let files = [
            FATFileSpec(path: ["kernel"], bytes: fatTestBytes(200_000, seed: 1)),
            FATFileSpec(path: ["syslinux.cfg"], bytes: Array("DEFAULT x\n".utf8)),
        ]
        let partitioning: USBPartitioning =
            partitioned ? .mbr(bootCode: try TestSyslinux.mbrCode(), diskSignature: 0x1234_5678) : .superfloppy
        let options = USBImageOptions(label: "PlanetLab", volumeID: 0xCAFE_F00D, timestamp: 1_700_000_000, partitioning: partitioning)
        let sink = try FATFileSink(path: image)
        try USBImageWriter.write(files: files, syslinux: payload, options: options, to: sink, cancellation: CancellationFlag())

        let offset: Int64 = partitioned ? 32 * 512 : 0
        let reader = try TestFATReader(image: image, volumeOffset: offset)
        let entry = try reader.rootEntry("ldlinux.sys")
        #expect(entry.attributes == 0x27 && entry.caseFlags == 0x18)
        #expect(try reader.rootEntry("ldlinux.c32").attributes == 0x27)
        let sectors = Array(try reader.sectors(ofChain: Int(entry.firstCluster)).prefix(payload.installedSysSize / 512))
        let sys = try reader.read(sectors: sectors)
        let area = payload.patchArea
        var sum: UInt32 = 0
        for i in stride(from: 0, to: payload.ldlinuxSys.count, by: 4) { sum &+= sys.le32(at: i) }
        #expect(sum == 0x3EB2_02FE)
        #expect(sys.le16(at: area.offset + 8) == 114 && sys.le16(at: area.offset + 10) == 2)
        #expect(sys.le32(at: area.offset + 12) == 14592 && sys.le16(at: area.offset + 20) == 127)
        // Extents decode to sectors 1 ..< N-2.
        var decoded: [Int] = []
        for slot in 0..<area.extentSlots {
            let lba = sys.le64(at: area.extentTable + 10 * slot), count = Int(sys.le16(at: area.extentTable + 10 * slot + 8))
            if count == 0 { break }
            decoded += (0..<count).map { Int(lba) + $0 }
        }
        #expect(decoded == Array(sectors[1..<(sectors.count - 2)]))
        #expect(sys.le64(at: area.advPointers) == UInt64(sectors[sectors.count - 2]))
        #expect(sys.le64(at: area.advPointers + 8) == UInt64(sectors[sectors.count - 1]))
        #expect(Array(sys[payload.ldlinuxSys.count...]) == SyslinuxInstaller.blankADV() + SyslinuxInstaller.blankADV())
        let boot = try readBytes(image, offset: offset, count: 512)
        #expect(boot.le32(at: 0x11A) == UInt32(sectors[0]) && boot.le32(at: 0x120) == 0)
        #expect(Array(boot[0..<11]) == [0xEB, 0x58, 0x90] + Array("SYSLINUX".utf8))
        #expect(boot.le32(at: 0x1F8) == 0x3EB2_02FE && boot[0x1FE] == 0x55 && boot[0x1FF] == 0xAA)
        #expect(boot.le32(at: 0x1C) == (partitioned ? 32 : 0))
    }
}
