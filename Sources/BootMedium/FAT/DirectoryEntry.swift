/// A FAT date and time (local time by convention; we always store UTC), 2-second resolution.
struct FATTimestamp: Equatable, Sendable {
    /// Bits 15-9 year-1980, 8-5 month, 4-0 day.
    var date: UInt16
    /// Bits 15-11 hour, 10-5 minute, 4-0 seconds/2.
    var time: UInt16
    /// Hundredths to add to `time` for the creation time (0 or 100 for an odd second).
    var hundredths: UInt8

    init(date: UInt16, time: UInt16, hundredths: UInt8 = 0) {
        self.date = date
        self.time = time
        self.hundredths = hundredths
    }

    /// The FAT form of `unixSeconds` read as UTC; clamped to the FAT range 1980-01-01 00:00:00 ...
    /// 2107-12-31 23:59:59.
    init(unixSeconds: Int64) {
        let lowest: Int64 = 315_532_800  // 1980-01-01T00:00:00Z
        let highest: Int64 = 4_354_819_199  // 2107-12-31T23:59:59Z
        let t = min(max(unixSeconds, lowest), highest)
        let days = t / 86_400
        let secondOfDay = Int(t % 86_400)
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = z / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        date = UInt16(year - 1980) << 9 | UInt16(month) << 5 | UInt16(day)
        let hour = secondOfDay / 3600, minute = secondOfDay / 60 % 60, second = secondOfDay % 60
        time = UInt16(hour) << 11 | UInt16(minute) << 5 | UInt16(second / 2)
        hundredths = UInt8(second % 2 * 100)
    }
}

/// Directory entry attribute bits.
enum FATAttributes {
    static let readOnly: UInt8 = 0x01
    static let hidden: UInt8 = 0x02
    static let system: UInt8 = 0x04
    static let volumeLabel: UInt8 = 0x08
    static let directory: UInt8 = 0x10
    static let archive: UInt8 = 0x20
    /// The attribute of a VFAT long-name entry.
    static let longName: UInt8 = 0x0F
}

/// NT case flags (byte 0x0C): the 8.3 base / extension is displayed in lower case.
enum FATCaseFlags {
    static let lowerBase: UInt8 = 0x08
    static let lowerExtension: UInt8 = 0x10
}

/// A 32-byte short (8.3) directory entry.
struct DirectoryEntry: Equatable, Sendable {
    /// 8 + 3 bytes, space padded, upper case.
    var name: [UInt8]
    var attributes: UInt8
    /// NT case flags (``FATCaseFlags``).
    var caseFlags: UInt8 = 0
    var creationHundredths: UInt8 = 0
    var creationTime: UInt16 = 0
    var creationDate: UInt16 = 0
    var accessDate: UInt16 = 0
    var writeTime: UInt16 = 0
    var writeDate: UInt16 = 0
    var firstCluster: UInt32 = 0
    var fileSize: UInt32 = 0

    static let size = 32

    init(name: [UInt8], attributes: UInt8, caseFlags: UInt8 = 0, timestamp: FATTimestamp, firstCluster: UInt32, fileSize: UInt32) {
        precondition(name.count == 11)
        self.name = name
        self.attributes = attributes
        self.caseFlags = caseFlags
        creationHundredths = timestamp.hundredths
        creationTime = timestamp.time
        creationDate = timestamp.date
        accessDate = timestamp.date
        writeTime = timestamp.time
        writeDate = timestamp.date
        self.firstCluster = firstCluster
        self.fileSize = fileSize
    }

    func encode() -> [UInt8] {
        var e = [UInt8](repeating: 0, count: Self.size)
        e.put(name, at: 0)
        e[11] = attributes
        e[12] = caseFlags
        e[13] = creationHundredths
        e.putLE16(creationTime, at: 14)
        e.putLE16(creationDate, at: 16)
        e.putLE16(accessDate, at: 18)
        e.putLE16(UInt16(firstCluster >> 16), at: 20)
        e.putLE16(writeTime, at: 22)
        e.putLE16(writeDate, at: 24)
        e.putLE16(UInt16(firstCluster & 0xFFFF), at: 26)
        e.putLE32(fileSize, at: 28)
        return e
    }

