/// The FAT32 FSInfo sector (sector 1 of a FAT32 volume): free cluster count and next-free hint.
///
/// Layout: `RRaA` (0x41615252) at 0, `rrAa` (0x61417272) at 484, free count at 488, next free at
/// 492, 0xAA550000 at 508; everything else zero.
struct FSInfo: Equatable, Sendable {
    static let leadSignature: UInt32 = 0x4161_5252
    static let structSignature: UInt32 = 0x6141_7272
    static let trailSignature: UInt32 = 0xAA55_0000
    /// "Unknown" for both counters.
    static let unknown: UInt32 = 0xFFFF_FFFF

    /// Free clusters on the volume.
    var freeCount: UInt32
    /// The cluster where a driver should start looking for a free one.
    var nextFree: UInt32

    init(freeCount: UInt32, nextFree: UInt32) {
        self.freeCount = freeCount
        self.nextFree = nextFree
    }

    func encode() -> [UInt8] {
        var s = [UInt8](repeating: 0, count: 512)
        s.putLE32(Self.leadSignature, at: 0)
        s.putLE32(Self.structSignature, at: 484)
        s.putLE32(freeCount, at: 488)
        s.putLE32(nextFree, at: 492)
        s.putLE32(Self.trailSignature, at: 508)
        return s
    }

    /// Decodes an FSInfo sector; throws `invalidImage` when a signature is wrong.
    init(decoding s: [UInt8]) throws(BootMediumError) {
        guard s.count == 512, s.le32(at: 0) == Self.leadSignature, s.le32(at: 484) == Self.structSignature,
            s.le32(at: 508) == Self.trailSignature
        else { throw BootMediumError(.invalidImage, "The FAT32 FSInfo sector has bad signatures") }
        freeCount = s.le32(at: 488)
        nextFree = s.le32(at: 492)
    }
}
