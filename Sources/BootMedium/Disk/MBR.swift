/// A cylinder/head/sector address as stored in a partition entry (3 bytes: head; sector in
/// bits 0-5 with cylinder bits 8-9 in bits 6-7; cylinder bits 0-7).
struct CHSAddress: Equatable, Sendable {
    var cylinder: Int
    var head: Int
    var sector: Int

    /// The address stored for addresses beyond cylinder 1023 (the usual "use LBA" marker).
    static let beyondReach = CHSAddress(cylinder: 1023, head: 254, sector: 63)

    init(cylinder: Int, head: Int, sector: Int) {
        self.cylinder = cylinder
        self.head = head
        self.sector = sector
    }

    /// The CHS form of `lba` with the given geometry; ``beyondReach`` when the cylinder would
    /// exceed 1023.
    init(lba: Int, heads: Int, sectorsPerTrack: Int) {
        let cylinder = lba / (heads * sectorsPerTrack)
        if cylinder > 1023 {
            self = .beyondReach
        } else {
            self.init(cylinder: cylinder, head: lba / sectorsPerTrack % heads, sector: lba % sectorsPerTrack + 1)
        }
    }

    func encode() -> [UInt8] {
        [UInt8(head), UInt8(sector & 0x3F) | UInt8((cylinder >> 8) & 0x03) << 6, UInt8(cylinder & 0xFF)]
    }

    init(decoding b: [UInt8]) {
        head = Int(b[0])
        sector = Int(b[1] & 0x3F)
        cylinder = Int(b[1] >> 6) << 8 | Int(b[2])
    }
}

/// One 16-byte MBR partition entry.
struct MBRPartitionEntry: Equatable, Sendable {
    /// 0x80 active (bootable), 0x00 inactive.
    var status: UInt8
    var first: CHSAddress
    var type: UInt8
    var last: CHSAddress
    var startLBA: UInt32
    var sectorCount: UInt32

    static let empty = MBRPartitionEntry(
        status: 0, first: CHSAddress(cylinder: 0, head: 0, sector: 0), type: 0,
        last: CHSAddress(cylinder: 0, head: 0, sector: 0), startLBA: 0, sectorCount: 0)

    init(status: UInt8, first: CHSAddress, type: UInt8, last: CHSAddress, startLBA: UInt32, sectorCount: UInt32) {
        self.status = status
        self.first = first
        self.type = type
        self.last = last
        self.startLBA = startLBA
        self.sectorCount = sectorCount
    }

    /// An entry for `sectorCount` sectors from `startLBA`, CHS fields from the geometry.
    init(active: Bool, type: UInt8, startLBA: UInt32, sectorCount: UInt32, heads: Int, sectorsPerTrack: Int) {
        self.init(
            status: active ? 0x80 : 0, first: CHSAddress(lba: Int(startLBA), heads: heads, sectorsPerTrack: sectorsPerTrack),
            type: type,
            last: CHSAddress(lba: Int(startLBA) + Int(sectorCount) - 1, heads: heads, sectorsPerTrack: sectorsPerTrack),
            startLBA: startLBA, sectorCount: sectorCount)
    }

    func encode() -> [UInt8] {
        var e = [UInt8](repeating: 0, count: 16)
        e[0] = status
        e.put(first.encode(), at: 1)
        e[4] = type
        e.put(last.encode(), at: 5)
        e.putLE32(startLBA, at: 8)
        e.putLE32(sectorCount, at: 12)
        return e
    }

    init(decoding e: [UInt8]) {
        status = e[0]
        first = CHSAddress(decoding: e.bytes(at: 1, count: 3))
        type = e[4]
        last = CHSAddress(decoding: e.bytes(at: 5, count: 3))
        startLBA = e.le32(at: 8)
        sectorCount = e.le32(at: 12)
    }
}

/// A classic master boot record: 440 bytes of boot code, the disk signature at 440, two zero
/// bytes, four partition entries at 446 and `55 AA` at 510.
struct MBR: Equatable, Sendable {
    static let bootCodeSize = 440

    var bootCode: [UInt8]
    var diskSignature: UInt32
    /// Bytes 444-445 (0; 0x5A5A marks "copy protected").
    var reserved: UInt16 = 0
    var partitions: [MBRPartitionEntry]

    /// The MBR partition type for a FAT volume (the Microsoft convention):
    /// FAT32 → 0x0C (FAT32, LBA); FAT16 that ends within CHS reach (cylinder ≤ 1023 with the
    /// geometry, 1 GiB for 64 heads × 32 sectors) → 0x04 below 65536 sectors ("FAT16 < 32M"),
    /// else 0x06 ("FAT16"); FAT16 beyond CHS reach → 0x0E (FAT16, LBA). Our FAT16 volumes stay
    /// below 512 MiB, so USB images get 0x04/0x06 or 0x0C.
    static func partitionType(for type: FATType, startLBA: Int, sectorCount: Int, heads: Int, sectorsPerTrack: Int) -> UInt8 {
        if type == .fat32 { return 0x0C }
        let lastCylinder = (startLBA + sectorCount - 1) / (heads * sectorsPerTrack)
        if lastCylinder > 1023 { return 0x0E }
        return sectorCount < 65536 ? 0x04 : 0x06
    }

    /// An MBR with `bootCode` (440 bytes, e.g. SYSLINUX's `mbr.bin`) and up to four entries.
    init(bootCode: [UInt8], diskSignature: UInt32, partitions: [MBRPartitionEntry]) throws(BootMediumError) {
        guard bootCode.count == Self.bootCodeSize else {
            throw BootMediumError(
                .invalidImage, "MBR boot code must be 440 bytes", context: ["size": String(bootCode.count)])
        }
        guard partitions.count <= 4 else { throw BootMediumError(.imageBuildFailed, "An MBR holds at most four partitions") }
        self.bootCode = bootCode
        self.diskSignature = diskSignature
        self.partitions = partitions + [MBRPartitionEntry](repeating: .empty, count: 4 - partitions.count)
    }

    func encode() -> [UInt8] {
        var s = [UInt8](repeating: 0, count: 512)
        s.put(bootCode, at: 0)
        s.putLE32(diskSignature, at: 440)
        s.putLE16(reserved, at: 444)
        for (i, entry) in partitions.enumerated() { s.put(entry.encode(), at: 446 + 16 * i) }
        s[510] = 0x55
        s[511] = 0xAA
        return s
    }

    /// Decodes sector 0 of a disk; throws `invalidImage` without the `55 AA` signature.
    init(decoding s: [UInt8]) throws(BootMediumError) {
        guard s.count == 512, s[510] == 0x55, s[511] == 0xAA else {
            throw BootMediumError(.invalidImage, "Not a master boot record (no 55 AA signature)")
        }
        bootCode = s.bytes(at: 0, count: Self.bootCodeSize)
        diskSignature = s.le32(at: 440)
        reserved = s.le16(at: 444)
        partitions = (0..<4).map { MBRPartitionEntry(decoding: s.bytes(at: 446 + 16 * $0, count: 16)) }
    }
}