    init(decoding e: [UInt8]) {
        precondition(e.count == Self.size)
        name = e.bytes(at: 0, count: 11)
        attributes = e[11]
        caseFlags = e[12]
        creationHundredths = e[13]
        creationTime = e.le16(at: 14)
        creationDate = e.le16(at: 16)
        accessDate = e.le16(at: 18)
        writeTime = e.le16(at: 22)
        writeDate = e.le16(at: 24)
        firstCluster = UInt32(e.le16(at: 20)) << 16 | UInt32(e.le16(at: 26))
        fileSize = e.le32(at: 28)
    }

    /// The name as `mdir` shows it: `BASE.EXT`, lower-cased per the case flags.
    var displayName: String {
        func part(_ bytes: ArraySlice<UInt8>, lower: Bool) -> String {
            var text = String(decoding: bytes, as: UTF8.self)
            while text.hasSuffix(" ") { text.removeLast() }
            return lower ? text.lowercased() : text
        }
        let base = part(name[0..<8], lower: caseFlags & FATCaseFlags.lowerBase != 0)
        let ext = part(name[8..<11], lower: caseFlags & FATCaseFlags.lowerExtension != 0)
        return ext.isEmpty ? base : base + "." + ext
    }
}

/// A 32-byte VFAT long-name entry holding 13 UTF-16 units of the name.
struct LongNameEntry: Equatable, Sendable {
    /// Sequence number 1...20, with 0x40 on the last (first stored) entry.
    var order: UInt8
    /// 13 UTF-16 code units (name, then 0x0000, then 0xFFFF padding).
    var units: [UInt16]
    /// Checksum of the short name the entry belongs to.
    var checksum: UInt8

    static let unitsPerEntry = 13
    private static let unitOffsets = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30]

    init(order: UInt8, units: [UInt16], checksum: UInt8) {
        precondition(units.count == Self.unitsPerEntry)
        self.order = order
        self.units = units
        self.checksum = checksum
    }

    func encode() -> [UInt8] {
        var e = [UInt8](repeating: 0, count: DirectoryEntry.size)
        e[0] = order
        for (unit, offset) in zip(units, Self.unitOffsets) { e.putLE16(unit, at: offset) }
        e[11] = FATAttributes.longName
        e[12] = 0
        e[13] = checksum
        e.putLE16(0, at: 26)
        return e
    }

    init(decoding e: [UInt8]) throws(BootMediumError) {
        guard e.count == DirectoryEntry.size, e[11] == FATAttributes.longName else {
            throw BootMediumError(.invalidImage, "Not a VFAT long-name entry")
        }
        order = e[0]
        units = Self.unitOffsets.map { e.le16(at: $0) }
        checksum = e[13]
    }

    /// The checksum of an 11-byte short name that long-name entries carry.
    static func checksum(of shortName: [UInt8]) -> UInt8 {
        var sum: UInt8 = 0
        for byte in shortName { sum = ((sum & 1) << 7) &+ (sum >> 1) &+ byte }
        return sum
    }

    /// The long-name entries of `name` for `shortName`, in stored order (last piece first).
    static func entries(for name: String, shortName: [UInt8]) -> [LongNameEntry] {
        let utf16 = Array(name.utf16)
        let count = (utf16.count + unitsPerEntry - 1) / unitsPerEntry
        var padded = utf16
        if padded.count < count * unitsPerEntry { padded.append(0) }
        while padded.count < count * unitsPerEntry { padded.append(0xFFFF) }
        let sum = checksum(of: shortName)
        return (1...count).reversed().map { n in
            let start = (n - 1) * unitsPerEntry
            let order = UInt8(n) | (n == count ? 0x40 : 0)
            return LongNameEntry(order: order, units: Array(padded[start..<(start + unitsPerEntry)]), checksum: sum)
        }
    }

    /// The name carried by `entries` (stored order), or nil when they are inconsistent.
    static func name(from entries: [LongNameEntry]) -> String? {
        guard let first = entries.first, first.order & 0x40 != 0, Int(first.order & 0x3F) == entries.count else { return nil }
        var units: [UInt16] = []
        for (i, entry) in entries.reversed().enumerated() {
            guard Int(entry.order & 0x3F) == i + 1, entry.checksum == first.checksum else { return nil }
            units += entry.units
        }
        if let end = units.firstIndex(of: 0) { units.removeSubrange(end...) }
        return String(decoding: units, as: UTF16.self)
    }
}

