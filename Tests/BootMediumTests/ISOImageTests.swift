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
        // The writer is inside libisofs, its temp file open: cancel now.
        let inside = await Task.detached { entered.wait(timeout: .now() + 60) == .success }.value
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

    // MARK: File data, sinks, and the template copied into files

    /// A layout straight from the demo tree with what the copy plan meets: files on disk (one
    /// under two names, one empty) and in memory, the El Torito boot image and isohybrid MBR.
    static func copyLayout(_ demo: DemoCopy, bootcd: String? = nil) throws -> ISOLayout {
        let tree = demo.tree
        let empty = demo.path + "/empty-file"
        if !FileManager.default.fileExists(atPath: empty) { try Data().write(to: URL(fileURLWithPath: empty)) }
        let bootcd = bootcd ?? tree + "/isofs/bootcd.img"
        let big = demo.path + "/big.bin"  // several copy pieces
        if !FileManager.default.fileExists(atPath: big) {
            var generator = SystemRandomNumberGenerator()
            try Data((0..<(20_000_001 / 8 + 1)).flatMap { _ in withUnsafeBytes(of: generator.next()) { Array($0) } }.prefix(20_000_001))
                .write(to: URL(fileURLWithPath: big))
        }
        func bytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }
        let bootcdSource = ISOFile.Source.path(bootcd)  // one file under two names
        return ISOLayout(
            volumeID: "COPYTEST",
            files: [
                ISOFile(name: "big.bin", source: .path(big)),
                ISOFile(name: "kernel", source: .path(tree + "/isofs/kernel")),
                ISOFile(name: "bootcd.img", source: bootcdSource),
                ISOFile(name: "again.img", source: bootcdSource),
                ISOFile(name: "isolinux.bin", source: .bytes(try bytes(tree + "/isolinux/isolinux.bin"))),
                ISOFile(name: "ldlinux.c32", source: .path(tree + "/isolinux/ldlinux.c32")),
                ISOFile(name: "empty", source: .path(empty)),
                ISOFile(name: "notes.txt", source: .bytes(Array("in memory\n".utf8))),
            ],
            bootImage: "isolinux.bin", isohybridMBR: try bytes(tree + "/isolinux/isohdpfx.bin"), timestamp: 1_700_000_000)
    }

    /// Writes `layout` through an OutputFile and commits it; returns the image size.
    @discardableResult
    static func writeToFile(_ layout: ISOLayout, _ path: String) throws -> Int64 {
        let file = try OutputFile(path: path, confinedTo: nil)
        let size = try Isofs.write(layout, to: file, cancellation: CancellationFlag())
        try file.commit()
        return size
    }

    /// libisofs streams the same image whatever the sink (a file, memory, a pipe, a file opened
    /// for appending), and independent readers find every file in it: both names of a shared
    /// file, the empty one, the one in memory, Joliet's view, the isohybrid MBR.
    @Test func anImageIsTheSameWhateverTheSink() async throws {
        let demo = try DemoCopy()
        let layout = try Self.copyLayout(demo)
        let tree = demo.tree
        let reference = demo.path + "/file.iso"
        let size = try Self.writeToFile(layout, reference)
        let expected = try Data(contentsOf: URL(fileURLWithPath: reference))
        #expect(Int64(expected.count) == size && expected.count % (1 << 20) == 0)
        for (name, path) in [("big.bin", demo.path + "/big.bin"), ("kernel", tree + "/isofs/kernel"), ("bootcd.img", tree + "/isofs/bootcd.img"),
                             ("again.img", tree + "/isofs/bootcd.img"), ("ldlinux.c32", tree + "/isolinux/ldlinux.c32")] {
            #expect(try isoFile(reference, "/" + name) == Data(contentsOf: URL(fileURLWithPath: path)), "\(name)")
        }
        #expect(try isoFile(reference, "/empty").isEmpty)
        #expect(String(decoding: try isoFile(reference, "/notes.txt"), as: UTF8.self) == "in memory\n")
        let joliet = try runProcess("/usr/bin/isoinfo", ["-J", "-i", reference, "-x", "/again.img;1"])
        #expect(joliet.stdout == (try Data(contentsOf: URL(fileURLWithPath: tree + "/isofs/bootcd.img"))))
        let report = try runProcess("/usr/bin/xorriso", ["-indev", reference, "-report_el_torito", "plain"])
        #expect((String(decoding: report.stdout, as: UTF8.self) + report.stderr).contains("El Torito , MBR isohybrid"))

        let memory = MemorySink()
        #expect(try Isofs.write(layout, to: memory, cancellation: CancellationFlag()) == size)
        #expect(memory.data == expected)
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        let readEnd = ends[0]
        let reader = Task.detached { () -> Data in
            let handle = FileHandle(fileDescriptor: readEnd, closeOnDealloc: true)
            return handle.readDataToEndOfFile()
        }
        let piped = DescriptorSink(fd: ends[1])
        #expect(try Isofs.write(layout, to: piped, cancellation: CancellationFlag()) == size)
        close(ends[1])
        #expect(await reader.value == expected)
        let appended = demo.path + "/appended.iso"
        let fd = open(appended, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        #expect(fd >= 0)
        #expect(try Isofs.write(layout, to: DescriptorSink(fd: fd), cancellation: CancellationFlag()) == size)
        close(fd)
        #expect(try Data(contentsOf: URL(fileURLWithPath: appended)) == expected)
    }

    /// The CLI writes a node medium into a file as one kernel copy of its template (positioned,
    /// strace is the witness) plus the slots: the second request copies no tree file at all.
    @Test func theCLICopiesTheTemplateIntoAFile() throws {
        let demo = try DemoCopy()
        var environment = ProcessInfo.processInfo.environment
        environment["SOURCE_DATE_EPOCH"] = "1700000000"
        func traced(_ name: String) throws -> (copied: Int64, lines: [Substring]) {
            let log = demo.path + "/" + name + ".strace"
            let r = try runProcess("/usr/bin/strace", ["-f", "-qq", "-e", "trace=copy_file_range,openat", "-o", log, bootmediumExecutable,
                "build", "--root", demo.path, "--action", "node-iso", "--node", "1", "--output", demo.workDir + "/" + name], environment: environment)
            #expect(r.status == 0, "\(r.stderr)")
            let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
            let copies = lines.filter { $0.contains("copy_file_range(") }
            let positioned = try Regex(#"copy_file_range\(\d+, \[0\], \d+, \[0\], "#)
            #expect(copies.first?.contains(positioned) == true, "\(copies)")
            let copied = copies.compactMap { line in line.split(separator: "=").last.flatMap { Int64($0.trimmingCharacters(in: .whitespaces)) } }
                .reduce(0, +)
            return (copied, lines)
        }
        _ = try traced("first.iso")  // builds the template
        let second = try traced("second.iso")
        let size = try #require(FileManager.default.attributesOfItem(atPath: demo.workDir + "/second.iso")[.size] as? Int)
        #expect(second.copied == Int64(size), "copied \(second.copied) of \(size)")
        // The tree's big files are not even opened: the template holds them.
        #expect(!second.lines.contains { $0.contains("openat(") && $0.contains("bootcd.img") }, "\(second.lines.filter { $0.contains("bootcd") })")
        #expect(try sha256(demo.workDir + "/first.iso") != "" && demo.workFiles.contains { $0.hasSuffix(".template") })
    }

    /// A source changing size while libisofs streams it fails the image with the reason and
    /// the file's name (not libisofs's "read error"), and the file is dropped.
    @Test(arguments: ["shrink", "grow"])
    func aSourceChangingSizeWhileStreamedFails(_ change: String) throws {
        let demo = try DemoCopy()
        let layout = try Self.copyLayout(demo)
        let big = demo.path + "/big.bin"
        changeSourceDuringCopy(big, change)
        defer { _ = FileCopy.beforePiece.withLock { $0.removeValue(forKey: big) } }
        let file = try OutputFile(path: demo.path + "/changed.iso", confinedTo: nil)
        do {
            try Isofs.write(layout, to: file, cancellation: CancellationFlag())
            Issue.record("the build succeeded")
        } catch {
            let reason = change == "shrink" ? "ended early" : "changed size"
            #expect(error.code == .imageBuildFailed && error.message.contains(reason) && error.message.contains(big), "\(error)")
        }
        file.discard()
        #expect(try FileManager.default.contentsOfDirectory(atPath: demo.path).filter { $0.contains("changed.iso") }.isEmpty)
    }

    /// Through the service: an image written into a file (the template copied, the slots
    /// written at their places) and the same image returned inline (spliced in order into
    /// memory) are the same bytes.
    @Test func anImageIntoAFileEqualsTheSameImageInMemory() async throws {
        let demo = try DemoCopy()
        let path = try await demo.build("generic-iso", node: nil, name: "file.iso")
        let inline = try await demo.service().getBootMedium(caller: .admin, node: nil, action: "generic-iso", filename: nil)
        guard case .base64(let text) = inline else {
            Issue.record("not inline: \(inline)")
            return
        }
        #expect(Data(base64Encoded: text) == (try Data(contentsOf: URL(fileURLWithPath: path))))
    }

    /// Sources on another file system (tmpfs, where copy_file_range refuses with EXDEV) give the
    /// same image.
    @Test func sourcesOnAnotherFileSystemGiveTheSameImage() throws {
        let demo = try DemoCopy()
        let shm = "/dev/shm/bootmedium-bootcd-" + UUID().uuidString
        try FileManager.default.copyItem(atPath: demo.tree + "/isofs/bootcd.img", toPath: shm)
        defer { try? FileManager.default.removeItem(atPath: shm) }
        // The premise: the kernel will not copy_file_range from tmpfs to the work dir's file system.
        let src = open(shm, O_RDONLY | O_CLOEXEC), dst = open(demo.path + "/probe", O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        defer { close(src); close(dst) }
        let probe = dlsym(nil, "copy_file_range").map { unsafeBitCast($0, to: (@convention(c) (Int32, UnsafeMutablePointer<Int64>?, Int32, UnsafeMutablePointer<Int64>?, Int, UInt32) -> Int).self) }
        var offset: Int64 = 0
        let copyFileRange = try #require(probe)
        let probed = copyFileRange(src, &offset, dst, nil, 4096, 0)
        let code = errno
        #expect(probed == -1 && code == EXDEV)

        try Self.writeToFile(try Self.copyLayout(demo, bootcd: shm), demo.path + "/tmpfs.iso")
        try Self.writeToFile(try Self.copyLayout(demo), demo.path + "/disk.iso")
        #expect(try sha256(demo.path + "/tmpfs.iso") == (try sha256(demo.path + "/disk.iso")))
        // The service's images too: generic-iso from a tree whose bootcd.img lives on a tmpfs
        // mounted inside the PLC root (a link may not leave the root).
        let before = try cliBuild(demo, "generic-iso", "a.iso")
        let mountPoint = demo.path + "/srv-tmpfs"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        #expect(try runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=64m", "tmpfs", mountPoint]).status == 0)
        defer { _ = try? runProcess("/bin/umount", [mountPoint]) }
        try FileManager.default.copyItem(atPath: shm, toPath: mountPoint + "/bootcd.img")
        let bootcd = demo.tree + "/isofs/bootcd.img"
        try FileManager.default.removeItem(atPath: bootcd)
        try FileManager.default.createSymbolicLink(atPath: bootcd, withDestinationPath: "../../../../../srv-tmpfs/bootcd.img")
        let after = try cliBuild(demo, "generic-iso", "b.iso")
        #expect(try sha256(before) == (try sha256(after)))
    }

    /// Builds through the CLI (synchronous, for non-async tests).
    func cliBuild(_ demo: DemoCopy, _ action: String, _ name: String) throws -> String {
        var environment = ProcessInfo.processInfo.environment
        environment["SOURCE_DATE_EPOCH"] = "1700000000"
        let out = demo.workDir + "/" + name
        let r = try runProcess(bootmediumExecutable, ["build", "--root", demo.path, "--action", action, "--output", out], environment: environment)
        #expect(r.status == 0, "\(r.stderr)")
        return out
    }

    /// By default the image is flushed (`fsync`) before it is linked under its final name;
    /// `--no-sync` flushes nothing and writes the same bytes. strace is the witness.
    @Test func noSyncSkipsOnlyTheFlush() throws {
        let demo = try DemoCopy()
        var environment = ProcessInfo.processInfo.environment
        environment["SOURCE_DATE_EPOCH"] = "1700000000"
        func traced(_ name: String, _ extra: [String]) throws -> [String] {
            let log = demo.path + "/" + name + ".strace"
            let r = try runProcess("/usr/bin/strace", [
                "-f", "-qq", "-o", log, "-e", "trace=fsync,fdatasync,sync_file_range,linkat",
                bootmediumExecutable, "build", "--root", demo.path, "--action", "generic-iso",
                "--output", demo.workDir + "/" + name] + extra, environment: environment)
            #expect(r.status == 0, "\(r.stderr)")
            return try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
        }
        let synced = try traced("synced.iso", [])
        let link = try #require(synced.firstIndex { $0.contains("linkat(") && $0.contains("\"synced.iso\"") })
        // (With threads strace may split the call: `fsync(9 <unfinished ...>` ... `<... fsync resumed>) = 0`.)
        #expect(synced[..<link].contains { $0.contains("fsync(") && ($0.hasSuffix("= 0") || $0.hasSuffix("<unfinished ...>")) }, "\(synced)")
        let unsynced = try traced("unsynced.iso", ["--no-sync"])
        #expect(unsynced.contains { $0.contains("linkat(") && $0.contains("\"unsynced.iso\"") })
        #expect(!unsynced.contains { $0.contains("fsync(") || $0.contains("fdatasync(") || $0.contains("sync_file_range(") },
                "\(unsynced)")
        #expect(try sha256(demo.workDir + "/synced.iso") == (try sha256(demo.workDir + "/unsynced.iso")))
        #expect(demo.workFiles.filter { $0.contains(".bootmedium-") }.isEmpty)
    }

    /// A source that shrinks (or grows) while it is copied fails the build: never zeros, never a
    /// short image, nothing left behind; through kernel copies and through reads alike.
    @Test func aSourceChangingSizeDuringTheCopyFailsTheBuild() async throws {
        let demo = try DemoCopy()
        // A private bootcd.img of several copy pieces (a valid gzip'd cpio: its size is measured).
        let bootcd = demo.tree + "/isofs/bootcd.img"
        try FileManager.default.removeItem(atPath: bootcd)
        let made = try runProcess("/bin/sh", ["-c", "cd \"$2\" && head -c 20000000 /dev/urandom > payload && echo payload | cpio -o -H newc --quiet | gzip -1 > \"$1\" && rm payload", "sh", bootcd, demo.path])
        #expect(made.status == 0)
        let target = bootcd
        for change in ["shrink", "grow"] {
            changeSourceDuringCopy(target, change)
            defer { _ = FileCopy.beforePiece.withLock { $0.removeValue(forKey: target) } }
            let original = try Data(contentsOf: URL(fileURLWithPath: bootcd))
            let reason = change == "shrink" ? "ended early" : "changed size"
            // Through the service into an output file (kernel copies).
            do {
                _ = try await demo.build("node-iso", name: "t.iso")
                Issue.record("the build succeeded")
            } catch let error as BootMediumError {
                #expect(error.code == .imageBuildFailed && error.message.contains(reason), "\(error)")
            }
            #expect(demo.workFiles.filter { $0.hasSuffix("iso") || $0.contains("bootmedium-") }.isEmpty, "\(demo.workFiles)")
            #expect(try demo.nodeKey(1) == "old-key-1")
            try original.write(to: URL(fileURLWithPath: bootcd))
            // Into memory (read and write).
            let memory = MemorySink()
            let layout = try Self.copyLayout(demo, bootcd: bootcd)
            do {
                try Isofs.write(layout, to: memory, cancellation: CancellationFlag())
                Issue.record("the build succeeded")
            } catch {
                #expect(error.code == .imageBuildFailed && error.message.contains(reason), "\(error)")
            }
            try original.write(to: URL(fileURLWithPath: bootcd))
        }
    }

    /// Errors of the kernel copy are write errors: a file-size limit (EFBIG) and a full disk
    /// (ENOSPC) met while copying bootcd.img fail the request and leave nothing behind. A disk
    /// without room for the image fails before anything is written, when the output's blocks are
    /// reserved; on a file system that cannot reserve (ext2), the copy itself meets ENOSPC.
    @Test func writeErrorsDuringTheCopyLeaveNothing() throws {
        let demo = try DemoCopy()
        let image = try cliBuild(demo, "generic-iso", "size.iso")
        let size = try #require(FileManager.default.attributesOfItem(atPath: image)[.size] as? Int)
        try FileManager.default.removeItem(atPath: image)
        var environment = ProcessInfo.processInfo.environment
        environment["SOURCE_DATE_EPOCH"] = "1700000000"
        // The limit lies past libisofs's part (the head) and inside the copied files.
        let limitKiB = size / 1024 / 2
        let r = try runProcess("/bin/sh", ["-c", "ulimit -f \(limitKiB); exec \"$0\" \"$@\"", bootmediumExecutable,
            "build", "--root", demo.path, "--action", "node-iso", "--node", "1", "--output", "%d/big.iso"], environment: environment)
        #expect(r.status != 0)
        #expect(r.stderr.hasPrefix("error[io-error]: write") && r.stderr.contains("File too large"), "\(r.stderr)")
        #expect(demo.workFiles.allSatisfy { !$0.contains("big.iso") && !$0.contains("bootmedium-") }, "\(demo.workFiles)")
        #expect(try demo.nodeKey(1) == "old-key-1")
        // A work dir on a tmpfs with room for half the image.
        try FileManager.default.createDirectory(atPath: demo.workDir, withIntermediateDirectories: true)
        let mount = try runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size / 2)", "tmpfs", demo.workDir])
        try #require(mount.status == 0, "mount: \(mount.stderr)")
        defer { _ = try? runProcess("/bin/umount", [demo.workDir]) }
        let full = try runProcess(bootmediumExecutable, ["build", "--root", demo.path, "--action", "node-iso", "--node", "1", "--output", "%d/full.iso"], environment: environment)
        #expect(full.status != 0)
        #expect(full.stderr.hasPrefix("error[io-error]: reserve space for") && full.stderr.contains("No space left on device"), "\(full.stderr)")
        #expect(demo.workFiles.allSatisfy { !$0.contains("full.iso") && !$0.contains("bootmedium-") }, "\(demo.workFiles)")
        #expect(try demo.nodeKey(1) == "old-key-1")
        _ = try runProcess("/bin/umount", [demo.workDir])
        // ext2 (no extents: fallocate is EOPNOTSUPP) with room for half the image.
        let ext2 = demo.path + ".ext2.img"
        try #require(try runProcess("/bin/sh", ["-c", "truncate -s \(size / 2) \"$0\" && mkfs.ext2 -q -F \"$0\"", ext2]).status == 0)
        defer { try? FileManager.default.removeItem(atPath: ext2) }
        let loop = try runProcess("/bin/mount", ["-o", "loop", ext2, demo.workDir])
        try #require(loop.status == 0, "mount: \(loop.stderr)")
        defer { _ = try? runProcess("/bin/umount", [demo.workDir]) }
        let copy = try runProcess(bootmediumExecutable, ["build", "--root", demo.path, "--action", "node-iso", "--node", "1", "--output", "%d/full.iso"], environment: environment)
        #expect(copy.status != 0)
        #expect(copy.stderr.hasPrefix("error[io-error]: write") && copy.stderr.contains("No space left on device"), "\(copy.stderr)")
        #expect(demo.workFiles.allSatisfy { !$0.contains("full.iso") && !$0.contains("bootmedium-") }, "\(demo.workFiles)")
        #expect(try demo.nodeKey(1) == "old-key-1")
    }
}
