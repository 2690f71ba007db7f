import Foundation
import Testing

@testable import BootMedium

/// An ambiguous node store, and files that are no node store, are refused (`invalid-node-store`)
/// before anything is built, by lookups and key saves alike; the store stays as it was.
@Suite struct NodeStoreValidationTests {
    /// `TestRoot.standardNodes` with `extra` inserted as the first record of `nodes`.
    static func withFirstNode(_ extra: String) -> String {
        TestRoot.standardNodes.replacingOccurrences(of: #"{"nodes": ["#, with: #"{"nodes": ["# + extra + ",")
    }

    /// Stores that are ambiguous, the text naming what repeats, and its context entry.
    static let ambiguousStores: [(name: String, nodes: String, named: String, context: [String: String])] = [
        ("duplicate node_id",
         TestRoot.standardNodes.replacingOccurrences(
            of: #"{"node_id": 18, "hostname": "noprimary.example.org""#,
            with: #"{"node_id": 12, "hostname": "noprimary.example.org""#),
         "node_id 12 is repeated", ["node_id": "12"]),
        ("duplicate node_id, the other record first",
         withFirstNode(#"{"node_id": 12, "hostname": "shadow.example.org", "site_id": 1, "key": "shadow", "interface_ids": [5]}"#),
         "node_id 12 is repeated", ["node_id": "12"]),
        ("duplicate hostname in another case",
         TestRoot.standardNodes.replacingOccurrences(
            of: #""hostname": "noprimary.example.org""#, with: #""hostname": "NODE1.Example.org""#),
         #"hostname "node1.example.org" is repeated"#, ["hostname": "node1.example.org"]),
        ("duplicate top-level nodes",
         String(TestRoot.standardNodes.dropLast())
            + #", "nodes": [{"node_id": 12, "hostname": "node1.example.org", "site_id": 1, "key": "shadow", "interface_ids": [5, 6]}]}"#,
         #"member name "nodes" is repeated"#, ["member": "nodes"]),
        ("duplicate key",
         TestRoot.standardNodes.replacingOccurrences(of: #""key": "old-key","#, with: #""key": "old-key", "key": "second","#),
         #"member name "key" is repeated"#, ["member": "key"]),
        ("duplicate key, escaped",
         TestRoot.standardNodes.replacingOccurrences(of: #""key": "old-key","#, with: #""key": "old-key", "k\u0065y": "second","#),
         #"member name "key" is repeated"#, ["member": "key"]),
        ("duplicate interface_id",
         TestRoot.standardNodes.replacingOccurrences(of: #"{"interface_id": 12, "node_id": 18"#, with: #"{"interface_id": 5, "node_id": 18"#),
         "interface_id 5 is repeated", ["interface_id": "5"]),
        ("duplicate tag name",
         TestRoot.standardNodes.replacingOccurrences(of: #""serial": "ttyS1:9600","#, with: #""serial": "ttyS1:9600", "serial": "ttyS0","#),
         #"member name "serial" is repeated"#, ["member": "serial"]),
    ]

    @Test(arguments: 0..<ambiguousStores.count)
    func lookupsRefuseAnAmbiguousStore(_ index: Int) async throws {
        let store = Self.ambiguousStores[index]
        let root = try TestRoot(nodes: store.nodes)
        for reference in [NodeReference.id(12), .hostname("node1.example.org"), .id(13)] {
            do {
                _ = try await root.store.node(reference)
                Issue.record("\(store.name): accepted")
            } catch {
                #expect(error.code == .invalidNodeStore, "\(store.name): \(error)")
                #expect(error.message.contains(store.named), "\(store.name): \(error.message)")
                #expect(error.message.contains("byte"), "\(store.name): \(error.message)")
                for (key, value) in store.context { #expect(error.context[key] == value, "\(store.name): \(error.context)") }
            }
        }
    }

    /// The fault: built from one record, the key saved into another, exit 0. Now: one coded
    /// line, no file, no temp file, the store's bytes as they were.
    @Test(arguments: 0..<ambiguousStores.count)
    func theCLIRefusesAnAmbiguousStore(_ index: Int) throws {
        let store = Self.ambiguousStores[index]
        let root = try TestRoot(nodes: store.nodes)
        let before = root.storeBytes
        for node in ["12", "node1.example.org"] {
            let r = try root.build(["--action", "node-floppy", "--node", node, "--output", "%d/%n%s"])
            expectCleanFailure(r, code: .invalidNodeStore, root: root.path, storePath: root.nodesPath, storeBytes: before)
            #expect(r.stderr.contains(store.named), "\(store.name): \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: root.workDir + "/node1.example.org.txt"))
        }
    }

    /// A node id the scan cannot see as an integer but the decoder reads as one is a repetition
    /// too (a lookup could find the one the key patch does not see).
    @Test func aNodeIDSpelledAsADecimalStillRepeats() async throws {
        let root = try TestRoot(nodes: Self.withFirstNode(#"{"node_id": 12.0, "hostname": "shadow.example.org", "interface_ids": []}"#))
        await expectError(.invalidNodeStore) { try await root.store.node(.id(12)) }
    }

    /// Saving re-checks the store it locked: one that became ambiguous after the lookup is
    /// refused, untouched.
    @Test func saveKeyRefusesAStoreThatBecameAmbiguous() async throws {
        let root = try TestRoot()
        #expect(try await root.store.node(.id(12))?.hostname == "node1.example.org")
        // The last one the decoder alone sees: its id is no integer literal for the patch.
        let decimal = (name: "node_id spelled 12.0", nodes: Self.withFirstNode(
            #"{"node_id": 12.0, "hostname": "shadow.example.org", "interface_ids": []}"#), named: "node_id 12 is repeated")
        for store in Self.ambiguousStores.map({ (name: $0.name, nodes: $0.nodes, named: $0.named) }) + [decimal] {
            try store.nodes.write(toFile: root.nodesPath, atomically: true, encoding: .utf8)
            let before = root.storeBytes
            do {
                try await root.store.saveKey("fresh", forNodeID: 12)
                Issue.record("\(store.name): saved")
            } catch {
                #expect(error.code == .invalidNodeStore, "\(store.name): \(error)")
                #expect(error.message.contains(store.named), "\(store.name): \(error.message)")
            }
            #expect(root.storeBytes == before)
            #expect(allEntries(under: root.path).filter(isTempFileName).isEmpty)
        }
    }

    /// A store without repetitions still saves byte for byte (the check changes nothing else).
    @Test func anUnambiguousStoreStillSaves() async throws {
        let root = try TestRoot()
        let before = String(decoding: root.storeBytes, as: UTF8.self)
        try await root.store.saveKey("fresh", forNodeID: 12)
        #expect(String(decoding: root.storeBytes, as: UTF8.self)
            == before.replacingOccurrences(of: #""key": "old-key""#, with: #""key": "fresh""#))
    }

    // MARK: - Files that are no node store

    /// Character devices, FIFOs, directories: refused at once by lookups and by key saves (the
    /// FIFO has no writer: a blocking open would wait for ever).
    @Test func nonRegularFilesAreRefusedAtOnce() async throws {
        let root = try TestRoot()
        let fifo = root.path + "/nodes.fifo"
        try #require(mkfifo(fifo, 0o600) == 0)
        for path in ["/dev/zero", "/dev/null", fifo, root.path] {
            let store = JSONNodeStore(path: path)
            await expectError(.invalidNodeStore) { try await store.node(.id(12)) }
            await expectError(.invalidNodeStore) { try await store.saveKey("k", forNodeID: 12) }
        }
    }

    @Test func theCLIRefusesDevZeroAndAFIFOAtOnce() throws {
        let root = try TestRoot()
        let before = root.storeBytes
        let fifo = root.path + "/nodes.fifo"
        try #require(mkfifo(fifo, 0o600) == 0)
        for path in ["/dev/zero", fifo, root.path + "/etc"] {
            let r = try root.build(["--nodes", path, "--action", "node-floppy", "--node", "12", "--output", "%d/%n%s"], timeout: 10)
            expectCleanFailure(r, code: .invalidNodeStore, root: root.path, storePath: root.nodesPath, storeBytes: before)
            #expect(r.stderr.contains("is not a regular file"), "\(r.stderr)")
            #expect(r.seconds < 2, "\(path): \(r.seconds) s")
            if let rss = r.peakRSSKiB { #expect(rss < 100 << 10, "\(path): peak RSS \(rss) KiB") }
        }
        #expect(allEntries(under: root.workDir).allSatisfy { $0 == ".node-locks" })
    }

    /// A store above the size limit (sparse: 300 MB of holes) is refused from its size, without
    /// reading it: fast, and memory stays that of any run.
    @Test func aHugeStoreIsRefusedFromItsSize() async throws {
        let root = try TestRoot()
        let huge = root.path + "/huge.json"
        try #require(FileManager.default.createFile(atPath: huge, contents: nil))
        try #require(truncate(huge, 300_000_000) == 0)
        let before = root.storeBytes
        let r = try root.build(["--nodes", huge, "--action", "node-floppy", "--node", "12", "--output", "%d/%n%s"], timeout: 20)
        expectCleanFailure(r, code: .invalidNodeStore, root: root.path, storePath: root.nodesPath, storeBytes: before)
        #expect(r.stderr.contains("is larger than 256 MiB"), "\(r.stderr)")
        #expect(r.seconds < 2, "\(r.seconds) s")
        let rss = try #require(r.peakRSSKiB)
        #expect(rss < 100 << 10, "peak RSS \(rss) KiB")
        // Key saves read through the same bounded reader.
        await expectError(.invalidNodeStore) { try await JSONNodeStore(path: huge).saveKey("k", forNodeID: 12) }
        var info = stat()
        #expect(stat(huge, &info) == 0 && info.st_size == 300_000_000)
    }
}

/// The repetition check itself: any object at any depth, small or large.
@Suite struct RepeatedNameScanTests {
    func members(_ names: [String]) -> String {
        "{" + names.enumerated().map { "\"\($1)\": {\"inner\($0)\": [1, {\"a\": 1, \"b\": 2}]}" }.joined(separator: ", ") + "}"
    }

    @Test(arguments: [3, 15, 16, 17, 40, 2000])
    func repeatsAreFoundInObjectsOfAnySize(_ count: Int) throws {
        let names = (0..<count).map { "m\($0)" }
        try NodeKeyPatch.validate(Array(members(names).utf8))
        for (first, second) in [(0, count - 1), (count / 2, count - 1), (count - 2, count - 1)] where first < second {
            var repeated = names
            repeated[second] = names[first]
            #expect(throws: NodeKeyPatch.SyntaxError.self) { try NodeKeyPatch.validate(Array(members(repeated).utf8)) }
            let nested = "{\"x\": [" + members(repeated) + "]}"
            do {
                try NodeKeyPatch.validate(Array(nested.utf8))
                Issue.record("accepted \(first) = \(second) of \(count)")
            } catch {
                #expect(error.repeated?.kind == .member && error.repeated?.value == names[first])
            }
        }
    }

    /// The same name in sibling or nested objects is no repetition.
    @Test func equalNamesInDifferentObjectsAreFine() throws {
        try NodeKeyPatch.validate(Array(#"{"a": {"a": {"a": 1}, "b": {"a": 2}}, "b": [{"a": 1}, {"a": 2}]}"#.utf8))
        #expect(throws: NodeKeyPatch.SyntaxError.self) {
            try NodeKeyPatch.validate(Array(#"{"a": {"a": {"a": 1}, "b": {"a": 2}}, "b": [{"a": 1}, {"a": 2}], "a": 0}"#.utf8))
        }
        // Canonically equivalent spellings are one name for Swift's strings (and so for the decoder).
        #expect(throws: NodeKeyPatch.SyntaxError.self) { try NodeKeyPatch.validate(Array("{\"\u{E9}\": 1, \"e\u{301}\": 2}".utf8)) }
    }
}