/// Turning names into 8.3 names.
enum ShortName {
    /// Characters valid in a short name besides A-Z and 0-9.
    private static let specials = Set("!#$%&'()-@^_`{}~".utf8)

    private static func isValid(_ byte: UInt8) -> Bool {
        (0x41...0x5A).contains(byte) || (0x30...0x39).contains(byte) || specials.contains(byte)
    }

    /// `name` as an exact 8.3 name with NT case flags, or nil when it needs a long name:
    /// ASCII only, at most one dot (not first or last), base 1-8 and extension 0-3 valid
    /// characters, and each part all upper case or all lower case (letters).
    static func exact(_ name: String) -> (name: [UInt8], caseFlags: UInt8)? {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.allSatisfy({ $0 < 0x80 }), bytes.first != 0x2E, bytes.last != 0x2E else { return nil }
        let dots = bytes.indices.filter { bytes[$0] == 0x2E }
        guard dots.count <= 1 else { return nil }
        let base = dots.first.map { Array(bytes[..<$0]) } ?? bytes
        let ext = dots.first.map { Array(bytes[($0 + 1)...]) } ?? []
        guard (1...8).contains(base.count), ext.count <= 3 else { return nil }
        func convert(_ part: [UInt8]) -> (bytes: [UInt8], lower: Bool)? {
            var hasLower = false, hasUpper = false
            var out: [UInt8] = []
            for byte in part {
                if (0x61...0x7A).contains(byte) {
                    hasLower = true
                    out.append(byte - 0x20)
                } else {
                    if (0x41...0x5A).contains(byte) { hasUpper = true }
                    guard isValid(byte) else { return nil }
                    out.append(byte)
                }
            }
            if hasLower && hasUpper { return nil }
            return (out, hasLower)
        }
        guard let b = convert(base), let e = convert(ext) else { return nil }
        let short = b.bytes + [UInt8](repeating: 0x20, count: 8 - b.bytes.count) + e.bytes
            + [UInt8](repeating: 0x20, count: 3 - e.bytes.count)
        let flags = (b.lower ? FATCaseFlags.lowerBase : 0) | (e.lower ? FATCaseFlags.lowerExtension : 0)
        return (short, flags)
    }

    /// The short name for a name that needs a long-name entry, unique against `used` (the
    /// Windows scheme): upper case, invalid characters to `_`, spaces and leading dots dropped,
    /// base = up to 8 characters before the last dot, extension = up to 3 after it, then a
    /// numeric tail `~N` (base cut to make room) unless the basis is lossless, fits and is unused.
    static func generated(for name: String, avoiding used: Set<[UInt8]>) -> [UInt8] {
        var lossy = false
        var chars: [UInt8] = []
        for scalar in name.unicodeScalars {
            if scalar == " " { lossy = true; continue }
            if scalar.value >= 0x80 { lossy = true; chars.append(0x5F); continue }
            var byte = UInt8(scalar.value)
            if (0x61...0x7A).contains(byte) { byte -= 0x20 }
            if byte != 0x2E && !isValid(byte) { lossy = true; byte = 0x5F }
            chars.append(byte)
        }
        while chars.first == 0x2E { chars.removeFirst(); lossy = true }
        let lastDot = chars.lastIndex(of: 0x2E)
        var base = (lastDot.map { Array(chars[..<$0]) } ?? chars).filter { $0 != 0x2E }
        var ext = lastDot.map { Array(chars[($0 + 1)...]) } ?? []
        if base.isEmpty { base = [0x5F]; lossy = true }
        if base.count > 8 { lossy = true }
        if ext.count > 3 { lossy = true; ext = Array(ext.prefix(3)) }
        let extField = ext + [UInt8](repeating: 0x20, count: 3 - ext.count)
        func compose(_ b: [UInt8]) -> [UInt8] { b + [UInt8](repeating: 0x20, count: 8 - b.count) + extField }
        if !lossy {
            let candidate = compose(base)
            if !used.contains(candidate) { return candidate }
        }
        var n = 1
        while true {
            let tail = Array("~\(n)".utf8)
            let candidate = compose(Array(base.prefix(8 - tail.count)) + tail)
            if !used.contains(candidate) { return candidate }
            n += 1
        }
    }
}
