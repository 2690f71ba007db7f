import Foundation
import Testing

@testable import BootMedium

/// The files of a USB image as the image assembly passes them, plus long names and a
/// subdirectory; big ones come from disk.
struct USBTestInputs {
    let scratch: FATScratch
    let files: [FATFileSpec]
    /// Expected contents by path ("a/b").
    let expected: [String: [UInt8]]

    init(extras: Bool = true, bootcdSize: Int = 3 << 20) throws {
        let scratch = try FATScratch()
        self.scratch = scratch
        var files: [FATFileSpec] = []
        var expected: [String: [UInt8]] = [:]
        func add(_ path: [String], _ bytes: [UInt8], onDisk: Bool) throws {
            if onDisk {
                let file = scratch.file(path.joined(separator: "_"))
                try Data(bytes).write(to: URL(fileURLWithPath: file))
                files.append(try FATFileSpec.file(path: path, contentsOf: file))
            } else {
                files.append(FATFileSpec(path: path, bytes: bytes))
            }
            expected[path.joined(separator: "/")] = bytes
        }
        try add(["kernel"], fatTestBytes(1_234_567, seed: 11), onDisk: true)
        try add(["bootcd.img"], fatTestBytes(bootcdSize, seed: 12), onDisk: true)
        try add(["overlay.img"], fatTestBytes(70_001, seed: 13), onDisk: false)
        try add(["pl_version"], Array("PlanetLab BootCD 5.4\n".utf8), onDisk: false)
        try add(["syslinux.cfg"], Array(USBImageTests.bootConfig.utf8), onDisk: false)
        if extras {
            try add(["boot", "Mixed Case Name.txt"], Array("mixed\n".utf8), onDisk: false)
            try add(["boot", "sub dir", "a-rather-long-file-name-for-vfat.data"], fatTestBytes(9000, seed: 14), onDisk: false)
            try add(["boot", "EMPTY"], [], onDisk: false)
        }
        self.files = files
        self.expected = expected
    }

    func write(to image: String, options: USBImageOptions) throws -> USBImageLayout {
        let layout = try USBImageLayout(files: files, syslinux: try TestSyslinux.payload(), options: options)
        let sink = try FATFileSink(path: image)
        try layout.write(to: sink, cancellation: CancellationFlag())
        #expect(sink.count == layout.totalBytes)
        return layout
    }
}

@Suite struct USBImageTests {
    static let bootConfig = "SERIAL 0 115200\nSAY hello-from-syslinux\nDEFAULT nosuchkernel\nTIMEOUT 10\n"

    static func options(partitioned: Bool) throws -> USBImageOptions {
        USBImageOptions(
            label: "PlanetLab", volumeID: 0x5EED_1234, timestamp: 1_700_000_000,
            partitioning: partitioned ? .mbr(bootCode: try TestSyslinux.mbrCode(), diskSignature: 0x0DDB_A11) : .superfloppy)
    }

    /// fsck.fat -n on `image` (a bare volume): exit 0 and nothing to report.
    static func expectClean(_ image: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let fsck = try fatTool("/usr/sbin/fsck.fat", ["-n", "-v", image])
        #expect(fsck.status == 0, "\(fsck.text)", sourceLocation: sourceLocation)
        for complaint in ["differences", "Dirty", "wrong", "Free cluster", "Reclaim", "Marking", "ERROR", "Not automatically", "invalid"] {
            #expect(!fsck.text.contains(complaint), "\(fsck.text)", sourceLocation: sourceLocation)
        }
    }

