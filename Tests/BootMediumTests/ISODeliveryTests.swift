import Foundation
import Synchronization
import Testing

@testable import BootMedium

/// How ISO media reach their destination: libisofs's bytes into every kind of sink, a node
/// medium as its template copied into a file, sources that change or live elsewhere, the flush,
/// and write errors that must leave nothing behind.
@Suite(.serialized, .tags(.demoRoot)) struct ISODeliveryTests {
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
        let bootcdSource = FileBytes.path(bootcd)  // one file under two names
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
        // The reader on a thread of its own, not Swift's cooperative pool: the writer below
        // blocks its thread (holding libisofs's lock) until the pipe is drained, and with other
        // suites' blocking tests on the pool's few threads a pooled reader might wait for it.
        let piped = Mutex(Data())
        let drained = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let handle = FileHandle(fileDescriptor: readEnd, closeOnDealloc: true)
            let data = handle.readDataToEndOfFile()
            piped.withLock { $0 = data }
            drained.signal()
        }
        let sink = DescriptorSink(fd: ends[1])
        #expect(try Isofs.write(layout, to: sink, cancellation: CancellationFlag()) == size)
        close(ends[1])
        drained.wait()
        #expect(piped.withLock { $0 } == expected)
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
