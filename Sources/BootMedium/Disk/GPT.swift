/// A GUID as stored on disk by UEFI: the first three fields little endian, the rest as bytes
/// (so `C12A7328-F81F-11D2-BA4B-00A0C93EC93B` begins `28 73 2A C1`).
struct GUID: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The 16 bytes in on-disk order.
    var bytes: [UInt8]

    /// The all-zero GUID (an unused partition entry's type).
    static let zero = GUID(bytes: [UInt8](repeating: 0, count: 16))
    /// The EFI system partition.
    static let efiSystem = GUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")!
    /// Microsoft basic data (what an ISO 9660 "basdat" partition is marked as).
    static let basicData = GUID("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")!
    /// Apple HFS+ (libisofs marks HFS+ partitions so).
    static let appleHFS = GUID("48465300-0000-11AA-AA11-00306543ECAC")!

    init(bytes: [UInt8]) {
        precondition(bytes.count == 16)
        self.bytes = bytes
    }

    /// Parses the canonical text form `XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX`.
    init?(_ text: String) {
        let hex = text.filter { $0 != "-" }
        guard hex.count == 32, text.count == 36 else { return nil }
        var big: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { return nil }
            big.append(byte)
            index = next
        }
        bytes = Array(big[0..<4].reversed()) + Array(big[4..<6].reversed()) + Array(big[6..<8].reversed()) + Array(big[8...])
    }

    /// The canonical upper-case text form.
    var description: String {
        let big = Array(bytes[0..<4].reversed()) + Array(bytes[4..<6].reversed()) + Array(bytes[6..<8].reversed()) + Array(bytes[8...])
        let hex = big.map { String($0, radix: 16, uppercase: true) }.map { $0.count == 1 ? "0" + $0 : $0 }
        return [hex[0..<4], hex[4..<6], hex[6..<8], hex[8..<10], hex[10..<16]].map { $0.joined() }.joined(separator: "-")
    }

    /// A short name for the partition types bootmedium's media and libisofs use.
    var typeName: String? {
        switch self {
        case .efiSystem: "EFI system"
        case .basicData: "basic data"
        case .appleHFS: "Apple HFS+"
        default: nil
        }
    }
}

/// One 128-byte GPT partition entry (UEFI 2.x §5.3.3).
struct GPTPartitionEntry: Equatable, Sendable {
    static let size = 128

    var type: GUID
    var unique: GUID
    var firstLBA: UInt64
    /// Inclusive.
    var lastLBA: UInt64
    var attributes: UInt64
    /// Up to 36 UTF-16 code units.
    var name: String

    var isUsed: Bool { type != .zero }

    func encode() -> [UInt8] {
        var e = [UInt8](repeating: 0, count: Self.size)
        e.put(type.bytes, at: 0)
        e.put(unique.bytes, at: 16)
        e.putLE64(firstLBA, at: 32)
        e.putLE64(lastLBA, at: 40)
        e.putLE64(attributes, at: 48)
        for (i, unit) in name.utf16.prefix(36).enumerated() { e.putLE16(unit, at: 56 + 2 * i) }
        return e
    }

    init(type: GUID, unique: GUID, firstLBA: UInt64, lastLBA: UInt64, attributes: UInt64, name: String) {
        self.type = type
        self.unique = unique
        self.firstLBA = firstLBA
        self.lastLBA = lastLBA
        self.attributes = attributes
        self.name = name
    }

    init(decoding e: [UInt8]) {
        type = GUID(bytes: e.bytes(at: 0, count: 16))
        unique = GUID(bytes: e.bytes(at: 16, count: 16))
        firstLBA = e.le64(at: 32)
        lastLBA = e.le64(at: 40)
        attributes = e.le64(at: 48)
        let units = (0..<36).map { e.le16(at: 56 + 2 * $0) }
        name = String(decoding: units.prefix { $0 != 0 }, as: UTF16.self)
    }
}

/// A GPT header (UEFI 2.x §5.3.2), 92 bytes used of its 512-byte sector; the primary one lies
/// at LBA 1, the backup one in the disk's last sector.
struct GPTHeader: Equatable, Sendable {
    static let signature = Array("EFI PART".utf8)
    static let size = 92

