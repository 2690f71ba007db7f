import Foundation

/// The node's root filesystem held in memory as a tree of names and attributes (docs/behaviour.md
/// §5.4): bootcd.img merged with the overlay the way the kernel unpacks them, then adjusted
/// for a read-only root. File contents are not held: a file names where its bytes are (an entry
/// of bootcd.img, or a few bytes bootmedium generated).
final class RootTree {
    /// Where a regular file's bytes come from. Hard links share one `FileData`.
    final class FileData {
        enum Source: Equatable {
            /// Entry `index` of bootcd.img (archive order).
            case bootcd(index: Int)
            /// Bytes made here (overlay files, generated scripts).
            case bytes([UInt8])
        }
        var size: Int64
        var source: Source
        init(size: Int64, source: Source) {
            self.size = size
            self.source = source
        }
        convenience init(_ bytes: [UInt8]) { self.init(size: Int64(bytes.count), source: .bytes(bytes)) }
    }

    /// One entry of the tree.
    final class Node {
        enum Kind {
            case directory
            case file(FileData)
            case symlink([UInt8])
            case characterDevice(major: UInt32, minor: UInt32)
            case blockDevice(major: UInt32, minor: UInt32)
            case fifo
            case socket
        }
        /// Permission bits (07777).
        var permissions: UInt32
        var uid: UInt32
        var gid: UInt32
        var kind: Kind
        /// Children of a directory by name.
        var children: [[UInt8]: Node] = [:]

        init(_ kind: Kind, permissions: UInt32, uid: UInt32 = 0, gid: UInt32 = 0) {
            self.kind = kind
            self.permissions = permissions & 0o7777
            self.uid = uid
            self.gid = gid
        }

        var isDirectory: Bool { if case .directory = kind { true } else { false } }

        /// Children sorted by name bytes (the order cramfs stores them in).
        var sortedChildren: [([UInt8], Node)] {
            children.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map { ($0.key, $0.value) }
        }
    }

    /// The root directory.
    let root = Node(.directory, permissions: 0o755)

    /// Splits a path into its names; `.` and empty parts are dropped, `..` is refused.
    static func components(_ path: [UInt8]) throws(BootMediumError) -> [[UInt8]] {
        var result: [[UInt8]] = []
        for part in path.split(separator: 0x2F, omittingEmptySubsequences: true) {
            if part.elementsEqual([0x2E]) { continue }
            if part.elementsEqual([0x2E, 0x2E]) {
                throw BootMediumError(
                    .missingBootcd, "The bootcd tree holds a path with '..': \(String(decoding: path, as: UTF8.self))",
                    context: ["path": String(decoding: path, as: UTF8.self)])
            }
            result.append(Array(part))
        }
        // Build and inspect agree on limits: bootmedium never writes a cramfs its own reader
        // (and so `inspect`) would refuse.
        guard result.count <= Cramfs.maximumComponents, result.reduce(0, { $0 + 1 + $1.count }) <= Cramfs.maximumPathBytes else {
            let shown = String(decoding: path.prefix(200), as: UTF8.self)
            throw BootMediumError(
                .missingBootcd,
                "The bootcd tree holds a path deeper than \(Cramfs.maximumComponents) levels or longer than \(Cramfs.maximumPathBytes) bytes, which a cramfs reader refuses: \(shown)",
                context: ["path": shown])
        }
        return result
    }

    static func components(_ path: String) -> [[UInt8]] {
        path.split(separator: "/").filter { $0 != "." }.map { Array($0.utf8) }
    }

    /// The node at `names`, without following symbolic links.
    func node(_ names: [[UInt8]]) -> Node? {
        var current = root
        for name in names {
            guard let next = current.children[name] else { return nil }
            current = next
        }
        return current
    }

    func node(_ path: String) -> Node? { node(Self.components(path)) }

    /// The directory at `names`, created (0755, root-owned) with its parents when absent.
    /// A non-directory in the way is an error.
    func directory(_ names: [[UInt8]]) throws(BootMediumError) -> Node {
        var current = root
        for (i, name) in names.enumerated() {
            if let next = current.children[name] {
                guard next.isDirectory else {
                    let path = names[...i].map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
                    throw BootMediumError(
                        .missingBootcd, "The bootcd tree has a non-directory at \(path) where a directory is needed",
                        context: ["path": path])
                }
                current = next
            } else {
                let made = Node(.directory, permissions: 0o755)
                current.children[name] = made
                current = made
            }
        }
        return current
    }

    /// Places `node` at `names` the way the kernel's initramfs unpacker does: a directory over
    /// a directory updates its attributes and keeps its children; anything else replaces what
    /// is there, except that a non-empty directory is never replaced (an error here).
    func place(_ node: Node, at names: [[UInt8]]) throws(BootMediumError) {
        guard let name = names.last else {
            if node.isDirectory {
                root.permissions = node.permissions
                root.uid = node.uid
                root.gid = node.gid
            }
            return
        }
        let parent = try directory(Array(names.dropLast()))
        if let existing = parent.children[name] {
            if existing.isDirectory && node.isDirectory {
                existing.permissions = node.permissions
                existing.uid = node.uid
                existing.gid = node.gid
                return
            }
            if existing.isDirectory && !existing.children.isEmpty {
                let path = names.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
                throw BootMediumError(
                    .missingBootcd, "A non-directory replaces the non-empty directory \(path)", context: ["path": path])
            }
        }
        parent.children[name] = node
    }

    /// Removes the entry at `names`; returns it.
    @discardableResult
    func remove(_ names: [[UInt8]]) -> Node? {
        guard let name = names.last, let parent = node(Array(names.dropLast())), parent.isDirectory else { return nil }
        return parent.children.removeValue(forKey: name)
    }

    /// Every node in depth-first order (sorted names), with its path.
    func walk(_ body: (_ path: [[UInt8]], _ node: Node) throws(BootMediumError) -> Void) throws(BootMediumError) {
        func visit(_ path: [[UInt8]], _ node: Node) throws(BootMediumError) {
            try body(path, node)
            for (name, child) in node.sortedChildren { try visit(path + [name], child) }
        }
        try visit([], root)
    }
}
