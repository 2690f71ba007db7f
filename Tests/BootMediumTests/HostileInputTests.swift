import Foundation
import Synchronization
import Testing

@testable import BootMedium

/// A fresh copy of the demo root for one hostile case, with the means to plant files without
/// touching the shared cache (the copy's files are hard links: they are replaced, never
/// written in place).
final class HostileRoot: @unchecked Sendable {
    let demo: DemoCopy
    let storeBefore: Data
    var path: String { demo.path }
    var tree: String { demo.tree }

    init() throws {
        demo = try DemoCopy()
        storeBefore = try Data(contentsOf: URL(fileURLWithPath: demo.path + "/nodes.json"))
    }

    /// Replaces the file at `relative` with `data`.
    func plant(_ relative: String, _ data: Data) throws {
        let target = path + "/" + relative
        try? FileManager.default.removeItem(atPath: target)
        try data.write(to: URL(fileURLWithPath: target))
    }

    /// Replaces the file at `relative` with a symbolic link to `destination`.
    func link(_ relative: String, to destination: String) throws {
        let target = path + "/" + relative
        try? FileManager.default.removeItem(atPath: target)
        try FileManager.default.createSymbolicLink(atPath: target, withDestinationPath: destination)
    }

    /// Replaces the file at `relative` with a FIFO.
    func fifo(_ relative: String) throws {
        let target = path + "/" + relative
        try? FileManager.default.removeItem(atPath: target)
        #expect(mkfifo(target, 0o644) == 0)
    }

    /// Replaces the file at `relative` with a sparse file of `size` bytes.
    func sparse(_ relative: String, size: Int64) throws {
        let target = path + "/" + relative
        try? FileManager.default.removeItem(atPath: target)
        #expect(FileManager.default.createFile(atPath: target, contents: nil))
        #expect(truncate(target, off_t(size)) == 0)
    }

    /// Sets `key="value"` in plc_config (a new file, not the shared one).
    func configure(_ key: String, _ value: String) throws {
        let file = path + "/etc/planetlab/plc_config"
        var lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").map(String.init)
        lines.removeAll { $0.hasPrefix(key + "=") }
        lines.append("\(key)=\"\(value)\"")
        try plant("etc/planetlab/plc_config", Data((lines.joined(separator: "\n") + "\n").utf8))
    }

    /// The arguments of a node build into the work dir.
    func build(_ action: String = "node-iso", options: [String] = [], output: String = "%d/out%s") -> [String] {
        ["build", "--root", path, "--action", action, "--node", DemoRoot.node1, "--output", output]
            + options.flatMap { ["--option", $0] }
    }

    /// Expects `run` to be one clean failure with `code` (``expectCleanFailure(_:code:root:storePath:storeBytes:sourceLocation:)``:
    /// one `error[CODE]:` line, no temp file, the node store unchanged), exit 1 (no signal), no
    /// output in the work dir, within `seconds` and `mebibytes`.
    func expectCleanFailure(
        _ run: MeasuredRun, _ code: BootMediumError.Code, seconds: Double = 10, mebibytes: Int = 200,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        BootMediumTests.expectCleanFailure(
            run, code: code, root: path, storePath: path + "/nodes.json", storeBytes: storeBefore,
            sourceLocation: sourceLocation)
        #expect(run.status == 1, "exit \(run.status): \(run.stderr.prefix(2000))", sourceLocation: sourceLocation)
        #expect(run.seconds < seconds, "took \(run.seconds) s", sourceLocation: sourceLocation)
        #expect((run.peakRSSKiB ?? .max) < mebibytes << 10, "peak RSS \(run.peakRSSKiB ?? -1) KiB", sourceLocation: sourceLocation)
        let outputs = (FileManager.default.subpaths(atPath: demo.workDir) ?? []).filter { $0.hasPrefix("out") }
        #expect(outputs.isEmpty, "\(outputs)", sourceLocation: sourceLocation)
    }
}

/// The lines of an strace log for calls on a path containing `fragment` that succeeded.
func successfulCalls(_ trace: String, naming fragment: String) -> [String] {
    trace.split(separator: "\n").map(String.init).filter { line in
        guard line.contains(fragment), let equals = line.range(of: " = ", options: .backwards) else { return false }
        return line[equals.upperBound...].first.map { $0.isNumber } ?? false
    }
}

