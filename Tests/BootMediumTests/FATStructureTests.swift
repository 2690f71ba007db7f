import Foundation
import Testing

@testable import BootMedium

/// Paired encode/decode round trips of every FAT structure, and the layout rules checked
/// against mkfs.fat.
@Suite struct FATStructureTests {
    @Test func fat16BootSectorRoundTrip() throws {
        var boot = FATBootSector(type: .fat16)
        boot.oemName = Array("ABCDEFGH".utf8)
        boot.sectorsPerCluster = 8
        boot.reservedSectors = 8
        boot.rootEntryCount = 1024
        boot.totalSectors16 = 0
        boot.totalSectors32 = 300_000
        boot.sectorsPerFAT16 = 150
        boot.sectorsPerTrack = 32
        boot.heads = 64
        boot.hiddenSectors = 32
        boot.extended.volumeID = 0xDEAD_BEEF
        boot.extended.volumeLabel = FixedField.padded("LABEL", width: 11)
        let bytes = boot.encode()
        #expect(bytes.count == 512)
        #expect(Array(bytes[0..<3]) == [0xEB, 0x3C, 0x90])
        #expect(bytes.le16(at: 0x0B) == 512 && bytes[0x0D] == 8 && bytes.le16(at: 0x11) == 1024)
        #expect(bytes.le16(at: 0x16) == 150 && bytes.le32(at: 0x1C) == 32 && bytes.le32(at: 0x20) == 300_000)
        #expect(bytes[0x24] == 0x80 && bytes[0x26] == 0x29 && bytes.le32(at: 0x27) == 0xDEAD_BEEF)
        #expect(Array(bytes[0x36..<0x3E]) == Array("FAT16   ".utf8))
        #expect(bytes[0x1FE] == 0x55 && bytes[0x1FF] == 0xAA)
        let decoded = try FATBootSector(decoding: bytes)
        #expect(decoded == boot)
        #expect(decoded.type == .fat16 && decoded.totalSectors == 300_000 && decoded.sectorsPerFAT == 150)
        #expect(decoded.encode() == bytes)
    }

    @Test func fat32BootSectorRoundTrip() throws {
        var boot = FATBootSector(type: .fat32)
        boot.sectorsPerCluster = 8
        boot.reservedSectors = 32
        boot.totalSectors32 = 1_228_800
        boot.fat32?.sectorsPerFAT = 1200
        boot.extended.volumeID = 0x0102_0304
        let bytes = boot.encode()
        #expect(Array(bytes[0..<3]) == [0xEB, 0x58, 0x90])
        #expect(bytes.le16(at: 0x16) == 0 && bytes.le16(at: 0x11) == 0)
        #expect(bytes.le32(at: 0x24) == 1200 && bytes.le32(at: 0x2C) == 2 && bytes.le16(at: 0x30) == 1 && bytes.le16(at: 0x32) == 6)
        #expect(bytes[0x40] == 0x80 && bytes[0x42] == 0x29 && bytes.le32(at: 0x43) == 0x0102_0304)
        #expect(Array(bytes[0x52..<0x5A]) == Array("FAT32   ".utf8))
        let decoded = try FATBootSector(decoding: bytes)
        #expect(decoded == boot)
        #expect(decoded.type == .fat32 && decoded.sectorsPerFAT == 1200)
        #expect(decoded.encode() == bytes)
    }

    @Test func bootSectorDecodingRejectsGarbage() {
        #expect(throws: BootMediumError.self) { try FATBootSector(decoding: [UInt8](repeating: 0, count: 512)) }
        #expect(throws: BootMediumError.self) { try FATBootSector(decoding: [UInt8](repeating: 0, count: 100)) }
        var bytes = FATBootSector(type: .fat16).encode()
        bytes[0x0D] = 3  // not a power of two
        #expect(throws: BootMediumError.self) { try FATBootSector(decoding: bytes) }
    }

