/// Saving a renewed key into the node store's text (docs/contract.md §2): the whole document is
/// checked as JSON (RFC 8259) in one pass over its bytes, the record of `nodes` whose `node_id` is
/// the node's is found, and only its `key` value is replaced (or a `key` member inserted first in
/// the record when it has none). Every other byte of the operator's file (formatting, member
/// order, number spellings such as `1e300` or `3.0`, unknown fields) stays as it was; the work is
/// linear in the file's size, with no tree built.
///
/// An ambiguous document is refused, by the same pass that node lookups run (``validate(_:)``):
/// a member name repeated in any object (two readers may keep different values: Python's `json`
/// keeps the last, others the first), two records of `nodes` with the same `node_id` or the same
/// hostname (compared case-insensitively, as lookups compare), two records of `interfaces` with
/// the same `interface_id`. Member names are compared decoded (`"nod\u0065s"` is `nodes`) as
/// Swift strings (canonically equivalent spellings are one name, as for `JSONDecoder`'s keys).
/// A `node_id` or `interface_id` counts only as an integer literal (`12`, not `12.0`; the
/// store compares the decoded ids too, ``JSONNodeStore``).
enum NodeKeyPatch {
    /// Why a document was refused (not JSON, or JSON whose meaning is ambiguous), and at which
    /// byte.
    struct SyntaxError: Error, Equatable {
        let reason: String
        let offset: Int
        /// What repeats, when the document is valid JSON but ambiguous; nil for a syntax error.
        var repeated: Repetition? = nil
    }

    /// A name or id that occurs twice where it must be unique.
    struct Repetition: Equatable {
        /// What kind of name or id repeats.
        enum Kind: String {
            case member, nodeID = "node_id", hostname, interfaceID = "interface_id"
        }
        let kind: Kind
        /// The repeated name or id (a hostname as first spelled).
        let value: String
        /// Where its first occurrence starts (the member name, or the record's `{`).
        let firstOffset: Int
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

    /// Checks `document` the way ``patch(_:nodeID:key:)`` does (strict JSON, nothing repeated),
    /// without looking for a node.
    static func validate(_ document: [UInt8]) throws(SyntaxError) {
        var scanner = JSONSyntaxScanner(document)
        _ = try scanner.findKey(nodeID: nil)
    }

    /// Replaces the key of node `nodeID` in `document` with `key`; an invalid or ambiguous
    /// document is refused before anything is patched.
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

/// One pass over a JSON document's bytes that checks its syntax, refuses what is ambiguous
/// (``NodeKeyPatch``) and remembers where the key of one node's record is.
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

    /// Scans the whole document; the place of the key of node `nodeID` in the `nodes` member of
    /// the top-level object, or nil (always nil without a `nodeID`).
    mutating func findKey(nodeID: Int64?) throws(NodeKeyPatch.SyntaxError) -> KeyPlace? {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { at = 3 }  // a UTF-8 byte order mark
        skipSpace()
        var found: KeyPlace?
        if peek() == UInt8(ascii: "{") {
            topLevelWasObject = true
            try object(depth: 1) { (name: String, scanner: inout JSONSyntaxScanner) throws(NodeKeyPatch.SyntaxError) in
                switch name {
                case "nodes": found = try scanner.nodes(nodeID: nodeID)
                case "interfaces": try scanner.interfaces()
                default: try scanner.value(depth: 2)
                }
            }
        } else {
            try value(depth: 1)
        }
        skipSpace()
        if at != bytes.count { throw fail("unexpected data after the document") }
        return found
    }

    /// The `nodes` member's value: when an array, the key place of the record with `nodeID`;
    /// two records with one `node_id` or one hostname are refused.
    private mutating func nodes(nodeID: Int64?) throws(NodeKeyPatch.SyntaxError) -> KeyPlace? {
        guard peek() == UInt8(ascii: "[") else {
            try value(depth: 2)
            return nil
        }
        var found: KeyPlace?
        var ids = UniqueValues<Int64>(kind: .nodeID)
        var hostnames = UniqueValues<String>(kind: .hostname)
        try array(depth: 2) { (scanner: inout JSONSyntaxScanner) throws(NodeKeyPatch.SyntaxError) in
            guard scanner.peek() == UInt8(ascii: "{") else { return try scanner.value(depth: 3) }
            let brace = scanner.at
            var id: Int64?
            var hostname: String?
            var key: Range<Int>?
            try scanner.object(depth: 3) { (name: String, scanner: inout JSONSyntaxScanner) throws(NodeKeyPatch.SyntaxError) in
                if name == "hostname", scanner.peek() == UInt8(ascii: "\"") {
                    hostname = try scanner.string(decoding: true)
                    return
                }
                let start = scanner.at
                try scanner.value(depth: 4)
                let range = start..<scanner.at
                if name == "node_id" { id = scanner.integer(range) }
                if name == "key" { key = range }
            }
            if let id { try ids.insert(id, shown: String(id), at: brace) }
            // Lookups compare hostnames lowercased: so does the check.
            if let hostname { try hostnames.insert(hostname.lowercased(), shown: hostname, at: brace) }
            if let id, id == nodeID { found = key.map { .value($0) } ?? .insertAfterBrace(brace + 1) }
        }
        return found
    }

