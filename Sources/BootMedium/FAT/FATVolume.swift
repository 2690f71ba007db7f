#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One file to put on a FAT volume.
public struct FATFileSpec: Sendable {
    /// Path components under the root, e.g. `["kernel"]` or `["boot", "loader", "x.cfg"]`.
    /// Directories are created as needed. Names may be long or mixed case (VFAT long names
    /// are written then); they must not contain `"*/:<>?\|` or control characters.
    public var path: [String]
    /// The file size in bytes (below 4 GiB).
    public var size: Int64
    /// The bytes.
    public var source: FileBytes
    /// Directory entry attributes (archive by default).
    var attributes: UInt8 = FATAttributes.archive

    /// A file holding `source`: bytes in memory, or a file on disk, which must still have the
    /// size it had when opened when the image is written.
    public init(path: [String], source: FileBytes) {
        self.path = path
        self.source = source
        switch source {
        case .bytes(let bytes): size = Int64(bytes.count)
        case .file(let input): size = input.size
        }
    }

    /// A file with in-memory contents.
    public init(path: [String], bytes: [UInt8]) { self.init(path: path, source: .bytes(bytes)) }

    /// A file copied from `file` on disk, measured now (`stat`).
    public static func file(path: [String], contentsOf file: String) throws(BootMediumError) -> FATFileSpec {
        var info = stat()
        try Posix.syscall("stat", path: file) { stat(file, &info) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw BootMediumError(.imageBuildFailed, "\(file) is not a regular file", context: ["path": file])
        }
        return FATFileSpec(path: path, source: .file(try InputFile.open(file, role: .volumeFile)))
    }
}

/// The identity and geometry of a FAT volume.
public struct FATVolumeOptions: Sendable, Equatable {
    /// The volume label: upper-cased, characters not allowed in 8.3 names become `_`, cut to
    /// 11; empty means no label (`NO NAME`).
    public var label: String
    /// The volume serial number.
    public var volumeID: UInt32
    /// Unix seconds (UTC) used for every directory entry's dates and times.
    public var timestamp: Int64
    /// Sectors before the volume on its disk (the partition start; 0 for a superfloppy).
    public var hiddenSectors: UInt32
    /// BPB geometry.
    public var heads: UInt16
    public var sectorsPerTrack: UInt16

    public init(
        label: String, volumeID: UInt32, timestamp: Int64, hiddenSectors: UInt32 = 0, heads: UInt16 = 64,
        sectorsPerTrack: UInt16 = 32
    ) {
        self.label = label
        self.volumeID = volumeID
        self.timestamp = timestamp
        self.hiddenSectors = hiddenSectors
        self.heads = heads
        self.sectorsPerTrack = sectorsPerTrack
    }

    /// The label as stored (11 bytes), or nil for none.
    var labelField: [UInt8]? {
        var bytes: [UInt8] = label.uppercased().unicodeScalars.map { scalar in
            let v = scalar.value
            let ok = v == 0x20 || (0x41...0x5A).contains(v) || (0x30...0x39).contains(v)
                || "!#$%&'()-@^_`{}~".unicodeScalars.contains(scalar)
            return ok ? UInt8(v) : 0x5F
        }
        bytes = Array(bytes.prefix(11))
        while bytes.last == 0x20 { bytes.removeLast() }
        while bytes.first == 0x20 { bytes.removeFirst() }
        if bytes.isEmpty { return nil }
        return bytes + [UInt8](repeating: 0x20, count: 11 - bytes.count)
    }
}

/// A boot loader a FAT volume is made with: files it reserves at the front of the data area,
/// and the installation that needs to know where they landed.
protocol FATBootLoader: Sendable {
    /// The files laid out first, in this order, in the root directory; the first one's bytes
    /// are placeholders until ``install(firstFileSectors:bootSector:)`` gives them.
    var reservedFiles: [FATFileSpec] { get }
    /// The volume's boot sector with the loader in it and the first reserved file's bytes, given
    /// that file's 512-byte sectors (volume relative, in file order) and the volume's own boot
    /// sector.
    func install(firstFileSectors: [UInt64], bootSector: [UInt8]) throws(BootMediumError)
        -> (bootSector: [UInt8], firstFile: [UInt8])
}

