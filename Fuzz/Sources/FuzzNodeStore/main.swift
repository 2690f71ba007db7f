// The node store's strict JSON check and key patch (NodeKeyPatch) and the whole-store
// validation of a lookup (JSONNodeStore.document(from:path:)) on hostile store bytes.
//
// Input: byte 0 = n, the next n bytes the key to save (UTF-8, lossily), the rest the store.
//
// The documents are also read by an independent reading of NodeKeyPatch's documented rules
// (`Reading` below: RFC 8259, a leading UTF-8 BOM, nesting up to 512, member names compared
// decoded as Swift strings, unique node_id (integer literals) and hostname (lowercased) among
// the records of the top-level `nodes`, unique interface_id among those of `interfaces`).
// Properties besides "no crash, no hang":
// - validate, patch and that reading agree on what is refused (patch with the very error of
//   validate); a document the store accepts passes validate;
// - a patch of node N is exactly the input with the `key` value of N's record replaced by the
//   key's JSON string (or `"key": <string>, ` inserted right after the record's `{` when it has
//   none); `.notAnObject` and `.noSuchNode` exactly when the top level is no object or no
//   record has N as an integer `node_id`;
// - the patched document validates again, and its record's key decodes (JSONSerialization,
//   JSONDecoder, the independent reading) to exactly the key; a store the lookups accepted
//   still is, with only that node's key changed;
// - a valid document made ambiguous (a member, a node record or the `nodes` member repeated)
//   is refused by validate, patch and the store alike.
import Foundation
import FuzzSupport

@testable import BootMedium

/// A key with every character class the encoder treats specially.
let trickyKey = "k\"\\/\u{0}\u{1F}\n\r\t\u{7F} é e\u{301} \u{2028}\u{FEFF}\u{202E}😀\u{FFFD}"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNodeStore(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = fuzzBytes(data, size)
    let keyLength = min(Int(input.first ?? 0), max(0, input.count - 1))
    let key = String(decoding: input.dropFirst().prefix(keyLength), as: UTF8.self)
    let document = Array(input.dropFirst(1 + keyLength))
    check(document, keys: [key, trickyKey], variants: true)
    return 0
}

func check(_ document: [UInt8], keys: [String], variants: Bool) {
    let reading = Reading.read(document)
    var validateError: NodeKeyPatch.SyntaxError?
    do throws(NodeKeyPatch.SyntaxError) {
        try NodeKeyPatch.validate(document)
    } catch {
        validateError = error
    }
    if (validateError == nil) != (reading != nil) {
        fatalError("validate \(validateError.map { "refused (\($0))" } ?? "accepted"), the reading \(reading == nil ? "refuses" : "accepts")")
    }
    var store: JSONNodeStore.Document?
    do throws(BootMediumError) {
        store = try JSONNodeStore.document(from: document, path: "/nodes.json")
    } catch {
        if error.code != .invalidNodeStore { fatalError("the store threw \(error)") }
        _ = error.description
    }
    if store != nil, validateError != nil { fatalError("the store accepted what validate refuses") }

    // The ids to patch: the records' (up to 4), ids only the decoder sees (`12.0`), an absent one.
    var ids: [Int64] = []
    for record in reading?.records ?? [] where record.id != nil && !ids.contains(record.id!) && ids.count < 4 { ids.append(record.id!) }
    for node in store?.nodes ?? [] where !ids.contains(Int64(node.nodeID)) && ids.count < 6 { ids.append(Int64(node.nodeID)) }
    ids.append(ids.max().map { $0 == .max ? .min : $0 + 1 } ?? 1)

    for (index, id) in ids.enumerated() {
        for key in index == 0 ? keys : [keys[0]] {
            checkPatch(document, id: id, key: key, reading: reading, validateError: validateError, store: store)
        }
    }

    // Ambiguous variants of a valid document.
    guard variants, let reading, reading.topLevelIsObject else { return }
    var ambiguous: [[UInt8]] = []
    func repeating(_ range: Range<Int>) -> [UInt8] {
        var copy = document
        copy.insert(contentsOf: Array(", ".utf8) + document[range], at: range.upperBound)
        return copy
    }
    for member in reading.firstMembers.prefix(3) { ambiguous.append(repeating(member)) }
    if let record = reading.records.first(where: { $0.id != nil }) { ambiguous.append(repeating(record.range)) }
    if let nodes = reading.nodesMember { ambiguous.append(repeating(nodes)) }
    for copy in ambiguous {
        if Reading.read(copy) != nil { fatalError("the reading accepts a repetition") }
        var refused = false
        do throws(NodeKeyPatch.SyntaxError) { try NodeKeyPatch.validate(copy) } catch {
            refused = error.repeated != nil
        }
        if !refused { fatalError("validate did not refuse a repetition as one: \(String(decoding: copy, as: UTF8.self).debugDescription)") }
        for id in ids {
            if let outcome = try? NodeKeyPatch.patch(copy, nodeID: id, key: keys[0]) { fatalError("patched a repetition: \(outcome)") }
        }
        if (try? JSONNodeStore.document(from: copy, path: "/nodes.json")) != nil { fatalError("the store accepted a repetition") }
    }
}

