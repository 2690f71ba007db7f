/// The FAT type of a volume. FAT12 is never written (see ``FATParameters``).
public enum FATType: Sendable, Equatable {
    case fat16
    case fat32
}

/// The extended BIOS parameter block (DOS 4.0): FAT12/16 at 0x24, FAT32 at 0x40 (26 bytes).
struct ExtendedBPB: Equatable, Sendable {
    /// BIOS drive number (0x80 for media 0xF8, as mkfs.fat writes).
    var driveNumber: UInt8 = 0x80
    /// Reserved (Windows NT dirty flags).
    var reserved: UInt8 = 0
    /// 0x29: the three fields below are present.
    var bootSignature: UInt8 = 0x29
    /// The volume serial number.
    var volumeID: UInt32 = 0
    /// The volume label, 11 bytes space padded (`NO NAME    ` when none).
    var volumeLabel: [UInt8] = FixedField.padded("NO NAME", width: 11)
    /// `FAT16   ` or `FAT32   ` (informational).
    var fileSystemType: [UInt8] = FixedField.padded("FAT16", width: 8)

    static let size = 26

    func encode(into sector: inout [UInt8], at offset: Int) {
        sector[offset] = driveNumber
        sector[offset + 1] = reserved
        sector[offset + 2] = bootSignature
        sector.putLE32(volumeID, at: offset + 3)
        sector.put(volumeLabel, at: offset + 7)
        sector.put(fileSystemType, at: offset + 18)
    }

    init() {}

    init(decoding sector: [UInt8], at offset: Int) {
        driveNumber = sector[offset]
        reserved = sector[offset + 1]
        bootSignature = sector[offset + 2]
        volumeID = sector.le32(at: offset + 3)
        volumeLabel = sector.bytes(at: offset + 7, count: 11)
        fileSystemType = sector.bytes(at: offset + 18, count: 8)
    }
}

/// The FAT32 part of the BPB at 0x24..0x59 (28 bytes, then the extended BPB at 0x40).
struct FAT32BPB: Equatable, Sendable {
    /// Sectors per FAT.
    var sectorsPerFAT: UInt32 = 0
    /// Mirroring flags (0: all FATs mirrored).
    var extendedFlags: UInt16 = 0
    /// File system version (0.0).
    var version: UInt16 = 0
    /// First cluster of the root directory.
    var rootCluster: UInt32 = 2
    /// Sector of the FSInfo structure.
    var fsInfoSector: UInt16 = 1
    /// Sector of the backup boot sector.
    var backupBootSector: UInt16 = 6
    /// 12 reserved bytes.
    var reserved: [UInt8] = [UInt8](repeating: 0, count: 12)

    func encode(into sector: inout [UInt8]) {
        sector.putLE32(sectorsPerFAT, at: 0x24)
        sector.putLE16(extendedFlags, at: 0x28)
        sector.putLE16(version, at: 0x2A)
        sector.putLE32(rootCluster, at: 0x2C)
        sector.putLE16(fsInfoSector, at: 0x30)
        sector.putLE16(backupBootSector, at: 0x32)
        sector.put(reserved, at: 0x34)
    }

    init() {}

    init(decoding sector: [UInt8]) {
        sectorsPerFAT = sector.le32(at: 0x24)
        extendedFlags = sector.le16(at: 0x28)
        version = sector.le16(at: 0x2A)
        rootCluster = sector.le32(at: 0x2C)
        fsInfoSector = sector.le16(at: 0x30)
        backupBootSector = sector.le16(at: 0x32)
        reserved = sector.bytes(at: 0x34, count: 12)
    }
}

/// Sector 0 of a FAT volume: jump, OEM name, the common BPB (0x0B..0x23), the FAT12/16 extended
/// BPB (0x24) or the FAT32 BPB (0x24) plus its extended BPB (0x40), boot code up to 0x1FD and
/// the `55 AA` signature. 512-byte sectors only.
struct FATBootSector: Equatable, Sendable {
    /// The jump instruction (`EB 3C 90` FAT16, `EB 58 90` FAT32).
    var jump: [UInt8] = [0xEB, 0x3C, 0x90]
    /// OEM name, 8 bytes (a boot loader may replace it with its own).
    var oemName: [UInt8] = FixedField.padded("BOOTMDM", width: 8)
    var bytesPerSector: UInt16 = 512
    var sectorsPerCluster: UInt8 = 4
    var reservedSectors: UInt16 = 1
    var fatCount: UInt8 = 2
    /// Root directory entries (0 on FAT32).
    var rootEntryCount: UInt16 = 512
    /// Total sectors when below 65536, else 0.
    var totalSectors16: UInt16 = 0
    var media: UInt8 = 0xF8
    /// Sectors per FAT on FAT12/16; 0 on FAT32.
    var sectorsPerFAT16: UInt16 = 0
    var sectorsPerTrack: UInt16 = 32
    var heads: UInt16 = 64
    /// Sectors before the volume on its disk (the partition start).
    var hiddenSectors: UInt32 = 0
    /// Total sectors when `totalSectors16` is 0.
    var totalSectors32: UInt32 = 0
    /// Present on FAT32 volumes.
    var fat32: FAT32BPB?
    /// The extended BPB (at 0x24 on FAT16, 0x40 on FAT32).
    var extended = ExtendedBPB()
    /// The bytes after the BPB up to 0x1FD (448 on FAT16 from 0x3E, 420 on FAT32 from 0x5A).
    var bootCode: [UInt8]
    /// 0xAA55.
    var signature: UInt16 = 0xAA55