/// A complete FAT16/FAT32 volume, laid out and ready to be written front to back.
///
/// Layout: boot sector (FAT32: FSInfo at 1, backup boot sector at 6), two FATs, the FAT16 root
/// directory, then the data clusters in this order: the FAT32 root directory (cluster 2),
/// subdirectories in order of first appearance, then the files in the order given, each one
/// contiguous; the rest is free. Geometry per ``FATParameters`` (mkfs.fat's rules); media 0xF8,
/// drive 0x80, extended signature 0x29. The same inputs give the same bytes.
///
/// With a ``FATBootLoader`` the volume also holds the loader's reserved files in the root (first
/// in the data area), and the loader is installed once they are placed: it gives the final boot
/// sector and the first reserved file's bytes. The FAT32 backup boot sector is a copy of the
/// final boot sector.
struct FATVolume {
    let parameters: FATParameters
    let options: FATVolumeOptions
    /// Sector 0 (also the FAT32 backup boot sector).
    let bootSector: [UInt8]
    let fat: FileAllocationTable
    /// FAT16 root directory region (rootEntryCount × 32 bytes); empty on FAT32.
    let rootRegion: [UInt8]
    /// What fills the data area, in cluster order.
    let dataItems: [DataItem]
    /// Clusters used by directories and files.
    let usedClusters: Int
    /// The files as placed (including the boot loader's), in data order.
    let placements: [Placement]

    struct DataItem {
        let firstCluster: Int
        let clusterCount: Int
        let content: FileBytes
        let size: Int64
    }

    /// Where a file ended up.
    struct Placement: Equatable {
        let path: [String]
        let firstCluster: Int
        let clusterCount: Int
        let size: Int64
    }

    var totalSectors: Int { Int(parameters.totalSectors) }
    var byteCount: Int64 { Int64(parameters.totalSectors) * 512 }
    var freeClusters: Int { parameters.clusterCount - usedClusters }

    /// Lays out `files` (plus `bootLoader`'s, when given) on a volume of exactly `totalSectors`.
    /// Throws `imageBuildFailed` when they do not fit or a name is invalid.
    init(files: [FATFileSpec], bootLoader: (any FATBootLoader)?, options: FATVolumeOptions, totalSectors: UInt32)
        throws(BootMediumError)
    {
        let parameters = try FATParameters(totalSectors: totalSectors, sectorsPerTrack: Int(options.sectorsPerTrack))
        let tree = try FATTree(files: (bootLoader?.reservedFiles ?? []) + files, label: options.labelField)
        try self.init(tree: tree, bootLoader: bootLoader, options: options, parameters: parameters)
    }

    /// The smallest volume (in whole MiB together with `leadingSectors` in front of it) that holds
    /// `files` and still has at least `freeBytes` free.
    static func sized(
        files: [FATFileSpec], bootLoader: (any FATBootLoader)?, options: FATVolumeOptions, freeBytes: Int64,
        leadingSectors: Int
    ) throws(BootMediumError) -> FATVolume {
        let mib: Int64 = 1 << 20
        let all = (bootLoader?.reservedFiles ?? []) + files
        let tree = try FATTree(files: all, label: options.labelField)
        let payload = all.reduce(Int64(0)) { $0 + $1.size }
        var totalMiB = max(1, (Int64(leadingSectors) * 512 + payload + freeBytes + mib - 1) / mib)
        while true {
            let sectors = totalMiB * 2048 - Int64(leadingSectors)
            guard sectors <= Int64(UInt32.max) else {
                throw BootMediumError(.imageBuildFailed, "The files are too large for a FAT volume", context: ["bytes": String(payload)])
            }
            let parameters = try FATParameters(totalSectors: UInt32(sectors), sectorsPerTrack: Int(options.sectorsPerTrack))
            let needed = try tree.clustersNeeded(parameters: parameters)
            let free = Int64(parameters.clusterCount - needed) * Int64(parameters.clusterBytes)
            if needed <= parameters.clusterCount && free >= freeBytes {
                return try FATVolume(tree: tree, bootLoader: bootLoader, options: options, parameters: parameters)
            }
            totalMiB += max(1, (freeBytes - free + mib - 1) / mib)
        }
    }