    /// The `interfaces` member's value: two records with one `interface_id` are refused.
    private mutating func interfaces() throws(NodeKeyPatch.SyntaxError) {
        guard peek() == UInt8(ascii: "[") else { return try value(depth: 2) }
        var ids = UniqueValues<Int64>(kind: .interfaceID)
        try array(depth: 2) { (scanner: inout JSONSyntaxScanner) throws(NodeKeyPatch.SyntaxError) in
            guard scanner.peek() == UInt8(ascii: "{") else { return try scanner.value(depth: 3) }
            let brace = scanner.at
            var id: Int64?
            try scanner.object(depth: 3) { (name: String, scanner: inout JSONSyntaxScanner) throws(NodeKeyPatch.SyntaxError) in
                let start = scanner.at
                try scanner.value(depth: 4)
                if name == "interface_id" { id = scanner.integer(start..<scanner.at) }
            }
            if let id { try ids.insert(id, shown: String(id), at: brace) }
        }
    }

    /// Values that must not repeat, with where each was first seen.
    private struct UniqueValues<Value: Hashable> {
        let kind: NodeKeyPatch.Repetition.Kind
        private var seen: [Value: (shown: String, offset: Int)] = [:]

        init(kind: NodeKeyPatch.Repetition.Kind) { self.kind = kind }

        mutating func insert(_ value: Value, shown: String, at offset: Int) throws(NodeKeyPatch.SyntaxError) {
            if let first = seen.updateValue((shown, offset), forKey: value) {
                let named = kind == .hostname ? first.shown.debugDescription : first.shown
                throw NodeKeyPatch.SyntaxError(
                    reason: "\(kind.rawValue) \(named) is repeated (first at byte \(first.offset))",
                    offset: offset,
                    repeated: NodeKeyPatch.Repetition(kind: kind, value: first.shown, firstOffset: first.offset))
            }
        }
    }

    /// The member names of the objects being scanned, innermost last, with where each was read:
    /// one buffer for all objects (no allocation per object). An object compares a new name with
    /// its own names in this buffer; past 16 names it keeps them in a dictionary instead, so a
    /// huge object stays linear.
    private var openNames: [(name: String, offset: Int)] = []

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
    /// and must leave `at` just past that value. A name repeated in the object is refused.
    private mutating func object(
        depth: Int, member: (String, inout JSONSyntaxScanner) throws(NodeKeyPatch.SyntaxError) -> Void
    ) throws(NodeKeyPatch.SyntaxError) {
        let base = openNames.count
        var many: [String: Int]?
        try items(depth: depth, open: UInt8(ascii: "{"), close: UInt8(ascii: "}")) {
            (scanner: inout JSONSyntaxScanner) throws(NodeKeyPatch.SyntaxError) in
            guard scanner.peek() == UInt8(ascii: "\"") else { throw scanner.fail("expected a member name") }
            let start = scanner.at
            let name = try scanner.string(decoding: true)
            var earlier: Int?
            if many == nil {
                earlier = scanner.openNames[base...].first { $0.name == name }?.offset
                if scanner.openNames.count - base < 16 {
                    scanner.openNames.append((name, start))
                } else {
                    many = Dictionary(uniqueKeysWithValues: scanner.openNames[base...].map { ($0.name, $0.offset) })
                    scanner.openNames.removeSubrange(base...)
                }
            }
            if many != nil, earlier == nil { earlier = many!.updateValue(start, forKey: name) }
            if let first = earlier {
                throw NodeKeyPatch.SyntaxError(
                    reason: "member name \(name.debugDescription) is repeated in one object (first at byte \(first))",
                    offset: start, repeated: NodeKeyPatch.Repetition(kind: .member, value: name, firstOffset: first))
            }
            scanner.skipSpace()
            try scanner.expect(UInt8(ascii: ":"))
            scanner.skipSpace()
            try member(name, &scanner)
        }
        openNames.removeSubrange(base...)  // this object's names (nested objects removed theirs)
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
