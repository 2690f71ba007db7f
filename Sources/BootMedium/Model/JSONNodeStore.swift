#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

/// The JSON node store of docs/contract.md §2: `{"nodes": [...], "interfaces": [...]}` with
/// PLCAPI's field names.
///
/// The file is checked on each call, so other writers are seen: it is parsed again whenever its
/// identity (``FileIdentity``) changed. It must be a regular file of at most ``maximumSize``
/// bytes, strict JSON (RFC 8259) and unambiguous, as a database's primary key would be: a member
/// name repeated in any object, two nodes with one `node_id` or one hostname (case-insensitive),
/// two interfaces with one `interface_id` make the whole store `invalid-node-store`. Lookups and
/// key saves run that same check (``NodeKeyPatch``), so they can never pick different records.
/// A key is saved under an exclusive `flock` of the store file by replacing the file atomically
/// (temp file + fsync + rename) with its own text where only that node's `key` value differs:
/// every other byte, known fields or not, stays as the operator wrote it.
public struct JSONNodeStore: NodeSource {
    /// The store file.
    public let path: String

    /// The largest store read (256 MiB, ~200 000 nodes); a larger file is refused before it is
    /// read, so a wrong `--nodes` cannot exhaust memory.
    public static let maximumSize = 256 << 20

    /// Opens the store at `path` (not read until used).
    public init(path: String) { self.path = path }

    /// A store's contents as a lookup decodes them.
    struct Document: Decodable, Sendable {
        var nodes: [Node]?
        var interfaces: [Interface]?
    }

    /// The contents of a store whose text is `bytes`, after every check a lookup runs
    /// (``validate(_:)``); `path` only names the store in errors. The entry point of the fuzz
    /// target `FuzzNodeStore` (Fuzz/), which cannot reach the private check otherwise.
    static func document(from bytes: [UInt8], path: String) throws(BootMediumError) -> Document {
        try JSONNodeStore(path: path).validate(bytes)
    }

    /// Stores parsed in this process, by path, with the identity of the file version they were
    /// parsed (and validated) from: a server answering many requests (and one request asking for
    /// a node, then its interfaces) parses a store once until the file changes.
    private static let parsed = Mutex<[String: (identity: FileIdentity, document: Document)]>([:])

    private func load() throws(BootMediumError) -> Document {
        let store = try openStore { _ in cannotRead() }
        let fd = store.rawValue
        let identity = try FileIdentity(fd: fd, path: path)
        if let known = cached(identity) { return known }
        let document = try validate(try contents(fd))
        // Kept only when the file did not change while it was read.
        if (try? FileIdentity(fd: fd, path: path)) == identity {
            Self.parsed.withLock { parsed in
                if parsed.count >= 8 { parsed.removeAll() }
                parsed[path] = (identity, document)
            }
        }
        return document
    }

    /// The document parsed from the file version `identity`, if this process validated it.
    private func cached(_ identity: FileIdentity) -> Document? {
        guard let known = Self.parsed.withLock({ $0[path] }), known.identity == identity else { return nil }
        return known.document
    }

    /// Every check of a store: strict JSON with nothing repeated (the key patch's own pass),
    /// then PLCAPI's fields.
    private func validate(_ bytes: [UInt8]) throws(BootMediumError) -> Document {
        do {
            try NodeKeyPatch.validate(bytes)
        } catch {
            throw refusal(error)
        }
        let document: Document
        do {
            document = try JSONDecoder().decode(Document.self, from: Data(bytes))
        } catch {
            throw BootMediumError(
                .invalidNodeStore, "The node store \(path) is not valid: \(error)",
                context: ["path": path])
        }
        // The ids again as decoded: a number spelled `12.0` is no id for the scan but may be 12
        // for the decoder.
        var nodeIDs = Set<Int>()
        for node in document.nodes ?? [] {
            guard nodeIDs.insert(node.nodeID).inserted else {
                throw ambiguous("node_id \(node.nodeID) is repeated", context: ["node_id": String(node.nodeID)])
            }
        }
        var interfaceIDs = Set<Int>()
        for interface in document.interfaces ?? [] {
            guard interfaceIDs.insert(interface.interfaceID).inserted else {
                throw ambiguous(
                    "interface_id \(interface.interfaceID) is repeated",
                    context: ["interface_id": String(interface.interfaceID)])
            }
        }
        return document
    }

    public func node(_ reference: NodeReference) async throws(BootMediumError) -> Node? {
        let nodes = try load().nodes ?? []
        switch reference {
        case .id(let id): return nodes.first { $0.nodeID == id }
        case .hostname(let name):
            return nodes.first { $0.hostname.lowercased() == name.lowercased() }
        }
    }

    public func interfaces(of node: Node) async throws(BootMediumError) -> [Interface] {
        let all = try load().interfaces ?? []
        return node.interfaceIDs.compactMap { id in all.first { $0.interfaceID == id } }
    }

