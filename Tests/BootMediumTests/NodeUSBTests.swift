import Foundation
import Testing

@testable import BootMedium

/// Reads one file of a FAT image with mtools (an independent reader); `offset` for a partition.
func mtoolsRead(_ image: String, _ path: String, offset: Int = 0) throws -> Data {
    let target = offset == 0 ? image : "\(image)@@\(offset)"
    let r = try runProcess("/usr/bin/mtype", ["-i", target, "::/" + path], environment: ["MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"])
    guard r.status == 0 else { throw BootMediumError(.io, "mtype \(path): \(r.stderr)") }
    return r.stdout
}

/// node-usb, usb_partition and generic-usb built by the service: checked by fsck.fat, mtools,
/// sfdisk and blkid, and booted under qemu from disk.
@Suite(.serialized, .tags(.qemu, .demoRoot)) struct NodeUSBTests {
    @Test(arguments: [
        (false, [String](), [String]()),
        (false, ["serial"], ["console=ttyS0,115200n8"]),
        (false, ["serial:ttyS1:9600"], ["console=ttyS1,9600n8"]),
        (true, [String](), [String]()),
        (true, ["serial"], ["console=ttyS0,115200n8"]),
        (true, ["serial:ttyS1:9600"], ["console=ttyS1,9600n8"]),
    ])
    func nodeUSBBoots(partitioned: Bool, options: [String], cmdline: [String]) async throws {
        let demo = try DemoCopy()
        let image = try await demo.build("node-usb", options: options + (partitioned ? ["partition"] : []), name: "n.usb")
        let offset = partitioned ? 32 * 512 : 0
        // Independent readers first.
        let fsck = try runProcess("/sbin/fsck.fat", ["-n", "-v", partitioned ? try extractPartition(image) : image])
        #expect(fsck.status == 0, "\(String(decoding: fsck.stdout, as: UTF8.self)) \(fsck.stderr)")
        #expect(try mtoolsRead(image, "kernel", offset: offset) == Data(contentsOf: URL(fileURLWithPath: demo.tree + "/isofs/kernel")))
        let config = String(decoding: try mtoolsRead(image, "syslinux.cfg", offset: offset), as: UTF8.self)
        #expect(config.contains("initrd=bootcd.img,overlay.img root=/dev/ram0 rw"))
        if let console = cmdline.first { #expect(config.contains(console)) }
        if partitioned {
            let dump = String(decoding: try runProcess("/sbin/sfdisk", ["--dump", image]).stdout, as: UTF8.self)
            #expect(dump.contains("start=          32") && dump.contains("bootable"), "\(dump)")
            let blkid = String(decoding: try runProcess("/sbin/blkid", ["-p", "-O", String(offset), image]).stdout, as: UTF8.self)
            #expect(blkid.contains("TYPE=\"vfat\""), "\(blkid)")
        } else {
            let blkid = String(decoding: try runProcess("/sbin/blkid", ["-p", image]).stdout, as: UTF8.self)
            #expect(blkid.contains("TYPE=\"vfat\""), "\(blkid)")
        }
        // The node prints back exactly the plnode.txt we rendered.
        let plnode = try await renderedPlnode(image, demo: demo, nodeID: 1, hostname: DemoRoot.node1) { try mtoolsRead($0, "overlay.img", offset: offset) }
        let result = try bootCheck(image, media: "disk", cmdline: ["root=/dev/ram0"] + cmdline, plnode: .some(plnode))
        #expect(result.passed, "\(result.output)")
    }

    /// The first partition of a disk image, copied out for tools that take a filesystem image.
    func extractPartition(_ image: String) throws -> String {
        let out = image + ".part1"
        let r = try runProcess("/bin/sh", ["-c", "dd if=\"$1\" of=\"$2\" bs=512 skip=32 status=none", "sh", image, out])
        #expect(r.status == 0)
        return out
    }

    @Test func genericUSBIsPublishedReproducibleAndBootsWithoutPlnode() async throws {
        let demo = try DemoCopy()
        let a = try await demo.build("generic-usb", node: nil, name: "a.usb")
        let b = try await demo.build("generic-usb", node: nil, name: "b.usb")
        #expect(try sha256(a) == sha256(b))
        let r = try runProcess(bootmediumExecutable, ["build", "--root", demo.path, "--action", "generic-usb"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(String(decoding: r.stdout, as: UTF8.self) == demo.path + "/var/www/html/download-planetlab-x86_64/DemoPLC-BootCD-5.4-demo.usb\n")
        let boot = try bootCheck(a, media: "disk", plnode: .some(nil))
        #expect(boot.passed, "\(boot.output)")
    }

    /// The output's blocks are reserved for the whole image before the first byte (strace is the
    /// witness), so a disk without room for the image fails before anything is written, leaving
    /// nothing and the old key.
    @Test(arguments: [false, true])
    func theImageIsReservedBeforeItIsWritten(partitioned: Bool) throws {
        let demo = try DemoCopy()
        var environment = ProcessInfo.processInfo.environment
        environment["SOURCE_DATE_EPOCH"] = "1700000000"
        let options = partitioned ? ["--option", "partition"] : []
        let image = demo.workDir + "/r.usb"
        let trace = demo.path + "/strace.txt"
        // A first request makes the medium template (its own reservation); the traced one is
        // the request that writes only the output.
        let warm = try runProcess(bootmediumExecutable, ["build", "--root", demo.path, "--action", "node-usb", "--node", "1",
            "--output", demo.workDir + "/warm.usb"] + options, environment: environment)
        #expect(warm.status == 0, "\(warm.stderr)")
        try FileManager.default.removeItem(atPath: demo.workDir + "/warm.usb")
        let traced = try runProcess("/usr/bin/strace", ["-f", "-qq", "-e", "trace=fallocate", "-o", trace, bootmediumExecutable,
            "build", "--root", demo.path, "--action", "node-usb", "--node", "1", "--output", image] + options, environment: environment)
        #expect(traced.status == 0, "\(traced.stderr)")
        let size = try #require(FileManager.default.attributesOfItem(atPath: image)[.size] as? Int)
        let calls = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n").filter { $0.contains("fallocate(") }
        #expect(calls.count == 1 && calls[0].contains("FALLOC_FL_KEEP_SIZE, 0, \(size)) = 0"), "\(calls)")
        try FileManager.default.removeItem(atPath: image)
        let key = try demo.nodeKey(1)  // renewed by that build
        #expect(key != "old-key-1")
        let mount = try runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size / 2)", "tmpfs", demo.workDir])
        try #require(mount.status == 0, "mount: \(mount.stderr)")
        defer { _ = try? runProcess("/bin/umount", [demo.workDir]) }
        let full = try runProcess(bootmediumExecutable, ["build", "--root", demo.path, "--action", "node-usb", "--node", "1",
            "--output", "%d/full.usb"] + options, environment: environment)
        #expect(full.status != 0)
        #expect(full.stderr.hasPrefix("error[io-error]: reserve space for") && full.stderr.contains("No space left on device"), "\(full.stderr)")
        #expect(demo.workFiles.allSatisfy { !$0.contains("full.usb") && !$0.contains("bootmedium-") }, "\(demo.workFiles)")
        #expect(try demo.nodeKey(1) == key)
    }

    @Test func aCorruptedLdlinuxPatchDoesNotBoot() async throws {
        let demo = try DemoCopy()
        let image = try await demo.build("generic-usb", node: nil, name: "c.usb")
        // Find ldlinux.sys with mtools' cluster map is overkill: its first sector holds the
        // "SYSLINUX 6.04" banner right after the boot sector's pointer; corrupt the patched
        // checksum field (offset 0x28 of ldlinux.sys) where the banner is found.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: image))
        let banner = Data("\r\nSYSLINUX 6.04 ".utf8)
        let at = try #require(bytes.range(of: banner)?.lowerBound)
        bytes[at + 0x28] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: image))
        let boot = try bootCheck(image, media: "disk", plnode: .some(nil), timeout: 60)
        #expect(!boot.passed)
    }
}