func checkPatch(
    _ document: [UInt8], id: Int64, key: String, reading: Reading?, validateError: NodeKeyPatch.SyntaxError?,
    store: JSONNodeStore.Document?
) {
    let outcome: NodeKeyPatch.Outcome
    do throws(NodeKeyPatch.SyntaxError) {
        outcome = try NodeKeyPatch.patch(document, nodeID: id, key: key)
    } catch {
        if error != validateError { fatalError("patch refused with \(error), validate with \(String(describing: validateError))") }
        return
    }
    guard let reading else { fatalError("patched a document validate refuses: \(outcome)") }
    let value = Array(NodeKeyPatch.encodeString(key).utf8)
    let expected: NodeKeyPatch.Outcome
    if !reading.topLevelIsObject {
        expected = .notAnObject
    } else if let record = reading.records.first(where: { $0.id == id }) {
        var out = document
        if let range = record.key {
            out.replaceSubrange(range, with: value)
        } else {
            out.insert(contentsOf: Array("\"key\": ".utf8) + value + Array(", ".utf8), at: record.range.lowerBound + 1)
        }
        expected = .patched(out)
    } else {
        expected = .noSuchNode
    }
    guard outcome == expected else { fatalError("patch of node \(id): \(outcome), expected \(expected)") }
    guard case .patched(let out) = outcome else { return }

    do throws(NodeKeyPatch.SyntaxError) { try NodeKeyPatch.validate(out) } catch {
        fatalError("the patched document does not validate: \(error)")
    }
    guard let again = Reading.read(out), let record = again.records.first(where: { $0.id == id }), let range = record.key,
        Array(out[range]) == value, again.decodedKeys[range.lowerBound]?.unicodeScalars.elementsEqual(key.unicodeScalars) == true
    else { fatalError("the patched record's key does not read back") }
    // The key's JSON string decodes to exactly the key.
    guard let decoded = (try? JSONSerialization.jsonObject(with: Data(value), options: .fragmentsAllowed)) as? String,
        decoded.unicodeScalars.elementsEqual(key.unicodeScalars)
    else { fatalError("JSONSerialization reads \(String(decoding: value, as: UTF8.self)) as another string than \(key.debugDescription)") }
    guard let list = try? JSONDecoder().decode([String].self, from: Data(Array("[".utf8) + value + Array("]".utf8))), list.count == 1,
        list[0].unicodeScalars.elementsEqual(key.unicodeScalars)
    else { fatalError("JSONDecoder reads \(String(decoding: value, as: UTF8.self)) as another string than \(key.debugDescription)") }

    // A store the lookups accepted: still accepted, only node `id`'s key changed.
    guard let store else { return }
    let patched: JSONNodeStore.Document
    do throws(BootMediumError) {
        patched = try JSONNodeStore.document(from: out, path: "/nodes.json")
    } catch {
        fatalError("the store refuses the patched store: \(error)")
    }
    var expectedNodes = store.nodes ?? []
    guard let index = expectedNodes.firstIndex(where: { Int64($0.nodeID) == id }) else { fatalError("patched a node the store does not have") }
    expectedNodes[index].key = key
    let nodes = patched.nodes ?? []
    guard nodes == expectedNodes, nodes[index].key?.unicodeScalars.elementsEqual(key.unicodeScalars) == true,
        patched.interfaces == store.interfaces
    else { fatalError("the patch changed more than node \(id)'s key") }
}

