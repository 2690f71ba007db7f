import Foundation
import Testing

@testable import BootMedium

/// The read-only-root transform (docs/behaviour.md §5.4) on small trees built in memory.
@Suite struct ReadOnlyRootTests {
    typealias Node = RootTree.Node

    static func file(_ text: String, _ permissions: UInt32 = 0o644) -> Node {
        Node(.file(RootTree.FileData(Array(text.utf8))), permissions: permissions)
    }

    static func link(_ target: String) -> Node { Node(.symlink(Array(target.utf8)), permissions: 0o777) }

    /// A bootcd-like tree: init scripts in etc/rc.d/init.d (etc/init.d links there), a few etc
    /// and var directories, an rpm database, a non-empty /root.
    static func sampleTree(inittab: String = "id:3:initdefault:\nsi::sysinit:/etc/init.d/pl_sysinit\n") throws -> RootTree {
        let tree = RootTree()
        func put(_ path: String, _ node: Node) throws { try tree.place(node, at: RootTree.components(path)) }
        try put("etc/inittab", file(inittab))
        try put("etc/securetty", file("tty1\ntty2"))
        try put("etc/fstab", file("/dev/root / ext2 defaults 0 0\n"))
        try put("etc/resolv.conf", file("nameserver 10.0.0.1\n"))
        try put("etc/rc.d/init.d/pl_sysinit", file("#!/bin/sh\necho hi\n", 0o755))
        try put("etc/init.d", link("rc.d/init.d"))
        try put("etc/sysconfig/network", file(String(repeating: "x", count: 5000)))
        try put("etc/ssh/sshd_config", file("Port 22\n"))
        try put("var/lib/rpm/Packages", file("db"))
        try put("var/lib/rpm/keep", Node(.directory, permissions: 0o755))
        try put("var/log/messages", file(""))
        try put("root/.profile", file("PS1=#\n"))
        try put("sbin/init", link("../bin/busybox"))
        return tree
    }

    func names(_ node: Node?) -> [String] {
        (node?.children.keys.map { String(decoding: $0, as: UTF8.self) } ?? []).sorted()
    }

