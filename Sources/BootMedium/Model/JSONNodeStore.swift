#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

/// The JSON node store of CONTRACT.md §2: `{"nodes": [...], "interfaces": [...]}` with PLCAPI's
/// field names.
///
/// The file is checked on each call, so other writers are seen: it is parsed again whenever its
/// identity (``FileIdentity``) changed. A key is saved under an
/// exclusive `flock` of the store file by replacing the file atomically (temp file + fsync +
/// rename) with its own text where only that node's `key` value differs (``NodeKeyPatch``):
/// every other byte, known fields or not, stays as the operator wrote it.
public struct JSONNodeStore: NodeSource {
    /// The store file.
    public let path: String

    /// Opens the store at `path` (not read until used).
    public init(path: String) { self.path = path }

    private struct Document: Decodable, Sendable {
        var nodes: [Node]?
        var interfaces: [Interface]?
    }

    /// Stores parsed in this process, by path, with the identity of the file version they were
    /// parsed from: a server answering many requests (and one request asking for a node, then
    /// its interfaces) parses a store once until the file changes.
    private static let parsed = Mutex<[String: (identity: FileIdentity, document: Document)]>([:])

    private func load() throws(BootMediumError) -> Document {
        let fd = Posix.retrying { open(path, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { throw cannotRead() }
        defer { close(fd) }
        let identity = try FileIdentity(fd: fd, path: path)
        if let known = Self.parsed.withLock({ $0[path] }), known.identity == identity { return known.document }
        let data = try contents(fd)
        let document: Document
        do {
            document = try JSONDecoder().decode(Document.self, from: data)
        } catch {
            throw BootMediumError(
                .invalidNodeStore, "The node store \(path) is not valid: \(error)",
                context: ["path": path])
        }
        // Kept only when the file did not change while it was read.
        if (try? FileIdentity(fd: fd, path: path)) == identity {
            Self.parsed.withLock { parsed in
                if parsed.count >= 8 { parsed.removeAll() }
                parsed[path] = (identity, document)
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
        let fd = try lockStore()
        defer { close(fd) }  // closing releases the flock
        let data = try contents(fd)  // the locked file: lockStore checked it is the one at `path`
        let outcome: NodeKeyPatch.Outcome
        do {
            outcome = try NodeKeyPatch.patch([UInt8](data), nodeID: Int64(nodeID), key: key)
        } catch {
            throw BootMediumError(
                .invalidNodeStore, "The node store \(path) is not valid JSON: \(error.reason) at byte \(error.offset)",
                context: ["path": path, "offset": String(error.offset)])
        }
        switch outcome {
        case .notAnObject:
            throw BootMediumError(
                .invalidNodeStore, "The node store \(path) is not a JSON object", context: ["path": path])
        case .noSuchNode:
            throw BootMediumError(
                .nodeStoreUpdateFailed, "Node \(nodeID) vanished from \(path)",
                context: ["node_id": String(nodeID), "path": path])
        case .patched(let bytes):
            var mode: mode_t = 0o644
            var info = stat()
            if fstat(fd, &info) == 0 { mode = info.st_mode & 0o7777 }
            try Posix.atomicReplace(path, with: Data(bytes), mode: mode)
        }
    }

    /// The whole store, read through `fd`.
    private func contents(_ fd: Int32) throws(BootMediumError) -> Data {
        do {
            return try FileHandle(fileDescriptor: fd, closeOnDealloc: false).readToEnd() ?? Data()
        } catch {
            throw cannotRead()
        }
    }

    private func cannotRead() -> BootMediumError {
        BootMediumError(.invalidNodeStore, "Cannot read the node store \(path)", context: ["path": path])
    }

    /// Takes an exclusive flock on the store file, retrying if the file was replaced meanwhile.
    private func lockStore() throws(BootMediumError) -> Int32 {
        while true {
            let fd = Posix.retrying { open(path, O_RDONLY | O_CLOEXEC) }
            if fd < 0 { throw .io("open", path: path, errno: errno) }
            if Posix.retrying({ flock(fd, LOCK_EX) }) != 0 {
                let code = errno
                close(fd)
                throw .io("lock", path: path, errno: code)
            }
            var held = stat()
            var current = stat()
            if fstat(fd, &held) == 0, stat(path, &current) == 0, held.st_ino == current.st_ino,
                held.st_dev == current.st_dev
            {
                return fd
            }
            close(fd)  // replaced while we waited: lock the new file
        }
    }
}
