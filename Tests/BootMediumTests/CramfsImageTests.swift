import Crypto
import Foundation
import Testing

@testable import BootMedium

/// What `lstat` and a read say about one entry of an extracted tree.
struct TreeEntryFacts: Equatable, CustomStringConvertible {
    var kind: String
    var permissions: UInt32
    var device: String?
    var link: String?
    var sha256: String?
    var description: String { "\(kind) \(String(permissions, radix: 8)) \(device ?? "") \(link ?? "") \(sha256?.prefix(12) ?? "")" }
}

/// Every entry under `dir` (relative paths, no leading slash), read with lstat and plain reads.
func treeFacts(_ dir: String) throws -> [String: TreeEntryFacts] {
    var result: [String: TreeEntryFacts] = [:]
    let enumerator = FileManager.default.enumerator(atPath: dir)
    while let relative = enumerator?.nextObject() as? String {
        let full = dir + "/" + relative
        var info = stat()
        guard lstat(full, &info) == 0 else { throw BootMediumError(.io, "lstat \(full)") }
        var facts = TreeEntryFacts(kind: "?", permissions: UInt32(info.st_mode) & 0o7777)
        switch info.st_mode & S_IFMT {
        case S_IFDIR: facts.kind = "dir"
        case S_IFREG:
            facts.kind = "file"
            let data = try Data(contentsOf: URL(fileURLWithPath: full))
            facts.sha256 = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
        case S_IFLNK:
            facts.kind = "link"
            facts.permissions = 0o777
            facts.link = try FileManager.default.destinationOfSymbolicLink(atPath: full)
        case S_IFCHR: facts.kind = "chr"
        case S_IFBLK: facts.kind = "blk"
        case S_IFIFO: facts.kind = "fifo"
        default: facts.kind = "other"
        }
        if facts.kind == "chr" || facts.kind == "blk" {
            facts.device = "\(major(info.st_rdev)),\(minor(info.st_rdev))"
        }
        result[relative] = facts
    }
    return result
}

private func major(_ dev: dev_t) -> UInt32 { UInt32((dev >> 8) & 0xfff) | UInt32((dev >> 32) & ~0xfff) }
private func minor(_ dev: dev_t) -> UInt32 { UInt32(dev & 0xff) | UInt32((dev >> 12) & ~0xff) }

func run(_ tool: String, _ args: [String]) throws -> String {
    let r = try runProcess(tool, args)
    guard r.status == 0 else { throw BootMediumError(.io, "\(tool) \(args.joined(separator: " ")): \(r.stderr)") }
    return String(decoding: r.stdout, as: UTF8.self) + r.stderr
}

