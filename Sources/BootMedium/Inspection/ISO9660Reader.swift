/// A bounded reader of ISO 9660 images (with Rock Ridge names and El Torito), for `inspect`.
///
/// Every extent is checked against the image, directories are capped in size, depth and entry
/// count, a directory seen twice (a loop) is an error, and Rock Ridge continuation areas are
/// followed a bounded number of times. The bytes one walk reads for directories and their
/// continuation areas are capped too: directories may overlap and `.`/`..` records are never
/// counted as entries, so without it N directories of 1 MiB each cost N MiB of parsing.
struct ISO9660Reader {
    static let sector: Int64 = 2048
    static let maximumDepth = 8
    static let maximumEntries = 10_000
    static let maximumDirectoryBytes = 1 << 20
    /// Directory and Rock Ridge continuation bytes one walk may read (10,000 one-sector
    /// directories take 20 MiB).
    static let maximumTotalDirectoryBytes = 32 << 20

    /// A file or directory.
    struct Entry: Equatable, WalkedEntry {
        var path: String
        var isDirectory: Bool
        var extent: UInt32
        var size: UInt32
    }

    /// An El Torito boot entry.
    struct BootEntry: Equatable {
        var platform: String
        var bootable: Bool
        var emulation: String
        var loadSegment: UInt16
        var loadSectors: UInt16
        var loadRBA: UInt32
    }

    let image: ImageBytes
    let volumeID: String
    let volumeBlocks: UInt32
    let root: Entry
    let bootCatalogLBA: UInt32?
    let hasJoliet: Bool
    private let entries = Memo<[Entry]>()
    /// Regular files by lower-cased path, built once from the walk.
    let filesByPath = Memo<[String: Entry]>()

    init(_ image: ImageBytes) throws(BootMediumError) {
        self.image = image
        var pvd: [UInt8]?
        var catalog: UInt32?
        var joliet = false
        var sector: Int64 = 16
        for _ in 0..<64 {
            let d = try image.read(sector * Self.sector, 2048, what: "volume descriptor")
            guard d.ascii(1..<6) == "CD001" else {
                throw BootMediumError(.invalidImage, "No ISO 9660 volume descriptor at sector \(sector)")
            }
            switch d[0] {
            case 0:
                if d.ascii(7..<39) == "EL TORITO SPECIFICATION" { catalog = d.le32(at: 71) }
            case 1: if pvd == nil { pvd = d }
            case 2: if d[88] == 0x25, d[89] == 0x2F, [0x40, 0x43, 0x45].contains(d[90]) { joliet = true }
            case 255: sector = -1
            default: break
            }
            if sector < 0 { break }
            sector += 1
        }
        guard let pvd else { throw BootMediumError(.invalidImage, "No primary volume descriptor") }
        guard pvd.le16(at: 128) == 2048 else {
            throw BootMediumError(.invalidImage, "Logical block size \(pvd.le16(at: 128)) is not 2048")
        }
        volumeID = pvd.ascii(40..<72)
        volumeBlocks = pvd.le32(at: 80)
        let rootRecord = Array(pvd[156..<190])
        root = Entry(path: "/", isDirectory: true, extent: rootRecord.le32(at: 2), size: rootRecord.le32(at: 10))
        bootCatalogLBA = catalog
        hasJoliet = joliet
    }

    /// Every entry under the root, depth first, names from Rock Ridge when present (read once).
    func walk() throws(BootMediumError) -> [Entry] {
        try entries.get { () throws(BootMediumError) in try readTree() }
    }

    private func readTree() throws(BootMediumError) -> [Entry] {
        var result: [Entry] = []
        var seen: Set<UInt32> = []
        var budget = Self.maximumTotalDirectoryBytes
        try walk(root, depth: 0, into: &result, seen: &seen, budget: &budget)
        return result
    }