    var revision: UInt32 = 0x0001_0000
    var headerCRC: UInt32 = 0
    var currentLBA: UInt64
    var alternateLBA: UInt64
    var firstUsableLBA: UInt64
    var lastUsableLBA: UInt64
    var diskGUID: GUID
    var entriesLBA: UInt64
    var entryCount: UInt32
    var entrySize: UInt32 = UInt32(GPTPartitionEntry.size)
    var entriesCRC: UInt32

    /// The header's 512-byte sector with its CRC computed.
    func encode() -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        h.put(Self.signature, at: 0)
        h.putLE32(revision, at: 8)
        h.putLE32(UInt32(Self.size), at: 12)
        h.putLE64(currentLBA, at: 24)
        h.putLE64(alternateLBA, at: 32)
        h.putLE64(firstUsableLBA, at: 40)
        h.putLE64(lastUsableLBA, at: 48)
        h.put(diskGUID.bytes, at: 56)
        h.putLE64(entriesLBA, at: 72)
        h.putLE32(entryCount, at: 80)
        h.putLE32(entrySize, at: 84)
        h.putLE32(entriesCRC, at: 88)
        h.putLE32(CRC32.of(h[0..<Self.size]), at: 16)
        return h
    }

    /// Decodes a header sector; throws `invalidImage` without the signature or with a header
    /// size or entry size a reader cannot trust. `headerCRC` keeps the stored value
    /// (``crcMatches(_:)`` checks it).
    init(decoding h: [UInt8]) throws(BootMediumError) {
        guard h.count >= 512, Array(h[0..<8]) == Self.signature else {
            throw BootMediumError(.invalidImage, "No GPT header (no \"EFI PART\" signature)")
        }
        let headerSize = Int(h.le32(at: 12))
        guard headerSize >= Self.size, headerSize <= 512 else {
            throw BootMediumError(.invalidImage, "GPT header size \(headerSize) is outside 92...512")
        }
        revision = h.le32(at: 8)
        headerCRC = h.le32(at: 16)
        currentLBA = h.le64(at: 24)
        alternateLBA = h.le64(at: 32)
        firstUsableLBA = h.le64(at: 40)
        lastUsableLBA = h.le64(at: 48)
        diskGUID = GUID(bytes: h.bytes(at: 56, count: 16))
        entriesLBA = h.le64(at: 72)
        entryCount = h.le32(at: 80)
        entrySize = h.le32(at: 84)
        entriesCRC = h.le32(at: 88)
        guard entrySize >= UInt32(GPTPartitionEntry.size), entrySize <= 4096, entrySize % 8 == 0, entryCount <= 1024 else {
            throw BootMediumError(.invalidImage, "GPT header lists \(entryCount) entries of \(entrySize) bytes")
        }
    }

    init(
        currentLBA: UInt64, alternateLBA: UInt64, firstUsableLBA: UInt64, lastUsableLBA: UInt64, diskGUID: GUID,
        entriesLBA: UInt64, entryCount: UInt32, entriesCRC: UInt32
    ) {
        self.currentLBA = currentLBA
        self.alternateLBA = alternateLBA
        self.firstUsableLBA = firstUsableLBA
        self.lastUsableLBA = lastUsableLBA
        self.diskGUID = diskGUID
        self.entriesLBA = entriesLBA
        self.entryCount = entryCount
        self.entriesCRC = entriesCRC
    }

    /// Whether `sector` (the header as stored) carries the CRC of its first `header size` bytes.
    static func crcMatches(_ sector: [UInt8]) -> Bool {
        let headerSize = Int(sector.le32(at: 12))
        guard headerSize >= size, headerSize <= 512, sector.count >= headerSize else { return false }
        var copy = Array(sector[0..<headerSize])
        copy.putLE32(0, at: 16)
        return CRC32.of(copy) == sector.le32(at: 16)
    }

    /// The bytes the entry array takes.
    var entryBytes: Int { Int(entryCount) * Int(entrySize) }
}