@Suite(.serialized, .tags(.qemu, .demoRoot)) struct CramfsImageTests {
    static let venvPython = (ProcessInfo.processInfo.environment["BOOTMEDIUM_CACHE"] ?? (NSHomeDirectory() + "/.cache/bootmedium")) + "/venv/bin/python3"

    /// iso_cramfs read back by xorriso/isoinfo, fsck.cramfs, pycramfs, and compared entry by
    /// entry with bootcd.img and overlay.img unpacked by the system's cpio (what build.sh did)
    /// plus the read-only-root changes of docs/behaviour.md §5.4.
    @Test func isoCramfsHoldsTheMergedReadOnlyTree() async throws {
        let demo = try DemoCopy()
        let iso = try await demo.build("node-iso", options: ["cramfs", "serial"], name: "c.iso")
        let listing = try run("/usr/bin/isoinfo", ["-R", "-f", "-i", iso])
        #expect(Set(listing.split(separator: "\n")) == [
            "/boot.cat", "/bootmedium.json", "/cramfs.img", "/isolinux.bin", "/isolinux.cfg", "/kernel", "/ldlinux.c32", "/pl_version",
            "/.disk", "/.disk/info", "/boot", "/boot/grub", "/boot/grub/grub.cfg",  // UEFI (the ESP is a partition)
        ])
        let report = try run("/usr/bin/xorriso", ["-indev", iso, "-report_el_torito", "plain"])
        #expect(report.contains("El Torito img path :   1  /isolinux.bin"))
        let work = demo.path + "/check"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let cramfs = work + "/cramfs.img"
        try isoFile(iso, "/cramfs.img").write(to: URL(fileURLWithPath: cramfs))
        let size = try #require(try FileManager.default.attributesOfItem(atPath: cramfs)[.size] as? Int)
        let config = String(decoding: try isoFile(iso, "/isolinux.cfg"), as: UTF8.self)
        #expect(config.contains("APPEND ramdisk_size=\((size + 1023) / 1024) initrd=cramfs.img root=/dev/ram0 ro console=ttyS0,115200n8"), "\(config)")
        #expect(config.hasPrefix("SERIAL 0 115200\n"))

        // util-linux's checker, then its extractor.
        let fsck = try run("/usr/sbin/fsck.cramfs", ["-v", cramfs])
        #expect(fsck.contains("OK"), "\(fsck)")
        _ = try run("/usr/sbin/fsck.cramfs", ["--extract=\(work)/ours", cramfs])
        let ours = try treeFacts(work + "/ours")

        // The expectation: bootcd.img and an overlay.img unpacked by cpio in build.sh's order. The
        // overlay comes from a plain node-iso built next (same files; only the renewed key differs).
        let plnode = try #require(String(data: try Data(contentsOf: URL(fileURLWithPath: work + "/ours/usr/boot/plnode.txt")), encoding: .utf8))
        #expect(plnode.contains("NODE_KEY=\"\(try #require(try demo.nodeKey(1)))\""))
        let plain = try await demo.build("node-iso", options: ["serial"], name: "plain.iso")
        try isoFile(plain, "/overlay.img").write(to: URL(fileURLWithPath: work + "/overlay.img"))
        // cpio -u: the overlay replaces files whatever their times, as build.sh's `cpio -diu` did.
        for archive in [demo.tree + "/isofs/bootcd.img", work + "/overlay.img"] {
            try FileManager.default.createDirectory(atPath: work + "/expected", withIntermediateDirectories: true)
            _ = try run("/bin/sh", ["-c", "cd \"$1\" && gzip -dc < \"$2\" | cpio -idmu --quiet", "sh", work + "/expected", archive])
        }
        try extractOverlay(work + "/overlay.img", into: work + "/overlay")
        let overlayPaths = Set(try treeFacts(work + "/overlay").keys)
        try plnode.write(toFile: work + "/expected/usr/boot/plnode.txt", atomically: false, encoding: .utf8)
        let expected = try treeFacts(work + "/expected")
        let etcDirs = Set(expected.filter { $0.key.hasPrefix("etc/") && $0.key.split(separator: "/").count == 2 && $0.value.kind == "dir" && $0.key != "etc/rc.d" }.keys)
        let varDirs = Set(expected.filter { $0.key.hasPrefix("var/") && $0.key.split(separator: "/").count == 2 && $0.value.kind == "dir" }.keys)
        #expect(!etcDirs.isEmpty && !varDirs.isEmpty, "the demo tree should exercise the etc/var moves")
        let rewritten: Set<String> = ["etc/fstab", "etc/inittab", "etc/securetty", "etc/resolv.conf", "etc/mtab", "dev/console", "linuxrc", "root"]
        var mapped: Set<String> = []
        for (path, facts) in expected {
            if rewritten.contains(path) || path.hasPrefix("root/") { continue }
            if path.hasPrefix("var/lib/rpm/") && facts.kind != "dir" && path.split(separator: "/").count == 4 { continue }
            var target = path
            let parts = path.split(separator: "/", maxSplits: 2).map(String.init)
            if parts.count >= 2, etcDirs.contains(parts[0] + "/" + parts[1]) || varDirs.contains(parts[0] + "/" + parts[1]) {
                target = ([parts[0], parts[1] + "_o"] + parts.dropFirst(2)).joined(separator: "/")
            }
            mapped.insert(target)
            #expect(ours[target] == facts, "\(path) -> \(target): ours \(ours[target].map(\.description) ?? "missing"), cpio \(facts)")
        }
        // Every other entry is one the read-only-root transform or the overlay made.
        var generated: Set<String> = rewritten.union(["mnt", "mnt/confdevice", "etc/resolv.conf.predhclient", "etc/rc.d/init.d/pl_rsysinit"])
        for i in 0...9 { generated.insert("etc/dhclient-eth\(i).conf") }
        generated.formUnion(etcDirs)
        generated.formUnion(varDirs)
        for path in ours.keys where !mapped.contains(path) {
            #expect(generated.contains(path) || overlayPaths.contains(path), "unexpected \(path)")
        }
        for dir in etcDirs.union(varDirs) { #expect(ours[dir]?.link == "/tmp/" + dir, "\(dir)") }
        #expect(ours["dev/console"]?.device == "5,1")
        #expect(ours["root"]?.link == "/tmp/root")
        #expect(ours["linuxrc"]?.link == "/sbin/init")
        let inittab = try String(contentsOfFile: work + "/ours/etc/inittab", encoding: .utf8)
        #expect(inittab.contains("pl_rsysinit") && !inittab.contains("/pl_sysinit"))
        #expect(inittab.hasSuffix("T0:23:respawn:/sbin/agetty -L ttyS0 115200 vt100\n"))
        #expect(try String(contentsOfFile: work + "/ours/etc/securetty", encoding: .utf8).hasSuffix("ttyS0\n"))

        // mkfs.cramfs of our extraction extracts to the same tree.
        _ = try run("/usr/sbin/mkfs.cramfs", [work + "/ours", work + "/theirs.img"])
        _ = try run("/usr/sbin/fsck.cramfs", ["--extract=\(work)/theirs", work + "/theirs.img"])
        #expect(try treeFacts(work + "/theirs") == ours)

        // pycramfs (PyPI) opens it, agrees on the CRC and reads the node config.
        let script = """
            import sys
            from pycramfs import Cramfs
            c = Cramfs.from_file(sys.argv[1])
            assert c.calculate_crc() == c.super.fsid.crc
            sys.stdout.write(c.find('/usr/boot/plnode.txt').read_bytes().decode())
            """
        let py = try runProcess(Self.venvPython, ["-c", script, cramfs])
        #expect(py.status == 0, "\(py.stderr)")
        #expect(String(decoding: py.stdout, as: UTF8.self) == plnode)

        // Our own inspection agrees.
        let inspected = try ImageInspector.inspect(path: iso)
        #expect(inspected.cramfs?.readOnlyRoot == true)
        #expect(inspected.cramfs?.crcOK == true)
        #expect(inspected.nodeConfig?.value("NODE_ID") == "1")
        #expect(inspected.manifest.status == .ok)
    }

    /// usb_cramfs: the same cramfs.img in a FAT image with SYSLINUX, sized for all its files.
    @Test func usbCramfsCarriesTheSameRoot() async throws {
        let demo = try DemoCopy()
        let usb = try await demo.build("node-usb", options: ["cramfs"], name: "c.usb")
        let iso = try await demo.build("node-iso", options: ["cramfs"], name: "c.iso")
        _ = try run("/usr/sbin/fsck.fat", ["-n", "-v", usb])
        let dir = try run("/usr/bin/mdir", ["-i", usb, "-a", "-b", "::/"])
        for name in ["kernel", "cramfs.img", "pl_version", "syslinux.cfg", "ldlinux.sys", "ldlinux.c32", "bootmedium.json"] {
            #expect(dir.lowercased().contains("::/" + name), "\(name) in \(dir)")
        }
        #expect(!dir.contains("overlay.img") && !dir.contains("bootcd.img"))
        let fromUSB = try runProcess("/usr/bin/mtype", ["-i", usb, "::/cramfs.img"]).stdout
        // The two builds renewed the key in between: compare the cramfs of the USB with a fresh
        // read of its own plnode, and its structure with fsck.cramfs.
        let path = demo.path + "/usb-cramfs.img"
        try fromUSB.write(to: URL(fileURLWithPath: path))
        #expect(try run("/usr/sbin/fsck.cramfs", ["-v", path]).contains("OK"))
        let config = String(decoding: try runProcess("/usr/bin/mtype", ["-i", usb, "::/syslinux.cfg"]).stdout, as: UTF8.self)
        #expect(config.contains("initrd=cramfs.img root=/dev/ram0 ro"))
        #expect(config.contains("ramdisk_size=\((fromUSB.count + 1023) / 1024) "))
        let inspected = try ImageInspector.inspect(path: usb)
        #expect(inspected.image.type == "usb")
        #expect(inspected.cramfs?.path?.lowercased() == "/cramfs.img")
        #expect(inspected.manifest.status == .ok)
        #expect(inspected.nodeConfig?.value("NODE_ID") == "1")
        // verify reads the node config out of the cramfs.
        #expect(try await ImageVerifier.differences(image: iso, node: "1", planner: demo.service().planner) == [])
        let other = try await ImageVerifier.differences(image: usb, node: "2", planner: demo.service().planner)
        #expect(other.contains("node: 1 in the image, 2 now"))
    }

    /// Same plan, same node config, same SOURCE_DATE_EPOCH: the same bytes, for both containers
    /// (generic images take no options, so node images are built through the writers with a
    /// fixed plnode.txt instead of a freshly renewed key).
    @Test func cramfsImagesAreReproducible() async throws {
        let demo = try DemoCopy()
        for action in ["node-iso", "node-usb"] {
            let plan = try await demo.service().planner.plan(
                BootMediumRequest(caller: .admin, node: DemoRoot.node1, action: action, filename: nil, options: ["cramfs", "serial"]))
            #expect(plan.imageType?.isCramfs == true)
            var digests: Set<String> = []
            for _ in 0..<2 {
                let sink = MemorySink()
                let type = try #require(plan.imageType)
                let writer = ImageWriters.writer(for: type, templates: TemplateCache())
                try writer.write(ImageInputs(plan: plan, nodeConfigText: "NODE_ID=\"1\"\n"), to: sink, cancellation: CancellationFlag())
                digests.insert(SHA256.hash(data: sink.data).map { String(format: "%02x", $0) }.joined())
            }
            #expect(digests.count == 1, "\(action)")
        }
        // Nothing is left in the work dir (the cramfs was an anonymous file).
        #expect(demo.workFiles.allSatisfy { $0.hasPrefix(".") })
    }

    /// A bootcd without the pl_sysinit step, or one that is cut short, fails cleanly: no image,
    /// no temp file, and the node keeps its key.
    @Test func brokenTreesLeaveNothingBehind() async throws {
        let demo = try DemoCopy()
        let bootcd = demo.tree + "/isofs/bootcd.img"
        let original = try Data(contentsOf: URL(fileURLWithPath: bootcd))
        let key = try demo.nodeKey(1)
        // Truncated mid-stream.
        try FileManager.default.removeItem(atPath: bootcd)
        try original.prefix(original.count / 2).write(to: URL(fileURLWithPath: bootcd))
        await #expect(throws: BootMediumError.self) { _ = try await demo.build("node-iso", options: ["cramfs"], name: "t.iso") }
        #expect(demo.workFiles.allSatisfy { $0.hasPrefix(".") })
        #expect(try demo.nodeKey(1) == key)
        // A tree whose inittab never starts pl_sysinit.
        let work = demo.path + "/repack"
        try FileManager.default.removeItem(atPath: bootcd)
        try original.write(to: URL(fileURLWithPath: bootcd))
        try extractOverlay(bootcd, into: work)
        try "::sysinit:/etc/rc.d/rc.sysinit\n".write(toFile: work + "/etc/inittab", atomically: false, encoding: .utf8)
        _ = try run("/bin/sh", ["-c", "cd \"$1\" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -n > \"$2\"", "sh", work, bootcd + ".new"])
        try FileManager.default.removeItem(atPath: bootcd)
        try FileManager.default.moveItem(atPath: bootcd + ".new", toPath: bootcd)
        let error = await #expect(throws: BootMediumError.self) { _ = try await demo.build("node-usb", options: ["cramfs"], name: "t.usb") }
        #expect(error?.code == .missingBootcd)
        #expect(error?.message.contains("pl_sysinit") == true)
        #expect(demo.workFiles.allSatisfy { $0.hasPrefix(".") })
        #expect(try demo.nodeKey(1) == key)
    }

    /// The plnode.txt inside a medium's cramfs.img, read by pycramfs, checked against the key the
    /// node store holds now and a preview of the same node.
    func cramfsPlnode(_ cramfs: Data, demo: DemoCopy) async throws -> String {
        let path = demo.path + "/plnode-\(UUID().uuidString).cramfs"
        try cramfs.write(to: URL(fileURLWithPath: path))
        let py = try runProcess(Self.venvPython, ["-c", "import sys\nfrom pycramfs import Cramfs\nsys.stdout.write(Cramfs.from_file(sys.argv[1]).find('/usr/boot/plnode.txt').read_bytes().decode())", path])
        #expect(py.status == 0, "\(py.stderr)")
        let text = String(decoding: py.stdout, as: UTF8.self)
        let preview = try await demo.service().getBootMedium(caller: .admin, node: DemoRoot.node1, action: "node-preview", filename: nil)
        #expect(.text(String(text.split(separator: "\n", maxSplits: 3, omittingEmptySubsequences: false)[3])) == preview)
        #expect(text.hasPrefix("NODE_ID=\"1\"\nNODE_KEY=\"\(try #require(try demo.nodeKey(1)))\"\n"))
        return text
    }

    /// QEMU: the kernel loads cramfs.img into /dev/ram0, mounts it read-only as /, busybox init
    /// runs pl_rsysinit (tmpfs, copies) and hands over to pl_sysinit, which prints the report.
    @Test func isoCramfsBootsFromCD() async throws {
        let demo = try DemoCopy()
        let iso = try await demo.build("node-iso", options: ["cramfs", "serial"], name: "boot.iso")
        let plnode = try await cramfsPlnode(try isoFile(iso, "/cramfs.img"), demo: demo)
        let result = try bootCheck(iso, media: "cd", cmdline: ["initrd=cramfs.img", "root=/dev/ram0 ro", "console=ttyS0,115200n8"], plnode: .some(plnode))
        #expect(result.passed, "\(result.output.suffix(3000))")
    }

    @Test func usbCramfsBootsFromDisk() async throws {
        let demo = try DemoCopy()
        let usb = try await demo.build("node-usb", options: ["cramfs", "serial:ttyS1:9600"], name: "boot.usb")
        let plnode = try await cramfsPlnode(try runProcess("/usr/bin/mtype", ["-i", usb, "::/cramfs.img"]).stdout, demo: demo)
        let result = try bootCheck(usb, media: "disk", cmdline: ["initrd=cramfs.img", "root=/dev/ram0 ro", "console=ttyS1,9600n8"], plnode: .some(plnode))
        #expect(result.passed, "\(result.output.suffix(3000))")
    }
}
