/// One `NAME="value"` line of plnode.txt, which the node *sources* with a POSIX shell as root.
///
/// Decision (docs/behaviour.md §2 flaw): unsafe values are **refused**, not escaped. Inside double
/// quotes a POSIX shell treats `"`, `\`, `$` and `` ` `` specially, and a newline or other control
/// character would split or hide a line (so would U+2028, U+2029 for other line readers, and
/// bidi controls or U+FEFF hide text: ``checkLiteral(_:field:)``); the node's boot manager also
/// reads plnode.txt line by line without a shell, so an escape would reach it as a literal
/// backslash. Any such value is `unsafe-value`. Every other character (spaces, `'`, `;`, `&`,
/// `*`, `#`, UTF-8 text, ...) is literal inside double quotes, so `. plnode.txt` yields exactly
/// the original value.
/// Variable names must be shell identifiers (`[A-Z_][A-Z0-9_]*`), else `unsafe-value` too.
struct ShellAssignment {
    let name: String
    let value: String

    /// Builds the assignment, refusing a name or value a shell would not read back literally.
    /// `field` names the value's origin in the error (`setting wireless/essid`, `hostname`...).
    init(_ name: String, _ value: String, field: String) throws(BootMediumError) {
        guard Self.isIdentifier(name) else {
            throw BootMediumError(
                .unsafeValue,
                "\(field): \(name.debugDescription) is not a valid shell variable name",
                context: ["field": field, "name": name])
        }
        try Self.checkLiteral(value, field: field)
        self.name = name
        self.value = value
    }

    /// The line, with its newline.
    var line: String { "\(name)=\"\(value)\"\n" }

    static func isIdentifier(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || ("A"..."Z").contains(first)
        else { return false }
        return name.unicodeScalars.allSatisfy {
            $0 == "_" || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
        }
    }

    /// Refuses text that is not literal inside double quotes, that holds a control character, or
    /// that would look different from what it is: a line or paragraph separator (U+0085, U+2028,
    /// U+2029: a line-splitting reader such as Python's `str.splitlines()` sees another line), a
    /// byte order mark (U+FEFF) or a bidirectional control (U+061C, U+200E, U+200F,
    /// U+202A–U+202E, U+2066–U+2069), which reorder or hide text in front of the operator
    /// reading the file.
    static func checkLiteral(_ value: String, field: String) throws(BootMediumError) {
        for scalar in value.unicodeScalars where isUnsafe(scalar) {
            let shown = scalar.isASCII && scalar.value >= 0x20 && scalar.value != 0x7F
                ? String(scalar) : codePoint(scalar)
            throw BootMediumError(
                .unsafeValue,
                "\(field) holds \(shown), which a shell reading plnode.txt would not take literally; refusing to write it",
                context: ["field": field, "character": shown])
        }
    }

    private static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x22, 0x5C, 0x24, 0x60: true  // " \ $ `
        case 0x00...0x1F, 0x7F, 0x80...0x9F: true  // C0, DEL, C1 (U+0085 NEL among them)
        case 0x2028, 0x2029: true  // line and paragraph separators
        case 0xFEFF: true  // byte order mark, zero-width no-break space
        case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true  // bidi controls
        default: false
        }
    }

    /// `U+XXXX` (at least four upper-case hex digits).
    static func codePoint(_ scalar: Unicode.Scalar) -> String {
        let hex = String(scalar.value, radix: 16, uppercase: true)
        return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }
}