    /// mkfs.fat's own sectors decode and re-encode to the same bytes.
    @Test(arguments: [["-F", "16"], ["-F", "32"]])
    func mkfsSectorsRoundTrip(type: [String]) throws {
        let scratch = try FATScratch()
        let image = scratch.file("m.img")
        #expect(try fatTool("/usr/sbin/mkfs.fat", ["-C", "-i", "11223344", "-n", "MKFS"] + type + [image, "307200"]).status == 0)
        let sector0 = try readBytes(image, count: 512)
        #expect(try FATBootSector(decoding: sector0).encode() == sector0)
        if type == ["-F", "32"] {
            let sector1 = try readBytes(image, offset: 512, count: 512)
            let info = try FSInfo(decoding: sector1)
            #expect(info.nextFree == 2)
            #expect(info.encode() == sector1)
            let reader = try TestFATReader(image: image)
            #expect(Int(info.freeCount) == reader.clusterCount - 1)
            #expect(reader.fat.freeCount == reader.clusterCount - 1)
        }
    }

    @Test func fsInfoRoundTrip() throws {
        let info = FSInfo(freeCount: 123_456, nextFree: 789)
        let bytes = info.encode()
        #expect(Array(bytes[0..<4]) == Array("RRaA".utf8) && Array(bytes[484..<488]) == Array("rrAa".utf8))
        #expect(bytes.le32(at: 488) == 123_456 && bytes.le32(at: 492) == 789)
        #expect(Array(bytes[508..<512]) == [0, 0, 0x55, 0xAA])
        #expect(try FSInfo(decoding: bytes) == info)
        #expect(throws: BootMediumError.self) { try FSInfo(decoding: [UInt8](repeating: 0, count: 512)) }
    }

    @Test(arguments: [FATType.fat16, .fat32])
    func allocationTableRoundTrip(type: FATType) throws {
        var fat = FileAllocationTable(type: type, clusterCount: 1000)
        fat.allocateChain(first: 2, count: 1)
        fat.allocateChain(first: 3, count: 10)
        fat.allocateChain(first: 500, count: 3)
        let sectors = type == .fat16 ? 4 : 8
        let bytes = fat.encode(sectors: sectors)
        #expect(bytes.count == sectors * 512)
        if type == .fat16 {
            #expect(Array(bytes[0..<8]) == [0xF8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x04, 0x00])
        } else {
            #expect(Array(bytes[0..<12]) == [0xF8, 0xFF, 0xFF, 0x0F, 0xFF, 0xFF, 0xFF, 0x0F, 0xFF, 0xFF, 0xFF, 0x0F])
        }
        let decoded = try FileAllocationTable(decoding: bytes, type: type, clusterCount: 1000)
        #expect(decoded == fat)
        #expect(try decoded.chain(from: 3) == Array(3...12))
        #expect(try decoded.chain(from: 500) == [500, 501, 502])
        #expect(decoded.freeCount == 1000 - 14)
        #expect(throws: BootMediumError.self) { try decoded.chain(from: 20) }  // free cluster
        var looping = fat
        looping[12] = 3
        #expect(throws: BootMediumError.self) { try looping.chain(from: 3) }
    }

    @Test func directoryEntryRoundTrip() throws {
        let stamp = FATTimestamp(unixSeconds: 1_700_000_001)
        let entry = DirectoryEntry(
            name: Array("BOOTCD  IMG".utf8), attributes: FATAttributes.archive, caseFlags: 0x18, timestamp: stamp,
            firstCluster: 0x0012_3456, fileSize: 600_000_000)
        let bytes = entry.encode()
        #expect(bytes.count == 32 && bytes[11] == 0x20 && bytes[12] == 0x18 && bytes[13] == 100)
        #expect(bytes.le16(at: 20) == 0x12 && bytes.le16(at: 26) == 0x3456 && bytes.le32(at: 28) == 600_000_000)
        let decoded = DirectoryEntry(decoding: bytes)
        #expect(decoded == entry)
        #expect(decoded.displayName == "bootcd.img")
        #expect(decoded.encode() == bytes)
    }

