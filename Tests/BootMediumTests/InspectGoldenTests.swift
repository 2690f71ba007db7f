import Foundation
import Testing

@testable import BootMedium

/// A PLC root whose every input is fixed text or a Debian 12 file, so the images built from it
/// are the same bytes on every machine: the source of the golden inspect reports.
final class SyntheticRoot: @unchecked Sendable {
    let base: TestRoot
    var path: String { base.path }
    var tree: String { base.path + "/usr/share/bootcd-planetlab-x86_64/build" }

    /// `cramfsReady` gives bootcd.img the inittab and pl_sysinit a cramfs root needs; the
    /// SYSLINUX payload comes from the demo root (carved from Debian's syslinux, the same bytes
    /// everywhere).
    init(cramfsReady: Bool = false) throws {
        base = try TestRoot(variants: ["build": "7.0-golden"])
        let fm = FileManager.default
        try """
            PLC_NAME="GoldenPLC"
            PLC_BOOT_HOST="boot.golden.example.org"
            PLC_BOOT_SSL_PORT="443"
            PLC_BOOT_CA_SSL_CRT="/etc/planetlab/ca.pem"
            PLC_ROOT_GPG_KEY_PUB="/etc/planetlab/pubring.gpg"
            PLC_WWW_HOST="www.golden.example.org"
            PLC_WWW_PORT="443"
            PLC_MAIL_SUPPORT_ADDRESS="support@golden.example.org"
            PLC_ROOT_PASSWORD="golden"

            """.write(toFile: path + "/etc/planetlab/plc_config", atomically: true, encoding: .utf8)
        try "-----BEGIN CERTIFICATE-----\ngolden\n-----END CERTIFICATE-----\n".write(toFile: path + "/etc/planetlab/ca.pem", atomically: true, encoding: .utf8)
        try "golden gpg key\n".write(toFile: path + "/etc/planetlab/pubring.gpg", atomically: true, encoding: .utf8)
        for dir in ["isofs", "isolinux", "syslinux"] {
            try fm.createDirectory(atPath: tree + "/" + dir, withIntermediateDirectories: true)
        }
        // A stand-in kernel: pseudo-random bytes with the x86 boot protocol's "HdrS" at 0x202,
        // which bootmedium checks before it puts a kernel on a medium.
        var kernel = (0..<65536).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        kernel.replaceSubrange(0x202..<0x206, with: Array("HdrS".utf8))
        try Data(kernel).write(to: URL(fileURLWithPath: tree + "/isofs/kernel"))
        var entries = [CpioEntry(path: "init", mode: 0o755, kind: .file(Array("#!/bin/sh\n".utf8)))]
        if cramfsReady {
            entries = [
                CpioEntry(path: "etc", mode: 0o755, kind: .directory),
                CpioEntry(path: "etc/inittab", mode: 0o644, kind: .file(Array("si::sysinit:/etc/rc.d/init.d/pl_sysinit\n".utf8))),
                CpioEntry(path: "etc/rc.d", mode: 0o755, kind: .directory),
                CpioEntry(path: "etc/rc.d/init.d", mode: 0o755, kind: .directory),
                CpioEntry(path: "etc/rc.d/init.d/pl_sysinit", mode: 0o755, kind: .file(Array("#!/bin/sh\n".utf8))),
                CpioEntry(path: "etc/sysconfig", mode: 0o755, kind: .directory),
                CpioEntry(path: "etc/sysconfig/network", mode: 0o644, kind: .file(Array("NETWORKING=yes\n".utf8))),
            ] + entries
        }
        let cpio = try Archive.gzippedNewc(entries, timestamp: 0)
        try Data(cpio.bytes).write(to: URL(fileURLWithPath: tree + "/isofs/bootcd.img"))
        try "root:x:0:0:root:/root:/bin/sh\n".write(toFile: tree + "/passwd", atomically: true, encoding: .utf8)
        for (from, to) in [("/usr/lib/ISOLINUX/isolinux.bin", "isolinux/isolinux.bin"),
                           ("/usr/lib/syslinux/modules/bios/ldlinux.c32", "isolinux/ldlinux.c32"),
                           ("/usr/lib/ISOLINUX/isohdpfx.bin", "isolinux/isohdpfx.bin")] {
            try fm.copyItem(atPath: from, toPath: tree + "/" + to)
        }
        let demoTree = try DemoRoot.path() + "/usr/share/bootcd-planetlab-x86_64/build"
        for file in ["syslinux/ldlinux.bss", "syslinux/ldlinux.sys", "syslinux/ldlinux.c32", "syslinux/mbr.bin"] {
            try fm.copyItem(atPath: demoTree + "/" + file, toPath: tree + "/" + file)
        }
    }

