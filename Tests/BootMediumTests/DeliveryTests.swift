import Foundation
import Synchronization
import Testing

@testable import BootMedium

/// A node source whose key saving can fail, recording what was saved.
final class FlakyNodeSource: NodeSource {
    let base: JSONNodeStore
    let failSaves: Bool
    let saved = Mutex<[String]>([])
    init(base: JSONNodeStore, failSaves: Bool) {
        self.base = base
        self.failSaves = failSaves
    }
    func node(_ reference: NodeReference) async throws(BootMediumError) -> Node? { try await base.node(reference) }
    func interfaces(of node: Node) async throws(BootMediumError) -> [Interface] { try await base.interfaces(of: node) }
    func saveKey(_ key: String, forNodeID nodeID: Int) async throws(BootMediumError) {
        if failSaves { throw BootMediumError(.io, "disk on fire") }
        saved.withLock { $0.append(key) }
        try await base.saveKey(key, forNodeID: nodeID)
    }
}

final class Concurrency: Sendable {
    private let state = Mutex<(now: Int, max: Int)>((0, 0))
    func enter() { state.withLock { $0.now += 1; $0.max = max($0.max, $0.now) } }
    func leave() { state.withLock { $0.now -= 1 } }
    var maximum: Int { state.withLock { $0.max } }
}

final class Flag: Sendable {
    private let state = Mutex(false)
    func set() { state.withLock { $0 = true } }
    var value: Bool { state.withLock { $0 } }
}

func keyIn(_ text: String) -> String? {
    text.split(separator: "\n").first { $0.hasPrefix("NODE_KEY=") }
        .map { String($0.dropFirst("NODE_KEY=\"".count).dropLast()) }
}