    private func walk(_ dir: Entry, depth: Int, into result: inout [Entry], seen: inout Set<UInt32>, budget: inout Int)
        throws(BootMediumError)
    {
        guard depth < Self.maximumDepth else {
            throw BootMediumError(.invalidImage, "Directories nest deeper than \(Self.maximumDepth) at \(dir.path)")
        }
        guard seen.insert(dir.extent).inserted else {
            throw BootMediumError(.invalidImage, "Directory loop at \(dir.path)")
        }
        for entry in try list(dir, budget: &budget) {
            result.append(entry)
            guard result.count <= Self.maximumEntries else {
                throw BootMediumError(.invalidImage, "More than \(Self.maximumEntries) entries")
            }
            if entry.isDirectory { try walk(entry, depth: depth + 1, into: &result, seen: &seen, budget: &budget) }
        }
    }

    /// Takes `bytes` from a walk's directory budget.
    private static func spend(_ bytes: Int, from budget: inout Int) throws(BootMediumError) {
        guard bytes <= budget else {
            throw BootMediumError(
                .invalidImage, "The image has more than \(maximumTotalDirectoryBytes >> 20) MiB of directories to read")
        }
        budget -= bytes
    }

    /// The entries of one directory (without `.` and `..`).
    func list(_ dir: Entry) throws(BootMediumError) -> [Entry] {
        var budget = Self.maximumTotalDirectoryBytes
        return try list(dir, budget: &budget)
    }

