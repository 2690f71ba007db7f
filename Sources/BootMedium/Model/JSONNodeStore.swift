#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The JSON node store of CONTRACT.md §2: `{"nodes": [...], "interfaces": [...]}` with PLCAPI's
/// field names.
///
/// The file is read anew on each call, so other writers are seen. A key is saved by rewriting
/// the whole file atomically (temp file + fsync + rename) under an exclusive `flock` of the store
/// file, keeping every field, known or not, of every record.
public struct JSONNodeStore: NodeSource {
    /// The store file.
    public let path: String

    /// Opens the store at `path` (not read until used).
    public init(path: String) { self.path = path }

    private struct Document: Decodable {
        var nodes: [Node]?
        var interfaces: [Interface]?
    }

    private func load() throws(BootMediumError) -> Document {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw BootMediumError(
                .invalidNodeStore, "Cannot read the node store \(path)", context: ["path": path])
        }
        do {
            return try JSONDecoder().decode(Document.self, from: data)
        } catch {
            throw BootMediumError(
                .invalidNodeStore, "The node store \(path) is not valid: \(error)",
                context: ["path": path])
        }
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
        try updateLocked { root throws(BootMediumError) in
            guard case .array(var nodes)? = root["nodes"],
                let index = nodes.firstIndex(where: { record in
                    if case .object(let fields) = record, case .integer(let id)? = fields["node_id"] {
                        return id == Int64(nodeID)
                    }
                    return false
                }),
                case .object(var fields) = nodes[index]
            else {
                throw BootMediumError(
                    .nodeStoreUpdateFailed, "Node \(nodeID) vanished from \(path)",
                    context: ["node_id": String(nodeID), "path": path])
            }
            fields["key"] = .string(key)
            nodes[index] = .object(fields)
            root["nodes"] = .array(nodes)
        }
    }

    /// Locks the store, reads it as a generic JSON object, lets `change` edit it and writes it
    /// back atomically.
    private func updateLocked(_ change: (inout [String: JSONValue]) throws(BootMediumError) -> Void)
        throws(BootMediumError)
    {
        let fd = try lockStore()
        defer { close(fd) }  // closing releases the flock
        guard let data = FileManager.default.contents(atPath: path),
            case .object(var root)? = try? JSONDecoder().decode(JSONValue.self, from: data)
        else {
            throw BootMediumError(
                .invalidNodeStore, "The node store \(path) is not a JSON object",
                context: ["path": path])
        }
        try change(&root)
        let output: Data
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            output = try encoder.encode(JSONValue.object(root))
        } catch {
            throw BootMediumError(
                .nodeStoreUpdateFailed, "Cannot encode the node store: \(error)",
                context: ["path": path])
        }
        var mode: mode_t = 0o644
        var info = stat()
        if fstat(fd, &info) == 0 { mode = info.st_mode & 0o7777 }
        try Posix.atomicReplace(path, with: output + Data("\n".utf8), mode: mode)
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