    private init(tree: FATTree, bootLoader: (any FATBootLoader)?, options: FATVolumeOptions, parameters: FATParameters)
        throws(BootMediumError)
    {
        self.parameters = parameters
        self.options = options
        let timestamp = FATTimestamp(unixSeconds: options.timestamp)
        let allocation = try tree.allocate(parameters: parameters)
        usedClusters = allocation.usedClusters

        var fat = FileAllocationTable(type: parameters.type, clusterCount: parameters.clusterCount)
        for (first, count) in allocation.directoryClusters where count > 0 { fat.allocateChain(first: first, count: count) }
        for (first, count) in allocation.fileClusters where count > 0 { fat.allocateChain(first: first, count: count) }
        self.fat = fat

        // Directories.
        let directoryBytes = tree.encodeDirectories(allocation: allocation, timestamp: timestamp, parameters: parameters)
        rootRegion = parameters.type == .fat16 ? directoryBytes[0] : []

        // Boot sector.
        var boot = FATBootSector(type: parameters.type)
        boot.sectorsPerCluster = UInt8(parameters.sectorsPerCluster)
        boot.reservedSectors = UInt16(parameters.reservedSectors)
        boot.fatCount = UInt8(parameters.fatCount)
        boot.rootEntryCount = UInt16(parameters.rootEntryCount)
        if parameters.type == .fat16 && parameters.totalSectors < 65536 {
            boot.totalSectors16 = UInt16(parameters.totalSectors)
        } else {
            boot.totalSectors32 = parameters.totalSectors
        }
        if parameters.type == .fat16 {
            boot.sectorsPerFAT16 = UInt16(parameters.sectorsPerFAT)
        } else {
            boot.fat32?.sectorsPerFAT = UInt32(parameters.sectorsPerFAT)
        }
        boot.sectorsPerTrack = options.sectorsPerTrack
        boot.heads = options.heads
        boot.hiddenSectors = options.hiddenSectors
        boot.extended.volumeID = options.volumeID
        if let label = options.labelField { boot.extended.volumeLabel = label }
        var bootBytes = boot.encode()

        // Data items in cluster order: directories (FAT32 root first), then files.
        var items: [DataItem] = []
        for (index, (first, count)) in allocation.directoryClusters.enumerated() where count > 0 {
            let bytes = directoryBytes[index]
            items.append(DataItem(firstCluster: first, clusterCount: count, content: .bytes(bytes), size: Int64(bytes.count)))
        }
        var placements: [Placement] = []
        for (index, file) in tree.files.enumerated() {
            let (first, count) = allocation.fileClusters[index]
            placements.append(Placement(path: file.path, firstCluster: first, clusterCount: count, size: file.size))
            if count > 0 {
                items.append(DataItem(firstCluster: first, clusterCount: count, content: file.source, size: file.size))
            }
        }

        if let bootLoader, let reserved = bootLoader.reservedFiles.first {
            // The loader's first file is file 0, contiguous.
            let (first, _) = allocation.fileClusters[0]
            let start = UInt64(parameters.sector(ofCluster: first))
            let sectors = (0..<UInt64((reserved.size + 511) / 512)).map { start + $0 }
            let installed = try bootLoader.install(firstFileSectors: sectors, bootSector: bootBytes)
            bootBytes = installed.bootSector
            let i = items.firstIndex { $0.firstCluster == first }!
            items[i] = DataItem(
                firstCluster: first, clusterCount: items[i].clusterCount, content: .bytes(installed.firstFile),
                size: Int64(installed.firstFile.count))
        }
        bootSector = bootBytes
        dataItems = items
        self.placements = placements
    }

    /// Writes the volume, front to back.
    func write(to stream: ImageStream) throws(BootMediumError) {
        let start = stream.offset
        let p = parameters
        // Reserved sectors.
        try stream.append(bootSector)
        if p.type == .fat32 {
            let firstFree = usedClusters < p.clusterCount ? UInt32(2 + usedClusters) : FSInfo.unknown
            try stream.append(FSInfo(freeCount: UInt32(freeClusters), nextFree: firstFree).encode())
            try stream.appendZeros(4 * 512)  // sectors 2-5
            try stream.append(bootSector)  // sector 6: backup boot sector
            try stream.appendZeros(Int64(p.reservedSectors - 7) * 512)
        } else {
            try stream.appendZeros(Int64(p.reservedSectors - 1) * 512)
        }
        // FATs.
        let table = fat.encode(sectors: p.sectorsPerFAT)
        for _ in 0..<p.fatCount { try stream.append(table) }
        // FAT16 root directory.
        try stream.append(rootRegion)
        // Data area.
        var cluster = 2
        for item in dataItems {
            try stream.appendZeros(Int64(item.firstCluster - cluster) * Int64(p.clusterBytes))
            switch item.content {
            case .bytes(let bytes): try stream.append(bytes)
            case .file(let input): try stream.appendFile(input, size: item.size)
            }
            try stream.appendZeros(Int64(item.clusterCount) * Int64(p.clusterBytes) - item.size)
            cluster = item.firstCluster + item.clusterCount
        }
        let end = start + byteCount
        try stream.appendZeros(end - stream.offset)
        guard stream.offset == end else {
            throw BootMediumError(.imageBuildFailed, "Internal error: the FAT volume came out at the wrong size")
        }
    }
}