    /// mdir lists every file (long names included) and mtype/mcopy read them back byte for byte.
    static func expectContents(_ drive: String, _ inputs: USBTestInputs, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let listing = try fatTool("/usr/bin/mdir", ["-/", "-b", "-i", drive, "::"])
        #expect(listing.status == 0, "\(listing.text)", sourceLocation: sourceLocation)
        let listed = Set(listing.text.split(separator: "\n").map(String.init).filter { !$0.hasSuffix("/") })
        #expect(listed == Set(inputs.expected.keys.map { "::/" + $0 }), "\(listing.text)", sourceLocation: sourceLocation)
        for (path, bytes) in inputs.expected {
            if bytes.count < 4096 {
                let typed = try fatTool("/usr/bin/mtype", ["-i", drive, "::/" + path])
                #expect(typed.status == 0 && [UInt8](typed.stdout) == bytes, "\(path)", sourceLocation: sourceLocation)
            } else {
                let out = inputs.scratch.file("out-" + UUID().uuidString)
                let copied = try fatTool("/usr/bin/mcopy", ["-n", "-i", drive, "::/" + path, out])
                #expect(copied.status == 0, "\(copied.text)", sourceLocation: sourceLocation)
                #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: out))) == bytes, "\(path)", sourceLocation: sourceLocation)
                try? FileManager.default.removeItem(atPath: out)
            }
        }
        // The real long names, and 8.3 names with the NT lower-case flags (no long name).
        let dir = try fatTool("/usr/bin/mdir", ["-i", drive, "::"])
        #expect(dir.text.contains("PL_VER~1") && dir.text.contains("pl_version"), "\(dir.text)", sourceLocation: sourceLocation)
        #expect(dir.text.contains("kernel ") && dir.text.contains("syslinux cfg"), "\(dir.text)", sourceLocation: sourceLocation)
        #expect(dir.text.contains("Volume in drive : is PLANETLAB"), "\(dir.text)", sourceLocation: sourceLocation)
        #expect(dir.text.contains("Volume Serial Number is 5EED-1234"), "\(dir.text)", sourceLocation: sourceLocation)
        // At least 4 MiB free, as mtools counts it.
        let freeLine = try #require(dir.text.split(separator: "\n").first { $0.contains("bytes free") })
        let free = Int(freeLine.filter(\.isNumber)) ?? 0
        #expect(free >= 4 << 20, "\(freeLine)", sourceLocation: sourceLocation)
    }

    @Test func superfloppyImage() throws {
        let inputs = try USBTestInputs()
        let image = inputs.scratch.file("usb.img")
        let layout = try inputs.write(to: image, options: try Self.options(partitioned: false))
        let size = try FileManager.default.attributesOfItem(atPath: image)[.size] as! Int64
        #expect(size == layout.totalBytes && size % (1 << 20) == 0)
        #expect(layout.fatType == .fat16 && layout.volumeStart == 0)
        try Self.expectClean(image)
        try Self.expectContents(image, inputs)
        let blkid = try fatTool("/usr/sbin/blkid", ["-p", image])
        #expect(blkid.text.contains("TYPE=\"vfat\"") && blkid.text.contains("VERSION=\"FAT16\"") && blkid.text.contains("LABEL=\"PLANETLAB\""), "\(blkid.text)")
        // No partition table: sector 0 is the FAT boot sector.
        let sector0 = try readBytes(image, count: 512)
        #expect(Array(sector0[3..<11]) == Array("SYSLINUX".utf8))
        // The size rule: not one MiB more than files + metadata + 4 MiB need.
        let reader = try TestFATReader(image: image)
        let usedBytes = Int64(reader.fat.clusterCount - reader.fat.freeCount) * Int64(reader.spc * 512)
        #expect(layout.totalBytes - Int64(reader.dataStart * 512) - usedBytes - (4 << 20) < (1 << 20) + Int64(reader.spc * 512))
    }

