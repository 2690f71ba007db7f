import Foundation
import Testing

@testable import BootMedium

@Suite struct MBRTests {
    @Test func chsAddresses() {
        #expect(CHSAddress(lba: 0, heads: 64, sectorsPerTrack: 32) == CHSAddress(cylinder: 0, head: 0, sector: 1))
        #expect(CHSAddress(lba: 32, heads: 64, sectorsPerTrack: 32) == CHSAddress(cylinder: 0, head: 1, sector: 1))
        #expect(CHSAddress(lba: 2047, heads: 64, sectorsPerTrack: 32) == CHSAddress(cylinder: 0, head: 63, sector: 32))
        #expect(CHSAddress(lba: 2048 * 700 + 33, heads: 64, sectorsPerTrack: 32) == CHSAddress(cylinder: 700, head: 1, sector: 2))
        #expect(CHSAddress(lba: 2048 * 1024 - 1, heads: 64, sectorsPerTrack: 32) == CHSAddress(cylinder: 1023, head: 63, sector: 32))
        #expect(CHSAddress(lba: 2048 * 1024, heads: 64, sectorsPerTrack: 32) == .beyondReach)
        // Cylinder bits 8-9 go to the top of the sector byte.
        let far = CHSAddress(cylinder: 700, head: 1, sector: 2)
        #expect(far.encode() == [1, 2 | 2 << 6, 700 & 0xFF])
        #expect(CHSAddress(decoding: far.encode()) == far)
        #expect(CHSAddress.beyondReach.encode() == [0xFE, 0xFF, 0xFF])
    }

    @Test func partitionEntryRoundTrip() {
        let entry = MBRPartitionEntry(active: true, type: 0x06, startLBA: 32, sectorCount: 2048 * 100 - 32, heads: 64, sectorsPerTrack: 32)
        let bytes = entry.encode()
        #expect(bytes == [0x80, 1, 1, 0, 0x06, 63, 32, 99, 32, 0, 0, 0] + [UInt8](UInt32(2048 * 100 - 32).littleEndianBytes))
        #expect(MBRPartitionEntry(decoding: bytes) == entry)
    }

    @Test func mbrRoundTrip() throws {
        let code = try TestSyslinux.mbrCode()
        #expect(code.count == 440)
        let entry = MBRPartitionEntry(active: true, type: 0x0C, startLBA: 32, sectorCount: 1_000_000, heads: 64, sectorsPerTrack: 32)
        let mbr = try MBR(bootCode: code, diskSignature: 0xA1B2_C3D4, partitions: [entry])
        let bytes = mbr.encode()
        #expect(bytes.count == 512 && Array(bytes[0..<440]) == code)
        #expect(bytes.le32(at: 440) == 0xA1B2_C3D4 && bytes.le16(at: 444) == 0)
        #expect(Array(bytes[446..<462]) == entry.encode())
        #expect(bytes[462..<510].allSatisfy { $0 == 0 })
        #expect(bytes[510] == 0x55 && bytes[511] == 0xAA)
        let decoded = try MBR(decoding: bytes)
        #expect(decoded == mbr)
        #expect(decoded.encode() == bytes)
        #expect(throws: BootMediumError.self) { try MBR(bootCode: [1, 2, 3], diskSignature: 0, partitions: []) }
        #expect(throws: BootMediumError.self) { try MBR(decoding: [UInt8](repeating: 0, count: 512)) }
    }

    @Test func partitionTypes() {
        #expect(MBR.partitionType(for: .fat32, startLBA: 32, sectorCount: 1_300_000, heads: 64, sectorsPerTrack: 32) == 0x0C)
        #expect(MBR.partitionType(for: .fat16, startLBA: 32, sectorCount: 20_000, heads: 64, sectorsPerTrack: 32) == 0x04)
        #expect(MBR.partitionType(for: .fat16, startLBA: 32, sectorCount: 400_000, heads: 64, sectorsPerTrack: 32) == 0x06)
        #expect(MBR.partitionType(for: .fat16, startLBA: 32, sectorCount: 2048 * 1024, heads: 64, sectorsPerTrack: 32) == 0x0E)
    }

    /// sfdisk (util-linux) reads our MBR as we meant it.
    @Test func sfdiskReadsIt() throws {
        let scratch = try FATScratch()
        let image = scratch.file("disk.img")
        let entry = MBRPartitionEntry(active: true, type: 0x06, startLBA: 32, sectorCount: 2048 * 40 - 32, heads: 64, sectorsPerTrack: 32)
        let mbr = try MBR(bootCode: try TestSyslinux.mbrCode(), diskSignature: 0x0BAD_CAFE, partitions: [entry])
        var disk = mbr.encode()
        disk += [UInt8](repeating: 0, count: 2048 * 40 * 512 - 512)
        try Data(disk).write(to: URL(fileURLWithPath: image))
        let dump = try fatTool("/usr/sbin/sfdisk", ["--dump", image])
        #expect(dump.status == 0, "\(dump.text)")
        #expect(dump.text.contains("label-id: 0x0badcafe"))
        #expect(dump.text.contains("\(image)1 : start=          32, size=       81888, type=6, bootable"), "\(dump.text)")
    }
}

extension UInt32 {
    var littleEndianBytes: [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: self >> (8 * $0)) } }
}
