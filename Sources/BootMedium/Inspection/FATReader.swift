/// A bounded reader of FAT16/FAT32 volumes (superfloppy, or a partition at `offset`), for
/// `inspect`, built on the FAT writer's structure decoders.
///
/// Every sector and cluster number is checked against the volume and the image, cluster chains
/// are followed at most `clusterCount` steps (a loop is an error), directories are capped in size
/// (their chains followed no further than that), depth and entry count, and a file read is capped
/// at ``ImageBytes/maximumRead``. The bytes one walk reads for directories are capped too:
/// distinct directories may share the tail of one chain, so without it N directories could
/// cost N²/2 cluster reads.
struct FATReader {
    static let maximumDepth = 8
    static let maximumEntries = 10_000
    static let maximumDirectoryBytes: Int64 = 4 << 20
    /// Directory bytes one walk may read (10,000 one-cluster directories of 2 KiB take 20 MiB).
    static let maximumTotalDirectoryBytes: Int64 = 32 << 20

    struct Entry: WalkedEntry {
        var path: String
        var isDirectory: Bool
        var firstCluster: UInt32
        var size: UInt32
        var attributes: UInt8
    }

    let image: ImageBytes
    let offset: Int64
    let boot: FATBootSector
    let type: FATType
    let bytesPerCluster: Int64
    let firstDataSector: Int64
    let rootSectorStart: Int64
    let rootSectors: Int64
    let clusterCount: Int
    let fat: FileAllocationTable
    private let entries = Memo<[Entry]>()
    private let filesByPath = Memo<[String: Entry]>()

    init(_ image: ImageBytes, offset: Int64 = 0) throws(BootMediumError) {
        self.image = image
        self.offset = offset
        let boot = try FATBootSector(decoding: try image.read(offset, 512, what: "FAT boot sector"))
        guard boot.bytesPerSector == 512 else {
            throw BootMediumError(.invalidImage, "FAT sectors of \(boot.bytesPerSector) bytes are not supported")
        }
        let spc = Int64(boot.sectorsPerCluster)
        guard spc > 0, spc & (spc - 1) == 0, boot.reservedSectors > 0, (1...2).contains(boot.fatCount) else {
            throw BootMediumError(.invalidImage, "The FAT boot sector's geometry is invalid")
        }
        let total = Int64(boot.totalSectors16 != 0 ? UInt32(boot.totalSectors16) : boot.totalSectors32)
        guard total > 0, offset + total * 512 <= image.size else {
            throw BootMediumError(.invalidImage, "The FAT volume (\(total) sectors) extends past the image")
        }
        let fatSectors = Int64(boot.sectorsPerFAT16 != 0 ? UInt32(boot.sectorsPerFAT16) : (boot.fat32?.sectorsPerFAT ?? 0))
        let rootSectors = (Int64(boot.rootEntryCount) * 32 + 511) / 512
        let rootStart = Int64(boot.reservedSectors) + Int64(boot.fatCount) * fatSectors
        let dataStart = rootStart + rootSectors
        guard fatSectors > 0, dataStart < total else {
            throw BootMediumError(.invalidImage, "The FAT volume's regions do not fit in it")
        }
        let clusters = Int((total - dataStart) / spc)
        guard clusters >= 1, clusters < 0x0FFF_FFF5 else { throw BootMediumError(.invalidImage, "Bad FAT cluster count") }
        let type: FATType = clusters < 65525 ? .fat16 : .fat32
        guard clusters >= 4085 else { throw BootMediumError(.invalidImage, "FAT12 volumes are not supported") }
        if type == .fat32 && boot.fat32 == nil || type == .fat16 && boot.sectorsPerFAT16 == 0 {
            throw BootMediumError(.invalidImage, "The FAT type of the boot sector does not match the cluster count")
        }
        let fatBytes = (clusters + 2) * (type == .fat16 ? 2 : 4)
        guard Int64(fatBytes) <= fatSectors * 512 else {
            throw BootMediumError(.invalidImage, "The FAT is smaller than its clusters need")
        }
        let table = try image.read(offset + Int64(boot.reservedSectors) * 512, fatBytes, what: "FAT")
        self.boot = boot
        self.type = type
        self.bytesPerCluster = spc * 512
        self.firstDataSector = dataStart
        self.rootSectorStart = rootStart
        self.rootSectors = rootSectors
        self.clusterCount = clusters
        self.fat = try FileAllocationTable(decoding: table, type: type, clusterCount: clusters)
    }

