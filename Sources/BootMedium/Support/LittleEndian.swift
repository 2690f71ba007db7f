/// Little-endian field access on byte arrays, the one encoding of every on-disk structure of
/// the FAT, SYSLINUX and MBR code. Offsets are byte offsets; callers check bounds first.
extension Array where Element == UInt8 {
    /// The `UInt16` stored little endian at `offset`.
    func le16(at offset: Int) -> UInt16 {
        UInt16(self[offset]) | UInt16(self[offset + 1]) << 8
    }

    /// The `UInt32` stored little endian at `offset`.
    func le32(at offset: Int) -> UInt32 {
        UInt32(le16(at: offset)) | UInt32(le16(at: offset + 2)) << 16
    }

    /// The `UInt64` stored little endian at `offset`.
    func le64(at offset: Int) -> UInt64 {
        UInt64(le32(at: offset)) | UInt64(le32(at: offset + 4)) << 32
    }

    /// Stores `value` little endian at `offset`.
    mutating func putLE16(_ value: UInt16, at offset: Int) {
        self[offset] = UInt8(truncatingIfNeeded: value)
        self[offset + 1] = UInt8(truncatingIfNeeded: value >> 8)
    }

    /// Stores `value` little endian at `offset`.
    mutating func putLE32(_ value: UInt32, at offset: Int) {
        putLE16(UInt16(truncatingIfNeeded: value), at: offset)
        putLE16(UInt16(truncatingIfNeeded: value >> 16), at: offset + 2)
    }

    /// Stores `value` little endian at `offset`.
    mutating func putLE64(_ value: UInt64, at offset: Int) {
        putLE32(UInt32(truncatingIfNeeded: value), at: offset)
        putLE32(UInt32(truncatingIfNeeded: value >> 32), at: offset + 4)
    }

    /// Copies `bytes` to `offset`.
    mutating func put(_ bytes: [UInt8], at offset: Int) {
        replaceSubrange(offset..<(offset + bytes.count), with: bytes)
    }

    /// The `count` bytes at `offset`.
    func bytes(at offset: Int, count: Int) -> [UInt8] {
        Array(self[offset..<(offset + count)])
    }
}

/// Space-padded fixed-width ASCII fields (OEM name, volume label, FS type).
enum FixedField {
    /// `text` as ASCII, cut or padded with spaces to `width`.
    static func padded(_ text: String, width: Int) -> [UInt8] {
        var bytes = Array(text.utf8.prefix(width))
        bytes += [UInt8](repeating: 0x20, count: width - bytes.count)
        return bytes
    }
}