    @Test func timestampsAreUTCAndClamped() {
        // 2023-11-14 22:13:20 UTC.
        let t = FATTimestamp(unixSeconds: 1_700_000_000)
        #expect(t.date == UInt16(43 << 9 | 11 << 5 | 14))
        #expect(t.time == UInt16(22 << 11 | 13 << 5 | 10))
        #expect(t.hundredths == 0)
        // 2000-02-29 23:59:59 UTC (leap day, odd second).
        let leap = FATTimestamp(unixSeconds: 951_868_799)
        #expect(leap.date == UInt16(20 << 9 | 2 << 5 | 29) && leap.time == UInt16(23 << 11 | 59 << 5 | 29))
        #expect(leap.hundredths == 100)
        #expect(FATTimestamp(unixSeconds: 0) == FATTimestamp(date: 1 << 5 | 1, time: 0))
        #expect(FATTimestamp(unixSeconds: .max).date == UInt16(127 << 9 | 12 << 5 | 31))
    }

    @Test func longNameEntriesRoundTrip() throws {
        let short = Array("PL_VER~1   ".utf8)
        for name in ["pl_version", "Mixed Case Name.txt", "exactly13char", "a-name-that-needs-three-entries.data", "ünïcödé ✓"] {
            let entries = LongNameEntry.entries(for: name, shortName: short)
            #expect(entries.count == (name.utf16.count + 12) / 13)
            #expect(entries[0].order & 0x40 != 0)
            let decoded = try entries.map { e throws(BootMediumError) in try LongNameEntry(decoding: e.encode()) }
            #expect(decoded == entries)
            #expect(LongNameEntry.name(from: decoded) == name)
            #expect(entries.allSatisfy { $0.encode()[11] == 0x0F && $0.encode().le16(at: 26) == 0 })
        }
        // Checksum as in the VFAT specification (rotate right, add).
        var sum: UInt8 = 0
        for byte in short { sum = (sum >> 1 | sum << 7) &+ byte }
        #expect(LongNameEntry.checksum(of: short) == sum)
        let padded = LongNameEntry.entries(for: "abc", shortName: short)[0].units
        #expect(padded == [0x61, 0x62, 0x63, 0] + [UInt16](repeating: 0xFFFF, count: 9))
    }

    @Test func shortNames() {
        func exact(_ n: String) -> String? {
            ShortName.exact(n).map { String(decoding: $0.name, as: UTF8.self) + "/\($0.caseFlags)" }
        }
        #expect(exact("kernel") == "KERNEL     /8")
        #expect(exact("bootcd.img") == "BOOTCD  IMG/24")
        #expect(exact("overlay.img") == "OVERLAY IMG/24")
        #expect(exact("syslinux.cfg") == "SYSLINUXCFG/24")
        #expect(exact("ldlinux.c32") == "LDLINUX C32/24")
        #expect(exact("KERNEL") == "KERNEL     /0")
        #expect(exact("readme.TXT") == "README  TXT/8")
        #expect(exact("A1_2") == "A1_2       /0")
        for needsLong in ["pl_version", "Kernel", "a.b.c", ".hidden", "name.", "with space", "toolongname", "x.html", "ü", "a+b"] {
            #expect(exact(needsLong) == nil, "\(needsLong)")
        }
        func generated(_ n: String, _ used: [String] = []) -> String {
            String(decoding: ShortName.generated(for: n, avoiding: Set(used.map { Array($0.utf8) })), as: UTF8.self)
        }
        #expect(generated("pl_version") == "PL_VER~1   ")
        #expect(generated("pl_version", ["PL_VER~1   "]) == "PL_VER~2   ")
        #expect(generated("Kernel") == "KERNEL     ")
        #expect(generated("Kernel", ["KERNEL     "]) == "KERNEL~1   ")
        #expect(generated("Mixed Case Name.txt") == "MIXEDC~1TXT")
        #expect(generated("index.html") == "INDEX~1 HTM")
        #expect(generated(".config") == "CONFIG~1   ")
        #expect(generated("a+b.c.d") == "A_BC~1  D  ")
        var used = Set<[UInt8]>()
        for _ in 0..<12 { used.insert(ShortName.generated(for: "longfilename", avoiding: used)) }
        #expect(used.contains(Array("LONGFI~9   ".utf8)) && used.contains(Array("LONGF~10   ".utf8)))
    }

