import Foundation

extension RootTree {
    /// The tree the node would see after its kernel unpacked `bootcd.img` and then the overlay
    /// (docs/behaviour.md §5.4, first step), read with libarchive from the headers of bootcd.img
    /// only: nothing is extracted, no privilege is needed for device nodes.
    /// The contents of the regular files at `keep` (small config files the transform edits, at
    /// most 1 MiB each) are read into memory on the way.
    static func merged(bootcd file: InputFile, overlay: [CpioEntry], keep: [String], cancellation: CancellationFlag)
        throws(BootMediumError) -> RootTree
    {
        let path = file.path
        let kept = Set(keep.map { Self.components($0) })
        let tree = RootTree()
        let stream = try ArchiveStream(file: file)
        var count = 0
        while let header = try stream.next() {
            count += 1
            if count % 1024 == 0 { try cancellation.check() }
            let names = try tree.add(header, index: stream.index, source: path)
            if kept.contains(names), let node = tree.node(names), case .file(let data) = node.kind,
                data.source == .bootcd(index: stream.index)
            {
                guard data.size <= 1 << 20 else {
                    throw BootMediumError(
                        .missingBootcd, "\(path): /\(String(decoding: header.path, as: UTF8.self)) is larger than 1 MiB",
                        context: ["path": path])
                }
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(data.size), alignment: 16)
                defer { buffer.deallocate() }
                try stream.readFully(into: buffer)
                data.source = .bytes(Array(buffer))
            }
        }
        for entry in overlay {
            let node: Node
            switch entry.kind {
            case .directory: node = Node(.directory, permissions: UInt32(entry.mode))
            case .file(let bytes): node = Node(.file(FileData(bytes)), permissions: UInt32(entry.mode))
            case .symlink(let target): node = Node(.symlink(Array(target.utf8)), permissions: 0o777)
            }
            try tree.place(node, at: Self.components(entry.path))
        }
        return tree
    }

    /// Adds one bootcd.img entry; returns its path's names.
    private func add(_ header: CpioHeader, index: Int, source: String) throws(BootMediumError) -> [[UInt8]] {
        let shown = String(decoding: header.path, as: UTF8.self)
        func refuse(_ why: String) -> BootMediumError {
            BootMediumError(
                .missingBootcd, "\(source): entry \(shown.debugDescription) \(why)", context: ["path": source, "entry": shown])
        }
        // cramfs keeps 16-bit uids and 8-bit gids; mkfs.cramfs truncated larger ids silently,
        // which can hand a file to another group. Refuse instead.
        guard (0...0xFFFF).contains(header.uid) else { throw refuse("has uid \(header.uid), more than cramfs stores (65535)") }
        guard (0...0xFF).contains(header.gid) else { throw refuse("has gid \(header.gid), more than cramfs stores (255)") }
        let names = try Self.components(header.path)
        let uid = UInt32(header.uid), gid = UInt32(header.gid)
        let permissions = header.mode & 0o7777
        if let link = header.hardlinkTarget {
            guard let target = node(try Self.components(link)), case .file(let data) = target.kind else {
                throw refuse("is a hard link to \(String(decoding: link, as: UTF8.self).debugDescription), not an earlier regular file")
            }
            if header.size > 0 { data.size = header.size; data.source = .bootcd(index: index) }
            try place(Node(.file(data), permissions: permissions, uid: uid, gid: gid), at: names)
            return names
        }
        let kind: Node.Kind
        switch header.mode & 0o170000 {
        case 0o040000: kind = .directory
        case 0o100000: kind = .file(FileData(size: header.size, source: .bootcd(index: index)))
        case 0o120000:
            guard let target = header.symlinkTarget, !target.isEmpty else { throw refuse("is a symbolic link without a target") }
            kind = .symlink(target)
        case 0o020000: kind = .characterDevice(major: header.deviceMajor, minor: header.deviceMinor)
        case 0o060000: kind = .blockDevice(major: header.deviceMajor, minor: header.deviceMinor)
        case 0o010000: kind = .fifo
        case 0o140000: kind = .socket
        default: throw refuse("has an unknown file type (mode \(String(header.mode, radix: 8)))")
        }
        if case .file = kind, header.size < 0 { throw refuse("has a negative size") }
        try place(Node(kind, permissions: permissions, uid: uid, gid: gid), at: names)
        return names
    }
}
