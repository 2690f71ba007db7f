import Foundation
import Testing

@testable import BootMedium

/// GPT structures: our encoders against gdisk's reader, gdisk's tables against our decoders.
@Suite struct GPTTests {
    @Test func guidTextAndBytes() throws {
        let esp = GUID.efiSystem
        #expect(Array(esp.bytes[0..<4]) == [0x28, 0x73, 0x2A, 0xC1])
        #expect(esp.description == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
        #expect(GUID(esp.description) == esp)
        #expect(GUID("C12A7328F81F11D2BA4B00A0C93EC93B") == nil)
        #expect(GUID("C12A7328-F81F-11D2-BA4B-00A0C93EC9ZZ") == nil)
    }

    @Test func entryRoundTrip() {
        let entry = GPTPartitionEntry(
            type: .basicData, unique: GUID("01234567-89AB-CDEF-0123-456789ABCDEF")!, firstLBA: 64, lastLBA: 4095,
            attributes: 1 << 60, name: "ISO9660")
        let bytes = entry.encode()
        #expect(bytes.count == 128 && bytes.le64(at: 32) == 64 && bytes.le64(at: 40) == 4095)
        #expect(Array(bytes[56..<62]) == [0x49, 0, 0x53, 0, 0x4F, 0])
        #expect(GPTPartitionEntry(decoding: bytes) == entry)
    }

    /// A disk written with our header and entries: gdisk's verifier finds no problem and reads
    /// our partition back.
    @Test func gdiskReadsOurTable() throws {
        let sectors: UInt64 = 8192
        let entries = [
            GPTPartitionEntry(type: .efiSystem, unique: GUID("11111111-2222-4333-8444-555555555555")!, firstLBA: 2048, lastLBA: 6143, attributes: 0, name: "ESP")
        ] + [GPTPartitionEntry](repeating: GPTPartitionEntry(decoding: [UInt8](repeating: 0, count: 128)), count: 127)
        let array = entries.flatMap { $0.encode() }
        let crc = CRC32.of(array)
        let disk = GUID("AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE")!
        let primary = GPTHeader(
            currentLBA: 1, alternateLBA: sectors - 1, firstUsableLBA: 34, lastUsableLBA: sectors - 34, diskGUID: disk,
            entriesLBA: 2, entryCount: 128, entriesCRC: crc)
        var backup = primary
        backup.currentLBA = sectors - 1
        backup.alternateLBA = 1
        backup.entriesLBA = sectors - 33
        var image = [UInt8](repeating: 0, count: Int(sectors) * 512)
        let protective = MBRPartitionEntry(
            status: 0, first: CHSAddress(cylinder: 0, head: 0, sector: 2), type: 0xEE, last: .beyondReach, startLBA: 1,
            sectorCount: UInt32(sectors - 1))
        image.put(try MBR(bootCode: [UInt8](repeating: 0, count: 440), diskSignature: 0, partitions: [protective]).encode(), at: 0)
        image.put(primary.encode(), at: 512)
        image.put(array, at: 1024)
        image.put(array, at: Int(sectors - 33) * 512)
        image.put(backup.encode(), at: Int(sectors - 1) * 512)
        let path = FileManager.default.temporaryDirectory.path + "/gpt-\(UUID().uuidString).img"
        try Data(image).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let verify = try runProcess("/sbin/sgdisk", ["-v", path])
        let said = String(decoding: verify.stdout, as: UTF8.self)
        #expect(verify.status == 0 && said.contains("No problems found"), "\(said) \(verify.stderr)")
        let info = String(decoding: try runProcess("/sbin/sgdisk", ["-i", "1", path]).stdout, as: UTF8.self)
        #expect(info.contains("Partition GUID code: C12A7328-F81F-11D2-BA4B-00A0C93EC93B (EFI system partition)"), "\(info)")
        #expect(info.contains("Partition unique GUID: 11111111-2222-4333-8444-555555555555"), "\(info)")
        #expect(info.contains("First sector: 2048") && info.contains("Last sector: 6143") && info.contains("Partition name: 'ESP'"), "\(info)")
        let print = String(decoding: try runProcess("/sbin/sgdisk", ["-p", path]).stdout, as: UTF8.self)
        #expect(print.contains("Disk identifier (GUID): AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE"), "\(print)")
    }

    /// A table gdisk wrote: our decoders read its header, CRCs and entry.
    @Test func ourDecodersReadGdisksTable() throws {
        let path = FileManager.default.temporaryDirectory.path + "/gpt-\(UUID().uuidString).img"
        try Data(count: 8 << 20).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let made = try runProcess(
            "/sbin/sgdisk",
            ["-U", "01234567-89AB-4DEF-8123-456789ABCDEF", "-n", "1:2048:+2M", "-t", "1:0700", "-c", "1:basdat",
             "-u", "1:76543210-FEDC-4A98-8765-43210FEDCBA9", "-A", "1:set:60", path])
        #expect(made.status == 0, "\(made.stderr)")
        let report = try #require(try ImageInspector.gpt(try ImageBytes(path: path)))
        #expect(report.diskGUID == "01234567-89AB-4DEF-8123-456789ABCDEF")
        #expect(report.headerCRCOK && report.entriesCRCOK && report.backupOK)
        #expect(report.firstUsableLBA == 34 && report.lastUsableLBA == 16350)
        #expect(report.partitions == [
            InspectionReport.GPTPartition(
                number: 1, type: GUID.basicData.description, typeName: "basic data", guid: "76543210-FEDC-4A98-8765-43210FEDCBA9",
                firstLBA: 2048, lastLBA: 6143, name: "basdat", attributes: "0x1000000000000000")
        ])
        // One flipped byte in the primary entries: the entry CRC says so.
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.seek(toOffset: 1024 + 100)
        try handle.write(contentsOf: Data([0x5A]))
        try handle.close()
        let broken = try #require(try ImageInspector.gpt(try ImageBytes(path: path)))
        #expect(broken.headerCRCOK && !broken.entriesCRCOK && !broken.backupOK)
    }
}