    public func saveKey(_ key: String, forNodeID nodeID: Int) async throws(BootMediumError) {
        let store = try lockStore()
        defer { withExtendedLifetime(store) {} }  // held to the end: closing it releases the flock
        let fd = store.rawValue
        let identity = try FileIdentity(fd: fd, path: path)
        let bytes = try contents(fd)  // the locked file: lockStore checked it is the one at `path`
        // The checks of a lookup, unless this very version passed them (the patch's own pass
        // repeats the strict and the repetition checks either way).
        if cached(identity) == nil { _ = try validate(bytes) }
        let outcome: NodeKeyPatch.Outcome
        do {
            outcome = try NodeKeyPatch.patch(bytes, nodeID: Int64(nodeID), key: key)
        } catch {
            throw refusal(error)
        }
        switch outcome {
        case .notAnObject:
            throw BootMediumError(
                .invalidNodeStore, "The node store \(path) is not a JSON object", context: ["path": path])
        case .noSuchNode:
            throw BootMediumError(
                .nodeStoreUpdateFailed, "Node \(nodeID) vanished from \(path)",
                context: ["node_id": String(nodeID), "path": path])
        case .patched(let patched):
            var mode: mode_t = 0o644
            var info = stat()
            if fstat(fd, &info) == 0 { mode = info.st_mode & 0o7777 }
            try Posix.atomicReplace(path, with: Data(patched), mode: mode)
        }
    }

    /// The error for a document the scan refused: not JSON, or ambiguous.
    private func refusal(_ error: NodeKeyPatch.SyntaxError) -> BootMediumError {
        guard let repeated = error.repeated else {
            return BootMediumError(
                .invalidNodeStore, "The node store \(path) is not valid JSON: \(error.reason) at byte \(error.offset)",
                context: ["path": path, "offset": String(error.offset)])
        }
        return ambiguous(
            "\(error.reason), again at byte \(error.offset)",
            context: [repeated.kind.rawValue: repeated.value, "offset": String(error.offset)])
    }

    private func ambiguous(_ what: String, context: [String: String]) -> BootMediumError {
        BootMediumError(
            .invalidNodeStore, "The node store \(path) is ambiguous: \(what); refusing it",
            context: context.merging(["path": path]) { $1 })
    }

    /// Opens the store without blocking (a FIFO would wait for a writer) and refuses anything
    /// but a regular file (`/dev/zero` never ends, a FIFO may never speak).
    /// `failure` makes the error of a failed `open` or `fstat` from its `errno`.
    private func openStore(failure: (Int32) -> BootMediumError) throws(BootMediumError) -> OwnedDescriptor {
        let store: OwnedDescriptor
        let info: stat
        do {
            store = try OwnedDescriptor.open(path, flags: O_RDONLY | O_NONBLOCK | O_CLOEXEC)
            info = try store.status()
        } catch {
            throw failure(error.code)
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw BootMediumError(
                .invalidNodeStore, "The node store \(path) is not a regular file", context: ["path": path])
        }
        return store
    }

    /// The whole store, read through `fd` by `read` calls up to ``maximumSize`` + 1 bytes: the
    /// size `fstat` gives is only a hint (the file may grow meanwhile).
    private func contents(_ fd: Int32) throws(BootMediumError) -> [UInt8] {
        let limit = Self.maximumSize
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw cannotRead() }
        guard info.st_size <= limit else { throw tooLarge() }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size) + 1)
        var count = 0
        while true {
            if count == bytes.count {
                guard count <= limit else { throw tooLarge() }
                bytes += repeatElement(0, count: min(max(count, 1 << 16), limit + 1 - count))
            }
            let n: Int
            do {
                n = try bytes.withMutableBytes { (buffer) throws(Errno) in
                    try Posix.syscall { read(fd, buffer.baseAddress! + count, buffer.count - count) }
                }
            } catch {
                throw cannotRead()
            }
            if n == 0 { break }
            count += n
        }
        bytes.removeSubrange(count...)
        return bytes
    }

    private func tooLarge() -> BootMediumError {
        BootMediumError(
            .invalidNodeStore, "The node store \(path) is larger than \(Self.maximumSize >> 20) MiB",
            context: ["path": path, "limit": String(Self.maximumSize)])
    }

    private func cannotRead() -> BootMediumError {
        BootMediumError(.invalidNodeStore, "Cannot read the node store \(path)", context: ["path": path])
    }

    /// Takes an exclusive flock on the store file, retrying if the file was replaced meanwhile.
    private func lockStore() throws(BootMediumError) -> OwnedDescriptor {
        while true {
            let store = try openStore { code in .io("open", path: path, errno: code) }
            try Posix.syscall("lock", path: path) { flock(store.rawValue, LOCK_EX) }
            var current = stat()
            if let held = try? store.status(), stat(path, &current) == 0, held.st_ino == current.st_ino,
                held.st_dev == current.st_dev
            {
                return store
            }
            // Replaced while we waited: lock the new file (this one is closed with `store`).
        }
    }
}