    /// The clusters of a chain, checked and loop-free: all of them, or the first `prefix`.
    func chain(_ first: UInt32, prefix: Int? = nil) throws(BootMediumError) -> [UInt32] {
        var result: [UInt32] = []
        var cluster = first
        while true {
            guard cluster >= 2, Int(cluster) < clusterCount + 2 else {
                throw BootMediumError(.invalidImage, "Cluster \(cluster) is outside the volume")
            }
            result.append(cluster)
            if let prefix, result.count >= prefix { return result }
            guard result.count <= clusterCount else { throw BootMediumError(.invalidImage, "A cluster chain loops") }
            let next = fat[Int(cluster)]
            if next >= fat.endOfChainMinimum { return result }
            cluster = next
        }
    }

    private func clusterOffset(_ cluster: UInt32) -> Int64 {
        offset + (firstDataSector + Int64(cluster - 2) * (bytesPerCluster / 512)) * 512
    }

    /// The bytes of a chain, `size` at most (capped).
    func readChain(_ first: UInt32, size: Int64, what: String) throws(BootMediumError) -> [UInt8] {
        guard size <= Int64(ImageBytes.maximumRead) else { throw BootMediumError(.invalidImage, "\(what) is too large to read") }
        if size == 0 { return [] }
        let needed = Int((size + bytesPerCluster - 1) / bytesPerCluster)
        var bytes: [UInt8] = []
        for cluster in try chain(first, prefix: needed) {
            bytes += try image.read(clusterOffset(cluster), Int(bytesPerCluster), what: what)
        }
        guard Int64(bytes.count) >= size else { throw BootMediumError(.invalidImage, "\(what) is shorter than its size") }
        return Array(bytes.prefix(Int(size)))
    }

    /// Takes `bytes` from a walk's directory budget.
    private static func spend(_ bytes: Int64, from budget: inout Int64) throws(BootMediumError) {
        guard bytes <= budget else {
            throw BootMediumError(
                .invalidImage, "The FAT volume has more than \(maximumTotalDirectoryBytes >> 20) MiB of directories to read")
        }
        budget -= bytes
    }

    /// The entries of a directory (nil: the root), without `.` and `..` and volume labels.
    func list(_ dir: Entry?) throws(BootMediumError) -> [Entry] {
        var budget = Self.maximumTotalDirectoryBytes
        return try list(dir, budget: &budget)
    }

    private func list(_ dir: Entry?, budget: inout Int64) throws(BootMediumError) -> [Entry] {
        let raw: [UInt8]
        let first = dir?.firstCluster ?? (type == .fat32 ? boot.fat32?.rootCluster : nil)
        if let first {
            let name = dir?.path ?? "root directory"
            let limit = Int(Self.maximumDirectoryBytes / bytesPerCluster)
            let clusters = try chain(first, prefix: limit + 1)
            guard clusters.count <= limit else {
                throw BootMediumError(.invalidImage, "Directory \(dir?.path ?? "/") is larger than \(Self.maximumDirectoryBytes >> 20) MiB")
            }
            try Self.spend(Int64(clusters.count) * bytesPerCluster, from: &budget)
            raw = try readChain(first, size: Int64(clusters.count) * bytesPerCluster, what: name)
        } else {
            try Self.spend(rootSectors * 512, from: &budget)
            raw = try image.read(offset + rootSectorStart * 512, Int(rootSectors * 512), what: "root directory")
        }
        var entries: [Entry] = []
        var longName: [LongNameEntry] = []
        let parent = dir.map { $0.path } ?? ""
        var at = 0
        while at + 32 <= raw.count {
            let bytes = Array(raw[at..<at + 32])
            at += 32
            if bytes[0] == 0 { break }
            if bytes[0] == 0xE5 { longName = []; continue }
            if bytes[11] == 0x0F {
                if let part = try? LongNameEntry(decoding: bytes) { longName.append(part) }
                continue
            }
            let entry = DirectoryEntry(decoding: bytes)
            defer { longName = [] }
            if entry.attributes & 0x08 != 0 { continue }  // volume label
            var name = entry.displayName
            if !longName.isEmpty, let long = LongNameEntry.name(from: longName),
                LongNameEntry.checksum(of: entry.name) == longName.first?.checksum
            {
                name = long
            }
            if name == "." || name == ".." { continue }
            guard !name.isEmpty, !name.contains("/") else { throw BootMediumError(.invalidImage, "Bad FAT file name in \(parent)/") }
            entries.append(
                Entry(path: parent + "/" + name, isDirectory: entry.attributes & 0x10 != 0,
                      firstCluster: entry.firstCluster, size: entry.fileSize, attributes: entry.attributes))
        }
        return entries
    }

