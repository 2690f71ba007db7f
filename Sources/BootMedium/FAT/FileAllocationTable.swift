/// One file allocation table: an entry per cluster (2 reserved entries first), 16 or 32 bits
/// each, little endian. FAT32 entries keep their top 4 bits (reserved) at zero.
struct FileAllocationTable: Equatable, Sendable {
    let type: FATType
    /// Entry `n` describes cluster `n`; `entries.count == clusterCount + 2`.
    private(set) var entries: [UInt32]

    /// End of chain as written here (and by Linux): 0xFFFF / 0x0FFFFFFF.
    var endOfChain: UInt32 { type == .fat16 ? 0xFFFF : 0x0FFF_FFFF }
    /// Values at or above this end a chain (0xFFF8 / 0x0FFFFFF8).
    var endOfChainMinimum: UInt32 { type == .fat16 ? 0xFFF8 : 0x0FFF_FFF8 }
    private var entrySize: Int { type == .fat16 ? 2 : 4 }
    private var mask: UInt32 { type == .fat16 ? 0xFFFF : 0x0FFF_FFFF }

    /// An empty table for `clusterCount` data clusters: entry 0 = media byte with all other bits
    /// set, entry 1 = end of chain (as mkfs.fat writes them); everything else free.
    init(type: FATType, clusterCount: Int, media: UInt8 = 0xF8) {
        self.type = type
        entries = [UInt32](repeating: 0, count: clusterCount + 2)
        let high: UInt32 = type == .fat16 ? 0xFF00 : 0x0FFF_FF00
        entries[0] = high | UInt32(media)
        entries[1] = endOfChain
    }

    var clusterCount: Int { entries.count - 2 }

    subscript(cluster: Int) -> UInt32 {
        get { entries[cluster] }
        set { entries[cluster] = newValue & mask }
    }

    /// Links `count` clusters from `first` into one chain ending in end-of-chain.
    mutating func allocateChain(first: Int, count: Int) {
        precondition(count > 0 && first >= 2 && first + count <= entries.count)
        for cluster in first..<(first + count - 1) { entries[cluster] = UInt32(cluster + 1) }
        entries[first + count - 1] = endOfChain
    }

    /// The clusters of the chain that starts at `first`, in order. Throws `invalidImage` on a
    /// loop, a free or out-of-range link.
    func chain(from first: Int) throws(BootMediumError) -> [Int] {
        var result: [Int] = []
        var cluster = first
        while true {
            guard cluster >= 2, cluster < entries.count, result.count < clusterCount else {
                throw BootMediumError(.invalidImage, "A FAT cluster chain is broken", context: ["cluster": String(cluster)])
            }
            result.append(cluster)
            let next = entries[cluster]
            if next >= endOfChainMinimum { return result }
            cluster = Int(next)
        }
    }

    /// Free (zero) entries among the data clusters.
    var freeCount: Int { entries.dropFirst(2).reduce(0) { $0 + ($1 == 0 ? 1 : 0) } }

    /// The table as stored: `sectors` × 512 bytes, zero beyond the last entry.
    func encode(sectors: Int) -> [UInt8] {
        precondition(sectors * 512 >= entries.count * entrySize)
        var bytes = [UInt8](repeating: 0, count: sectors * 512)
        if type == .fat16 {
            for (i, value) in entries.enumerated() { bytes.putLE16(UInt16(value), at: 2 * i) }
        } else {
            for (i, value) in entries.enumerated() { bytes.putLE32(value, at: 4 * i) }
        }
        return bytes
    }

    /// Reads the first `clusterCount + 2` entries of a stored table.
    init(decoding bytes: [UInt8], type: FATType, clusterCount: Int) throws(BootMediumError) {
        self.type = type
        let size = type == .fat16 ? 2 : 4
        guard bytes.count >= (clusterCount + 2) * size else {
            throw BootMediumError(.invalidImage, "The FAT is too short for its clusters")
        }
        entries = (0..<(clusterCount + 2)).map { i in
            type == .fat16 ? UInt32(bytes.le16(at: 2 * i)) : bytes.le32(at: 4 * i) & 0x0FFF_FFFF
        }
    }
}
