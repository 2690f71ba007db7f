import Crypto
import Foundation
import Testing

@testable import BootMedium

/// A value of the demo root's plc_config, read by sourcing it in `sh` (an independent reader).
func plcValue(_ root: String, _ key: String) throws -> String {
    let r = try runProcess("/bin/sh", ["-c", ". \"$1/etc/planetlab/plc_config\"; printf '%s' \"$(eval echo \\$$2)\"", "sh", root, key])
    return String(decoding: r.stdout, as: UTF8.self)
}

func sha256(_ path: String) throws -> String {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    return SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
}

@Suite(.serialized, .tags(.demoRoot)) struct ISOImageTests {
    @Test func independentReadersSeeTheLayout() async throws {
        let demo = try DemoCopy()
        let iso = try await demo.build("node-iso", options: ["serial"], name: "n.iso")
        // El Torito as xorriso reads it.
        let report = try runProcess("/usr/bin/xorriso", ["-indev", iso, "-report_el_torito", "plain"])
        let text = String(decoding: report.stdout, as: UTF8.self) + report.stderr
        #expect(text.contains("Boot record  : El Torito , MBR isohybrid"), "\(text)")
        #expect(text.contains("El Torito cat path : /boot.cat"))
        #expect(text.contains("El Torito img path :   1  /isolinux.bin"))
        #expect(text.contains("boot-info-table"))
        let entry = try #require(text.split(separator: "\n").first { $0.hasPrefix("El Torito boot img :") })
        #expect(entry.split(separator: " ").contains("none"))  // no emulation
        #expect(entry.split(separator: " ").dropLast().last == "4")  // load size
        // Rock Ridge and Joliet listings.
        let rr = String(decoding: try runProcess("/usr/bin/isoinfo", ["-R", "-f", "-i", iso]).stdout, as: UTF8.self)
        // The demo tree has a UEFI loader: GRUB's root marker and config too (the ESP is an
        // appended partition, no file).
        #expect(Set(rr.split(separator: "\n")) == ["/boot.cat", "/bootcd.img", "/bootmedium.json", "/isolinux.bin", "/isolinux.cfg", "/kernel", "/ldlinux.c32", "/overlay.img", "/pl_version",
                                                    "/.disk", "/.disk/info", "/boot", "/boot/grub", "/boot/grub/grub.cfg"])
        let joliet = String(decoding: try runProcess("/usr/bin/isoinfo", ["-J", "-f", "-i", iso]).stdout, as: UTF8.self)
        #expect(joliet.contains("/isolinux.cfg") && joliet.contains("/pl_version"))
        // The tree's files are carried unchanged (isolinux.bin gets its boot info table patched).
        #expect(try isoFile(iso, "/kernel") == Data(contentsOf: URL(fileURLWithPath: demo.tree + "/isofs/kernel")))
        #expect(try isoFile(iso, "/bootcd.img") == Data(contentsOf: URL(fileURLWithPath: demo.tree + "/isofs/bootcd.img")))
        #expect(try isoFile(iso, "/ldlinux.c32") == Data(contentsOf: URL(fileURLWithPath: demo.tree + "/isolinux/ldlinux.c32")))
        // pycdlib (PyPI) opens it and finds the boot catalog and the files.
        let venv = (ProcessInfo.processInfo.environment["BOOTMEDIUM_CACHE"] ?? (NSHomeDirectory() + "/.cache/bootmedium")) + "/venv/bin/python3"
        let script = """
            import sys, pycdlib
            iso = pycdlib.PyCdlib(); iso.open(sys.argv[1])
            names = sorted(c.rock_ridge.name().decode() for c in iso.list_children(rr_path='/') if c.rock_ridge and c.rock_ridge.name() not in (b'', b'.', b'..'))
            print(','.join(names)); print(iso.eltorito_boot_catalog is not None); iso.close()
            """
        let py = try runProcess(venv, ["-c", script, iso])
        #expect(py.status == 0, "\(py.stderr)")
        #expect(String(decoding: py.stdout, as: UTF8.self) == ".disk,boot,boot.cat,bootcd.img,bootmedium.json,isolinux.bin,isolinux.cfg,kernel,ldlinux.c32,overlay.img,pl_version\nTrue\n")
    }

    /// The embedded manifest lists every file with the digest an independent reader computes.
    @Test func manifestMatchesWhatIsoinfoReads() async throws {
        let demo = try DemoCopy()
        let iso = try await demo.build("node-iso", options: ["serial:ttyS1:9600"], name: "m.iso")
        let manifest = try JSONSerialization.jsonObject(with: try isoFile(iso, "/bootmedium.json")) as! [String: Any]
        #expect(manifest["schema"] as? String == "bootmedium-manifest/1")
        #expect(manifest["console"] as? String == "ttyS1:9600:n:8")
        #expect(manifest["kernelArguments"] as? [String] == ["console=ttyS1,9600n8"])
        #expect(manifest["bootcdVersion"] as? String == "5.4-demo")
        let files = manifest["files"] as! [[String: Any]]
        #expect(files.map { $0["path"] as! String } == [".disk/info", "boot/grub/grub.cfg", "bootcd.img", "isolinux.bin", "isolinux.cfg", "kernel", "ldlinux.c32", "overlay.img", "pl_version"])
        for file in files {
            var data = try isoFile(iso, "/" + (file["path"] as! String))
            #expect(data.count == file["size"] as! Int)
            if let zeroed = file["zeroed"] as? [[Int]] {
                for range in zeroed { data.replaceSubrange(range[0]..<range[1], with: Data(count: range[1] - range[0])) }
            }
            #expect(SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined() == file["sha256"] as! String, "\(file["path"]!)")
        }
    }

    @Test func overlayHoldsExactlyTheExpectedFiles() async throws {
        let demo = try DemoCopy()
        let iso = try await demo.build("node-iso", options: ["serial:ttyS1:9600", "no-hangcheck"], name: "o.iso")
        let dir = demo.path + "/extract"
        let overlay = demo.path + "/overlay.img"
        try isoFile(iso, "/overlay.img").write(to: URL(fileURLWithPath: overlay))
        try extractOverlay(overlay, into: dir)
        let files = (FileManager.default.subpaths(atPath: dir) ?? []).filter {
            var isDir: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: dir + "/" + $0, isDirectory: &isDir)
            return !isDir.boolValue
        }.sorted()
        let host = try plcValue(demo.path, "PLC_BOOT_HOST")
        #expect(files == [
            "etc/issue", "etc/passwd", "kargs.txt", "pl_version",
            "usr/boot/backup/boot_server", "usr/boot/backup/boot_server_path", "usr/boot/backup/boot_server_port",
            "usr/boot/backup/cacert.pem", "usr/boot/backup/pubring.gpg",
            "usr/boot/boot_server", "usr/boot/boot_server_path", "usr/boot/boot_server_port", "usr/boot/cacert.pem",
            "usr/boot/plnode.txt", "usr/boot/pubring.gpg",
            "usr/bootme/BOOTPORT", "usr/bootme/BOOTSERVER", "usr/bootme/BOOTSERVER_IP", "usr/bootme/ID",
            "usr/bootme/cacert/\(host)/cacert.pem", "usr/isolinux/pl_version",
        ].sorted())
        func read(_ path: String) throws -> String { try String(contentsOfFile: dir + "/" + path, encoding: .utf8) }
        let version = try String(contentsOfFile: demo.tree + "/version.txt", encoding: .utf8).split(separator: "\n")[0]
        let full = "\(try plcValue(demo.path, "PLC_NAME")) BootCD \(version)\n"
        for path in ["pl_version", "usr/isolinux/pl_version", "usr/bootme/ID"] { #expect(try read(path) == full) }
        let ca = try Data(contentsOf: URL(fileURLWithPath: demo.path + (try plcValue(demo.path, "PLC_BOOT_CA_SSL_CRT"))))
        let gpg = try Data(contentsOf: URL(fileURLWithPath: demo.path + (try plcValue(demo.path, "PLC_ROOT_GPG_KEY_PUB"))))
        for base in ["usr/boot", "usr/boot/backup"] {
            #expect(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(base)/cacert.pem")) == ca)
            #expect(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(base)/pubring.gpg")) == gpg)
            #expect(try read("\(base)/boot_server") == host + "\n")
            #expect(try read("\(base)/boot_server_port") == (try plcValue(demo.path, "PLC_BOOT_SSL_PORT")) + "\n")
            #expect(try read("\(base)/boot_server_path") == "/boot/\n")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/usr/bootme/cacert/\(host)/cacert.pem")) == ca)
        #expect(try read("usr/bootme/BOOTSERVER") == host + "\n")
        #expect(try read("usr/bootme/BOOTSERVER_IP") == host + "\n")
        #expect(try read("kargs.txt") == "console=ttyS1,9600n8 hcheck_reboot0\n")
        let issue = try read("etc/issue")
        #expect(issue.hasPrefix(full + "\(try plcValue(demo.path, "PLC_NAME")) Node: \\n\nKernel \\r on an \\m\n"))
        #expect(issue.contains(try plcValue(demo.path, "PLC_MAIL_SUPPORT_ADDRESS")))
        // plnode.txt: the renewed config, whose key is the one saved.
        let plnode = try read("usr/boot/plnode.txt")
        #expect(plnode.hasPrefix("NODE_ID=\"1\"\nNODE_KEY=\""))
        #expect(try keyIn(plnode) == demo.nodeKey(1))
        // passwd: root's field is a SHA-512 crypt hash of PLC_ROOT_PASSWORD; the rest unchanged.
        let passwd = try read("etc/passwd")
        let treePasswd = try String(contentsOfFile: demo.tree + "/passwd", encoding: .utf8)
        let rootLine = try #require(passwd.split(separator: "\n").first { $0.hasPrefix("root:") })
        let hash = String(rootLine.split(separator: ":")[1])
        #expect(hash.hasPrefix("$6$"))
        let check = try runProcess(
            "/usr/bin/python3", ["-c", "import crypt,sys; print(crypt.crypt(sys.argv[1], sys.argv[2]) == sys.argv[2])",
                                 try plcValue(demo.path, "PLC_ROOT_PASSWORD"), hash])
        #expect(String(decoding: check.stdout, as: UTF8.self) == "True\n", "\(check.stderr)")
        #expect(passwd.split(separator: "\n").filter { !$0.hasPrefix("root:") } == treePasswd.split(separator: "\n").filter { !$0.hasPrefix("root:") })
        // Owners and modes as listed by cpio.
        let listing = String(decoding: try runProcess("/bin/sh", ["-c", "gzip -dc < \"$1\" | cpio -itv --quiet", "sh", overlay]).stdout, as: UTF8.self)
        for line in listing.split(separator: "\n") {
            let cols = line.split(separator: " ", omittingEmptySubsequences: true)
            #expect(cols[2] == "root" && cols[3] == "root", "\(line)")
            if line.hasSuffix("usr/boot/plnode.txt") { #expect(cols[0] == "-rw-------") }
            else if line.hasPrefix("d") { #expect(cols[0] == "drwxr-xr-x") }
            else { #expect(cols[0] == "-rw-r--r--", "\(line)") }
        }
        // The gzip header carries no name and no time.
        let gz = try Data(contentsOf: URL(fileURLWithPath: overlay))
        #expect(gz[3] & 0x08 == 0)  // FNAME
        #expect(gz[4...7].allSatisfy { $0 == 0 })  // MTIME
    }

    @Test func ramdiskSizeMatchesAFullDecompression() async throws {
        let demo = try DemoCopy()
        let iso = try await demo.build("node-iso", name: "r.iso")
        let cfg = String(decoding: try isoFile(iso, "/isolinux.cfg"), as: UTF8.self)
        try isoFile(iso, "/overlay.img").write(to: URL(fileURLWithPath: demo.path + "/ov.img"))
        func unzipped(_ path: String) throws -> Int {
            let r = try runProcess("/bin/sh", ["-c", "gzip -dc < \"$1\" | wc -c", "sh", path])
            return Int(String(decoding: r.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))!
        }
        let total = try unzipped(demo.tree + "/isofs/bootcd.img") + unzipped(demo.path + "/ov.img")
        #expect(cfg.contains("APPEND ramdisk_size=\((total + 1023) / 1024) initrd=bootcd.img,overlay.img root=/dev/ram0 rw\n"), "\(cfg)")
        // The cache is keyed by identity: a rewritten file is measured again.
        let copy = demo.path + "/other.img"
        try FileManager.default.copyItem(atPath: demo.tree + "/isofs/bootcd.img", toPath: copy)
        let first = try TreeFileFacts.uncompressedSize(of: try InputFile.open(copy, role: .bootcd), cacheDirectory: demo.workDir, cancellation: CancellationFlag())
        let r = try runProcess("/bin/sh", ["-c", "printf 'extra' | gzip -n >> \"$1\"", "sh", copy])
        #expect(r.status == 0)
        let second = try TreeFileFacts.uncompressedSize(of: try InputFile.open(copy, role: .bootcd), cacheDirectory: demo.workDir, cancellation: CancellationFlag())
        #expect(second == first + 5)
        #expect(Int(first) == (try unzipped(demo.tree + "/isofs/bootcd.img")))
    }

    @Test func sameInputsGiveIdenticalBytes() async throws {
        let demo = try DemoCopy()
        let a = try await demo.build("generic-iso", node: nil, name: "a.iso")
        let b = try await demo.build("generic-iso", node: nil, name: "b.iso")
        #expect(try sha256(a) == sha256(b))
        // A node image differs in the key alone: same size.
        let n1 = try await demo.build("node-iso", name: "n1.iso")
        let n2 = try await demo.build("node-iso", name: "n2.iso")
        #expect(try Data(contentsOf: URL(fileURLWithPath: n1)).count == Data(contentsOf: URL(fileURLWithPath: n2)).count)
    }

    @Test func concurrentBuildsAllSucceedAndAgree() async throws {
        let demo = try DemoCopy()
        let service = demo.service()
        let dir = demo.workDir
        let paths = try await withThrowingTaskGroup(of: String.self) { group in
            for i in 0..<6 {
                group.addTask {
                    let r = try await service.getBootMedium(caller: .admin, node: nil, action: "generic-iso", filename: "\(dir)/c\(i).iso")
                    guard case .path(let p) = r else { throw BootMediumError(.io, "no path") }
                    return p
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(paths.count == 6)
        #expect(Set(try paths.map(sha256)).count == 1)
    }

    @Test func aTreeFileShrinkingWhileReadFailsAndLeavesNothing() async throws {
        let demo = try DemoCopy()
        // A private copy of bootcd.img (not a hard link into the cache).
        let bootcd = try demo.makePrivate(demo.tree + "/isofs/bootcd.img")
        let target = bootcd
        Isofs.beforeWriteHook = { layout in
            if layout.files.contains(where: { if case .file(let f) = $0.source { return f.path == target } else { return false } }) {
                truncate(target, 4096)
            }
        }
        defer { Isofs.beforeWriteHook = nil }
        await expectError(.imageBuildFailed) { try await demo.build("node-iso", name: "t.iso") }
        #expect(demo.workFiles.filter { $0.hasSuffix("iso") || $0.contains("bootmedium-") }.isEmpty, "\(demo.workFiles)")
        #expect(try demo.nodeKey(1) == "old-key-1")
    }

    @Test func cancellationWhileWritingLeavesNothing() async throws {
        let demo = try DemoCopy()
        let marker = demo.tree
        let entered = DispatchSemaphore(value: 0)
        let proceed = DispatchSemaphore(value: 0)
        Isofs.beforeWriteHook = { layout in
            if layout.files.contains(where: { if case .file(let f) = $0.source { return f.path.hasPrefix(marker) } else { return false } }) {
                entered.signal()
                _ = proceed.wait(timeout: .now() + 30)
            }
        }
        defer { Isofs.beforeWriteHook = nil }
        let service = demo.service()
        let dir = demo.workDir
        let task = Task { try await service.getBootMedium(caller: .admin, node: "1", action: "node-iso", filename: dir + "/x.iso") }
        // The writer is inside libisofs, its temp file open: cancel now. (libisofs builds are
        // serialized in the process: under a full suite a parallel suite's big template can
        // hold libisofs for minutes before this build gets its turn.)
        let inside = await Task.detached { entered.wait(timeout: .now() + 600) == .success }.value
        #expect(inside)
        #expect(writingInto(dir, pid: getpid()))
        task.cancel()
        proceed.signal()
        await expectError(.cancelled) { try await task.value }
        #expect(demo.workFiles.allSatisfy { !$0.hasSuffix(".iso") && !$0.contains(".bootmedium-") }, "\(demo.workFiles)")
        #expect(try demo.nodeKey(1) == "old-key-1")
    }

    @Test func genericISOIsPublishedAndVariantsAreSelected() async throws {
        let demo = try DemoCopy()
        let r = try runProcess(bootmediumExecutable, ["build", "--root", demo.path, "--action", "generic-iso"])
        #expect(r.status == 0, "\(r.stderr)")
        let expected = demo.path + "/var/www/html/download-planetlab-x86_64/DemoPLC-BootCD-5.4-demo.iso"
        #expect(String(decoding: r.stdout, as: UTF8.self) == expected + "\n")
        #expect(FileManager.default.fileExists(atPath: expected))
        // Published again: replaced, not refused.
        #expect(try runProcess(bootmediumExecutable, ["build", "--root", demo.path, "--action", "generic-iso"]).status == 0)
        // No plnode.txt in a generic image.
        try isoFile(expected, "/overlay.img").write(to: URL(fileURLWithPath: demo.path + "/g.img"))
        try extractOverlay(demo.path + "/g.img", into: demo.path + "/g")
        #expect(!FileManager.default.fileExists(atPath: demo.path + "/g/usr/boot/plnode.txt"))
        // variant:NAME picks the sibling tree; %v is its version.
        let alt = try await demo.build("node-iso", options: ["variant:build-alt"], name: "alt.iso")
        #expect(String(decoding: try isoFile(alt, "/pl_version"), as: UTF8.self) == "DemoPLC BootCD 5.4-demo-alt\n")
        await expectError(.missingVariant) { try await demo.build("node-iso", options: ["variant:nope"], name: "no.iso") }
        // Image bytes to standard output when no --output is given.
        let out = demo.path + "/stdout.iso"
        let s = try runProcess("/bin/sh", ["-c", "\"$0\" build --root \"$1\" --action node-iso --node 2 > \"$2\"", bootmediumExecutable, demo.path, out])
        #expect(s.status == 0, "\(s.stderr)")
        #expect(try runProcess("/usr/bin/isoinfo", ["-d", "-i", out]).status == 0)
    }

    @Test func sigtermWhileWritingABigImageLeavesNothing() async throws {
        let demo = try DemoCopy(big: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: bootmediumExecutable)
        process.arguments = ["build", "--root", demo.path, "--action", "node-iso", "--node", "1", "--output", "%d/big.iso"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait until the output is being written, then terminate. The wait blocks this thread
        // rather than suspending the task: a build takes ~0.1 s, and a suspended task may resume
        // later than that when other tests keep the cooperative pool busy.
        var sawTemp = false
        for _ in 0..<10_000 {
            if writingInto(demo.workDir, pid: process.processIdentifier) { sawTemp = true; break }
            usleep(1000)
        }
        process.terminate()
        process.waitUntilExit()
        #expect(sawTemp)
        #expect(process.terminationReason == .uncaughtSignal)
        #expect(demo.workFiles.allSatisfy { !$0.contains("big.iso") }, "\(demo.workFiles)")
        #expect(try demo.nodeKey(1) == "old-key-1")
    }
}