@Suite struct DeliveryTests {
    @Test func floppyToFileRenewsAndSavesTheKeyAfterDelivery() async throws {
        let root = try TestRoot()
        let result = try await root.service().getBootMedium(
            caller: Caller(roles: ["pi"], siteIDs: [1]), node: "node1.example.org",
            action: "node-floppy", filename: "%d/sub/dir/%n%s")
        let path = root.workDir + "/sub/dir/node1.example.org.txt"
        #expect(result == .path(path))
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.hasPrefix("NODE_ID=\"12\"\nNODE_KEY=\""))
        #expect(text.contains("KEY_RENEWAL_DATE=\"2023/11/14 at 22:13 +0000\"\n"))
        let key = try #require(keyIn(text))
        #expect(try root.nodeKey(12) == key)
        #expect(key != "old-key")
        let fm = FileManager.default
        #expect((try fm.attributesOfItem(atPath: path)[.posixPermissions] as? Int) == 0o644)
        for dir in [root.workDir, root.workDir + "/sub", root.workDir + "/sub/dir"] {
            #expect((try fm.attributesOfItem(atPath: dir)[.posixPermissions] as? Int) == 0o755)
        }
        // Nothing else: no temp file (the node lock file is the only other file).
        #expect(root.files(under: "/var/tmp/bootmedium") == [".node-locks", "sub/dir/node1.example.org.txt"])
        // The store kept unknown fields.
        let stored = try String(contentsOfFile: root.nodesPath, encoding: .utf8)
        #expect(stored.contains("unknown_field"))
    }

    @Test func previewDoesNotTouchTheKey() async throws {
        let root = try TestRoot()
        _ = try await root.service().getBootMedium(caller: .admin, node: "12", action: "node-preview", filename: "%d/p.txt")
        #expect(try root.nodeKey(12) == "old-key")
        #expect(!(try String(contentsOfFile: root.workDir + "/p.txt", encoding: .utf8)).contains("NODE_KEY"))
    }

    @Test func inlineFloppyReturnsTextAndSavesTheKey() async throws {
        let root = try TestRoot()
        let result = try await root.service().getBootMedium(caller: .admin, node: "12", action: "node-floppy", filename: nil)
        guard case .text(let text) = result else { Issue.record("not text"); return }
        #expect(try root.nodeKey(12) == keyIn(text))
    }

    @Test func existingOutputIsRefusedUnlessStale() async throws {
        let root = try TestRoot()
        let target = root.workDir + "/taken.txt"
        try FileManager.default.createDirectory(atPath: root.workDir, withIntermediateDirectories: true)
        try "someone else's\n".write(toFile: target, atomically: true, encoding: .utf8)
        await expectError(.outputExists) {
            try await root.service().getBootMedium(caller: .admin, node: "12", action: "node-floppy", filename: "%d/taken.txt")
        }
        #expect(try root.nodeKey(12) == "old-key")
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "someone else's\n")
        // Six minutes old: stale, replaced.
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -360)], ofItemAtPath: target)
        _ = try await root.service().getBootMedium(caller: .admin, node: "12", action: "node-floppy", filename: "%d/taken.txt")
        #expect(try String(contentsOfFile: target, encoding: .utf8).hasPrefix("NODE_ID"))
        // A stale symlink or directory is never replaced.
        try FileManager.default.createSymbolicLink(atPath: root.workDir + "/link.txt", withDestinationPath: "/etc/passwd")
        await expectError(.outputExists) {
            try await root.service().getBootMedium(caller: .admin, node: "12", action: "node-preview", filename: "%d/link.txt")
        }
    }

    @Test func nonAdminOutputMustResolveInsideTheWorkDir() async throws {
        let root = try TestRoot()
        let pi = Caller(roles: ["pi"], siteIDs: [1])
        let outside = root.path + "/outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root.workDir, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: root.workDir + "/escape", withDestinationPath: outside)
        for template in ["%d/../x.txt", "%d/escape/x.txt", outside + "/x.txt", "%dx/y.txt", "/etc/x.txt", "%d/new/../../x.txt"] {
            await expectError(.outputOutsideWorkDir) {
                try await root.service().getBootMedium(caller: pi, node: "12", action: "node-floppy", filename: template)
            }
        }
        #expect(try root.nodeKey(12) == "old-key")
        #expect(root.files(under: "/outside").isEmpty)
        // `..` that stays inside is fine once resolved.
        try FileManager.default.createDirectory(atPath: root.workDir + "/a", withIntermediateDirectories: true)
        #expect(try await root.service().getBootMedium(caller: pi, node: "12", action: "node-preview", filename: "%d/a/../ok.txt")
            == .path(root.workDir + "/a/../ok.txt"))
        // An admin may write anywhere.
        #expect(try await root.service().getBootMedium(caller: .admin, node: "12", action: "node-preview", filename: outside + "/admin.txt")
            == .path(outside + "/admin.txt"))
    }

    @Test func failedKeySaveWithdrawsTheMedium() async throws {
        let root = try TestRoot()
        let source = FlakyNodeSource(base: root.store, failSaves: true)
        await expectError(.nodeStoreUpdateFailed) {
            try await root.service(nodes: source).getBootMedium(caller: .admin, node: "12", action: "node-floppy", filename: "%d/w.txt")
        }
        #expect(!FileManager.default.fileExists(atPath: root.workDir + "/w.txt"))
        #expect(root.files(under: "/var/tmp/bootmedium") == [".node-locks"])
        #expect(try root.nodeKey(12) == "old-key")
    }

    @Test func badRequestsLeaveNothing() async throws {
        let root = try TestRoot()
        let before = try Data(contentsOf: URL(fileURLWithPath: root.nodesPath))
        let nodes = TestRoot.standardNodes.replacingOccurrences(of: "\"eth1\"", with: "\"eth1$(reboot)\"")
        let hostile = try TestRoot(nodes: nodes)
        await expectError(.unsafeValue) {
            try await hostile.service().getBootMedium(caller: .admin, node: "12", action: "node-floppy", filename: "%d/h.txt")
        }
        #expect(hostile.files(under: "/var").isEmpty)
        // An image from a tree that lacks everything but version.txt fails, leaving nothing.
        await #expect(throws: BootMediumError.self) {
            try await root.service().getBootMedium(caller: .admin, node: "12", action: "node-iso", filename: "%d/x.iso")
        }
        // Only the node lock file (taken before building a key-renewing medium) remains.
        #expect(root.files(under: "/var") == ["tmp/bootmedium/.node-locks"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: root.nodesPath)) == before)
    }

    @Test func cancellationLeavesNothing() async throws {
        let root = try TestRoot()
        // Hold node 12's lock so the request waits, cancel it, then let it go on.
        await NodeLocks.shared.acquire("\(root.workDir)#12")
        let service = root.service()
        let task = Task {
            try await service.getBootMedium(caller: .admin, node: "12", action: "node-floppy", filename: "%d/c.txt")
        }
        try await Task.sleep(for: .milliseconds(200))
        task.cancel()
        await NodeLocks.shared.release("\(root.workDir)#12")
        await expectError(.cancelled) { try await task.value }
        #expect(!FileManager.default.fileExists(atPath: root.workDir + "/c.txt"))
        #expect(root.files(under: "/var/tmp/bootmedium").allSatisfy { $0 == ".node-locks" })
        #expect(try root.nodeKey(12) == "old-key")
    }

    @Test func requestsForOneNodeAreSerialized() async throws {
        let root = try TestRoot()
        let service = root.service()
        let source = FlakyNodeSource(base: root.store, failSaves: false)
        let counted = BootMediumService(root: root.root, nodes: source, clock: BuildClock(sourceDateEpoch: 1))
        _ = service
        let results = try await withThrowingTaskGroup(of: DeliveredMedium.self) { group in
            for i in 0..<12 {
                group.addTask {
                    try await counted.getBootMedium(caller: .admin, node: "12", action: "node-floppy", filename: "%d/k\(i).txt")
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.count == 12)
        let keys = try (0..<12).map { try #require(keyIn(String(contentsOfFile: root.workDir + "/k\($0).txt", encoding: .utf8))) }
        #expect(Set(keys).count == 12)
        let saved = source.saved.withLock { $0 }
        #expect(Set(saved) == Set(keys))
        // The stored key is the last one saved: every medium's key was current when it was delivered.
        #expect(try root.nodeKey(12) == saved.last)
    }

    @Test func nodeLockExcludesInProcessAndAcrossDescriptors() async throws {
        let root = try TestRoot()
        let active = Concurrency()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    try await NodeLocks.withLock(node: 99, workDir: root.workDir) { () throws(BootMediumError) in
                        active.enter()
                        try? await Task.sleep(for: .milliseconds(20))
                        active.leave()
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(active.maximum == 1)
        // The cross-process lock: a second open file description blocks until the first closes.
        let first = try FileRangeLock(directory: root.workDir, byte: 99)
        let acquired = Flag()
        let dir = root.workDir
        DispatchQueue.global().async {
            let second = try? FileRangeLock(directory: dir, byte: 99)
            acquired.set()
            second?.release()
        }
        try await Task.sleep(for: .milliseconds(300))
        #expect(acquired.value == false)
        first.release()
        try await Task.sleep(for: .milliseconds(300))
        #expect(acquired.value == true)
    }

    /// A saved key changes the store's text only where the key's value was: every other byte
    /// (formatting, member order, unknown fields) is the operator's.
    @Test func nodeStoreWritesAreAtomicAndKeepEverything() async throws {
        let root = try TestRoot()
        try await root.store.saveKey("new-key", forNodeID: 13)
        #expect(try root.nodeKey(13) == "new-key")
        #expect(try root.nodeKey(12) == "old-key")
        let text = try String(contentsOfFile: root.nodesPath, encoding: .utf8)
        #expect(text == TestRoot.standardNodes.replacingOccurrences(of: #""key": "k2""#, with: #""key": "new-key""#))
        #expect(text.contains("\"kept\": true"))
        #expect(FileManager.default.subpaths(atPath: root.path)!.filter { $0.contains(".tmp-") }.isEmpty)
        await expectError(.nodeStoreUpdateFailed) { try await root.store.saveKey("x", forNodeID: 4242) }
    }

    /// Saving a key rewrites the store with nothing but the key changed, whatever JSON the other
    /// records hold: Python's `json` (an independent reader) sees the same document otherwise.
    @Test func nodeStoreRewriteKeepsEveryJSONValue() async throws {
        let root = try TestRoot()
        let store = #"""
            {"nodes": [{"node_id": 12, "hostname": "node1.example.org", "site_id": 1, "key": "old-key",
              "interface_ids": [], "odd": {"float": 1.5, "big": 1e300, "tiny": -2.5e-300, "whole": 3.0,
              "max": 9223372036854775807, "min": -9223372036854775808, "neg": -7, "zero": 0, "one": 1,
              "text": "caf\u00e9 \ud83d\ude00 \"q\" \\ / \n\t\u0001", "empty": "", "null": null,
              "yes": true, "no": false, "list": [1, "two", [3.25, {}], [], null], "obj": {}}}],
             "interfaces": [], "extra_top": [{"a": [{"b": {"c": [true]}}]}]}
            """#
        try store.write(toFile: root.nodesPath, atomically: true, encoding: .utf8)
        try await root.store.saveKey("new-key", forNodeID: 12)
        let check = try runProcess("/usr/bin/python3", ["-c", #"""
            import json, sys
            def same(a, b):
                number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
                if number(a) and number(b): return a == b
                if type(a) is not type(b): return False
                if isinstance(a, dict): return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
                if isinstance(a, list): return len(a) == len(b) and all(map(same, a, b))
                return a == b
            before = json.loads(sys.argv[1]); after = json.load(open(sys.argv[2]))
            before["nodes"][0]["key"] = "new-key"
            assert same(before, after), (before, after)
            odd = after["nodes"][0]["odd"]
            assert type(odd["max"]) is int and odd["max"] == 2**63 - 1 and odd["min"] == -2**63
            assert odd["text"] == "caf\u00e9 \U0001F600 \"q\" \\ / \n\t\x01"
            """#, store, root.nodesPath])
        #expect(check.status == 0, "\(check.stderr)")
    }

    /// The kernel copy under sinks: short at the source's end and 0 past it; through sendfile
    /// when copy_file_range cannot (a pipe); nil when neither can (a destination opened for
    /// appending), so FileCopy reads and writes; the output file's copies land in order.
    @Test func kernelCopyOutcomes() throws {
        let root = try TestRoot()
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let source = root.path + "/source"
        try Data(bytes).write(to: URL(fileURLWithPath: source))
        let fd = open(source, O_RDONLY | O_CLOEXEC)
        defer { close(fd) }

        let file = try OutputFile(path: root.path + "/out", confinedTo: nil)
        #expect(try file.copy(from: fd, offset: 90_000, count: 4096) == 4096)
        #expect(try file.copy(from: fd, offset: 94_096, count: 10_000) == 5904)  // short: the end
        #expect(try file.copy(from: fd, offset: 100_000, count: 10) == 0)
        try file.commit()
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: root.path + "/out"))) == Array(bytes[90_000...]))

        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        let piped = DescriptorSink(fd: ends[1])
        #expect(try piped.copy(from: fd, offset: 10, count: 1000) == 1000)
        close(ends[1])
        let handle = FileHandle(fileDescriptor: ends[0], closeOnDealloc: true)
        #expect([UInt8](handle.readDataToEndOfFile()) == Array(bytes[10..<1010]))
        #expect(piped.count == 1000)

        let appending = open(root.path + "/appended", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        defer { close(appending) }
        let sink = DescriptorSink(fd: appending)
        #expect(try sink.copy(from: fd, offset: 0, count: 10) == nil)
        // FileCopy falls back to reading and writing, in pieces of its buffer.
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { buffer.deallocate() }
        let input = try InputFile.open(source, role: .bootcd)
        try FileCopy.append(input, size: 100_000, at: 0, to: sink, buffer: buffer, cancellation: CancellationFlag())
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: root.path + "/appended"))) == bytes)
        // A size that is not the file's is refused before anything is written.
        #expect(throws: BootMediumError.self) {
            try FileCopy.append(input, size: 99_999, at: 0, to: sink, buffer: buffer, cancellation: CancellationFlag())
        }
        #expect(sink.count == 100_000)
    }
}
