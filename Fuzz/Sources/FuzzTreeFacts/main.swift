// The tree-facts cache reader (`<work dir>/.tree-facts.json`): TreeFileFacts.verifiedFacts on
// hostile cache bytes, under a fixed MAC key (make-seeds seals its seeds' entries with it).
//
// Properties besides "no crash, no hang": every fact returned is an entry of the file whose
// stored `value mac` is byte for byte `sealed(value, entry:, key:)`; under another key the same
// holds for that key; a verified entry with any one byte of its stored `value mac` changed
// (value, separator or MAC; when still UTF-8) is dropped, never read as another value (3 entries
// and 6 bytes each per input, chosen from its hash); an entry sealed anew is either read back as
// exactly its value or dropped (a value ending in a Prepend character such as U+0600 joins the
// separator into one Character, so the reader cannot split it off: a cache miss, not a wrong fact).
import FuzzSupport

@testable import BootMedium

/// The MAC key of the seeds (Fuzz/make-seeds: bytes 0, 1, ..., 31).
let sealKey: [UInt8] = Array(0..<32)
let otherKey: [UInt8] = Array(repeating: 0x5A, count: 32)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTreeFacts(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = fuzzBytes(data, size)
    let stored = TreeFileFacts.stored(bytes)
    let facts = TreeFileFacts.verifiedFacts(bytes, key: sealKey)
    checkSealed(facts, stored, key: sealKey)
    checkSealed(TreeFileFacts.verifiedFacts(bytes, key: otherKey), stored, key: otherKey)

    // Tampering: one byte of a verified entry's stored text changed drops the entry. A few
    // bytes per input (one cache read costs a JSON decode), chosen from the input's hash:
    // every byte of every entry over the run.
    var seed = bytes.reduce(UInt32(2166136261)) { ($0 ^ UInt32($1)) &* 16777619 }
    func next() -> Int {
        seed = seed &* 1103515245 &+ 12345
        return Int(seed >> 8)
    }
    let names = facts.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    let first = names.isEmpty ? 0 : next() % names.count
    for name in (names[first...] + names[..<first]).prefix(3) {
        let value = facts[name]!
        let entry = Array(stored[name]!.utf8)
        // The unchanged entry alone, re-encoded, still reads as its value.
        let alone = TreeFileFacts.verifiedFacts(document(name, entry), key: sealKey)
        guard alone.count == 1, alone[name].map({ Array($0.utf8) }) == Array(value.utf8) else {
            fatalError("entry \(name.debugDescription) alone reads \(alone)")
        }
        for _ in 0..<6 {
            // Half the time a byte of the separator and MAC (the last 65), else any byte.
            let at = next() % 2 == 0 ? max(0, entry.count - 1 - next() % 65) : next() % entry.count
            let byte = entry[at]
            let mask = UInt8(truncatingIfNeeded: next()) & (byte < 0x80 ? 0x7F : 0x3F) | 1
            var changed = entry
            changed[at] = byte ^ mask
            guard String(validating: changed, as: UTF8.self) != nil else { continue }
            let read = TreeFileFacts.verifiedFacts(document(name, changed), key: sealKey)
            if !read.isEmpty {
                fatalError("entry \(name.debugDescription) with byte \(at) changed (\(byte) -> \(changed[at])) reads \(read)")
            }
        }
    }

    // Sealing anew: read back exactly, or dropped (a value whose last character swallows the
    // separator cannot be split again), never another value.
    for (name, text) in stored.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }).prefix(2) {
        let sealed = TreeFileFacts.sealed(text, entry: name, key: sealKey)
        let read = TreeFileFacts.verifiedFacts(document(name, Array(sealed.utf8)), key: sealKey)
        if read.isEmpty { continue }
        guard read.count == 1, let back = read[name], back.utf8.elementsEqual(text.utf8) else {
            fatalError("\(text.debugDescription) sealed under \(name.debugDescription) reads back as \(read)")
        }
    }
    return 0
}

/// Every fact is an entry stored as `sealed(value, entry:, key:)`, byte for byte.
func checkSealed(_ facts: [String: String], _ stored: [String: String], key: [UInt8]) {
    if facts.count > stored.count { fatalError("more facts than entries") }
    for (name, value) in facts {
        guard let entry = stored[name] else { fatalError("fact \(name.debugDescription) is no entry") }
        let sealed = TreeFileFacts.sealed(value, entry: name, key: key)
        if !entry.utf8.elementsEqual(sealed.utf8) {
            fatalError("fact \(name.debugDescription) = \(value.debugDescription) from \(entry.debugDescription), not \(sealed.debugDescription)")
        }
    }
}

/// A cache file of one entry, `name` to the (valid UTF-8) `text`.
func document(_ name: String, _ text: [UInt8]) -> [UInt8] {
    Array("{\(NodeKeyPatch.encodeString(name)):\(NodeKeyPatch.encodeString(String(decoding: text, as: UTF8.self)))}".utf8)
}
