/// Saving a renewed key into the node store's text (CONTRACT.md §2): the whole document is
/// checked as JSON (RFC 8259) in one pass over its bytes, the record of `nodes` whose `node_id` is
/// the node's is found, and only its `key` value is replaced (or a `key` member inserted first in
/// the record when it has none). Every other byte of the operator's file (formatting, member
/// order, number spellings such as `1e300` or `3.0`, unknown fields) stays as it was; the work is
/// linear in the file's size, with no tree built.
///
/// Member names are compared decoded (`"nod\u0065s"` is `nodes`); where a name repeats in an
/// object the last one counts, as in Python's `json`. A `node_id` matches only as an integer
/// literal (`12`, not `12.0`).
enum NodeKeyPatch {
    /// Why a document was refused, and at which byte.
    struct SyntaxError: Error, Equatable {
        let reason: String
        let offset: Int
    }

    /// What the scan found.
    enum Outcome: Equatable {
        /// The patched document.
        case patched([UInt8])
        /// The document is valid JSON but its top level is not an object.
        case notAnObject
        /// No record of `nodes` has this `node_id`.
        case noSuchNode
    }

    /// Nesting deeper than this is refused (a hostile file cannot exhaust the stack).
    static let maximumDepth = 512

    /// Replaces the key of node `nodeID` in `document` with `key`.
    static func patch(_ document: [UInt8], nodeID: Int64, key: String) throws(SyntaxError) -> Outcome {
        var scanner = JSONSyntaxScanner(document)
        guard let found = try scanner.findKey(nodeID: nodeID) else {
            return scanner.topLevelWasObject ? .noSuchNode : .notAnObject
        }
        let value = Array(encodeString(key).utf8)
        var out = document
        switch found {
        case .value(let range): out.replaceSubrange(range, with: value)
        case .insertAfterBrace(let at): out.insert(contentsOf: Array("\"key\": ".utf8) + value + Array(", ".utf8), at: at)
        }
        return .patched(out)
    }

    /// `text` as a JSON string literal: `"` and `\` escaped, control characters as `\u00XX`,
    /// everything else as UTF-8.
    static func encodeString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// One pass over a JSON document's bytes that checks its syntax and remembers where the key of
/// one node's record is (``NodeKeyPatch``).
struct JSONSyntaxScanner {
    /// Where the new key goes.
    enum KeyPlace: Equatable {
        /// The byte range of the existing `key` value.
        case value(Range<Int>)
        /// No `key` member: insert one right after the record's `{` at this offset.
        case insertAfterBrace(Int)
    }

    private let bytes: [UInt8]
    private var at = 0
    /// Whether the document's top level was an object (valid after a scan).
    private(set) var topLevelWasObject = false

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Scans the whole document; the place of the key of node `nodeID` in the last `nodes`
    /// member of the top-level object, or nil.
    mutating func findKey(nodeID: Int64) throws(NodeKeyPatch.SyntaxError) -> KeyPlace? {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { at = 3 }  // a UTF-8 byte order mark
        skipSpace()
        var found: KeyPlace?
        if peek() == UInt8(ascii: "{") {
            topLevelWasObject = true
            try object(depth: 1) { (name: String, scanner: inout JSONSyntaxScanner) throws(NodeKeyPatch.SyntaxError) in
                guard name == "nodes" else { return try scanner.value(depth: 2) }
                found = try scanner.nodes(nodeID: nodeID)
            }
        } else {
            try value(depth: 1)
        }
        skipSpace()
        if at != bytes.count { throw fail("unexpected data after the document") }
        return found
    }

    /// The `nodes` member's value: when an array, the key place of the last record with `nodeID`.
    private mutating func nodes(nodeID: Int64) throws(NodeKeyPatch.SyntaxError) -> KeyPlace? {
        guard peek() == UInt8(ascii: "[") else {
            try value(depth: 2)
            return nil
        }
        var found: KeyPlace?
        try array(depth: 2) { (scanner: inout JSONSyntaxScanner) throws(NodeKeyPatch.SyntaxError) in
            guard scanner.peek() == UInt8(ascii: "{") else { return try scanner.value(depth: 3) }
            let brace = scanner.at
            var id: Int64?
            var key: Range<Int>?
            try scanner.object(depth: 3) { (name: String, scanner: inout JSONSyntaxScanner) throws(NodeKeyPatch.SyntaxError) in
                let start = scanner.at
                try scanner.value(depth: 4)
                let range = start..<scanner.at
                if name == "node_id" { id = scanner.integer(range) }
                if name == "key" { key = range }
            }
            if let id, id == nodeID { found = key.map { .value($0) } ?? .insertAfterBrace(brace + 1) }
        }
        return found
    }

