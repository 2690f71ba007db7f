/// The geometry of a FAT volume of a given size, chosen the way `mkfs.fat` 4.2 (dosfstools)
/// chooses it with default options, 512-byte sectors and 2 FATs.
///
/// * **FAT type**: FAT32 when the volume is 512 MiB (2^29 bytes) or larger — mkfs.fat's
///   "Auto-selecting FAT32 for large filesystem" — else FAT16. FAT12 is never used: where
///   mkfs.fat would pick FAT12 (FAT16 with 2 KiB clusters would have fewer than 4085 clusters,
///   volumes below ~9 MiB) we keep FAT16 and halve the cluster size (to 1 KiB, then 512 B)
///   until the volume has at least 4085 clusters.
/// * **Cluster size**: FAT16 starts at 4 sectors (2 KiB) and doubles until the cluster count
///   fits the FAT (at most 65518 clusters); FAT32 takes Microsoft's table as mkfs.fat does
///   (≤ 260 MiB: 512 B, ≤ 8 GiB: 4 KiB, ≤ 16 GiB: 8 KiB, ≤ 32 GiB: 16 KiB, else 32 KiB) and
///   doubles while it has fewer than 65529 clusters or too many for its FAT.
/// * **Alignment** (volumes over 8192 sectors): reserved sectors (1 on FAT16, 32 on FAT32),
///   each FAT and the FAT16 root directory (512 entries) are rounded up to whole clusters, so
///   the data area starts cluster aligned; the root directory then holds
///   `aligned sectors × 16` entries.
/// * **Whole tracks**: as mkfs.fat does, the type (and FAT32 cluster size) is chosen from the
///   size given, then the volume is cut down to a whole number of tracks (a no-op for our
///   images: whole MiB, or whole MiB less one track, with 32 sectors per track).
/// * FAT lengths and cluster counts use mkfs.fat's formulas, so the values equal what
///   `mkfs.fat -C IMG KiB` writes for the same size and geometry (checked by a test) where it
///   picks FAT16/32.
struct FATParameters: Equatable, Sendable {
    let type: FATType
    let totalSectors: UInt32
    let sectorsPerCluster: Int
    let reservedSectors: Int
    let fatCount = 2
    let sectorsPerFAT: Int
    /// Root directory entries on FAT16; 0 on FAT32.
    let rootEntryCount: Int
    /// Data clusters (numbered 2 ..< clusterCount + 2).
    let clusterCount: Int

    static let sectorSize = 512
    static let fat32Threshold: UInt64 = 512 * 1024 * 1024
    static let minimumFAT16Clusters = 4085
    static let maximumFAT16Clusters = 65520
    static let minimumFAT32Clusters = 65529
    static let maximumFAT32Clusters = (1 << 28) - 16

    var clusterBytes: Int { sectorsPerCluster * Self.sectorSize }
    var fatStart: Int { reservedSectors }
    var rootDirectorySectors: Int { rootEntryCount * 32 / Self.sectorSize }
    var rootDirectoryStart: Int { reservedSectors + fatCount * sectorsPerFAT }
    var dataStart: Int { rootDirectoryStart + rootDirectorySectors }

    /// The first sector (volume relative) of data cluster `cluster`.
    func sector(ofCluster cluster: Int) -> Int { dataStart + (cluster - 2) * sectorsPerCluster }

    /// The parameters for a volume of `sectors` (cut to whole tracks of `sectorsPerTrack`);
    /// throws `imageBuildFailed` when no FAT16 or FAT32 layout fits (below about 2.2 MiB, or
    /// beyond FAT32's limits).
    init(totalSectors sectors: UInt32, sectorsPerTrack: Int = 32) throws(BootMediumError) {
        let type: FATType = UInt64(sectors) * 512 >= Self.fat32Threshold ? .fat32 : .fat16
        let mib = UInt64(sectors) * 512 / (1024 * 1024)
        let total = Int(sectors) / max(1, sectorsPerTrack) * max(1, sectorsPerTrack)
        let align = total > 8192
        func alignUp(_ value: Int, _ cs: Int) -> Int { align ? (value + cs - 1) & ~(cs - 1) : value }
        func cdiv(_ a: Int, _ b: Int) -> Int { (a + b - 1) / b }
        let reserved0 = type == .fat32 ? 32 : 1
        let rootSectors0 = type == .fat32 ? 0 : 512 * 32 / Self.sectorSize

        var candidates: [Int]
        if type == .fat32 {
            let start = mib > 32 * 1024 ? 64 : mib > 16 * 1024 ? 32 : mib > 8 * 1024 ? 16 : mib > 260 ? 8 : 1
            candidates = Array(sequence(first: start) { $0 < 128 ? $0 * 2 : nil })
        } else {
            candidates = [4, 8, 16, 32, 64, 128, 2, 1]
        }
        for cs in candidates {
            let fatdata32 = total - alignUp(reserved0, cs)
            let fatdata16 = fatdata32 - alignUp(rootSectors0, cs)
            let clusters: Int
            let fatLength: Int
            if type == .fat16 {
                guard fatdata16 > 0 else { continue }
                let estimate = (fatdata16 * 512 + 2 * 4) / (cs * 512 + 2 * 2)
                fatLength = alignUp(cdiv((estimate + 2) * 2, 512), cs)
                clusters = (fatdata16 - 2 * fatLength) / cs
                let maximum = min(fatLength * 512 / 2, Self.maximumFAT16Clusters)
                guard clusters <= maximum - 2, clusters >= Self.minimumFAT16Clusters else { continue }
            } else {
                guard fatdata32 > 0 else { continue }
                let estimate = (fatdata32 * 512 + 2 * 8) / (cs * 512 + 2 * 4)
                fatLength = alignUp(cdiv((estimate + 2) * 4, 512), cs)
                clusters = (fatdata32 - 2 * fatLength) / cs
                let maximum = min(fatLength * 512 / 4, Self.maximumFAT32Clusters)
                guard clusters >= Self.minimumFAT32Clusters, clusters <= maximum else { continue }
            }
            self.type = type
            totalSectors = UInt32(total)
            sectorsPerCluster = cs
            reservedSectors = alignUp(reserved0, cs)
            sectorsPerFAT = fatLength
            rootEntryCount = type == .fat16 ? alignUp(rootSectors0, cs) * (Self.sectorSize / 32) : 0
            clusterCount = clusters
            return
        }
        throw BootMediumError(
            .imageBuildFailed, "No FAT16 or FAT32 layout fits a volume of \(sectors) sectors",
            context: ["sectors": String(total)])
    }
}