    @Test func partitionedImage() throws {
        let inputs = try USBTestInputs()
        let image = inputs.scratch.file("usb-partition.img")
        let layout = try inputs.write(to: image, options: try Self.options(partitioned: true))
        #expect(layout.volumeStart == 32 && layout.totalBytes % (1 << 20) == 0)
        let dump = try fatTool("/usr/sbin/sfdisk", ["--dump", image])
        #expect(dump.status == 0, "\(dump.text)")
        let sectors = layout.totalBytes / 512 - 32
        #expect(dump.text.contains("label: dos") && dump.text.contains("label-id: 0x00ddba11"), "\(dump.text)")
        #expect(dump.text.contains("\(image)1 : start=          32, size=\(String(repeating: " ", count: max(0, 12 - String(sectors).count)))\(sectors), type=\(sectors < 65536 ? 4 : 6), bootable"), "\(dump.text)")
        #expect(dump.text.split(separator: "\n").filter { $0.contains(" : start=") }.count == 1)
        let blkid = try fatTool("/usr/sbin/blkid", ["-p", "-O", "16384", image])
        #expect(blkid.text.contains("TYPE=\"vfat\"") && blkid.text.contains("LABEL=\"PLANETLAB\""), "\(blkid.text)")
        try Self.expectContents(image + "@@16384", inputs)
        // The MBR: mbr.bin, signature, 31 zero sectors, then a volume with hidden sectors 32.
        let head = try readBytes(image, count: 32 * 512)
        #expect(Array(head[0..<440]) == (try TestSyslinux.mbrCode()))
        #expect(head[512...].allSatisfy { $0 == 0 })
        let reader = try TestFATReader(image: image, volumeOffset: 32 * 512)
        #expect(reader.boot.hiddenSectors == 32 && reader.boot.heads == 64 && reader.boot.sectorsPerTrack == 32)
        // fsck.fat on the partition alone.
        let part = inputs.scratch.file("part.img")
        #expect(try fatTool("/bin/dd", ["if=\(image)", "of=\(part)", "bs=512", "skip=32", "status=none"]).status == 0)
        try Self.expectClean(part)
    }

    /// A bootcd.img of 600 MiB (sparse input) makes the volume FAT32; fsck.fat and mtools agree.
    @Test func largeImageIsFAT32() throws {
        let inputs = try USBTestInputs(extras: false, bootcdSize: 1000)
        let big = inputs.scratch.file("big-bootcd.img")
        let fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        #expect(fd >= 0 && ftruncate(fd, 600 << 20) == 0)
        // A few non-zero bytes at both ends and in the middle.
        for offset: off_t in [0, 300 << 20, (600 << 20) - 5] { _ = pwrite(fd, "MARK!", 5, offset) }
        close(fd)
        var files = inputs.files.filter { $0.path != ["bootcd.img"] }
        files.insert(try FATFileSpec.file(path: ["bootcd.img"], contentsOf: big), at: 1)
        let payload = try TestSyslinux.payload()
        for partitioned in [false, true] {
            let options = try Self.options(partitioned: partitioned)
            let layout = try USBImageLayout(files: files, syslinux: payload, options: options)
            #expect(layout.fatType == .fat32)
            #expect(try USBImageWriter.size(files: files, syslinux: payload, options: options) == layout.totalBytes)
            let image = inputs.scratch.file("large-\(partitioned).img")
            let sink = try FATFileSink(path: image)
            try layout.write(to: sink, cancellation: CancellationFlag())
            #expect(sink.count == layout.totalBytes && layout.totalBytes % (1 << 20) == 0)
            if partitioned {
                let dump = try fatTool("/usr/sbin/sfdisk", ["--dump", image])
                #expect(dump.text.contains("start=          32") && dump.text.contains("type=c, bootable"), "\(dump.text)")
                let blkid = try fatTool("/usr/sbin/blkid", ["-p", "-O", "16384", image])
                #expect(blkid.text.contains("VERSION=\"FAT32\""), "\(blkid.text)")
                let listing = try fatTool("/usr/bin/mdir", ["-i", image + "@@16384", "::/bootcd.img"])
                #expect(listing.text.contains("629145600") || listing.text.contains("629 145 600"), "\(listing.text)")
            } else {
                try Self.expectClean(image)
                let reader = try TestFATReader(image: image)
                #expect(reader.boot.type == .fat32 && reader.boot.sectorsPerCluster == 8)
                // FSInfo and the backup boot sector.
                let info = try FSInfo(decoding: try readBytes(image, offset: 512, count: 512))
                #expect(Int(info.freeCount) == reader.fat.freeCount)
                #expect(Int(info.nextFree) == reader.clusterCount - reader.fat.freeCount + 2)
                #expect(try readBytes(image, offset: 6 * 512, count: 512) == (try readBytes(image, count: 512)))
                let out = inputs.scratch.file("bootcd.out")
                #expect(try fatTool("/usr/bin/mcopy", ["-n", "-i", image, "::/bootcd.img", out]).status == 0)
                #expect(try fatSHA256(out) == (try fatSHA256(big)))
                try? FileManager.default.removeItem(atPath: out)
                for (path, bytes) in inputs.expected where path != "bootcd.img" {
                    let typed = try fatTool("/usr/bin/mtype", ["-i", image, "::/" + path])
                    #expect([UInt8](typed.stdout) == bytes, "\(path)")
                }
            }
            try? FileManager.default.removeItem(atPath: image)
        }
    }