/// An independent reading of a node store under NodeKeyPatch's documented rules; nil for a
/// document it refuses (invalid JSON, or ambiguous).
struct Reading {
    struct Record {
        /// The `node_id`, when an integer literal within Int64.
        var id: Int64?
        /// The record, `{` to `}`.
        var range: Range<Int>
        /// The value of its `key` member.
        var key: Range<Int>?
    }
    var topLevelIsObject = false
    /// The records (objects) of the top-level `nodes` array.
    var records: [Record] = []
    /// The first member (name to value) of the first few objects.
    var firstMembers: [Range<Int>] = []
    /// The top-level `nodes` member, name to value.
    var nodesMember: Range<Int>?
    /// The decoded `key` strings of node records, by where their value starts.
    var decodedKeys: [Int: String] = [:]

    static func read(_ bytes: [UInt8]) -> Reading? {
        var parser = Parser(bytes: bytes)
        do {
            try parser.document()
            return parser.reading
        } catch {
            return nil
        }
    }
}

struct Refused: Error {}

private enum Role { case top, nodes, interfaces, other }

private struct Parser {
    let bytes: [UInt8]
    var at = 0
    var reading = Reading()

    init(bytes: [UInt8]) { self.bytes = bytes }

    var peek: UInt8? { at < bytes.count ? bytes[at] : nil }

    mutating func space() {
        while let b = peek, b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D { at += 1 }
    }

    mutating func document() throws {
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { at = 3 }
        space()
        reading.topLevelIsObject = peek == UInt8(ascii: "{")
        try value(depth: 1, role: .top)
        space()
        if at != bytes.count { throw Refused() }
    }