    /// The value of an integer literal (no fraction, no exponent) spelled at `range`, or nil.
    private func integer(_ range: Range<Int>) -> Int64? {
        let text = bytes[range]
        guard text.allSatisfy({ $0 == UInt8(ascii: "-") || ($0 >= 0x30 && $0 <= 0x39) }) else { return nil }
        return Int64(String(decoding: text, as: UTF8.self))
    }

    // MARK: - Grammar

    private func fail(_ reason: String) -> NodeKeyPatch.SyntaxError {
        NodeKeyPatch.SyntaxError(reason: reason, offset: at)
    }

    private func peek() -> UInt8? { at < bytes.count ? bytes[at] : nil }

    private mutating func skipSpace() {
        while at < bytes.count, bytes[at] == 0x20 || bytes[at] == 0x0A || bytes[at] == 0x0D || bytes[at] == 0x09 {
            at += 1
        }
    }

    private mutating func expect(_ byte: UInt8) throws(NodeKeyPatch.SyntaxError) {
        guard peek() == byte else { throw fail("expected '\(Character(Unicode.Scalar(byte)))'") }
        at += 1
    }

    /// Any value, skipped after checking it; leaves `at` just past it.
    private mutating func value(depth: Int) throws(NodeKeyPatch.SyntaxError) {
        guard let byte = peek() else { throw fail("unexpected end of the document") }
        switch byte {
        case UInt8(ascii: "{"): try object(depth: depth) { (_: String, scanner: inout JSONSyntaxScanner) throws(NodeKeyPatch.SyntaxError) in try scanner.value(depth: depth + 1) }
        case UInt8(ascii: "["): try array(depth: depth) { (scanner: inout JSONSyntaxScanner) throws(NodeKeyPatch.SyntaxError) in try scanner.value(depth: depth + 1) }
        case UInt8(ascii: "\""): _ = try string(decoding: false)
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
        default: throw fail("unexpected character")
        }
    }

    /// An object at `at`; `member` is called with each decoded name, positioned at its value,
    /// and must leave `at` just past that value.
    private mutating func object(
        depth: Int, member: (String, inout JSONSyntaxScanner) throws(NodeKeyPatch.SyntaxError) -> Void
    ) throws(NodeKeyPatch.SyntaxError) {
        try items(depth: depth, open: UInt8(ascii: "{"), close: UInt8(ascii: "}")) {
            (scanner: inout JSONSyntaxScanner) throws(NodeKeyPatch.SyntaxError) in
            guard scanner.peek() == UInt8(ascii: "\"") else { throw scanner.fail("expected a member name") }
            let name = try scanner.string(decoding: true)
            scanner.skipSpace()
            try scanner.expect(UInt8(ascii: ":"))
            scanner.skipSpace()
            try member(name, &scanner)
        }
    }

    /// An array at `at`; `element` is called positioned at each element and must leave `at`
    /// just past it.
    private mutating func array(
        depth: Int, element: (inout JSONSyntaxScanner) throws(NodeKeyPatch.SyntaxError) -> Void
    ) throws(NodeKeyPatch.SyntaxError) {
        try items(depth: depth, open: UInt8(ascii: "["), close: UInt8(ascii: "]"), item: element)
    }

    /// `open`, then `item`s separated by commas (none at all allowed), then `close`.
    private mutating func items(
        depth: Int, open: UInt8, close: UInt8, item: (inout JSONSyntaxScanner) throws(NodeKeyPatch.SyntaxError) -> Void
    ) throws(NodeKeyPatch.SyntaxError) {
        guard depth <= NodeKeyPatch.maximumDepth else { throw fail("nested too deeply") }
        try expect(open)
        skipSpace()
        if peek() == close {
            at += 1
            return
        }
        while true {
            skipSpace()
            try item(&self)
            skipSpace()
            if peek() == UInt8(ascii: ",") {
                at += 1
                continue
            }
            try expect(close)
            return
        }
    }