    /// Every entry under the root, depth first, long names when present (read once).
    func walk() throws(BootMediumError) -> [Entry] {
        try entries.get { () throws(BootMediumError) in try readTree() }
    }

    private func readTree() throws(BootMediumError) -> [Entry] {
        var result: [Entry] = []
        var seen: Set<UInt32> = []
        var budget = Self.maximumTotalDirectoryBytes
        func visit(_ dir: Entry?, depth: Int) throws(BootMediumError) {
            guard depth < Self.maximumDepth else { throw BootMediumError(.invalidImage, "FAT directories nest too deep") }
            if let dir { guard seen.insert(dir.firstCluster).inserted else { throw BootMediumError(.invalidImage, "FAT directory loop at \(dir.path)") } }
            for entry in try list(dir, budget: &budget) {
                result.append(entry)
                guard result.count <= Self.maximumEntries else { throw BootMediumError(.invalidImage, "Too many FAT entries") }
                if entry.isDirectory { try visit(entry, depth: depth + 1) }
            }
        }
        try visit(nil, depth: 0)
        return result
    }

    /// The file at `path` (case-insensitive; the first of duplicates), from an index built once.
    func entry(_ path: String) throws(BootMediumError) -> Entry {
        try filesByPath.file(path, in: "the FAT volume", walk: walk)
    }

    /// The SYSLINUX version when the boot sector carries SYSLINUX's code and `ldlinux.sys` its banner.
    func syslinux() throws(BootMediumError) -> InspectionReport.Syslinux {
        let oem = String(decoding: boot.oemName, as: UTF8.self)
        guard oem == "SYSLINUX", let sys = try walk().first(where: { $0.path.lowercased() == "/ldlinux.sys" }) else {
            return .init(installed: false, version: nil)
        }
        let head = try readChain(sys.firstCluster, size: min(Int64(sys.size), 64), what: "ldlinux.sys")
        let text = String(decoding: head.filter { $0 >= 0x20 && $0 < 0x7F }, as: UTF8.self)
        guard let range = text.range(of: "SYSLINUX ") else { return .init(installed: true, version: nil) }
        let version = text[range.lowerBound...].split(separator: " ").prefix(2).joined(separator: " ")
        return .init(installed: true, version: version)
    }
}

extension FATReader: InspectableFileSystem {
    func files() throws(BootMediumError) -> [InspectionReport.File] {
        try walk().filter { !$0.isDirectory }.map { InspectionReport.File(path: $0.path, size: Int64($0.size)) }
    }
    func read(_ path: String) throws(BootMediumError) -> [UInt8] {
        let e = try entry(path)
        return try readChain(e.firstCluster, size: Int64(e.size), what: path)
    }
    func sha256(_ path: String, zeroed: [[Int64]]?) throws(BootMediumError) -> String {
        let e = try entry(path)
        if e.size == 0 { return Digest.sha256([]) }
        var hasher = Digest.Hasher()
        var done: Int64 = 0
        let needed = Int((Int64(e.size) + bytesPerCluster - 1) / bytesPerCluster)
        for cluster in try chain(e.firstCluster, prefix: needed) {
            let n = Int(min(bytesPerCluster, Int64(e.size) - done))
            var chunk = try image.read(clusterOffset(cluster), n, what: path)
            Manifest.zero(&chunk, at: done, ranges: zeroed)
            hasher.update(chunk)
            done += Int64(n)
        }
        guard done == Int64(e.size) else { throw BootMediumError(.invalidImage, "\(path) is shorter than its size") }
        return hasher.finalize()
    }
}