    /// Writes `action` for node 1 with `options` and a fixed plnode.txt through the image writers
    /// (a delivered node image would carry a fresh random key) into `name` under the root.
    func image(_ action: String, options: [String], name: String) async throws -> String {
        let plan = try await service().planner.plan(
            BootMediumRequest(caller: .admin, node: "12", action: action, filename: nil, options: options))
        let type = try #require(plan.imageType)
        let writer = ImageWriters.writer(for: type, templates: TemplateCache())
        let sink = MemorySink()
        let config = "NODE_ID=\"12\"\nNODE_KEY=\"golden-key\"\nIP_METHOD=\"dhcp\"\nHOST_NAME=\"node1\"\nDOMAIN_NAME=\"golden.example.org\"\n"
        try writer.write(ImageInputs(plan: plan, nodeConfigText: config), to: sink, cancellation: CancellationFlag())
        try sink.data.write(to: URL(fileURLWithPath: path + "/" + name))
        return path + "/" + name
    }

    func service() -> BootMediumService { base.service(epoch: 1_700_000_000) }
}

@Suite(.tags(.demoRoot)) struct InspectGoldenTests {
    func golden(_ name: String) throws -> String {
        try String(contentsOf: try #require(Bundle.module.url(forResource: "Golden/\(name)", withExtension: "json")), encoding: .utf8)
    }

    func reportJSON(_ image: String, replacing path: String) throws -> String {
        var report = try ImageInspector.inspect(path: image)
        report.image.path = path
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(report), as: UTF8.self) + "\n"
    }

    /// Validates `json` against docs/inspect-schema.json with the jsonschema package (PyPI).
    func validate(_ json: String) throws {
        let file = FileManager.default.temporaryDirectory.path + "/report-\(UUID().uuidString).json"
        try json.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let venv = CramfsImageTests.venvPython
        let r = try runProcess(venv, ["-c", "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1]))); print('valid')",
                                      packageDirectory + "/docs/inspect-schema.json", file])
        #expect(String(decoding: r.stdout, as: UTF8.self) == "valid\n", "\(r.stderr)")
    }

    /// Compares the report of `image` with golden `name` (rewritten with BOOTMEDIUM_UPDATE_GOLDEN=1)
    /// and validates it against the schema.
    func check(_ image: String, golden name: String) throws {
        let json = try reportJSON(image, replacing: "GOLDEN." + name)
        if ProcessInfo.processInfo.environment["BOOTMEDIUM_UPDATE_GOLDEN"] == "1" {
            try json.write(toFile: packageDirectory + "/Tests/BootMediumTests/Golden/inspect-\(name).json", atomically: true, encoding: .utf8)
        }
        #expect(json == (try golden("inspect-\(name)")))
        try validate(json)
    }

    @Test func genericUSBReportMatchesGolden() async throws {
        let root = try SyntheticRoot()
        _ = try await root.service().getBootMedium(caller: .admin, node: nil, action: "generic-usb", filename: root.path + "/g.usb")
        try check(root.path + "/g.usb", golden: "usb")
    }

    @Test func partitionedUSBReportMatchesGolden() async throws {
        let root = try SyntheticRoot()
        try check(try await root.image("node-usb", options: ["partition", "serial"], name: "p.usb"), golden: "usb_partition")
    }

    /// A cramfs image: the cramfs.img of an iso_cramfs, inspected on its own.
    @Test func cramfsReportMatchesGolden() async throws {
        let root = try SyntheticRoot(cramfsReady: true)
        let iso = try await root.image("node-iso", options: ["cramfs", "serial"], name: "c.iso")
        try isoFile(iso, "/cramfs.img").write(to: URL(fileURLWithPath: root.path + "/c.cramfs"))
        try check(root.path + "/c.cramfs", golden: "cramfs")
        let report = try ImageInspector.inspect(path: iso)
        #expect(report.cramfs?.path == "/cramfs.img")
        #expect(report.nodeConfig?.value("NODE_KEY") == "<redacted>")
    }

    @Test func genericISOReportMatchesGolden() async throws {
        let root = try SyntheticRoot()
        let result = try await root.service().getBootMedium(caller: .admin, node: nil, action: "generic-iso", filename: root.path + "/g.iso")
        #expect(result == .path(root.path + "/g.iso"))
        let json = try reportJSON(root.path + "/g.iso", replacing: "GOLDEN.iso")
        if ProcessInfo.processInfo.environment["BOOTMEDIUM_UPDATE_GOLDEN"] == "1" {
            try json.write(toFile: packageDirectory + "/Tests/BootMediumTests/Golden/inspect-iso.json", atomically: true, encoding: .utf8)
        }
        #expect(json == (try golden("inspect-iso")))
        try validate(json)
    }
}