    private mutating func literal(_ word: StaticString) throws(NodeKeyPatch.SyntaxError) {
        let count = word.utf8CodeUnitCount
        guard at + count <= bytes.count,
            word.withUTF8Buffer({ bytes[at..<(at + count)].elementsEqual($0) })
        else { throw fail("unexpected character") }
        at += count
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    private mutating func number() throws(NodeKeyPatch.SyntaxError) {
        func digits(_ scanner: inout JSONSyntaxScanner) throws(NodeKeyPatch.SyntaxError) {
            guard let d = scanner.peek(), d >= 0x30, d <= 0x39 else { throw scanner.fail("expected a digit") }
            while let d = scanner.peek(), d >= 0x30, d <= 0x39 { scanner.at += 1 }
        }
        if peek() == UInt8(ascii: "-") { at += 1 }
        if peek() == UInt8(ascii: "0") {
            at += 1
        } else {
            try digits(&self)
        }
        if peek() == UInt8(ascii: ".") {
            at += 1
            try digits(&self)
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            at += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { at += 1 }
            try digits(&self)
        }
    }

    /// A string at `at`: checked (escapes, no raw control characters, valid UTF-8) and, when
    /// `decoding`, returned decoded (else "").
    private mutating func string(decoding: Bool) throws(NodeKeyPatch.SyntaxError) -> String {
        try expect(UInt8(ascii: "\""))
        let start = at
        var escaped = false
        var ascii = true
        while true {
            guard let byte = peek() else { throw fail("unterminated string") }
            if byte == UInt8(ascii: "\"") { break }
            if byte < 0x20 { throw fail("control character in a string") }
            if byte >= 0x80 { ascii = false }
            at += 1
            guard byte == UInt8(ascii: "\\") else { continue }
            escaped = true
            guard let kind = peek() else { throw fail("unterminated string") }
            at += 1
            switch kind {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                continue
            case UInt8(ascii: "u"):
                guard at + 4 <= bytes.count, bytes[at..<(at + 4)].allSatisfy(Self.isHexDigit) else {
                    throw fail("invalid \\u escape in a string")
                }
                at += 4
            default:
                throw fail("invalid escape in a string")
            }
        }
        let contents = bytes[start..<at]
        var text = ""
        if !ascii || decoding {
            // Decoding repairs invalid UTF-8 (with U+FFFD): the bytes come back unchanged only
            // when they were valid.
            text = String(decoding: contents, as: UTF8.self)
            if !ascii && !text.utf8.elementsEqual(contents) { throw fail("invalid UTF-8 in a string") }
        }
        at += 1
        guard decoding else { return "" }
        return escaped ? Self.unescape(text) : text
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x66)
    }

    /// The text of a checked string literal's contents; a lone surrogate escape becomes U+FFFD.
    private static func unescape(_ raw: String) -> String {
        var out = String.UnicodeScalarView()
        var units = Array(raw.utf8)[...]
        func take(_ count: Int) -> ArraySlice<UInt8> {
            defer { units = units.dropFirst(count) }
            return units.prefix(count)
        }
        while let byte = units.first {
            guard byte == UInt8(ascii: "\\") else {
                // One UTF-8 sequence, copied (the whole literal was checked as UTF-8).
                let length = byte < 0x80 ? 1 : byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : 2
                out.append(contentsOf: String(decoding: take(length), as: UTF8.self).unicodeScalars)
                continue
            }
            let kind = take(2).last!
            let simple: Unicode.Scalar? =
                switch kind {
                case UInt8(ascii: "b"): "\u{8}"
                case UInt8(ascii: "f"): "\u{C}"
                case UInt8(ascii: "n"): "\n"
                case UInt8(ascii: "r"): "\r"
                case UInt8(ascii: "t"): "\t"
                case UInt8(ascii: "u"): nil
                default: Unicode.Scalar(kind)  // " \\ /
                }
            if let simple {
                out.append(simple)
                continue
            }
            let unit = UInt32(String(decoding: take(4), as: UTF8.self), radix: 16)!
            switch unit {
            case 0xD800...0xDBFF:
                // A high surrogate pairs with a low one escaped right after it.
                if units.count >= 6, units.first == UInt8(ascii: "\\"), units.dropFirst().first == UInt8(ascii: "u"),
                    let low = UInt32(String(decoding: units.dropFirst(2).prefix(4), as: UTF8.self), radix: 16),
                    (0xDC00...0xDFFF).contains(low)
                {
                    _ = take(6)
                    out.append(Unicode.Scalar(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))!)
                } else {
                    out.append("\u{FFFD}")
                }
            case 0xDC00...0xDFFF:
                out.append("\u{FFFD}")
            default:
                out.append(Unicode.Scalar(unit)!)
            }
        }
        return String(out)
    }
}