    mutating func value(depth: Int, role: Role) throws {
        guard let byte = peek else { throw Refused() }
        switch byte {
        case UInt8(ascii: "{"): try object(depth: depth, role: role)
        case UInt8(ascii: "["): try array(depth: depth, role: role)
        case UInt8(ascii: "\""): _ = try string()
        case UInt8(ascii: "t"): try word("true")
        case UInt8(ascii: "f"): try word("false")
        case UInt8(ascii: "n"): try word("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
        default: throw Refused()
        }
    }

    mutating func word(_ text: String) throws {
        let w = Array(text.utf8)
        guard bytes.count - at >= w.count, Array(bytes[at..<(at + w.count)]) == w else { throw Refused() }
        at += w.count
    }

    mutating func number() throws {
        if peek == UInt8(ascii: "-") { at += 1 }
        func digits(_ p: inout Parser) throws {
            guard let d = p.peek, (0x30...0x39).contains(d) else { throw Refused() }
            while let d = p.peek, (0x30...0x39).contains(d) { p.at += 1 }
        }
        if peek == UInt8(ascii: "0") { at += 1 } else { try digits(&self) }
        if peek == UInt8(ascii: ".") {
            at += 1
            try digits(&self)
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            at += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { at += 1 }
            try digits(&self)
        }
    }

    /// A string, decoded; `\u` escapes of surrogates pair up, a lone one is U+FFFD.
    mutating func string() throws -> String {
        guard peek == UInt8(ascii: "\"") else { throw Refused() }
        at += 1
        var raw: [UInt8] = []
        var scalars: [Unicode.Scalar] = []
        var pendingHigh: UInt32?
        func flushRaw() throws {
            guard !raw.isEmpty else { return }
            guard let text = String(validating: raw, as: UTF8.self) else { throw Refused() }
            scalars += text.unicodeScalars
            raw = []
        }
        func flushHigh() {
            if pendingHigh != nil { scalars.append("\u{FFFD}") }
            pendingHigh = nil
        }
        while true {
            guard let b = peek else { throw Refused() }
            at += 1
            if b == UInt8(ascii: "\"") { break }
            if b < 0x20 { throw Refused() }
            if b != UInt8(ascii: "\\") {
                flushHigh()
                raw.append(b)
                continue
            }
            try flushRaw()
            guard let e = peek else { throw Refused() }
            at += 1
            let simple: Unicode.Scalar? =
                switch e {
                case UInt8(ascii: "\""): "\""
                case UInt8(ascii: "\\"): "\\"
                case UInt8(ascii: "/"): "/"
                case UInt8(ascii: "b"): "\u{8}"
                case UInt8(ascii: "f"): "\u{C}"
                case UInt8(ascii: "n"): "\n"
                case UInt8(ascii: "r"): "\r"
                case UInt8(ascii: "t"): "\t"
                default: nil
                }
            if let simple {
                flushHigh()
                scalars.append(simple)
                continue
            }
            guard e == UInt8(ascii: "u"), bytes.count - at >= 4,
                let unit = UInt32(String(decoding: bytes[at..<(at + 4)], as: UTF8.self), radix: 16),
                bytes[at..<(at + 4)].allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x66) })
            else { throw Refused() }
            at += 4
            switch unit {
            case 0xD800...0xDBFF:
                flushHigh()
                pendingHigh = unit
            case 0xDC00...0xDFFF:
                if let high = pendingHigh {
                    scalars.append(Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (unit - 0xDC00))!)
                    pendingHigh = nil
                } else {
                    scalars.append("\u{FFFD}")
                }
            default:
                flushHigh()
                scalars.append(Unicode.Scalar(unit)!)
            }
        }
        flushHigh()
        try flushRaw()
        var text = String.UnicodeScalarView()
        text.append(contentsOf: scalars)
        return String(text)
    }

    mutating func open(_ byte: UInt8, depth: Int) throws -> Bool {
        guard depth <= 512, peek == byte else { throw Refused() }
        at += 1
        space()
        return peek != (byte == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]"))
    }

    /// After an item: true for `,` (another item follows), false at the closing byte.
    mutating func next(_ close: UInt8) throws -> Bool {
        space()
        if peek == UInt8(ascii: ",") {
            at += 1
            space()
            return true
        }
        guard peek == close else { throw Refused() }
        return false
    }

    mutating func array(depth: Int, role: Role) throws {
        var ids = Set<Int64>()
        var hostnames = Set<String>()
        if try open(UInt8(ascii: "["), depth: depth) {
            repeat {
                guard role == .nodes || role == .interfaces, peek == UInt8(ascii: "{") else {
                    try value(depth: depth + 1, role: .other)
                    continue
                }
                let (id, hostname) = try record(depth: depth + 1, node: role == .nodes)
                if let id, !ids.insert(id).inserted { throw Refused() }
                if let hostname, !hostnames.insert(hostname.lowercased()).inserted { throw Refused() }
            } while try next(UInt8(ascii: "]"))
        }
        at += 1
    }

    /// A record of `nodes` (`node`) or `interfaces`: its integer id, its hostname.
    mutating func record(depth: Int, node: Bool) throws -> (Int64?, String?) {
        let brace = at
        var id: Int64?
        var hostname: String?
        var key: Range<Int>?
        try members(depth: depth) { name, _, parser in
            let start = parser.at
            if node, name == "hostname" || name == "key", parser.peek == UInt8(ascii: "\"") {
                let text = try parser.string()
                if name == "hostname" { hostname = text } else { parser.reading.decodedKeys[start] = text }
            } else {
                try parser.value(depth: depth + 1, role: .other)
            }
            let text = parser.bytes[start..<parser.at]
            if name == (node ? "node_id" : "interface_id"),
                text.allSatisfy({ $0 == UInt8(ascii: "-") || (0x30...0x39).contains($0) })
            {
                id = Int64(String(decoding: text, as: UTF8.self))
            }
            if node, name == "key" { key = start..<parser.at }
        }
        if node { reading.records.append(.init(id: id, range: brace..<at, key: key)) }
        return (id, hostname)
    }

    mutating func object(depth: Int, role: Role) throws {
        try members(depth: depth) { name, nameStart, parser in
            let inner: Role = role != .top ? .other : name == "nodes" ? .nodes : name == "interfaces" ? .interfaces : .other
            try parser.value(depth: depth + 1, role: inner)
            if inner == .nodes { parser.reading.nodesMember = nameStart..<parser.at }
        }
    }

    /// An object's members; `member` gets the decoded name, positioned at the value, and
    /// leaves `at` past it. A repeated name is refused.
    mutating func members(depth: Int, _ member: (String, Int, inout Parser) throws -> Void) throws {
        var names = Set<String>()
        var first = true
        if try open(UInt8(ascii: "{"), depth: depth) {
            repeat {
                let nameStart = at
                let name = try string()
                guard names.insert(name).inserted else { throw Refused() }
                space()
                guard peek == UInt8(ascii: ":") else { throw Refused() }
                at += 1
                space()
                try member(name, nameStart, &self)
                if first, reading.firstMembers.count < 8 { reading.firstMembers.append(nameStart..<at) }
                first = false
            } while try next(UInt8(ascii: "}"))
        }
        at += 1
    }
}
