import Foundation
import Testing

@testable import BootMedium

/// The node store's key patch, judged by Python's `json` (an independent, strict reader).
@Suite struct NodeKeyPatchTests {
    func patch(_ text: String, _ id: Int64 = 12, key: String = "new") throws -> NodeKeyPatch.Outcome {
        try NodeKeyPatch.patch(Array(text.utf8), nodeID: id, key: key)
    }

    func patchedText(_ text: String, _ id: Int64 = 12, key: String = "new") throws -> String? {
        guard case .patched(let bytes) = try patch(text, id, key: key) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test func onlyTheKeyValueChanges() throws {
        let text = #"{"nodes" : [ {"node_id":11,"key":"a"}, {"x": 1e300, "node_id": 12 , "key" :"old", "y":[3.0]} ] }"#
        #expect(try patchedText(text) == text.replacingOccurrences(of: #""old""#, with: #""new""#))
    }

    @Test func aMissingKeyIsInsertedFirst() throws {
        #expect(try patchedText(#"{"nodes": [{"node_id": 12}]}"#) == #"{"nodes": [{"key": "new", "node_id": 12}]}"#)
        #expect(try patchedText(#"{"nodes": [{"node_id": 12}]}"#, key: "q\"\\\n\u{1}é") == #"{"nodes": [{"key": "q\"\\\n\u0001é", "node_id": 12}]}"#)
    }

    @Test func namesAreComparedDecoded() throws {
        let text = #"{"nod\u0065s": [{"node_\u0069d": 12, "x": "a", "k\u0065y": "b"}]}"#
        #expect(try patchedText(text) == text.replacingOccurrences(of: #""k\u0065y": "b""#, with: #""k\u0065y": "new""#))
    }

    /// A repeated name (decoded) makes the document ambiguous: refused, naming it and both places.
    @Test func repeatedNamesAreRefused() throws {
        let text = #"{"nodes": [{"node_id": 12, "key": "first"}], "nod\u0065s": [{"node_\u0069d": 12, "key": "a", "k\u0065y": "b"}]}"#
        #expect(throws: NodeKeyPatch.SyntaxError(
            reason: #"member name "nodes" is repeated in one object (first at byte 1)"#, offset: 45,
            repeated: NodeKeyPatch.Repetition(kind: .member, value: "nodes", firstOffset: 1))) { try patch(text) }
        let key = #"{"nodes": [{"node_id": 12, "key": "a", "k\u0065y": "b"}]}"#
        #expect(throws: NodeKeyPatch.SyntaxError(
            reason: #"member name "key" is repeated in one object (first at byte 27)"#, offset: 39,
            repeated: NodeKeyPatch.Repetition(kind: .member, value: "key", firstOffset: 27))) { try patch(key) }
    }

    @Test func onlyIntegerNodeIDsInTopLevelNodesMatch() throws {
        #expect(try patch(#"{"nodes": [{"node_id": 12.0, "key": "a"}]}"#) == .noSuchNode)
        #expect(try patch(#"{"nodes": [{"node_id": "12", "key": "a"}]}"#) == .noSuchNode)
        #expect(try patch(#"{"nodes": [{"node_id": 1.2e1}]}"#) == .noSuchNode)
        #expect(try patch(#"{"other": {"nodes": [{"node_id": 12}]}, "nodes": {}}"#) == .noSuchNode)
        #expect(try patch(#"{"nodes": [[{"node_id": 12}]]}"#) == .noSuchNode)
        #expect(try patch(#"[{"nodes": [{"node_id": 12}]}]"#) == .notAnObject)
        #expect(try patch(#"  12 "#) == .notAnObject)
        #expect(try patchedText(#"{"nodes": [{"node_id": -0}, {"node_id": 12}]}"#) == #"{"nodes": [{"node_id": -0}, {"key": "new", "node_id": 12}]}"#)
    }

    @Test(arguments: [
        "", " ", "{", "}", #"{"nodes": [}"#, #"{"nodes": []"#, #"{"a" 1}"#, #"{"a": 1,}"#, "[1,]", "[01]", "[1.]",
        "[.5]", "[-]", "[1e]", "[+1]", "[0x1]", "[tru]", "[nul]", "[True]", "[NaN]", "[Infinity]", #"["a\x"]"#,
        #"["\u12"]"#, #"["\u12G4"]"#, "[\"a\tb\"]", "[\"a\u{0}b\"]", #"{"a": 1} x"#, "{} {}", #"{'a': 1}"#, "[\"\u{7F}\"",
    ])
    func invalidDocumentsAreRefused(_ text: String) {
        #expect(throws: NodeKeyPatch.SyntaxError.self) { try patch(text) }
    }

    @Test func invalidUTF8AndDeepNestingAreRefused() throws {
        #expect(throws: NodeKeyPatch.SyntaxError.self) { try NodeKeyPatch.patch([0x22, 0xC3, 0x28, 0x22], nodeID: 1, key: "k") }
        #expect(throws: NodeKeyPatch.SyntaxError.self) { try NodeKeyPatch.patch(Array("[\"\u{1}\"]".utf8) + [0xED, 0xA0, 0x80], nodeID: 1, key: "k") }
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: NodeKeyPatch.SyntaxError.self) { try patch(deep) }
        let fine = "{\"nodes\": [{\"node_id\": 12, \"x\": " + String(repeating: "[", count: 400) + String(repeating: "]", count: 400) + "}]}"
        #expect(try patch(fine) != .noSuchNode)
    }

    /// Differential: hundreds of mutants of a store (bytes replaced, dropped or inserted) are
    /// judged by the patch and by Python's strict `json`: the same ones are valid, and every
    /// patched document is, for Python, the original with only that node's key set.
    @Test func mutantsAgreeWithPython() throws {
        let seed = #"""
            {"nodes": [{"node_id": 11, "key": "k1", "f": -1.5e-3}, {"node_id": 12, "hostname": "n\u00e9", "key": "old",
              "tags": {"a": "b\"c"}, "list": [true, false, null, 0, [], {}]}], "nod": {"node_id": 12}, "interfaces": []}
            """#
        let alphabet = Array(#"{}[]",:\ 0129eE.-+tfnu"#.utf8) + [0x0A, 0xC3, 0xA9, 0x80]
        var rng = SplitMix64(seed: 0x5EED)
        var cases: [[String: String]] = []
        for _ in 0..<2000 {
            var bytes = Array(seed.utf8)
            for _ in 0..<(1 + Int(rng.next() % 2)) {
                let at = Int(rng.next() % UInt64(bytes.count))
                let byte = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                switch rng.next() % 3 {
                case 0: bytes[at] = byte
                case 1: bytes.remove(at: at)
                default: bytes.insert(byte, at: at)
                }
            }
            let outcome: String
            do {
                switch try NodeKeyPatch.patch(bytes, nodeID: 12, key: "new-key") {
                case .patched(let out): outcome = Data(out).base64EncodedString()
                case .noSuchNode: outcome = "no-such-node"
                case .notAnObject: outcome = "not-an-object"
                }
            } catch {
                outcome = "invalid"
            }
            cases.append(["document": Data(bytes).base64EncodedString(), "outcome": outcome])
        }
        let input = FileManager.default.temporaryDirectory.path + "/mutants-\(UUID().uuidString).json"
        try JSONSerialization.data(withJSONObject: cases).write(to: URL(fileURLWithPath: input))
        defer { try? FileManager.default.removeItem(atPath: input) }
        let check = try runProcess("/usr/bin/python3", ["-c", #"""
            import base64, json, sys
            def strict(raw):
                def no_constant(name): raise ValueError(name)
                def unique(pairs):
                    names = [name for name, _ in pairs]
                    if len(set(names)) != len(names): raise ValueError("repeated name")
                    return dict(pairs)
                return json.loads(raw.decode("utf-8"), parse_constant=no_constant, object_pairs_hook=unique)
            def repeats(records, field, key=lambda v: v, kind=int):
                values = [key(r[field]) for r in records if isinstance(r, dict) and type(r.get(field)) is kind]
                return len(set(values)) != len(values)
            def expected(doc):
                if not isinstance(doc, dict): return "not-an-object"
                nodes = doc.get("nodes")
                interfaces = doc.get("interfaces")
                if isinstance(interfaces, list) and repeats(interfaces, "interface_id"): return "invalid"
                if not isinstance(nodes, list): return "no-such-node"
                if repeats(nodes, "node_id") or repeats(nodes, "hostname", str.lower, str): return "invalid"
                hits = [n for n in nodes if isinstance(n, dict) and type(n.get("node_id")) is int and n["node_id"] == 12]
                return hits[-1] if hits else "no-such-node"
            bad = []; valid = 0
            for case in json.load(open(sys.argv[1])):
                raw = base64.b64decode(case["document"]); outcome = case["outcome"]
                try:
                    doc = strict(raw)
                except (ValueError, RecursionError):
                    if outcome != "invalid": bad.append((raw, outcome))
                    continue
                valid += 1
                want = expected(doc)
                if want == "invalid":
                    if outcome != "invalid": bad.append((raw, outcome, "ambiguous"))
                    continue
                if isinstance(want, str):
                    if outcome != want: bad.append((raw, outcome, want))
                    continue
                if outcome in ("invalid", "no-such-node", "not-an-object"):
                    bad.append((raw, outcome)); continue
                want["key"] = "new-key"
                if strict(base64.b64decode(outcome)) != doc: bad.append((raw, "patched differently"))
            print(valid)
            if bad: sys.exit("disagreements: %r" % bad[:5])
            """#, input])
        #expect(check.status == 0, "\(check.stderr)")
        // Enough mutants stay valid for the patched half of the comparison to mean something.
        #expect((Int(String(decoding: check.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) >= 200)
    }
}

/// A small deterministic generator (SplitMix64) for reproducible mutants.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