    private func list(_ dir: Entry, budget: inout Int) throws(BootMediumError) -> [Entry] {
        guard Int(dir.size) <= Self.maximumDirectoryBytes else {
            throw BootMediumError(.invalidImage, "Directory \(dir.path) declares \(dir.size) bytes")
        }
        try Self.spend(Int(dir.size), from: &budget)
        let data = try image.read(Int64(dir.extent) * Self.sector, Int(dir.size), what: "directory \(dir.path)")
        var entries: [Entry] = []
        var offset = 0
        while offset < data.count {
            let length = Int(data[offset])
            if length == 0 {
                offset = (offset / 2048 + 1) * 2048  // records never cross a sector
                continue
            }
            guard length >= 34, offset + length <= data.count else {
                throw BootMediumError(.invalidImage, "Bad directory record in \(dir.path) at \(offset)")
            }
            let record = Array(data[offset..<offset + length])
            offset += length
            let nameLength = Int(record[32])
            guard 33 + nameLength <= length else {
                throw BootMediumError(.invalidImage, "Bad name length in \(dir.path)")
            }
            if nameLength == 1 && (record[33] == 0 || record[33] == 1) { continue }  // . and ..
            var name = String(decoding: record[33..<33 + nameLength], as: UTF8.self)
            if let semicolon = name.firstIndex(of: ";") { name = String(name[..<semicolon]) }
            if name.hasSuffix(".") { name.removeLast() }
            let systemUse = 33 + nameLength + (nameLength % 2 == 0 ? 1 : 0)
            if systemUse < length, let rr = try rockRidgeName(Array(record[systemUse...]), budget: &budget) { name = rr }
            guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
                throw BootMediumError(.invalidImage, "Bad file name in \(dir.path)")
            }
            let isDirectory = record[25] & 0x02 != 0
            let parent = dir.path == "/" ? "" : dir.path
            entries.append(
                Entry(path: parent + "/" + name, isDirectory: isDirectory, extent: record.le32(at: 2), size: record.le32(at: 10)))
        }
        return entries
    }

    /// The Rock Ridge `NM` name in a system use area, following `CE` continuations a few times.
    private func rockRidgeName(_ area: [UInt8], budget: inout Int) throws(BootMediumError) -> String? {
        var name: [UInt8] = []
        var found = false
        var current = area
        for _ in 0..<4 {
            var offset = 0
            var next: (UInt32, UInt32, UInt32)?
            while offset + 4 <= current.count {
                let sig = (current[offset], current[offset + 1])
                let length = Int(current[offset + 2])
                guard length >= 4, offset + length <= current.count else { break }
                if sig == (0x4E, 0x4D), length >= 5 {  // NM
                    found = true
                    name += current[offset + 5..<offset + length]
                } else if sig == (0x43, 0x45), length >= 28 {  // CE
                    let entry = Array(current[offset..<offset + length])
                    next = (entry.le32(at: 4), entry.le32(at: 12), entry.le32(at: 20))
                } else if sig == (0x53, 0x54) {  // ST: end
                    break
                }
                offset += length
            }
            guard let (block, within, size) = next, size > 0, size <= 2048 else { break }
            try Self.spend(Int(size), from: &budget)
            current = try image.read(Int64(block) * Self.sector + Int64(within), Int(size), what: "Rock Ridge continuation")
        }
        return found && !name.isEmpty ? String(decoding: name, as: UTF8.self) : nil
    }

    /// A file's bytes (at most ``ImageBytes/maximumRead``).
    func contents(_ entry: Entry) throws(BootMediumError) -> [UInt8] {
        try image.read(Int64(entry.extent) * Self.sector, Int(entry.size), what: entry.path)
    }

    /// The El Torito boot entries of the catalog.
    func bootEntries() throws(BootMediumError) -> [BootEntry] {
        guard let lba = bootCatalogLBA else { return [] }
        let catalog = try image.read(Int64(lba) * Self.sector, 2048, what: "boot catalog")
        guard catalog[0] == 1, catalog[30] == 0x55, catalog[31] == 0xAA else {
            throw BootMediumError(.invalidImage, "The El Torito validation entry is invalid")
        }
        var sum: UInt16 = 0
        for i in stride(from: 0, to: 32, by: 2) { sum &+= catalog.le16(at: i) }
        guard sum == 0 else { throw BootMediumError(.invalidImage, "The El Torito validation checksum is wrong") }
        func platform(_ id: UInt8) -> String {
            switch id {
            case 0: "BIOS"
            case 0xEF: "UEFI"
            default: String(format: "0x%02x", id)
            }
        }
        func entry(_ at: Int, _ platformID: UInt8) -> BootEntry {
            let emulation = ["none", "1.2M floppy", "1.44M floppy", "2.88M floppy", "hard disk"]
            let media = Int(catalog[at + 1] & 0x0F)
            return BootEntry(
                platform: platform(platformID), bootable: catalog[at] == 0x88,
                emulation: media < emulation.count ? emulation[media] : "unknown",
                loadSegment: catalog.le16(at: at + 2), loadSectors: catalog.le16(at: at + 6),
                loadRBA: catalog.le32(at: at + 8))
        }
        var entries = [entry(32, catalog[1])]
        var offset = 64
        while offset + 32 <= catalog.count, entries.count < 64 {
            let header = catalog[offset]
            guard header == 0x90 || header == 0x91 else { break }
            let count = Int(catalog.le16(at: offset + 2))
            let id = catalog[offset + 1]
            offset += 32
            for _ in 0..<count where offset + 32 <= catalog.count && entries.count < 64 {
                entries.append(entry(offset, id))
                offset += 32
            }
            if header == 0x91 { break }
        }
        return entries
    }

    /// Whether the boot image at `rba` carries a valid boot info table (PVD at 16, its own
    /// LBA and length, the checksum of its bytes from 64 on).
    func bootInfoTable(rba: UInt32, file: Entry?) throws(BootMediumError) -> Bool {
        guard let file, file.extent == rba, file.size >= 64 else { return false }
        let bytes = try contents(file)
        guard bytes.le32(at: 8) == 16, bytes.le32(at: 12) == rba, bytes.le32(at: 16) == file.size else { return false }
        var sum: UInt32 = 0
        var i = 64
        while i + 4 <= bytes.count {
            sum &+= bytes.le32(at: i)
            i += 4
        }
        return sum == bytes.le32(at: 20)
    }
}
