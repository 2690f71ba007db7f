import Foundation
import Testing

@testable import BootMedium

/// A PLC root whose every input is fixed text or a Debian 12 file, so the images built from it
/// are the same bytes on every machine: the source of the golden inspect reports.
final class SyntheticRoot: @unchecked Sendable {
    let base: TestRoot
    var path: String { base.path }
    var tree: String { base.path + "/usr/share/bootcd-planetlab-x86_64/build" }

    init() throws {
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
        try Data((0..<65536).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(to: URL(fileURLWithPath: tree + "/isofs/kernel"))
        let cpio = try Archive.gzippedNewc(
            [CpioEntry(path: "init", mode: 0o755, kind: .file(Array("#!/bin/sh\n".utf8)))], timestamp: 0)
        try Data(cpio.bytes).write(to: URL(fileURLWithPath: tree + "/isofs/bootcd.img"))
        try "root:x:0:0:root:/root:/bin/sh\n".write(toFile: tree + "/passwd", atomically: true, encoding: .utf8)
        for (from, to) in [("/usr/lib/ISOLINUX/isolinux.bin", "isolinux/isolinux.bin"),
                           ("/usr/lib/syslinux/modules/bios/ldlinux.c32", "isolinux/ldlinux.c32"),
                           ("/usr/lib/ISOLINUX/isohdpfx.bin", "isolinux/isohdpfx.bin")] {
            try fm.copyItem(atPath: from, toPath: tree + "/" + to)
        }
    }

    func service() -> BootMediumService { base.service(epoch: 1_700_000_000) }
}

@Suite struct InspectGoldenTests {
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
        let venv = NSHomeDirectory() + "/.cache/bootmedium/venv/bin/python3"
        let r = try runProcess(venv, ["-c", "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1]))); print('valid')",
                                      packageDirectory + "/docs/inspect-schema.json", file])
        #expect(String(decoding: r.stdout, as: UTF8.self) == "valid\n", "\(r.stderr)")
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