    @Test func namesAreValidated() {
        for bad in ["", ".", "..", "a/b", "a:b", "x?", "trailing.", "trailing ", " leading", "tab\there", String(repeating: "a", count: 256)] {
            #expect(!FATTree.isValidName(bad), "\(bad)")
        }
        for good in ["kernel", "pl_version", "Mixed Case Name.txt", "ünïcödé", "a.b.c", String(repeating: "a", count: 255)] {
            #expect(FATTree.isValidName(good), "\(good)")
        }
    }

    /// Our geometry equals what mkfs.fat 4.2 writes for the same size wherever it picks FAT16 or
    /// FAT32 (sizes in KiB: 9 MiB ... 700 MiB across the FAT16/FAT32 switch at 512 MiB).
    /// mkfs.fat cuts the volume to whole tracks of the geometry it guessed (63 sectors for the
    /// larger sizes), after choosing the FAT type from the uncut size; we are given its geometry.
    @Test(arguments: [9216, 16384, 40960, 102_400, 266_240, 307_200, 523_264, 524_288, 614_400, 716_800])
    func parametersMatchMkfs(kib: Int) throws {
        let scratch = try FATScratch()
        let image = scratch.file("p.img")
        let made = try fatTool("/usr/sbin/mkfs.fat", ["-C", image, String(kib)])
        #expect(made.status == 0, "\(made.text)")
        let mkfs = try FATBootSector(decoding: try readBytes(image, count: 512))
        #expect(Int(mkfs.totalSectors) % Int(mkfs.sectorsPerTrack) == 0)
        #expect(kib * 2 - Int(mkfs.totalSectors) < Int(mkfs.sectorsPerTrack))
        let ours = try FATParameters(totalSectors: UInt32(kib * 2), sectorsPerTrack: Int(mkfs.sectorsPerTrack))
        #expect(ours.type == mkfs.type)
        #expect(ours.sectorsPerCluster == Int(mkfs.sectorsPerCluster))
        #expect(ours.reservedSectors == Int(mkfs.reservedSectors))
        #expect(ours.sectorsPerFAT == Int(mkfs.sectorsPerFAT))
        #expect(ours.rootEntryCount == Int(mkfs.rootEntryCount))
        #expect(ours.totalSectors == mkfs.totalSectors)
        #expect(ours.clusterCount == (Int(mkfs.totalSectors) - ours.dataStart) / ours.sectorsPerCluster)
    }

    /// Where mkfs.fat would fall back to FAT12 we keep FAT16 with smaller clusters.
    @Test(arguments: [4608, 6144, 8192, 10240, 16384])
    func smallVolumesStayFAT16(sectors: Int) throws {
        let p = try FATParameters(totalSectors: UInt32(sectors))
        #expect(p.type == .fat16)
        #expect(p.clusterCount >= 4085 && p.clusterCount <= 65518)
        #expect(p.dataStart % p.sectorsPerCluster == 0)
        #expect(p.sectorsPerFAT * 256 >= p.clusterCount + 2)
        #expect(p.dataStart + p.clusterCount * p.sectorsPerCluster <= sectors)
    }

    @Test func tinyVolumesAreRefused() {
        #expect(throws: BootMediumError.self) { try FATParameters(totalSectors: 2000) }
    }
}
