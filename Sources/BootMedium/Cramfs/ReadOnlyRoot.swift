import Foundation

/// The read-only-root adjustments of docs/behaviour.md §5.4, applied to the merged tree in memory
/// so that it boots as a cramfs mounted read-only on `/`: writable places move to a tmpfs on
/// `/tmp` that the generated `pl_rsysinit` fills before handing over to `pl_sysinit`.
enum ReadOnlyRoot {
    /// What the transform decided (for tests and inspection).
    struct Summary: Equatable {
        /// One directory pl_rsysinit copies: `from` (`/etc/NAME_o`) to `to` (`/tmp/etc/NAME`).
        struct Copy: Equatable {
            var from: String
            var to: String
        }
        /// The `NAME_o` directories pl_rsysinit copies.
        var copies: [Copy]
        /// The tmpfs size in KiB: everything under etc and var, plus 8 MiB.
        var tmpfsKiB: Int64
        /// Where pl_rsysinit was written and what it starts.
        var rsysinitPath: String
        var sysinitPath: String
    }

    /// Applies the transform to `tree`; `console` adds the serial login line.
    @discardableResult
    static func apply(to tree: RootTree, console: SerialConsole?) throws(BootMediumError) -> Summary {
        typealias Node = RootTree.Node
        func link(_ target: String) -> Node { Node(.symlink(Array(target.utf8)), permissions: 0o777) }
        func path(_ text: String) -> [[UInt8]] { RootTree.components(text) }

        // var/lib/rpm/*: the package database is of no use on a read-only root.
        if let rpm = tree.node("var/lib/rpm"), rpm.isDirectory {
            for (name, child) in rpm.children where !child.isDirectory { rpm.children[name] = nil }
        }
        _ = try tree.directory(path("mnt/confdevice"))
        tree.remove(path("root"))
        try tree.place(link("/tmp/root"), at: path("root"))
        try tree.place(link("/sbin/init"), at: path("linuxrc"))
        try tree.place(link("/tmp/etc/resolv.conf"), at: path("etc/resolv.conf"))
        try tree.place(link("/tmp/etc/mtab"), at: path("etc/mtab"))

        // Every top-level directory of etc (but rc.d, where the init scripts live) and of var
        // moves aside to NAME_o; NAME becomes a link to the writable copy under /tmp.
        var copies: [Summary.Copy] = []
        for top in ["etc", "var"] {
            guard let dir = tree.node(top), dir.isDirectory else { continue }
            for (name, child) in dir.sortedChildren where child.isDirectory && !(top == "etc" && name == Array("rc.d".utf8)) {
                let text = try safeName(name, in: top)
                let moved = name + Array("_o".utf8)
                guard dir.children[moved] == nil else {
                    throw BootMediumError(
                        .missingBootcd, "The bootcd tree has both /\(top)/\(text) and /\(top)/\(text)_o; cannot move one aside",
                        context: ["path": "/\(top)/\(text)_o"])
                }
                dir.children[moved] = child
                dir.children[name] = link("/tmp/\(top)/\(text)")
                copies.append(Summary.Copy(from: "/\(top)/\(text)_o", to: "/tmp/\(top)/\(text)"))
            }
        }

        try tree.place(
            Node(.file(RootTree.FileData(Array(try Templates.render("fstab-cramfs", [:]).utf8))), permissions: 0o644),
            at: path("etc/fstab"))
        try tree.place(Node(.characterDevice(major: 5, minor: 1), permissions: 0o600), at: path("dev/console"))

        // inittab: start pl_rsysinit where pl_sysinit was started.
        guard let inittab = tree.node("etc/inittab"), case .file(let data) = inittab.kind, case .bytes(let original) = try content(data, "etc/inittab")
        else {
            throw BootMediumError(
                .missingBootcd, "The bootcd tree has no etc/inittab; a cramfs root starts through its pl_sysinit line",
                context: ["path": "/etc/inittab"])
        }
        var lines = String(decoding: original, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var sysinit: String?
        for (i, line) in lines.enumerated() where line.contains("pl_sysinit") && !line.hasPrefix("#") {
            if sysinit == nil { sysinit = try sysinitPath(in: line) }
            if let range = line.range(of: "pl_sysinit") { lines[i] = line.replacingCharacters(in: range, with: "pl_rsysinit") }
        }
        guard let sysinit else {
            throw BootMediumError(
                .missingBootcd, "The bootcd tree's etc/inittab never starts pl_sysinit; the cramfs root needs that step",
                context: ["path": "/etc/inittab"])
        }
        if let console {
            if lines.last == "" { lines.removeLast() }
            lines.append(try Templates.render("inittab-serial", ["tty": console.tty, "baud": String(console.baud)]).trimmingCharacters(in: .newlines))
            lines.append("")
            var securetty = ""
            if let node = tree.node("etc/securetty"), case .file(let data) = node.kind, case .bytes(let bytes) = try content(data, "etc/securetty") {
                securetty = String(decoding: bytes, as: UTF8.self)
                if !securetty.isEmpty && !securetty.hasSuffix("\n") { securetty += "\n" }
            }
            securetty += console.tty + "\n"
            try tree.place(Node(.file(RootTree.FileData(Array(securetty.utf8))), permissions: 0o600), at: path("etc/securetty"))
        }
        inittab.kind = .file(RootTree.FileData(Array(lines.joined(separator: "\n").utf8)))

        // dhclient writes its per-interface config and resolv.conf under /etc.
        for i in 0...9 {
            try tree.place(link("/tmp/etc/dhclient-eth\(i).conf"), at: path("etc/dhclient-eth\(i).conf"))
        }
        try tree.place(link("/tmp/etc/resolv.conf.predhclient"), at: path("etc/resolv.conf.predhclient"))

        // The tmpfs holds copies of etc and var: their size in 4 KiB pages plus 8 MiB of room.
        var bytes: Int64 = 0
        for top in ["etc", "var"] {
            guard let dir = tree.node(top) else { continue }
            func add(_ node: Node) {
                switch node.kind {
                case .file(let data): bytes += (data.size + 4095) / 4096 * 4096
                case .directory: bytes += 4096; node.children.values.forEach(add)
                case .symlink(let target): bytes += Int64(target.count)
                default: break
                }
            }
            add(dir)
        }
        let tmpfsKiB = bytes / 1024 + 8192

        // pl_rsysinit goes beside pl_sysinit, in a directory that stays on the read-only root.
        let sysinitNames = path(sysinit)
        let rsysinit = (sysinitNames.dropLast().map { String(decoding: $0, as: UTF8.self) } + ["pl_rsysinit"]).joined(separator: "/")
        guard let directory = resolveDirectory(tree, Array(sysinitNames.dropLast())) else {
            throw BootMediumError(
                .missingBootcd,
                "pl_rsysinit must go beside \(sysinit), but that directory is not on the read-only root of the bootcd tree",
                context: ["path": sysinit])
        }
        let script = try Templates.render(
            "pl_rsysinit",
            [
                "tmpfsKiB": String(tmpfsKiB), "sysinit": sysinit,
                "copies": copies.map { ["from": $0.from, "to": $0.to] },
            ])
        directory.children[Array("pl_rsysinit".utf8)] = Node(.file(RootTree.FileData(Array(script.utf8))), permissions: 0o755)
        return Summary(copies: copies, tmpfsKiB: tmpfsKiB, rsysinitPath: "/" + rsysinit, sysinitPath: sysinit)
    }

    /// The bytes of a small generated-or-bootcd file; bootcd contents are not at hand in the
    /// tree, so config files the transform edits must be read first (see ``CramfsRoot``).
    private static func content(_ data: RootTree.FileData, _ path: String) throws(BootMediumError) -> RootTree.FileData.Source {
        if case .bootcd = data.source {
            throw BootMediumError(.imageBuildFailed, "\(path) was not loaded before the read-only-root transform", context: ["path": path])
        }
        return data.source
    }

    /// The files the transform reads and rewrites; ``CramfsRoot`` loads them into memory first.
    static let editedFiles = ["etc/inittab", "etc/securetty"]

    /// The absolute path in an inittab line that names pl_sysinit.
    static func sysinitPath(in line: String) throws(BootMediumError) -> String {
        let separators: Set<Character> = [":", " ", "\t"]
        let process = line.split(whereSeparator: { separators.contains($0) }).first { $0.contains("pl_sysinit") }
        guard let process, process.hasPrefix("/") else {
            throw BootMediumError(
                .missingBootcd, "etc/inittab starts pl_sysinit without an absolute path: \(line)", context: ["path": "/etc/inittab"])
        }
        let text = String(process)
        guard text.utf8.allSatisfy({ Self.isSafe($0) || $0 == 0x2F }) else {
            throw BootMediumError(
                .unsafeValue, "etc/inittab names pl_sysinit as \(text.debugDescription), which a shell would not take literally",
                context: ["path": "/etc/inittab"])
        }
        return text
    }

    /// Directory names land in pl_rsysinit (single-quoted): refuse any that a shell might not
    /// take literally, and any that is not UTF-8.
    static func safeName(_ name: [UInt8], in top: String) throws(BootMediumError) -> String {
        guard name.allSatisfy(isSafe), let text = String(validating: name, as: UTF8.self) else {
            let shown = String(decoding: name, as: UTF8.self)
            throw BootMediumError(
                .unsafeValue, "The bootcd tree's /\(top)/\(shown.debugDescription) would have to be named in pl_rsysinit; refusing a name a shell might not take literally",
                context: ["path": "/\(top)/\(shown)"])
        }
        return text
    }

    static func isSafe(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        case UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "@"), UInt8(ascii: ","): true
        default: false
        }
    }

    /// The directory node at `names`, following symbolic links inside the tree (at most 40);
    /// nil when it is missing or leaves the tree's read-only part.
    static func resolveDirectory(_ tree: RootTree, _ names: [[UInt8]]) -> RootTree.Node? {
        var hops = 0
        var pending = names
        var resolved: [[UInt8]] = []
        while !pending.isEmpty {
            let name = pending.removeFirst()
            if name == [0x2E] { continue }
            if name == [0x2E, 0x2E] {
                if !resolved.isEmpty { resolved.removeLast() }
                continue
            }
            guard let node = tree.node(resolved + [name]) else { return nil }
            switch node.kind {
            case .directory: resolved.append(name)
            case .symlink(let target):
                hops += 1
                guard hops <= 40 else { return nil }
                if target.first == 0x2F { resolved = [] }
                pending = target.split(separator: 0x2F).map(Array.init) + pending
            default: return nil
            }
        }
        return tree.node(resolved)
    }
}