    static let size = 512

    /// Where the boot code starts.
    var bootCodeOffset: Int { fat32 == nil ? 0x3E : 0x5A }

    var type: FATType { fat32 == nil ? .fat16 : .fat32 }
    var totalSectors: UInt32 { totalSectors16 != 0 ? UInt32(totalSectors16) : totalSectors32 }
    var sectorsPerFAT: UInt32 { fat32?.sectorsPerFAT ?? UInt32(sectorsPerFAT16) }

    /// A boot sector with an empty BPB of the given type and `bootCode` (`int 18h` then halt:
    /// "not bootable, try the next device").
    init(type: FATType) {
        if type == .fat32 {
            jump = [0xEB, 0x58, 0x90]
            fat32 = FAT32BPB()
            extended.fileSystemType = FixedField.padded("FAT32", width: 8)
            rootEntryCount = 0
        }
        let codeCount = 0x1FE - (type == .fat32 ? 0x5A : 0x3E)
        bootCode = [0xCD, 0x18, 0xF4, 0xEB, 0xFD] + [UInt8](repeating: 0, count: codeCount - 5)
    }

    func encode() -> [UInt8] {
        var s = [UInt8](repeating: 0, count: Self.size)
        s.put(jump, at: 0)
        s.put(oemName, at: 3)
        s.putLE16(bytesPerSector, at: 0x0B)
        s[0x0D] = sectorsPerCluster
        s.putLE16(reservedSectors, at: 0x0E)
        s[0x10] = fatCount
        s.putLE16(rootEntryCount, at: 0x11)
        s.putLE16(totalSectors16, at: 0x13)
        s[0x15] = media
        s.putLE16(sectorsPerFAT16, at: 0x16)
        s.putLE16(sectorsPerTrack, at: 0x18)
        s.putLE16(heads, at: 0x1A)
        s.putLE32(hiddenSectors, at: 0x1C)
        s.putLE32(totalSectors32, at: 0x20)
        if let fat32 {
            fat32.encode(into: &s)
            extended.encode(into: &s, at: 0x40)
        } else {
            extended.encode(into: &s, at: 0x24)
        }
        s.put(bootCode, at: bootCodeOffset)
        s.putLE16(signature, at: 0x1FE)
        return s
    }

    /// Decodes sector 0. A zero 16-bit FAT size marks the FAT32 layout. Throws `invalidImage`
    /// when the sector is not 512 bytes, lacks `55 AA` or does not describe 512-byte sectors.
    init(decoding s: [UInt8]) throws(BootMediumError) {
        guard s.count == Self.size else {
            throw BootMediumError(.invalidImage, "A FAT boot sector is 512 bytes", context: ["size": String(s.count)])
        }
        jump = s.bytes(at: 0, count: 3)
        oemName = s.bytes(at: 3, count: 8)
        bytesPerSector = s.le16(at: 0x0B)
        sectorsPerCluster = s[0x0D]
        reservedSectors = s.le16(at: 0x0E)
        fatCount = s[0x10]
        rootEntryCount = s.le16(at: 0x11)
        totalSectors16 = s.le16(at: 0x13)
        media = s[0x15]
        sectorsPerFAT16 = s.le16(at: 0x16)
        sectorsPerTrack = s.le16(at: 0x18)
        heads = s.le16(at: 0x1A)
        hiddenSectors = s.le32(at: 0x1C)
        totalSectors32 = s.le32(at: 0x20)
        if sectorsPerFAT16 == 0 {
            fat32 = FAT32BPB(decoding: s)
            extended = ExtendedBPB(decoding: s, at: 0x40)
        } else {
            fat32 = nil
            extended = ExtendedBPB(decoding: s, at: 0x24)
        }
        let codeStart = fat32 == nil ? 0x3E : 0x5A
        bootCode = s.bytes(at: codeStart, count: 0x1FE - codeStart)
        signature = s.le16(at: 0x1FE)
        guard signature == 0xAA55 else {
            throw BootMediumError(.invalidImage, "The FAT boot sector lacks the 55 AA signature")
        }
        guard bytesPerSector == 512, sectorsPerCluster != 0,
            sectorsPerCluster & (sectorsPerCluster - 1) == 0, fatCount != 0
        else {
            throw BootMediumError(
                .invalidImage, "The FAT boot sector describes an unsupported geometry",
                context: ["bytesPerSector": String(bytesPerSector), "sectorsPerCluster": String(sectorsPerCluster)])
        }
    }
}
