import Foundation
import Testing

@testable import BootMedium

/// `bootmedium inspect`: reports checked against independent readers, manifest tampering,
/// and a corpus of hostile images.
@Suite(.serialized, .tags(.demoRoot)) struct InspectTests {
    func inspectCLI(_ image: String, json: Bool = false) throws -> (status: Int32, stdout: String, stderr: String) {
        let r = try runProcess(bootmediumExecutable, ["inspect", image] + (json ? ["--json"] : []))
        return (r.status, String(decoding: r.stdout, as: UTF8.self), r.stderr)
    }

    @Test func reportsOurISOAsIndependentReadersSeeIt() async throws {
        let demo = try DemoCopy()
        let iso = try await demo.build("node-iso", options: ["serial:ttyS1:9600"], name: "i.iso")
        let report = try ImageInspector.inspect(path: iso)
        #expect(report.image.type == "iso")
        #expect(report.image.filesystem == "iso9660")
        #expect(report.volumeID == "DEMOPLC_5_4_DEMO")
        #expect(report.bootcdVersion == "DemoPLC BootCD 5.4-demo")
        // Files: the same list isoinfo gives (less its directories: the report lists files).
        let isoinfo = String(decoding: try runProcess("/usr/bin/isoinfo", ["-R", "-f", "-i", iso]).stdout, as: UTF8.self)
        let listed = Set(isoinfo.split(separator: "\n").map(String.init))
        let directories = listed.filter { entry in listed.contains { $0.hasPrefix(entry + "/") } }
        #expect(Set(report.files.map(\.path)) == listed.subtracting(directories))
        #expect(directories == ["/.disk", "/boot", "/boot/grub"])
        // Boot records: El Torito as xorriso reports it, and the isohybrid MBR partition as sfdisk.
        let boot = try #require(report.elTorito?.first)
        #expect(boot.platform == "BIOS" && boot.bootable && boot.emulation == "none" && boot.loadSectors == 4)
        #expect(boot.image == "/isolinux.bin" && boot.bootInfoTable)
        // With the ESP, a protective MBR (one 0xee entry over the image, as inspect and sfdisk
        // report it) fronts a GPT: partition 1 the ISO 9660 data from sector 64, partition 2 the
        // appended ESP (type EFI system), as sfdisk, xorriso and sgdisk read them.
        let parts = try #require(report.partitions)
        #expect(parts.count == 1 && parts[0].type == "0xee" && parts[0].startSector == 1, "\(parts)")
        let gpt = try #require(report.gpt)
        try #require(gpt.partitions.count == 2, "\(gpt)")
        #expect(gpt.partitions[0].firstLBA == 64 && gpt.partitions[0].typeName == "basic data")
        let esp = gpt.partitions[1]
        #expect(esp.typeName == "EFI system" && esp.firstLBA > gpt.partitions[0].lastLBA)
        let sfdisk = String(decoding: try runProcess("/sbin/sfdisk", ["--dump", iso]).stdout, as: UTF8.self)
        #expect(sfdisk.contains("label: gpt") && sfdisk.contains("label-id: \(gpt.diskGUID)"), "\(sfdisk)")
        let line = try #require(sfdisk.split(separator: "\n").first { $0.replacingOccurrences(of: " ", with: "").contains("start=\(esp.firstLBA),") }, "\(sfdisk)")
        #expect(line.replacingOccurrences(of: " ", with: "").contains("size=\(esp.lastLBA - esp.firstLBA + 1),type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B"), "\(sfdisk)")
        let area = String(decoding: try runProcess("/usr/bin/xorriso", ["-indev", iso, "-report_system_area", "plain"]).stdout, as: UTF8.self)
        #expect(area.contains("GPT start and size :   2  \(esp.firstLBA)  \(esp.lastLBA - esp.firstLBA + 1)"), "\(area)")
        #expect(!area.contains("GPT backup problems"), "\(area)")
        let sgdisk = try runProcess("/sbin/sgdisk", ["-v", iso])
        #expect(String(decoding: sgdisk.stdout, as: UTF8.self).contains("No problems found"), "\(String(decoding: sgdisk.stdout, as: UTF8.self))")
        // Boot config parsed.
        let config = try #require(report.bootConfigs.first)
        #expect(config.path == "/isolinux.cfg" && config.serial == .init(port: 1, baud: 9600))
        #expect(config.defaultEntry?.kernel == "kernel")
        #expect(config.defaultEntry?.initrds == ["bootcd.img", "overlay.img"])
        #expect(config.defaultEntry?.append.contains("console=ttyS1,9600n8") == true)
        // Overlay and node config, key redacted unless asked.
        #expect(report.overlay?.contains { $0.path == "usr/boot/plnode.txt" && $0.mode == "600" } == true)
        #expect(report.nodeConfig?.value("NODE_KEY") == "<redacted>")
        #expect(report.nodeConfig?.value("HOST_NAME") == "node1")
        let secret = try ImageInspector.inspect(path: iso, showSecrets: true)
        #expect(secret.nodeConfig?.value("NODE_KEY") == (try demo.nodeKey(1)))
        #expect(report.manifest.status == .ok && report.manifest.problems.isEmpty)
        // The CLI: human form and JSON with the schema id.
        let human = try inspectCLI(iso)
        #expect(human.status == 0 && human.stdout.contains("manifest  ok"))
        #expect(!human.stdout.contains(try #require(try demo.nodeKey(1))))
        let json = try inspectCLI(iso, json: true)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [String: Any]
        #expect(object["schema"] as? String == "bootmedium-inspect/1")
    }

    @Test(arguments: [false, true])
    func reportsOurUSBImagesAsMtoolsAndSfdiskSeeThem(partitioned: Bool) async throws {
        let demo = try DemoCopy()
        let image = try await demo.build("node-usb", options: partitioned ? ["partition", "serial"] : ["serial"], name: "u.usb")
        let report = try ImageInspector.inspect(path: image)
        #expect(report.image.type == (partitioned ? "usb_partition" : "usb"))
        #expect(report.image.filesystem == "vfat")
        #expect(report.syslinux == .init(installed: true, version: "SYSLINUX 6.04"))
        #expect(report.manifest.status == .ok, "\(report.manifest.problems)")
        #expect(report.bootConfigs.first?.path == "/syslinux.cfg")
        #expect(report.bootConfigs.first?.serial == .init(port: 0, baud: 115200))
        #expect(report.nodeConfig?.value("NODE_ID") == "1")
        // The file list mtools gives (hidden files included).
        let target = partitioned ? "\(image)@@\(32 * 512)" : image
        let mdir = try runProcess("/usr/bin/mdir", ["-a", "-b", "-i", target, "::/"], environment: ["MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"])
        let listed = Set(String(decoding: mdir.stdout, as: UTF8.self).split(separator: "\n").map { String($0.dropFirst(3)).lowercased() })
        // mdir lists the root: a file under EFI/BOOT shows as its top directory `efi/`.
        #expect(Set(report.files.map { file -> String in
            let parts = file.path.dropFirst().lowercased().split(separator: "/")
            return parts.count > 1 ? String(parts[0]) + "/" : String(parts[0])
        }) == listed)
        #expect(report.files.contains { $0.path == "/EFI/BOOT/BOOTX64.EFI" } && report.efiLoader == true)
        if partitioned {
            let part = try #require(report.partitions?.first)
            #expect(part.active && part.startSector == 32)
            let dump = String(decoding: try runProcess("/sbin/sfdisk", ["--dump", image]).stdout, as: UTF8.self)
            #expect(dump.contains("start=          32, size=\(String(repeating: " ", count: max(0, 12 - String(part.sectors).count)))\(part.sectors)"), "\(dump)")
        } else {
            #expect(report.partitions == nil)
        }
    }

    @Test func readsAnISOMadeByXorrisoToo() throws {
        let root = try DemoRoot.path()
        let dir = FileManager.default.temporaryDirectory.path + "/xo-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try runProcess(packageDirectory + "/tools/fixture-iso", [root, dir + "/x.iso"]).status == 0)
        let report = try ImageInspector.inspect(path: dir + "/x.iso")
        #expect(report.manifest.status == .missing)
        #expect(report.elTorito?.first?.bootInfoTable == true)
        #expect(report.nodeConfig != nil)
    }

    @Test func aChangedByteIsAManifestMismatch() async throws {
        let demo = try DemoCopy()
        let iso = try await demo.build("generic-iso", node: nil, name: "t.iso")
        // Find the kernel's extent with isoinfo's listing and change one byte there.
        let listing = String(decoding: try runProcess("/usr/bin/isoinfo", ["-R", "-l", "-i", iso]).stdout, as: UTF8.self)
        let line = try #require(listing.split(separator: "\n").first { $0.hasSuffix(" kernel ") || $0.hasSuffix(" kernel") })
        let lba = try #require(Int(line.split(separator: "[")[1].split(separator: " ").first!))
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: iso))
        try handle.seek(toOffset: UInt64(lba * 2048 + 1000))
        let old = try handle.read(upToCount: 1)![0]
        try handle.seek(toOffset: UInt64(lba * 2048 + 1000))
        try handle.write(contentsOf: Data([old ^ 0xFF]))
        try handle.close()
        let report = try ImageInspector.inspect(path: iso)
        #expect(report.manifest.status == .mismatch)
        #expect(report.manifest.problems == ["kernel: SHA-256 differs from the manifest"])
        let cli = try inspectCLI(iso)
        #expect(cli.status == 1)
        #expect(cli.stdout.contains("- kernel: SHA-256 differs from the manifest"))
    }

    /// ≥ 50 hostile images (Tests/Hostile/make-corpus): each ends in a clear error or a report,
    /// within 2 s and 256 MiB, never a crash.
    @Test func hostileCorpusFailsCleanlyInBoundedTimeAndMemory() async throws {
        let demo = try DemoCopy()
        let seed = try await demo.build("generic-iso", node: nil, name: "seed.iso")
        let usbSeed = try await demo.build("generic-usb", node: nil, name: "seed.usb")
        let dir = demo.path + "/corpus"
        let cramfsISO = try await demo.build("node-iso", options: ["cramfs"], name: "seed-cramfs.iso")
        let cramfsSeed = demo.path + "/seed.cramfs"
        try isoFile(cramfsISO, "/cramfs.img").write(to: URL(fileURLWithPath: cramfsSeed))
        let made = try runProcess(packageDirectory + "/Tests/Hostile/make-corpus", [seed, dir, usbSeed, cramfsSeed])
        #expect(made.status == 0, "\(made.stderr)")
        let cases = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        #expect(cases.count >= 87)
        #expect(cases.filter { $0.hasSuffix(".cramfs") }.count >= 20)
        var errors = 0
        for name in cases {
            let start = Date()
            let r = try runProcess("/usr/bin/time", ["-f", "%M", bootmediumExecutable, "inspect", dir + "/" + name])
            let elapsed = Date().timeIntervalSince(start)
            let lines = r.stderr.split(separator: "\n")
            let rssKiB = Int(lines.last ?? "") ?? Int.max
            #expect(elapsed < 2, "\(name): \(elapsed) s")
            #expect(rssKiB < 256 * 1024, "\(name): \(rssKiB) KiB")
            #expect(!r.stderr.contains("signal"), "\(name): \(r.stderr)")
            if r.status == 0 || (r.status == 1 && r.stdout.count > 0 && !r.stderr.contains("error[")) {
                // A report (the image was readable, possibly with a manifest problem).
                #expect(!r.stdout.isEmpty, "\(name)")
            } else {
                errors += 1
                #expect(lines.first?.hasPrefix("error[invalid-image]: ") == true, "\(name): \(r.stderr)")
            }
        }
        #expect(errors >= 60)
        // The ones that lie about content are caught by the manifest.
        let lie = try inspectCLI(dir + "/" + (cases.first { $0.hasSuffix("kernel-byte-changed.iso") })!)
        #expect(lie.status == 1 && lie.stdout.contains("kernel: SHA-256 differs"))
    }

    /// A manifest that lists one file thousands of times costs one hash, not thousands.
    @Test func aManifestListingAFileManyTimesHashesItOnce() async throws {
        let demo = try DemoCopy()
        let iso = try await demo.build("generic-iso", node: nil, name: "dup.iso")
        var manifest = try JSONSerialization.jsonObject(with: try isoFile(iso, "/bootmedium.json")) as! [String: Any]
        let files = manifest["files"] as! [[String: Any]]
        let kernel = try #require(files.first { $0["path"] as? String == "kernel" })
        manifest["files"] = files + Array(repeating: kernel, count: 5000)
        let text = try JSONSerialization.data(withJSONObject: manifest)

        final class Counter: @unchecked Sendable { var hashes = 0 }
        struct Listed: InspectableFileSystem {
            let iso: ISO9660Reader
            let manifest: [UInt8]
            let counter: Counter
            func files() throws(BootMediumError) -> [InspectionReport.File] { try iso.files() }
            func read(_ path: String) throws(BootMediumError) -> [UInt8] {
                path == "/bootmedium.json" ? manifest : try iso.read(path)
            }
            func sha256(_ path: String, zeroed: [[Int64]]?) throws(BootMediumError) -> String {
                counter.hashes += 1
                return try iso.sha256(path, zeroed: zeroed)
            }
            func contiguousExtent(_ path: String) throws(BootMediumError) -> (offset: Int64, size: Int64)? { nil }
        }
        let reader = try ISO9660Reader(try ImageBytes(path: iso))
        let counter = Counter()
        let fs = Listed(iso: reader, manifest: Array(text), counter: counter)
        let start = Date()
        let check = try ImageInspector.checkManifest(fs: fs, files: try fs.files(), image: reader.image)
        #expect(Date().timeIntervalSince(start) < 2)
        #expect(counter.hashes == files.count)
        #expect(check.status == .mismatch)
        #expect(check.problems.filter { $0 == "kernel: listed more than once in the manifest" }.count == 5000)
    }
}