    @Test(arguments: [false, true])
    func reproducible(partitioned: Bool) throws {
        let inputs = try USBTestInputs()
        let a = inputs.scratch.file("a.img"), b = inputs.scratch.file("b.img"), c = inputs.scratch.file("c.img")
        _ = try inputs.write(to: a, options: try Self.options(partitioned: partitioned))
        _ = try inputs.write(to: b, options: try Self.options(partitioned: partitioned))
        #expect(try fatSHA256(a) == (try fatSHA256(b)))
        var other = try Self.options(partitioned: partitioned)
        other.volumeID = 1
        _ = try inputs.write(to: c, options: other)
        #expect(try fatSHA256(a) != (try fatSHA256(c)))
    }

    /// The writer hands over bounded chunks and stops when cancelled.
    @Test func boundedChunksAndCancellation() throws {
        let inputs = try USBTestInputs()
        let payload = try TestSyslinux.payload()
        let options = try Self.options(partitioned: false)

        final class CountingSink: ImageSink {
            var largest = 0, total = 0, writes = 0
            let cancelAfter: Int?
            let flag: CancellationFlag
            init(cancelAfter: Int?, flag: CancellationFlag) { self.cancelAfter = cancelAfter; self.flag = flag }
            func write(_ bytes: UnsafeRawBufferPointer) throws(BootMediumError) {
                largest = max(largest, bytes.count)
                total += bytes.count
                writes += 1
                if let cancelAfter, writes >= cancelAfter { flag.cancel() }
            }
        }
        let flag = CancellationFlag()
        let counting = CountingSink(cancelAfter: nil, flag: flag)
        try USBImageWriter.write(files: inputs.files, syslinux: payload, options: options, to: counting, cancellation: flag)
        #expect(counting.largest <= 1 << 20 && counting.writes > 5)
        #expect(Int64(counting.total) == (try USBImageWriter.size(files: inputs.files, syslinux: payload, options: options)))

        let flag2 = CancellationFlag()
        let cancelling = CountingSink(cancelAfter: 2, flag: flag2)
        do {
            try USBImageWriter.write(files: inputs.files, syslinux: payload, options: options, to: cancelling, cancellation: flag2)
            Issue.record("expected cancellation")
        } catch {
            #expect(error.code == .cancelled)
        }
        #expect(cancelling.writes == 2)
    }