/// The directory tree of a volume with its names settled (8.3 names, long names), independent
/// of the geometry.
struct FATTree {
    struct Child {
        let name: String
        let shortName: [UInt8]
        let caseFlags: UInt8
        /// Long-name entries, empty when the 8.3 name says it all.
        let longName: [LongNameEntry]
        /// A directory index or a file index.
        let directory: Int?
        let file: Int?
    }

    struct Directory {
        var parent: Int?
        /// The name as first given (empty for the root).
        var name = ""
        var childNames: [String] = []
        var childDirectories: [Int?] = []
        var childFiles: [Int?] = []
        var children: [Child] = []
        /// Directory entries including `.`/`..` or the volume label.
        var entryCount: Int { (parent == nil ? 0 : 2) + children.reduce(0) { $0 + 1 + $1.longName.count } }
    }

    let files: [FATFileSpec]
    /// Directories; 0 is the root, the others in order of first appearance.
    let directories: [Directory]
    let label: [UInt8]?

    init(files: [FATFileSpec], label: [UInt8]?) throws(BootMediumError) {
        self.files = files
        self.label = label
        var directories = [Directory(parent: nil)]
        func fail(_ message: String, _ path: [String]) -> BootMediumError {
            BootMediumError(.imageBuildFailed, message, context: ["path": path.joined(separator: "/")])
        }
        for (fileIndex, file) in files.enumerated() {
            guard !file.path.isEmpty else { throw fail("A file on the FAT volume has no name", file.path) }
            guard file.size >= 0, file.size <= Int64(UInt32.max) else {
                throw fail("A file on a FAT volume must be smaller than 4 GiB", file.path)
            }
            if case .bytes(let bytes) = file.source, Int64(bytes.count) != file.size {
                throw fail("A file's size does not match its bytes", file.path)
            }
            var current = 0
            for (depth, name) in file.path.enumerated() {
                guard Self.isValidName(name) else { throw fail("Invalid FAT file name \"\(name)\"", file.path) }
                let isLast = depth == file.path.count - 1
                let key = name.lowercased()
                if let existing = directories[current].childNames.firstIndex(of: key) {
                    guard !isLast, let sub = directories[current].childDirectories[existing] else {
                        throw fail(
                            isLast ? "Two files have the same FAT name (names compare case-insensitively)"
                                : "A path uses a file as a directory", file.path)
                    }
                    current = sub
                } else if isLast {
                    directories[current].childNames.append(key)
                    directories[current].childDirectories.append(nil)
                    directories[current].childFiles.append(fileIndex)
                } else {
                    directories.append(Directory(parent: current, name: name))
                    directories[current].childNames.append(key)
                    directories[current].childDirectories.append(directories.count - 1)
                    directories[current].childFiles.append(nil)
                    current = directories.count - 1
                }
            }
        }
        // Names: exact 8.3 names first, then generated ones that avoid them.
        for d in directories.indices {
            var names: [String] = []
            for i in directories[d].childNames.indices {
                if let f = directories[d].childFiles[i] {
                    names.append(files[f].path.last!)
                } else {
                    names.append(directories[directories[d].childDirectories[i]!].name)
                }
            }
            var used = Set<[UInt8]>([Array(".          ".utf8), Array("..         ".utf8)])
            var exact: [(name: [UInt8], caseFlags: UInt8)?] = []
            for name in names {
                let e = ShortName.exact(name)
                if let e { used.insert(e.name) }
                exact.append(e)
            }
            for (i, name) in names.enumerated() {
                let short: [UInt8]
                let flags: UInt8
                var long: [LongNameEntry] = []
                if let e = exact[i] {
                    (short, flags) = e
                } else {
                    short = ShortName.generated(for: name, avoiding: used)
                    used.insert(short)
                    flags = 0
                    long = LongNameEntry.entries(for: name, shortName: short)
                }
                directories[d].children.append(
                    Child(
                        name: name, shortName: short, caseFlags: flags, longName: long,
                        directory: directories[d].childDirectories[i], file: directories[d].childFiles[i]))
            }
        }
        self.directories = directories
    }

