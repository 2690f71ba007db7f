import Foundation
import Testing

@testable import BootMedium

/// Every medium boots under UEFI too (shim -> signed GRUB -> the kernel), read by OVMF as a CD,
/// a disk and a USB stick, and with Secure Boot enforced when its kernel is signed (the demo
/// root's `build-signed` variant, Debian's signed kernel); the node prints back exactly the
/// plnode.txt we rendered, with the console argument on the kernel command line.
@Suite(.serialized, .tags(.qemu, .demoRoot)) struct UEFIBootTests {

    /// Builds `medium` for node 1 and returns it with the plnode.txt it carries.
    func build(_ medium: Medium, options: [String], demo: DemoCopy) async throws -> (image: String, plnode: String) {
        let image = try await demo.build(medium.action, options: medium.options + options, name: "uefi-\(medium.rawValue).img")
        let offset = medium == .usbPartition ? 32 * 512 : 0
        let plnode = try await renderedPlnode(image, demo: demo, nodeID: 1, hostname: DemoRoot.node1) { image in
            medium == .iso ? try isoFile(image, "/overlay.img") : try mtoolsRead(image, "overlay.img", offset: offset)
        }
        return (image, plnode)
    }

    /// Each medium the way firmware meets it: the ISO as a CD and as a disk, the USB images as
    /// a disk and as a USB stick (usb-storage on qemu-xhci).
    static let placements: [(Medium, String)] = [
        (.iso, "cd"), (.iso, "disk"), (.usb, "disk"), (.usb, "usb"), (.usbPartition, "disk"), (.usbPartition, "usb"),
    ]
    /// Each console option with the kernel argument it must give.
    static let consoles: [(option: String, argument: String)] = [
        ("serial", "console=ttyS0,115200n8"), ("serial:ttyS1:9600", "console=ttyS1,9600n8"),
    ]
    static var matrix: [(Medium, String, String, String)] {
        placements.flatMap { placement in consoles.map { (placement.0, placement.1, $0.option, $0.argument) } }
    }

    @Test(arguments: matrix)
    func mediaBootUnderUEFI(medium: Medium, media: String, option: String, console: String) async throws {
        let demo = try DemoCopy()
        let (image, plnode) = try await build(medium, options: [option], demo: demo)
        let result = try bootCheck(image, firmware: "uefi", media: media, cmdline: ["root=/dev/ram0", console], plnode: .some(plnode))
        #expect(result.passed, "\(result.output)")
        // The same image still boots under BIOS.
        if media != "usb" {
            let bios = try bootCheck(image, media: media, cmdline: [console], plnode: .some(plnode))
            #expect(bios.passed, "\(bios.output)")
        }
    }

    @Test(arguments: matrix)
    func signedKernelsBootUnderSecureBoot(medium: Medium, media: String, option: String, console: String) async throws {
        let demo = try DemoCopy()
        let (image, plnode) = try await build(medium, options: ["variant:build-signed", option], demo: demo)
        let result = try bootCheck(
            image, secureBoot: true, media: media, cmdline: ["root=/dev/ram0", console], plnode: .some(plnode), timeout: 180)
        #expect(result.passed, "\(result.output)")
    }

    /// The same medium whose kernel lost its signature does not boot under Secure Boot, and the
    /// harness says so as soon as GRUB refuses it, long before its timeout.
    @Test func anUnsignedKernelIsRefusedUnderSecureBoot() async throws {
        let demo = try DemoCopy()
        let kernel = try demo.makePrivate(demo.path + "/usr/share/bootcd-planetlab-x86_64/build-signed/isofs/kernel")
        let removed = try runProcess("/usr/bin/sbattach", ["--remove", kernel])
        #expect(removed.status == 0, "\(removed.stderr)")
        let iso = try await demo.build("node-iso", options: ["variant:build-signed", "serial"], name: "unsigned.iso")
        let start = Date()
        let result = try bootCheck(iso, secureBoot: true, media: "cd", plnode: nil, timeout: 180)
        #expect(!result.passed)
        #expect(result.output.contains("signature was refused"), "\(result.output)")
        #expect(Date().timeIntervalSince(start) < 90)
    }

    /// The cramfs types boot under UEFI too (the demo kernel: Secure Boot off).
    @Test(arguments: [(Medium.iso, "cd"), (Medium.usb, "disk")])
    func cramfsMediaBootUnderUEFI(medium: Medium, media: String) async throws {
        let demo = try DemoCopy()
        let image = try await demo.build(medium.action, options: ["cramfs", "serial"], name: "uefi-cramfs.img")
        let cramfs = medium == .iso ? try isoFile(image, "/cramfs.img") : try mtoolsRead(image, "cramfs.img")
        let plnode = try await CramfsImageTests().cramfsPlnode(cramfs, demo: demo)
        let result = try bootCheck(
            image, firmware: "uefi", media: media, cmdline: ["root=/dev/ram0 ro", "console=ttyS0,115200n8"], plnode: .some(plnode))
        #expect(result.passed, "\(result.output)")
    }

    /// Independent readers see both boot entries, the hybrid layout and clean FAT volumes.
    @Test func independentReadersSeeTheDualBootLayout() async throws {
        let demo = try DemoCopy()
        let iso = try await demo.build("node-iso", options: ["serial"], name: "dual.iso")
        let torito = String(decoding: try runProcess("/usr/bin/xorriso", ["-indev", iso, "-report_el_torito", "plain"]).stdout, as: UTF8.self)
        #expect(torito.contains("El Torito img path :   1  /isolinux.bin"), "\(torito)")
        let uefiEntry = try #require(torito.split(separator: "\n").first { $0.hasPrefix("El Torito boot img :   2") })
        #expect(uefiEntry.contains("UEFI"), "\(uefiEntry)")
        // The ESP: GPT partition 2 as sfdisk reads it, the same blocks El Torito's entry loads.
        let dump = try runProcess("/sbin/sfdisk", ["--json", iso])
        let table = try #require((try JSONSerialization.jsonObject(with: dump.stdout) as? [String: Any])?["partitiontable"] as? [String: Any])
        let espEntry = try #require((table["partitions"] as? [[String: Any]])?.first { ($0["type"] as? String) == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" }, "\(table)")
        let start = try #require(espEntry["start"] as? Int), sectors = try #require(espEntry["size"] as? Int)
        let loads = try #require(uefiEntry.split(separator: " ").compactMap { Int($0) }.suffix(2).first)
        #expect(loads == sectors, "\(uefiEntry)")
        let esp = demo.path + "/esp.img"
        let cut = try runProcess("/bin/dd", ["if=" + iso, "of=" + esp, "bs=512", "skip=\(start)", "count=\(sectors)", "status=none"])
        #expect(cut.status == 0)
        let fsck = try runProcess("/sbin/fsck.fat", ["-n", esp])
        #expect(fsck.status == 0, "\(fsck.stdout) \(fsck.stderr)")
        for name in ["BOOTX64.EFI", "grubx64.efi", "mmx64.efi"] {
            let onESP = try mtoolsRead(esp, "EFI/BOOT/" + name)
            let inTree = try Data(contentsOf: URL(fileURLWithPath: demo.tree + "/efi/" + (name == "BOOTX64.EFI" ? "shimx64.efi" : name)))
            #expect(onESP == inTree, "\(name)")
        }
        let grub = String(decoding: try isoFile(iso, "/boot/grub/grub.cfg"), as: UTF8.self)
        #expect(grub.contains("serial --unit=0 --speed=115200 --parity=no --word=8"), "\(grub)")
        #expect(grub.contains("initrd /bootcd.img /overlay.img"), "\(grub)")
        let usb = try await demo.build("node-usb", options: ["partition"], name: "dual.usb")
        // The partitioned image's FAT, cut out at its partition (sector 32).
        let part = demo.path + "/part.img"
        let dd = try runProcess("/bin/dd", ["if=" + usb, "of=" + part, "bs=512", "skip=32", "status=none"])
        #expect(dd.status == 0)
        let fsckPart = try runProcess("/sbin/fsck.fat", ["-n", part])
        #expect(fsckPart.status == 0, "\(fsckPart.stdout) \(fsckPart.stderr)")
        #expect(try mtoolsRead(part, "EFI/BOOT/BOOTX64.EFI") == Data(contentsOf: URL(fileURLWithPath: demo.tree + "/efi/shimx64.efi")))
    }

    /// inspect reports the ESP image's files (and the manifest lists them, checked), the GPT
    /// of the hybrid layout as sfdisk reads it, and a changed ESP file as a mismatch.
    @Test func inspectReportsTheESPAndTheGPT() async throws {
        let demo = try DemoCopy()
        let iso = try await demo.build("node-iso", options: ["serial"], name: "esp.iso")
        let report = try ImageInspector.inspect(path: iso)
        #expect(report.manifest.status == .ok, "\(report.manifest.problems)")
        let esp = try #require(report.esp)
        #expect(esp.volumeLabel == "EFIBOOT")
        #expect(esp.files.map(\.path).sorted() == ["/EFI/BOOT/BOOTX64.EFI", "/EFI/BOOT/grubx64.efi", "/EFI/BOOT/mmx64.efi"])
        let listed = try #require(report.manifest.manifest?.esp?.files)
        for name in ["shimx64.efi", "grubx64.efi", "mmx64.efi"] {
            let inTree = Digest.sha256(Array(try Data(contentsOf: URL(fileURLWithPath: demo.tree + "/efi/" + name))))
            let onESP = "EFI/BOOT/" + (name == "shimx64.efi" ? "BOOTX64.EFI" : name)
            #expect(listed.first { $0.path == onESP }?.sha256 == inTree, "\(onESP)")
        }
        // The GPT as sfdisk reads it.
        let dump = try runProcess("/sbin/sfdisk", ["--json", iso])
        let sfdisk = try JSONSerialization.jsonObject(with: dump.stdout) as? [String: Any]
        let table = try #require(sfdisk?["partitiontable"] as? [String: Any], "\(dump.stderr)")
        let parts = try #require(table["partitions"] as? [[String: Any]])
        let gpt = try #require(report.gpt)
        #expect(gpt.headerCRCOK && gpt.entriesCRCOK && gpt.backupOK)
        #expect((table["id"] as? String)?.uppercased() == gpt.diskGUID)
        #expect(parts.count == gpt.partitions.count)
        for (theirs, ours) in zip(parts, gpt.partitions) {
            #expect(theirs["start"] as? Int == Int(ours.firstLBA) && theirs["size"] as? Int == Int(ours.lastLBA - ours.firstLBA + 1))
            #expect((theirs["type"] as? String)?.uppercased() == ours.type && (theirs["uuid"] as? String)?.uppercased() == ours.guid)
        }
        #expect(gpt.partitions.map(\.typeName) == ["basic data", "EFI system"])
        let sgdisk = String(decoding: try runProcess("/sbin/sgdisk", ["-p", iso]).stdout, as: UTF8.self)
        #expect(sgdisk.contains("EF00") && !sgdisk.contains("Invalid"), "\(sgdisk)")
        // Two builds under SOURCE_DATE_EPOCH: the same GPT GUIDs.
        let again = try ImageInspector.inspect(path: try await demo.build("node-iso", options: ["serial"], name: "esp2.iso"))
        #expect(again.gpt == gpt)
    }

    /// inspect parses GRUB's config; verify finds it current, and reports a GRUB config that
    /// no longer boots what SYSLINUX boots.
    @Test func inspectAndVerifyReadTheGrubConfig() async throws {
        let demo = try DemoCopy()
        let usb = try await demo.build("node-usb", options: ["serial:ttyS1:9600"], name: "grub.usb")
        let report = try ImageInspector.inspect(path: usb)
        let grub = try #require(report.grubConfigs?.first)
        #expect(grub.path == "/EFI/BOOT/grub.cfg" && grub.serialTerminal && grub.rootMarker == "/bootmedium.json")
        #expect(grub.serial == .init(unit: 1, speed: 9600, parity: "no", word: 8))
        #expect(grub.kernel == "/kernel" && grub.initrds == ["bootcd.img", "overlay.img"])
        #expect(grub.arguments == report.bootConfigs.first?.defaultEntry?.append)
        let current = try await ImageVerifier.differences(image: usb, node: DemoRoot.node1, planner: demo.service().planner)
        #expect(current.isEmpty, "\(current)")
        // GRUB told another console than the plan's.
        let cfg = String(decoding: try mtoolsRead(usb, "EFI/BOOT/grub.cfg"), as: UTF8.self)
        let tampered = demo.path + "/grub.cfg"
        try cfg.replacingOccurrences(of: "--unit=1", with: "--unit=0").write(toFile: tampered, atomically: true, encoding: .utf8)
        let put = try runProcess("/usr/bin/mcopy", ["-o", "-i", usb, tampered, "::/EFI/BOOT/grub.cfg"], environment: ["MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"])
        #expect(put.status == 0, "\(put.stderr)")
        let drift = try await ImageVerifier.differences(image: usb, node: DemoRoot.node1, planner: demo.service().planner)
        #expect(drift.contains("/EFI/BOOT/grub.cfg serial console: ttyS0:9600 in the image, ttyS1:9600 now"), "\(drift)")
    }

    /// A tree without a UEFI loader still gives (BIOS-only) media: no failure.
    @Test func aTreeWithoutALoaderGivesBIOSOnlyMedia() async throws {
        let demo = try DemoCopy()
        try demo.removeUEFILoader()
        let iso = try await demo.build("node-iso", name: "bios.iso")
        let torito = String(decoding: try runProcess("/usr/bin/xorriso", ["-indev", iso, "-report_el_torito", "plain"]).stdout, as: UTF8.self)
        #expect(!torito.contains("/efi.img"), "\(torito)")
        let usb = try await demo.build("node-usb", name: "bios.usb")
        let report = try ImageInspector.inspect(path: usb)
        #expect(report.efiLoader == false && report.manifest.status == .ok)
    }
}