    @Test func invalidInputsAreRefused() throws {
        let payload = try TestSyslinux.payload()
        let options = try Self.options(partitioned: false)
        func code(_ files: [FATFileSpec], _ opts: USBImageOptions? = nil) -> BootMediumError.Code? {
            do {
                _ = try USBImageLayout(files: files, syslinux: payload, options: opts ?? options)
                return nil
            } catch { return error.code }
        }
        let one = FATFileSpec(path: ["kernel"], bytes: [1])
        #expect(code([one, FATFileSpec(path: ["KERNEL"], bytes: [2])]) == .imageBuildFailed)  // same FAT name
        #expect(code([FATFileSpec(path: ["ldlinux.sys"], bytes: [2])]) == .imageBuildFailed)  // SYSLINUX's
        #expect(code([FATFileSpec(path: ["a:b"], bytes: [2])]) == .imageBuildFailed)
        #expect(code([FATFileSpec(path: [], bytes: [2])]) == .imageBuildFailed)
        #expect(code([one, FATFileSpec(path: ["kernel", "x"], bytes: [2])]) == .imageBuildFailed)  // file used as a dir
        let hugeScratch = try FATScratch()
        try Data([1]).write(to: URL(fileURLWithPath: hugeScratch.file("huge")))
        var huge = try FATFileSpec.file(path: ["huge"], contentsOf: hugeScratch.file("huge"))
        huge.size = 1 << 32  // declared 4 GiB: refused by the layout before any byte is read
        #expect(code([huge]) == .imageBuildFailed)
        let crowd = (0..<600).map { FATFileSpec(path: ["f\($0)"], bytes: [1]) }
        #expect(code(crowd) == .imageBuildFailed)  // FAT16 root holds 512 entries
        var badMBR = options
        badMBR.partitioning = .mbr(bootCode: [0, 1], diskSignature: 1)
        #expect(code([one], badMBR) == .invalidImage)
        // A file that changed size between planning and writing.
        let scratch = try FATScratch()
        let file = scratch.file("k")
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: file))
        let spec = try FATFileSpec.file(path: ["kernel"], contentsOf: file)
        try Data([1, 2, 3, 4]).write(to: URL(fileURLWithPath: file))
        let sink = try FATFileSink(path: scratch.file("x.img"))
        do {
            try USBImageWriter.write(files: [spec], syslinux: payload, options: options, to: sink, cancellation: CancellationFlag())
            Issue.record("expected a failure")
        } catch {
            #expect(error.code == .imageBuildFailed)
        }
        #expect(throws: BootMediumError.self) { try FATFileSpec.file(path: ["x"], contentsOf: scratch.file("missing")) }
    }

    /// SeaBIOS in QEMU boots both layouts into SYSLINUX, which reads syslinux.cfg (its SERIAL
    /// line puts the banner and the failed DEFAULT on the serial log).
    @Test(arguments: [false, true])
    func bootsInQEMU(partitioned: Bool) throws {
        let qemu = "/usr/bin/qemu-system-x86_64"
        try #require(FileManager.default.isExecutableFile(atPath: qemu), "qemu is installed by tools/setup")
        let inputs = try USBTestInputs(extras: false, bootcdSize: 4096)
        let image = inputs.scratch.file("boot.img")
        _ = try inputs.write(to: image, options: try Self.options(partitioned: partitioned))
        let log = inputs.scratch.file("serial.log")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: qemu)
        process.arguments = [
            "-accel", "tcg", "-m", "256", "-display", "none", "-monitor", "none", "-no-reboot",
            "-drive", "file=\(image),format=raw,if=ide,snapshot=on", "-serial", "file:\(log)",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            // SIGKILL: the test runner's blocked-signal mask is inherited, so qemu may never see
            // the SIGTERM of terminate().
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        var text = ""
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if text.contains("Loading nosuchkernel") { break }
            Thread.sleep(forTimeInterval: 0.25)
        }
        #expect(text.contains("SYSLINUX 6.04 20210613"), "\(text)")
        #expect(text.contains("Loading nosuchkernel... failed"), "\(text)")
    }

    /// Files on disk reach the image by kernel copies when the sink can (an output file), by
    /// reads and writes when it cannot, and by both when its copies come short or stop part way:
    /// the same bytes every time.
    @Test(arguments: [false, true])
    func kernelCopiesAndTheirFallbackGiveTheSameImage(partitioned: Bool) throws {
        let inputs = try USBTestInputs(bootcdSize: 20 << 20)  // several copy pieces
        let options = try Self.options(partitioned: partitioned)
        let reference = inputs.scratch.file("read.img")
        _ = try inputs.write(to: reference, options: options)  // FATFileSink cannot copy
        let layout = try USBImageLayout(files: inputs.files, syslinux: try TestSyslinux.payload(), options: options)

        let copied = inputs.scratch.file("copied.img")
        let file = try OutputFile(path: copied, confinedTo: nil)
        try layout.write(to: file, cancellation: CancellationFlag())
        try file.commit()
        #expect(try fatSHA256(copied) == (try fatSHA256(reference)))

        /// Copies at most 100 000 bytes per call, and no more after 5 calls.
        final class StingySink: ImageSink {
            let fd: Int32
            var copies = 0, refusals = 0
            var method = Posix.KernelAppend.copyFileRange
            init(path: String) { fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) }
            deinit { close(fd) }
            func write(_ bytes: UnsafeRawBufferPointer) throws(BootMediumError) { try Posix.writeAll(fd, bytes, path: "stingy") }
            func copy(from source: Int32, offset: Int64, count: Int) throws(BootMediumError) -> Int? {
                guard copies < 5 else {
                    refusals += 1
                    return nil
                }
                copies += 1
                return try Posix.copyFileRange(
                    from: source, offset: offset, to: fd, count: min(count, 100_000), path: "stingy", method: &method)
            }
        }
        let stingyPath = inputs.scratch.file("stingy.img")
        let stingy = StingySink(path: stingyPath)
        try layout.write(to: stingy, cancellation: CancellationFlag())
        #expect(stingy.copies == 5 && stingy.refusals == 2)  // one refusal per file on disk
        #expect(try fatSHA256(stingyPath) == (try fatSHA256(reference)))
        if !partitioned {
            try Self.expectClean(copied)
            try Self.expectContents(copied, inputs)
        }
    }

    /// A source that shrinks or grows while it is copied fails the image (never zeros, never a
    /// short file), through kernel copies and through reads alike.
    @Test func aSourceChangingSizeDuringTheCopyFails() throws {
        let inputs = try USBTestInputs(bootcdSize: 20 << 20)
        let options = try Self.options(partitioned: false)
        let layout = try USBImageLayout(files: inputs.files, syslinux: try TestSyslinux.payload(), options: options)
        guard case .file(let input) = try #require(inputs.files.first { $0.path == ["bootcd.img"] }).source else {
            Issue.record("bootcd.img is not on disk")
            return
        }
        let bootcd = input.path
        let original = try Data(contentsOf: URL(fileURLWithPath: bootcd))
        for change in ["shrink", "grow"] {
            changeSourceDuringCopy(bootcd, change)
            defer { _ = FileCopy.beforePiece.withLock { $0.removeValue(forKey: bootcd) } }
            let reason = change == "shrink" ? "ended early" : "changed size"
            let target = inputs.scratch.file("out-\(change).img")
            do {
                let file = try OutputFile(path: target, confinedTo: nil)
                try layout.write(to: file, cancellation: CancellationFlag())
                Issue.record("the image was written")
            } catch {
                #expect(error.code == .imageBuildFailed && error.message.contains(reason), "\(error)")
            }
            // Nothing left: no image, no temp file.
            #expect(try FileManager.default.contentsOfDirectory(atPath: inputs.scratch.path).allSatisfy { !$0.contains("out-") })
            try original.write(to: URL(fileURLWithPath: bootcd))
            let sink = try FATFileSink(path: inputs.scratch.file("sink-\(change).img"))
            do {
                try layout.write(to: sink, cancellation: CancellationFlag())
                Issue.record("the image was written")
            } catch {
                #expect(error.code == .imageBuildFailed && error.message.contains(reason), "\(error)")
            }
            try original.write(to: URL(fileURLWithPath: bootcd))
        }
    }
}