    func text(_ tree: RootTree, _ path: String) throws -> String {
        let node = try #require(tree.node(path))
        guard case .file(let data) = node.kind, case .bytes(let bytes) = data.source else {
            Issue.record("\(path) is not a generated file")
            return ""
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    func target(_ tree: RootTree, _ path: String) -> String? {
        guard let node = tree.node(path), case .symlink(let target) = node.kind else { return nil }
        return String(decoding: target, as: UTF8.self)
    }

    @Test func movesWritableDirectoriesToTmpAndStartsThroughRsysinit() throws {
        let tree = try Self.sampleTree()
        let summary = try ReadOnlyRoot.apply(to: tree, console: nil)

        #expect(summary.copies.map { "\($0.from)>\($0.to)" } == [
            "/etc/ssh_o>/tmp/etc/ssh", "/etc/sysconfig_o>/tmp/etc/sysconfig", "/var/lib_o>/tmp/var/lib", "/var/log_o>/tmp/var/log",
        ])
        #expect(target(tree, "etc/sysconfig") == "/tmp/etc/sysconfig")
        #expect(try text(tree, "etc/sysconfig_o/network").count == 5000)
        #expect(target(tree, "var/lib") == "/tmp/var/lib")
        #expect(tree.node("etc/rc.d")?.isDirectory == true)  // rc.d stays
        #expect(target(tree, "etc/init.d") == "rc.d/init.d")  // a link, not a directory: stays
        // var/lib/rpm/*: files go, directories stay.
        #expect(names(tree.node("var/lib_o/rpm")) == ["keep"])
        #expect(target(tree, "root") == "/tmp/root")
        #expect(target(tree, "linuxrc") == "/sbin/init")
        #expect(target(tree, "etc/resolv.conf") == "/tmp/etc/resolv.conf")
        #expect(target(tree, "etc/mtab") == "/tmp/etc/mtab")
        #expect(target(tree, "etc/resolv.conf.predhclient") == "/tmp/etc/resolv.conf.predhclient")
        for i in 0...9 { #expect(target(tree, "etc/dhclient-eth\(i).conf") == "/tmp/etc/dhclient-eth\(i).conf") }
        #expect(tree.node("mnt/confdevice")?.isDirectory == true)
        let console = try #require(tree.node("dev/console"))
        guard case .characterDevice(5, 1) = console.kind else {
            Issue.record("dev/console is \(console.kind)")
            return
        }
        #expect(try text(tree, "etc/fstab").hasPrefix("/dev/ram0     /              cramfs     ro"))
        // inittab starts pl_rsysinit, which sits beside pl_sysinit (through the etc/init.d link).
        #expect(try text(tree, "etc/inittab") == "id:3:initdefault:\nsi::sysinit:/etc/init.d/pl_rsysinit\n")
        #expect(summary.rsysinitPath == "/etc/init.d/pl_rsysinit")
        let script = try text(tree, "etc/rc.d/init.d/pl_rsysinit")
        #expect(tree.node("etc/rc.d/init.d/pl_rsysinit")?.permissions == 0o755)
        #expect(script.hasPrefix("#!/bin/sh\n"))
        #expect(script.contains("cp -a '/etc/sysconfig_o' '/tmp/etc/sysconfig'\n"))
        #expect(script.hasSuffix("exec '/etc/init.d/pl_sysinit'\n"))
        // tmpfs: etc and var in 4 KiB pages and directory pages, link bytes, plus 8 MiB.
        #expect(summary.tmpfsKiB > 8192 && summary.tmpfsKiB < 8192 + 200)
        #expect(script.contains("size=\(summary.tmpfsKiB)k"))
        // No serial console: securetty untouched, no agetty.
        #expect(try text(tree, "etc/securetty") == "tty1\ntty2")
        #expect(!(try text(tree, "etc/inittab")).contains("agetty"))
    }

    @Test func serialConsoleAddsAgettyAndSecuretty() throws {
        let tree = try Self.sampleTree()
        try ReadOnlyRoot.apply(to: tree, console: try SerialConsole(spec: "ttyS1:9600"))
        #expect(try text(tree, "etc/inittab").hasSuffix("pl_rsysinit\nT0:23:respawn:/sbin/agetty -L ttyS1 9600 vt100\n"))
        #expect(try text(tree, "etc/securetty") == "tty1\ntty2\nttyS1\n")
    }

    @Test func refusesTreesItCannotMakeReadOnly() throws {
        // No pl_sysinit step.
        let plain = try Self.sampleTree(inittab: "::sysinit:/etc/rc.d/rc.sysinit\n")
        #expect(throws: BootMediumError.self) { try ReadOnlyRoot.apply(to: plain, console: nil) }
        // No inittab at all.
        let bare = try Self.sampleTree()
        bare.remove(RootTree.components("etc/inittab"))
        let missing = #expect(throws: BootMediumError.self) { try ReadOnlyRoot.apply(to: bare, console: nil) }
        #expect(missing?.code == .missingBootcd)
        // pl_sysinit in a directory that moves to /tmp: pl_rsysinit could not run from there.
        let moved = try Self.sampleTree(inittab: "si::sysinit:/etc/boot/pl_sysinit\n")
        try moved.place(Self.file("x"), at: RootTree.components("etc/boot/pl_sysinit"))
        let away = #expect(throws: BootMediumError.self) { try ReadOnlyRoot.apply(to: moved, console: nil) }
        #expect(away?.message.contains("not on the read-only root") == true)
        // A directory name a shell would not take literally.
        let hostile = try Self.sampleTree()
        try hostile.place(Node(.directory, permissions: 0o755), at: [Array("etc".utf8), Array("x';reboot;'".utf8)])
        let unsafe = #expect(throws: BootMediumError.self) { try ReadOnlyRoot.apply(to: hostile, console: nil) }
        #expect(unsafe?.code == .unsafeValue)
        // NAME and NAME_o both present.
        let clash = try Self.sampleTree()
        try clash.place(Node(.directory, permissions: 0o755), at: RootTree.components("etc/ssh_o"))
        #expect(throws: BootMediumError.self) { try ReadOnlyRoot.apply(to: clash, console: nil) }
    }

    /// Merging works like the kernel's unpacker: directories update, files replace, a
    /// non-empty directory is never replaced, `..` never enters the tree.
    @Test func placeFollowsTheKernelsUnpackRules() throws {
        let tree = RootTree()
        try tree.place(Self.file("a"), at: RootTree.components("etc/x"))
        try tree.place(Node(.directory, permissions: 0o700, uid: 5), at: RootTree.components("etc"))
        #expect(tree.node("etc")?.permissions == 0o700)
        #expect(tree.node("etc")?.uid == 5)
        #expect(tree.node("etc/x") != nil)
        try tree.place(Self.file("b"), at: RootTree.components("etc/x"))
        #expect(try text(tree, "etc/x") == "b")
        #expect(throws: BootMediumError.self) { try tree.place(Self.file("c"), at: RootTree.components("etc")) }
        #expect(throws: BootMediumError.self) { try RootTree.components(Array("a/../b".utf8)) }
    }
}
