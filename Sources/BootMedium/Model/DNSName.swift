/// Host names as DNS names (RFC 1123 §2.1, RFC 1035 §2.3.4): labels of `A-Z a-z 0-9` with `-`
/// inside (not first or last), 1–63 characters each, at most 253 in all, no empty label (so no
/// leading, trailing or doubled dot).
///
/// A node's hostname becomes a path component through `%n`; a DNS name can hold no `/`, no
/// `..` component and nothing a shell or a terminal would read differently.
enum DNSName {
    /// The longest name, in characters (bytes: all are ASCII), without a trailing dot.
    static let maximumLength = 253
    /// The longest label.
    static let maximumLabelLength = 63

    /// Whether `text` is a DNS name by the rules above.
    static func isValid(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= maximumLength else { return false }
        return bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).allSatisfy(isLabel)
    }

    private static func isLabel(_ label: ArraySlice<UInt8>) -> Bool {
        guard let first = label.first, let last = label.last, label.count <= maximumLabelLength,
            first != UInt8(ascii: "-"), last != UInt8(ascii: "-")
        else { return false }
        return label.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"):
                true
            default: false
            }
        }
    }
}