    /// Valid VFAT names: 1-255 UTF-16 units, no control characters or `"*/:<>?\|`, not `.` or
    /// `..`, no trailing dot or space, no leading space.
    static func isValidName(_ name: String) -> Bool {
        let units = name.utf16.count
        guard units >= 1, units <= 255, name != ".", name != "..", !name.hasSuffix("."), !name.hasSuffix(" "),
            !name.hasPrefix(" ")
        else { return false }
        return name.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7F && !"\"*/:<>?\\|".unicodeScalars.contains($0) }
    }

    /// Entries in the root (with the label entry).
    private var rootEntryCount: Int { directories[0].entryCount + (label == nil ? 0 : 1) }

    private func clusters(forEntries entries: Int, _ p: FATParameters) -> Int {
        max(1, (entries * 32 + p.clusterBytes - 1) / p.clusterBytes)
    }

    /// Clusters needed by directories and files with `parameters`' cluster size. Throws
    /// `imageBuildFailed` when the FAT16 root directory is too small.
    func clustersNeeded(parameters p: FATParameters) throws(BootMediumError) -> Int {
        if p.type == .fat16 && rootEntryCount > p.rootEntryCount {
            throw BootMediumError(
                .imageBuildFailed, "Too many files in the FAT16 root directory",
                context: ["entries": String(rootEntryCount), "limit": String(p.rootEntryCount)])
        }
        var total = p.type == .fat32 ? clusters(forEntries: rootEntryCount, p) : 0
        for d in directories.dropFirst() { total += clusters(forEntries: d.entryCount, p) }
        for file in files { total += Int((file.size + Int64(p.clusterBytes) - 1) / Int64(p.clusterBytes)) }
        return total
    }

    struct Allocation {
        /// Per directory (index 0 = root; (0, 0) for the FAT16 root).
        var directoryClusters: [(first: Int, count: Int)] = []
        /// Per file; (0, 0) for an empty file.
        var fileClusters: [(first: Int, count: Int)] = []
        var usedClusters = 0
    }

    /// Assigns clusters: FAT32 root, subdirectories, files, contiguously from cluster 2.
    func allocate(parameters p: FATParameters) throws(BootMediumError) -> Allocation {
        let needed = try clustersNeeded(parameters: p)
        guard needed <= p.clusterCount else {
            throw BootMediumError(
                .imageBuildFailed, "The files do not fit the FAT volume",
                context: ["clustersNeeded": String(needed), "clusters": String(p.clusterCount)])
        }
        var result = Allocation()
        var next = 2
        for (i, d) in directories.enumerated() {
            if i == 0 && p.type == .fat16 {
                result.directoryClusters.append((0, 0))
                continue
            }
            let count = clusters(forEntries: i == 0 ? rootEntryCount : d.entryCount, p)
            result.directoryClusters.append((next, count))
            next += count
        }
        for file in files {
            let count = Int((file.size + Int64(p.clusterBytes) - 1) / Int64(p.clusterBytes))
            result.fileClusters.append(count == 0 ? (0, 0) : (next, count))
            next += count
        }
        result.usedClusters = next - 2
        return result
    }

    /// The bytes of every directory (index 0 = root: the FAT16 root region, or its clusters).
    func encodeDirectories(allocation: Allocation, timestamp: FATTimestamp, parameters p: FATParameters) -> [[UInt8]] {
        directories.enumerated().map { (index, directory) in
            var bytes: [UInt8] = []
            let own = allocation.directoryClusters[index].first
            if index == 0 {
                if let label {
                    bytes += DirectoryEntry(
                        name: label, attributes: FATAttributes.volumeLabel, timestamp: timestamp, firstCluster: 0, fileSize: 0
                    ).encode()
                }
            } else {
                let parent = directory.parent == 0 ? 0 : allocation.directoryClusters[directory.parent!].first
                bytes += DirectoryEntry(
                    name: Array(".          ".utf8), attributes: FATAttributes.directory, timestamp: timestamp,
                    firstCluster: UInt32(own), fileSize: 0
                ).encode()
                bytes += DirectoryEntry(
                    name: Array("..         ".utf8), attributes: FATAttributes.directory, timestamp: timestamp,
                    firstCluster: UInt32(parent), fileSize: 0
                ).encode()
            }
            for child in directory.children {
                for entry in child.longName { bytes += entry.encode() }
                let entry: DirectoryEntry
                if let d = child.directory {
                    entry = DirectoryEntry(
                        name: child.shortName, attributes: FATAttributes.directory, caseFlags: child.caseFlags,
                        timestamp: timestamp, firstCluster: UInt32(allocation.directoryClusters[d].first), fileSize: 0)
                } else {
                    let f = child.file!
                    entry = DirectoryEntry(
                        name: child.shortName, attributes: files[f].attributes, caseFlags: child.caseFlags,
                        timestamp: timestamp, firstCluster: UInt32(allocation.fileClusters[f].first),
                        fileSize: UInt32(files[f].size))
                }
                bytes += entry.encode()
            }
            let size =
                index == 0 && p.type == .fat16
                ? p.rootEntryCount * 32 : allocation.directoryClusters[index].count * p.clusterBytes
            return bytes + [UInt8](repeating: 0, count: size - bytes.count)
        }
    }
}