/// The executables the crash cases run under: the debug build the tests link, and the release
/// build when tools/test made one (BOOTMEDIUM_RELEASE_BINARY).
let hostileExecutables: [String] = {
    var result = [bootmediumExecutable]
    if let release = ProcessInfo.processInfo.environment["BOOTMEDIUM_RELEASE_BINARY"], !release.isEmpty,
        FileManager.default.isExecutableFile(atPath: release)
    {
        result.append(release)
    }
    return result
}()

/// The fault classes of issue 15, each tried as an attacker or an unlucky operator would, on a
/// fresh copy of the demo root, through the CLI as a separate process.
@Suite(.tags(.demoRoot)) struct HostileInputTests {
    // MARK: 1. No input crashes the process (cramfs builds over a bootcd.img libarchive cannot open).

    enum BrokenBootcd: String, CaseIterable, Sendable {
        case missing, directory, randomBytes, empty, truncatedGzip, notCpio
    }

    @Test(arguments: BrokenBootcd.allCases, hostileExecutables)
    func brokenBootcdNeverCrashesACramfsBuild(_ broken: BrokenBootcd, executable: String) throws {
        let root = try HostileRoot()
        let bootcd = "usr/share/bootcd-planetlab-x86_64/build/isofs/bootcd.img"
        switch broken {
        case .missing: try FileManager.default.removeItem(atPath: root.path + "/" + bootcd)
        case .directory:
            try FileManager.default.removeItem(atPath: root.path + "/" + bootcd)
            try FileManager.default.createDirectory(atPath: root.path + "/" + bootcd, withIntermediateDirectories: false)
        case .randomBytes:
            var generator = SystemRandomNumberGenerator()
            try root.plant(bootcd, Data((0..<65536).map { _ in UInt8.random(in: 0...255, using: &generator) }))
        case .empty: try root.plant(bootcd, Data())
        case .truncatedGzip:
            let whole = try Data(contentsOf: URL(fileURLWithPath: root.path + "/" + bootcd))
            try root.plant(bootcd, whole.prefix(whole.count / 3))
        case .notCpio:
            let r = try runProcess("/bin/sh", ["-c", "head -c 100000 /dev/urandom | gzip -n"])
            try root.plant(bootcd, r.stdout)
        }
        for options in [["cramfs"], ["cramfs", "partition"], []] {
            for action in ["node-iso", "node-usb"] where !(action == "node-iso" && options.contains("partition")) {
                let run = try runMeasured(root.build(action, options: options), executable: executable)
                let expected: BootMediumError.Code =
                    options.contains("partition") && options.contains("cramfs")
                    ? .notSupported : broken == .directory ? .invalidInput : .missingBootcd
                #expect(run.status < 128, "\(broken) \(action) \(options): killed by signal \(run.status - 128)")
                root.expectCleanFailure(run, expected)
            }
        }
    }

    // MARK: 2. Every file read from the PLC root resolves inside it.

    enum Escape: String, CaseIterable, Sendable {
        case dotDotInConfigPath, absoluteLinkInConfigDir, relativeLinkOutOfRoot, passwdLink, kernelLink, loaderLink,
            bootcdLink, treeDirectoryLink
    }

    @Test(arguments: Escape.allCases)
    func noHostFileEndsUpInAMedium(_ escape: Escape) throws {
        let root = try HostileRoot()
        // The host file an attacker wants: outside the root, readable by the caller.
        let secret = FileManager.default.temporaryDirectory.path + "/bootmedium-secret-" + UUID().uuidString
        try "host secret\n".write(toFile: secret, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: secret) }
        let tree = "usr/share/bootcd-planetlab-x86_64/build"
        let climb = String(repeating: "../", count: 40)
        switch escape {
        case .dotDotInConfigPath: try root.configure("PLC_BOOT_CA_SSL_CRT", "/" + climb + String(secret.dropFirst()))
        case .absoluteLinkInConfigDir: try root.link("etc/planetlab/boot-ca.pem", to: secret)
        case .relativeLinkOutOfRoot: try root.link("etc/planetlab/pubring.gpg", to: climb + String(secret.dropFirst()))
        case .passwdLink: try root.link(tree + "/passwd", to: secret)
        case .kernelLink: try root.link(tree + "/isofs/kernel", to: secret)
        case .loaderLink: try root.link(tree + "/isolinux/ldlinux.c32", to: secret)
        case .bootcdLink: try root.link(tree + "/isofs/bootcd.img", to: climb + String(secret.dropFirst()))
        case .treeDirectoryLink:
            try FileManager.default.removeItem(atPath: root.path + "/" + tree + "/isolinux")
            try FileManager.default.createSymbolicLink(
                atPath: root.path + "/" + tree + "/isolinux", withDestinationPath: "/usr/lib/ISOLINUX")
        }
        let run = try runMeasured(root.build(), trace: "file")
        root.expectCleanFailure(run, .outsideRoot)
        #expect(run.stderr.contains(root.path), "the error names the path: \(run.stderr)")
        #expect(successfulCalls(run.trace, naming: (secret as NSString).lastPathComponent).isEmpty, "\(run.trace.suffix(3000))")
        #expect(successfulCalls(run.trace, naming: "/usr/lib/ISOLINUX").isEmpty)
    }

    @Test func linksThatStayInsideTheRootAreFine() throws {
        let root = try HostileRoot()
        let planetlab = root.path + "/etc/planetlab"
        try FileManager.default.moveItem(atPath: planetlab + "/boot-ca.pem", toPath: planetlab + "/real-ca.pem")
        try root.link("etc/planetlab/boot-ca.pem", to: "../planetlab/./real-ca.pem")
        let tree = "usr/share/bootcd-planetlab-x86_64/build"
        try FileManager.default.moveItem(atPath: root.path + "/" + tree + "/isofs/kernel", toPath: root.path + "/vmlinuz")
        try root.link(tree + "/isofs/kernel", to: "../../../../../vmlinuz")
        let run = try runMeasured(root.build())
        #expect(run.status == 0, "\(run.stderr)")
    }

    // MARK: 4. bootcd.img never makes bootmedium run a program.

    @Test func boobyTrappedPathRunsNothing() throws {
        let root = try HostileRoot()
        let bin = root.path + "/trap-bin"
        let marker = root.path + "/trap-fired"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        for program in ["lrzip", "lzop", "grzip", "gzip", "gunzip", "bzip2", "xz", "lzma", "zstd", "lz4", "lzip", "lzcat",
                        "uudecode", "compress", "uncompress", "cpio", "sh", "mkisofs", "mkfs.vfat", "syslinux", "mcopy"] {
            try "#!/bin/sh\necho \"$0 $*\" >> \(marker)\ncat\n".write(toFile: bin + "/" + program, atomically: true, encoding: .utf8)
            #expect(chmod(bin + "/" + program, 0o755) == 0)
        }
        let bootcd = "usr/share/bootcd-planetlab-x86_64/build/isofs/bootcd.img"
        let gzipped = try Data(contentsOf: URL(fileURLWithPath: root.path + "/" + bootcd))
        // Data whose magic names an external decompressor (lrzip "LRZI", lzop, grzip "GRZipII").
        let traps: [(String, Data)] = [
            ("lrzip", Data("LRZI".utf8) + Data([0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) + gzipped.prefix(4096)),
            ("lzop", Data([0x89, 0x4C, 0x5A, 0x4F, 0x00, 0x0D, 0x0A, 0x1A, 0x0A]) + gzipped.prefix(4096)),
            ("grzip", Data("GRZipII\0\u{2}\u{4}:)".utf8) + gzipped.prefix(4096)),
        ]
        let env = ["PATH": bin]
        for (name, data) in traps {
            try root.plant(bootcd, data)
            for options in [[], ["cramfs"]] {
                let run = try runMeasured(root.build(options: options), env: env, trace: "process")
                root.expectCleanFailure(run, .missingBootcd)
                let execs = run.trace.split(separator: "\n").filter { $0.contains("execve(") }
                #expect(execs.count == 1, "\(name) \(options): \(execs)")
                #expect(!FileManager.default.fileExists(atPath: marker), "\(name): a trap ran")
            }
        }
        // And a good request under the same PATH: built, still without running anything.
        try root.plant(bootcd, gzipped)
        for options in [[], ["cramfs"]] {
            let run = try runMeasured(root.build(options: options), env: env, trace: "process")
            #expect(run.status == 0, "\(run.stderr)")
            let execs = run.trace.split(separator: "\n").filter { $0.contains("execve(") }
            #expect(execs.count == 1, "\(options): \(execs)")
            try? FileManager.default.removeItem(atPath: root.demo.workDir + "/out.iso")
        }
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    // MARK: 5. Every input has a type check and a size cap; memory stays bounded.

    @Test func oversizedInputsAreRefusedInBoundedMemory() throws {
        let tree = "usr/share/bootcd-planetlab-x86_64/build"
        let cases: [(String, Int64, BootMediumError.Code)] = [
            ("etc/planetlab/plc_config", 200 << 20, .invalidInput),
            ("etc/planetlab/boot-ca.pem", 100 << 20, .invalidInput),
            ("etc/planetlab/nodefamily", 300 << 20, .invalidInput),
            (tree + "/isolinux/isolinux.bin", 100 << 20, .invalidInput),
            (tree + "/isolinux/isohdpfx.bin", 100 << 20, .invalidInput),
            (tree + "/passwd", 100 << 20, .invalidInput),
            (tree + "/version.txt", 100 << 20, .invalidInput),
            (tree + "/isofs/kernel", 1 << 30, .invalidInput),
        ]
        for (file, size, code) in cases {
            let root = try HostileRoot()
            try root.sparse(file, size: size)
            let run = try runMeasured(root.build())
            root.expectCleanFailure(run, code, seconds: 5, mebibytes: 100)
            #expect(run.stderr.contains(file), "names \(file): \(run.stderr)")
        }
        // USB: the SYSLINUX payload too.
        let root = try HostileRoot()
        try root.sparse(tree + "/syslinux/ldlinux.sys", size: 100 << 20)
        root.expectCleanFailure(try runMeasured(root.build("node-usb")), .invalidInput, seconds: 5, mebibytes: 100)
    }

    @Test func aHugeTreeFactsCacheIsIgnoredInBoundedMemory() throws {
        let root = try HostileRoot()
        try FileManager.default.createDirectory(atPath: root.demo.workDir, withIntermediateDirectories: true)
        try root.sparse("var/tmp/bootmedium/.tree-facts.json", size: 300 << 20)
        let run = try runMeasured(root.build())
        #expect(run.status == 0, "\(run.stderr)")
        #expect((run.peakRSSKiB ?? .max) < 100 << 10, "peak RSS \(run.peakRSSKiB ?? -1) KiB")
    }

    // MARK: 6. No input blocks: FIFOs and devices are refused at once.

    @Test func fifosAndDevicesAreRefusedAtOnce() throws {
        let tree = "usr/share/bootcd-planetlab-x86_64/build"
        for file in [tree + "/isofs/kernel", tree + "/isofs/bootcd.img", "etc/planetlab/plc_config", tree + "/passwd",
                     tree + "/isolinux/isolinux.bin", tree + "/version.txt"] {
            for device in [false, true] {
                let root = try HostileRoot()
                if device {
                    try? FileManager.default.removeItem(atPath: root.path + "/" + file)
                    #expect(mknod(root.path + "/" + file, S_IFCHR | 0o644, dev_t(1 << 8 | 5)) == 0)  // 1:5, /dev/zero
                } else {
                    try root.fifo(file)
                }
                for options in [[], ["cramfs"]] {
                    let run = try runMeasured(root.build(options: options), timeout: 20)
                    root.expectCleanFailure(run, .invalidInput, seconds: 5)
                }
            }
        }
    }

    @Test func inspectAndVerifyRefuseFifosAndCharacterDevices() throws {
        let dir = FileManager.default.temporaryDirectory.path + "/bootmedium-fifo-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(mkfifo(dir + "/image.iso", 0o644) == 0)
        for image in [dir + "/image.iso", "/dev/zero", "/dev/urandom"] {
            for command in [["inspect", image], ["inspect", image, "--json"], ["verify", image]] {
                let run = try runMeasured(command, timeout: 20)
                #expect(run.status == 1, "\(command): \(run.status) \(run.stderr)")
                #expect(run.stderr.hasPrefix("error[invalid-image]: "), "\(command): \(run.stderr)")
                #expect(run.seconds < 5)
            }
        }
    }

    // MARK: 8. A tree file that changes during a build fails it; a poisoned cache changes nothing.

    @Test func aTreeFileGrowingDuringTheBuildFailsIt() async throws {
        for action in ["node-iso", "node-usb"] {
            let demo = try DemoCopy()
            let bootcd = try demo.makePrivate(demo.tree + "/isofs/bootcd.img")
            // Appended after the tree's facts were taken, as its copy into the image begins.
            let target = bootcd
            let fired = Mutex(false)
            FileCopy.beforePiece.withLock {
                $0[target] = { _ in if !fired.withLock({ let was = $0; $0 = true; return was }) { append(target) } }
            }
            defer { FileCopy.beforePiece.withLock { _ = $0.removeValue(forKey: target) } }
            await expectError(.imageBuildFailed) { try await demo.build(action, name: "t.img") }
            #expect(fired.withLock { $0 }, "\(action): the file was appended to")
            #expect(demo.workFiles.filter { $0.hasSuffix(".img") || $0.contains("bootmedium-") }.isEmpty, "\(demo.workFiles)")
            #expect(try demo.nodeKey(1) == "old-key-1")
        }
    }

    @Test func aPoisonedTreeFactsCacheChangesNoMedium() throws {
        let root = try HostileRoot()
        let honest = try runMeasured(root.build(output: "%d/honest.iso"))
        #expect(honest.status == 0, "\(honest.stderr)")
        // Every cached fact made wrong: sizes halved, digests of other bytes, MACs kept.
        let cache = root.demo.workDir + "/.tree-facts.json"
        let stored = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: cache))) as! [String: String]
        #expect(!stored.isEmpty)
        var poisoned: [String: String] = [:]
        for (key, value) in stored {
            let parts = value.split(separator: " ")
            if key.hasPrefix("uncompressed-size|"), let size = Int64(parts[0]) {
                poisoned[key] = "\(size / 2) " + parts.dropFirst().joined(separator: " ")
            } else {
                poisoned[key] = String(repeating: "0", count: 64) + " " + parts.dropFirst().joined(separator: " ")
            }
        }
        try root.plant("var/tmp/bootmedium/.tree-facts.json", try JSONSerialization.data(withJSONObject: poisoned))
        let run = try runMeasured(root.build(output: "%d/poisoned.iso"))
        #expect(run.status == 0, "\(run.stderr)")
        let poisonedImage = root.demo.workDir + "/poisoned.iso"
        let config = String(decoding: try isoFile(poisonedImage, "/isolinux.cfg"), as: UTF8.self)
        let honestConfig = String(decoding: try isoFile(root.demo.workDir + "/honest.iso", "/isolinux.cfg"), as: UTF8.self)
        #expect(config.split(separator: "\n").filter { $0.contains("ramdisk_size") } ==
                honestConfig.split(separator: "\n").filter { $0.contains("ramdisk_size") })
        // Our inspect checks the manifest against the bytes: it agrees.
        let inspect = try runProcess(bootmediumExecutable, ["inspect", poisonedImage])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        // So does an independent reader: the manifest's bootcd.img digest is the file's.
        let manifest = try JSONSerialization.jsonObject(with: isoFile(poisonedImage, "/bootmedium.json")) as! [String: Any]
        let files = manifest["files"] as! [[String: Any]]
        let bootcd = try #require(files.first { $0["path"] as? String == "bootcd.img" })
        let digest = try runProcess("/usr/bin/sha256sum", [root.tree + "/isofs/bootcd.img"])
        #expect(String(decoding: digest.stdout, as: UTF8.self).hasPrefix(bootcd["sha256"] as! String))
    }

    // MARK: Also decided: SIGKILL mid-write leaves nothing (the output is an O_TMPFILE until named).

    @Test func sigkillWhileWritingLeavesNothing() throws {
        let demo = try DemoCopy(big: true)
        let published = demo.path + "/var/www/html/download-planetlab-x86_64"
        for (index, arguments) in [
            ["--action", "node-iso", "--node", "1", "--output", "%d/killed.iso"],
            ["--action", "node-usb", "--node", "1", "--output", "%d/killed.usb"],
            ["--action", "generic-iso"],
        ].enumerated() {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: bootmediumExecutable)
            process.arguments = ["build", "--root", demo.path] + arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            let directory = index == 2 ? published : demo.workDir
            var writing = false
            for _ in 0..<10_000 {
                if writingInto(directory, pid: process.processIdentifier) { writing = true; break }
                usleep(500)
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(writing, "\(arguments): the output was being written")
            #expect(process.terminationReason == .uncaughtSignal)
            let left = (allEntries(under: demo.workDir) + allEntries(under: published)).filter {
                $0.contains("killed") || $0.contains("bootmedium-") || $0.hasSuffix(".iso")
            }
            #expect(left.isEmpty, "\(arguments): \(left)")
            #expect(try demo.nodeKey(1) == "old-key-1")
        }
    }

    // MARK: Also decided: a kernel that is no kernel, a bootcd.img that is no cpio, errors that quote.

    @Test func aKernelThatIsNoKernelIsRefused() throws {
        for kernel in [Data(), Data("not a kernel".utf8), Data(repeating: 0, count: 1 << 20)] {
            let root = try HostileRoot()
            try root.plant("usr/share/bootcd-planetlab-x86_64/build/isofs/kernel", kernel)
            for action in ["node-iso", "node-usb"] {
                root.expectCleanFailure(try runMeasured(root.build(action)), .missingBootcd)
            }
        }
    }

    /// Build and inspect agree on limits: a cramfs root nested deeper than the reader walks is
    /// refused when built; one within the limit is built and inspected.
    @Test func cramfsNestingIsBoundedAlikeForBuildAndInspect() throws {
        for (depth, builds) in [(Cramfs.maximumComponents - 2, true), (2000, false)] {
            let root = try HostileRoot()
            let bootcd = "usr/share/bootcd-planetlab-x86_64/build/isofs/bootcd.img"
            // The demo's archive with `depth` nested directories added before its trailer.
            let script = """
                import gzip, sys
                data = gzip.decompress(open(sys.argv[1], "rb").read())
                end = data.rindex(b"070701"); data = data[:end]
                def entry(name, mode, body=b""):
                    name = name.encode() + b"\\0"
                    head = b"070701" + b"".join(b"%08X" % v for v in (0, mode, 0, 0, 1, 0, len(body), 0, 0, 0, 0, len(name), 0))
                    pad = lambda n: b"\\0" * (-n % 4)
                    return head + name + pad(110 + len(name)) + body + pad(len(body))
                path = "deep"
                out = []
                for level in range(int(sys.argv[2])):
                    out.append(entry(path, 0o40755))
                    path += "/d"
                out.append(entry(path[:-2] + "/leaf", 0o100644, b"leaf\\n"))
                out.append(entry("TRAILER!!!", 0))
                open(sys.argv[1] + ".new", "wb").write(gzip.compress(data + b"".join(out), mtime=0))
                """
            let file = root.path + "/" + bootcd
            let made = try runProcess("/usr/bin/python3", ["-c", script, file, String(depth)])
            #expect(made.status == 0, "\(made.stderr)")
            try FileManager.default.removeItem(atPath: file)
            try FileManager.default.moveItem(atPath: file + ".new", toPath: file)
            let run = try runMeasured(root.build(options: ["cramfs"]))
            if builds {
                #expect(run.status == 0, "\(run.stderr.prefix(500))")
                let inspect = try runProcess(bootmediumExecutable, ["inspect", root.demo.workDir + "/out.iso"])
                #expect(inspect.status == 0, "\(inspect.stderr)")
            } else {
                root.expectCleanFailure(run, .missingBootcd)
                #expect(run.stderr.contains("deeper than \(Cramfs.maximumComponents)"), "\(run.stderr)")
            }
        }
    }

    @Test func anErrorQuotesAtMostAKilobyte() throws {
        let root = try HostileRoot()
        let huge = String(repeating: "x", count: 100_000) + "\nsecond line"
        let run = try runMeasured(root.build(options: [huge]))
        root.expectCleanFailure(run, .invalidOption)
        #expect(run.stderr.utf8.count < 1200, "\(run.stderr.utf8.count) bytes")
    }
}

/// Appends four bytes to the file at `path` (a private copy, not a shared hard link).
private func append(_ path: String) {
    let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
    _ = write(fd, "more", 4)
    close(fd)
}
