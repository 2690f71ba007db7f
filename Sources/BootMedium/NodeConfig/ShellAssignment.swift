/// One `NAME="value"` line of plnode.txt, which the node *sources* with a POSIX shell as root.
///
/// Decision (BEHAVIOUR.md §2 flaw): unsafe values are **refused**, not escaped. Inside double
/// quotes a POSIX shell treats `"`, `\`, `$` and `` ` `` specially, and a newline or other control
/// character would split or hide a line; the node's boot manager also reads plnode.txt line by
/// line without a shell, so an escape would reach it as a literal backslash. Any such value is
/// `unsafe-value`. Every other character (spaces, `'`, `;`, `&`, `*`, `#`, UTF-8 text, ...) is
/// literal inside double quotes, so `. plnode.txt` yields exactly the original value.
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

    /// Refuses text that is not literal inside double quotes or that holds a control character.
    static func checkLiteral(_ value: String, field: String) throws(BootMediumError) {
        for scalar in value.unicodeScalars {
            let bad =
                scalar == "\"" || scalar == "\\" || scalar == "$" || scalar == "`"
                || scalar.value < 0x20 || scalar.value == 0x7F
                || (0x80...0x9F).contains(scalar.value)
            if bad {
                let shown = scalar.value < 0x20 || scalar.value >= 0x7F
                    ? String(format: "U+%04X", scalar.value) : String(scalar)
                throw BootMediumError(
                    .unsafeValue,
                    "\(field) holds \(shown), which a shell reading plnode.txt would not take literally; refusing to write it",
                    context: ["field": field, "character": shown])
            }
        }
    }
}

import Foundation
