/// Byte counts as options take them: digits with an optional `K`, `M` or `G` suffix (binary).
public enum ByteCount {
    /// The bytes `text` names, or `invalid-option` naming `option`.
    public static func parse(_ text: String, option: String) throws(BootMediumError) -> Int64 {
        let units: [Character: Int64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        var digits = Substring(text)
        var unit: Int64 = 1
        if let last = text.last, let known = units[Character(last.uppercased())] {
            unit = known
            digits = digits.dropLast()
        }
        guard let value = Int64(digits), value >= 0, value <= Int64.max / unit else {
            throw BootMediumError(.invalidOption, "\(option) takes a byte count such as 4G, not \(text.debugDescription)")
        }
        return value * unit
    }
}
