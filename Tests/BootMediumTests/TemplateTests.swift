import Foundation
import Synchronization
import Testing

@testable import BootMedium

/// Plain media made from a cached template plus the request's slots (docs/templates.md): the
/// same bytes as a medium built in full, read cleanly by independent readers; slots filled
/// exactly or overflowing; the cache's invalidation, lock and bound; random access.
@Suite(.serialized, .tags(.qemu, .demoRoot)) struct TemplateTests {
    static let plnode = "NODE_ID=\"1\"\nNODE_KEY=\"template-test-key\"\nIP_METHOD=\"dhcp\"\nHOST_NAME=\"node1\"\nDOMAIN_NAME=\"site1.demo.example.org\"\n"

    /// The plan of `medium` for node 1 with `options`.
    func inputs(_ medium: Medium, options: [String], demo: DemoCopy, plnode: String = Self.plnode) async throws -> ImageInputs {
        let plan = try await demo.service().planner.plan(
            BootMediumRequest(caller: .admin, node: DemoRoot.node1, action: medium.action, filename: nil, options: medium.options + options))
        return try ImageInputs(plan: plan, nodeConfigText: plnode)
    }

    /// Writes `inputs` with `cache` (nil: in full) into `path`.
    @discardableResult
    func write(_ medium: Medium, _ inputs: ImageInputs, cache: TemplateCache?, to path: String) throws -> String {
        let file = try OutputFile(path: path, confinedTo: nil, replaces: true)
        try MediumWriter(layout: medium.layout, templates: cache).write(inputs, to: file, cancellation: CancellationFlag())
        try file.commit()
        return path
    }

    /// Every file of `image`, extracted by xorriso (ISO) or mtools (FAT) into `directory`.
    func extract(_ medium: Medium, _ image: String, into directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let r: (status: Int32, stdout: Data, stderr: String)
        switch medium {
        case .iso:
            r = try runProcess("/usr/bin/xorriso", ["-osirrox", "on", "-indev", image, "-extract", "/", directory])
        case .usb, .usbPartition:
            let target = medium == .usb ? image : image + "@@16384"
            r = try runProcess("/usr/bin/mcopy", ["-s", "-n", "-i", target, "::/", directory], environment: ["MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"])
        }
        #expect(r.status == 0, "\(r.stderr)")
    }

    /// For every plain type and console option: the spliced medium is, byte for byte and file
    /// by file, the medium built in full; xorriso, isoinfo and pycdlib (ISO), fsck.fat (FAT)
    /// find nothing wrong; inspect finds its manifest right and its node config ours.
    @Test(arguments: Medium.allCases, [[], ["serial"], ["serial:ttyS1:9600"]])
    func aSplicedMediumIsTheMediumBuiltInFull(medium: Medium, console: [String]) async throws {
        let demo = try DemoCopy()
        let inputs = try await inputs(medium, options: console, demo: demo)
        let cache = TemplateCache()
        let spliced = try write(medium, inputs, cache: cache, to: demo.path + "/spliced.img")
        #expect(cache.counts.builds == 1)
        let full = try write(medium, inputs, cache: nil, to: demo.path + "/full.img")
        #expect(try sha256(spliced) == (try sha256(full)), "\(medium) \(console)")
        try extract(medium, spliced, into: demo.path + "/x-spliced")
        try extract(medium, full, into: demo.path + "/x-full")
        let diff = try runProcess("/usr/bin/diff", ["-r", demo.path + "/x-spliced", demo.path + "/x-full"])
        #expect(diff.status == 0, "\(String(decoding: diff.stdout, as: UTF8.self))")
        // A second request is a cache hit and the same medium.
        let again = try write(medium, inputs, cache: cache, to: demo.path + "/again.img")
        #expect(cache.counts == TemplateCache.Counters(hits: 1, builds: 1, evictions: 0))
        #expect(try sha256(again) == (try sha256(full)))
        switch medium {
        case .iso:
            let isoinfo = try runProcess("/usr/bin/isoinfo", ["-d", "-i", spliced])
            #expect(isoinfo.status == 0 && String(decoding: isoinfo.stdout, as: UTF8.self).contains("El Torito"), "\(isoinfo.stderr)")
            let walk = try runProcess(CramfsImageTests.venvPython, ["-c", """
                import sys, pycdlib
                iso = pycdlib.PyCdlib(); iso.open(sys.argv[1])
                for path, dirs, files in iso.walk(rr_path='/'):
                    for f in files: print(path.rstrip('/') + '/' + f)
                iso.close()
                """, spliced])
            let listed = String(decoding: walk.stdout, as: UTF8.self)
            #expect(walk.status == 0 && listed.contains("/overlay.img") && listed.contains("/boot/grub/grub.cfg"), "\(walk.stderr)")
        case .usb, .usbPartition:
            let volume = demo.path + "/volume.img"
            let dd = try runProcess("/bin/dd", ["if=" + spliced, "of=" + volume, "bs=512", "skip=\(medium == .usb ? 0 : 32)", "status=none"])
            #expect(dd.status == 0)
            let fsck = try runProcess("/sbin/fsck.fat", ["-n", volume])
            #expect(fsck.status == 0, "\(String(decoding: fsck.stdout, as: UTF8.self)) \(fsck.stderr)")
        }
        let report = try ImageInspector.inspect(path: spliced, showSecrets: true)
        #expect(report.manifest.status == .ok, "\(report.manifest.problems)")
        #expect(report.nodeConfig?.value("NODE_KEY") == "template-test-key")
        let overlay = try #require(report.manifest.manifest?.files.first { $0.path == "overlay.img" })
        #expect(overlay.size == Int64(SlotCapacities.standard.overlay))
    }

    /// An overlay that fills its slot exactly uses the template; one byte too many builds the
    /// medium in full with the slot grown (no template is built for it). Both boot and print
    /// exactly their plnode.txt.
    @Test func anOverlayFillingItsSlotExactlyAndOneByteTooMany() async throws {
        let demo = try DemoCopy()
        let inputs = try await inputs(.iso, options: ["serial"], demo: demo)
        let tree = inputs.plan.tree
        let probe = try MediumContents.slots(tree, configName: "isolinux.cfg", uefi: .espImage, capacities: .standard)
        let overlayBytes = try MediumContents.slotContents(inputs, tree: tree, slots: probe, cancellation: CancellationFlag())[MediumSlots.overlayName]!.count
        var exact = SlotCapacities.standard
        exact.overlay = overlayBytes
        let exactCache = TemplateCache(capacities: exact)
        let fits = try write(.iso, inputs, cache: exactCache, to: demo.path + "/exact.iso")
        #expect(exactCache.counts.builds == 1)
        #expect(try isoFile(fits, "/overlay.img").count == overlayBytes)
        var tight = exact
        tight.overlay = overlayBytes - 1
        let tightCache = TemplateCache(capacities: tight)
        let overflow = try write(.iso, inputs, cache: tightCache, to: demo.path + "/overflow.iso")
        #expect(tightCache.counts == TemplateCache.Counters(), "no template for a request that does not fit")
        let grown = try isoFile(overflow, "/overlay.img")
        #expect(grown.count == 2 * (overlayBytes - 1))
        #expect(Array(try isoFile(fits, "/overlay.img")) == Array(grown.prefix(overlayBytes)))
        #expect(try ImageInspector.inspect(path: overflow).manifest.status == .ok)
        for image in [fits, overflow] {
            let result = try bootCheck(image, media: "cd", cmdline: ["console=ttyS0,115200n8"], plnode: .some(Self.plnode))
            #expect(result.passed, "\(image): \(result.output)")
        }
    }

    /// Replacing or touching a tree file makes the next request build a new template; a tree
    /// file changing while a template is built fails that build and leaves no template.
    @Test func treeChangesInvalidateTheTemplate() async throws {
        let demo = try DemoCopy()
        // Private copies (not hard links into the demo cache), made before the first template.
        let kernel = try demo.makePrivate(demo.tree + "/isofs/kernel")
        let bootcd = try demo.makePrivate(demo.tree + "/isofs/bootcd.img")
        let inputs = try await inputs(.usb, options: [], demo: demo)
        let cache = TemplateCache()
        try write(.usb, inputs, cache: cache, to: demo.path + "/1.img")
        try write(.usb, inputs, cache: cache, to: demo.path + "/2.img")
        #expect(cache.counts.builds == 1 && cache.counts.hits == 1)
        // Touched (new times, same bytes): a new template.
        var times = [timeval(tv_sec: 1_600_000_000, tv_usec: 0), timeval(tv_sec: 1_600_000_000, tv_usec: 0)]
        #expect(utimes(kernel, &times) == 0)
        let touched = try await self.inputs(.usb, options: [], demo: demo)
        try write(.usb, touched, cache: cache, to: demo.path + "/3.img")
        #expect(cache.counts.builds == 2)
        // A new hard link (only the change time moves): the same template.
        let linkPath = demo.path + "/kernel.link"
        #expect(Glibc.link(kernel, linkPath) == 0)
        let linked = try await self.inputs(.usb, options: [], demo: demo)
        try write(.usb, linked, cache: cache, to: demo.path + "/3b.img")
        #expect(cache.counts.builds == 2 && cache.counts.hits == 2)
        // Replaced by a copy (new inode): a new template again.
        let copy = demo.path + "/bootcd.copy"
        try FileManager.default.copyItem(atPath: bootcd, toPath: copy)
        #expect(rename(copy, bootcd) == 0)
        let replaced = try await self.inputs(.usb, options: [], demo: demo)
        try write(.usb, replaced, cache: cache, to: demo.path + "/4.img")
        #expect(cache.counts.builds == 3)
        #expect(try sha256(demo.path + "/4.img") == (try sha256(demo.path + "/1.img")), "same bytes, new template")
        // Appended to while the next template is built (touched first: a template to build).
        let grower = bootcd
        #expect(utimes(grower, &times) == 0)
        let fired = Mutex(false)
        FileCopy.beforePiece.withLock {
            $0[grower] = { _ in
                if !fired.withLock({ let was = $0; $0 = true; return was }) {
                    let fd = open(grower, O_WRONLY | O_APPEND | O_CLOEXEC)
                    _ = Glibc.write(fd, "more", 4)
                    close(fd)
                }
            }
        }
        defer { FileCopy.beforePiece.withLock { _ = $0.removeValue(forKey: grower) } }
        let templates = TemplateCache.directory(demo.workDir)
        let before = Set(try FileManager.default.contentsOfDirectory(atPath: templates).filter { $0.hasSuffix(".template") })
        let changing = try await self.inputs(.usb, options: [], demo: demo)
        do {
            try write(.usb, changing, cache: cache, to: demo.path + "/5.img")
            Issue.record("the build succeeded")
        } catch let error as BootMediumError {
            #expect(error.code == .imageBuildFailed && error.message.contains("changed size"), "\(error)")
        }
        #expect(fired.withLock { $0 })
        let after = Set(try FileManager.default.contentsOfDirectory(atPath: templates).filter { $0.hasSuffix(".template") || $0.hasSuffix(".meta") })
        #expect(after.filter { $0.hasSuffix(".template") } == before && after.count == 2 * before.count, "\(after)")
        #expect(!FileManager.default.fileExists(atPath: demo.path + "/5.img"))
        #expect(cache.counts.builds == 3)
    }

    /// Eight concurrent first requests build one template; all eight media are the same bytes.
    @Test func concurrentFirstRequestsBuildOneTemplate() async throws {
        let demo = try DemoCopy()
        let cache = TemplateCache()
        let service = BootMediumService(root: demo.root, nodes: demo.store, clock: BuildClock(sourceDateEpoch: 1_700_000_000), templates: cache)
        let dir = demo.workDir
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<8 {
                group.addTask {
                    _ = try await service.getBootMedium(caller: .admin, node: nil, action: "generic-iso", filename: dir + "/g\(index).iso")
                }
            }
            try await group.waitForAll()
        }
        #expect(cache.counts == TemplateCache.Counters(hits: 7, builds: 1, evictions: 0))
        let digests = try Set((0..<8).map { try sha256(dir + "/g\($0).iso") })
        #expect(digests.count == 1)
    }

    /// The bound evicts the least recently used template; an evicted template is built again.
    @Test func theCacheBoundEvicts() async throws {
        let demo = try DemoCopy()
        let cache = TemplateCache(maximumBytes: 1)
        let iso = try await inputs(.iso, options: [], demo: demo)
        let usb = try await inputs(.usb, options: [], demo: demo)
        try write(.iso, iso, cache: cache, to: demo.path + "/a.iso")
        try write(.usb, usb, cache: cache, to: demo.path + "/a.usb")
        #expect(cache.counts == TemplateCache.Counters(hits: 0, builds: 2, evictions: 1))
        let left = try FileManager.default.contentsOfDirectory(atPath: TemplateCache.directory(demo.workDir))
        #expect(left.filter { $0.hasSuffix(".template") }.count == 1, "\(left)")
        try write(.iso, iso, cache: cache, to: demo.path + "/b.iso")
        #expect(cache.counts.builds == 3 && cache.counts.evictions == 2)
        #expect(try sha256(demo.path + "/a.iso") == (try sha256(demo.path + "/b.iso")))
    }

    /// A record or an image not as the cache left it is not used: the template is rebuilt.
    @Test func aTamperedTemplateIsRebuilt() async throws {
        let demo = try DemoCopy()
        let inputs = try await inputs(.iso, options: [], demo: demo)
        let cache = TemplateCache()
        let first = try write(.iso, inputs, cache: cache, to: demo.path + "/a.iso")
        let directory = TemplateCache.directory(demo.workDir)
        let image = try #require(try FileManager.default.contentsOfDirectory(atPath: directory).first { $0.hasSuffix(".template") })
        // One byte of the cached image changed in place (as an attacker with write access would).
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: directory + "/" + image))
        try handle.seek(toOffset: 40_000)
        try handle.write(contentsOf: Data([0x42]))
        try handle.close()
        let second = try write(.iso, inputs, cache: cache, to: demo.path + "/b.iso")
        #expect(cache.counts.builds == 2)
        #expect(try sha256(first) == (try sha256(second)))
        // A record rewritten without the work dir's key.
        let meta = directory + "/" + image.replacingOccurrences(of: ".template", with: ".meta")
        let text = try String(contentsOfFile: meta, encoding: .utf8)
        try text.replacingOccurrences(of: "\"size\":", with: "\"size\": ").write(toFile: meta, atomically: true, encoding: .utf8)
        try write(.iso, inputs, cache: cache, to: demo.path + "/c.iso")
        #expect(cache.counts.builds == 3)
    }

    /// Any byte range of a spliced medium reads as the same range of the medium written out.
    @Test(arguments: Medium.allCases)
    func randomAccessReadsTheMedium(medium: Medium) async throws {
        let demo = try DemoCopy()
        let inputs = try await inputs(medium, options: ["serial"], demo: demo)
        let writer = MediumWriter(layout: medium.layout, templates: TemplateCache())
        let spliced = try #require(try writer.splice(inputs, cancellation: CancellationFlag()))
        let path = try write(medium, inputs, cache: nil, to: demo.path + "/full.img")
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(spliced.size == Int64(bytes.count))
        var generator = SystemRandomNumberGenerator()
        var ranges: [(Int64, Int)] = [(0, 4096), (spliced.size - 100, 1000)]
        for region in spliced.regions {  // across every slot's edges
            ranges += [(region.offset - 10, 20), (region.offset + Int64(region.bytes.count) - 10, 20), (region.offset, region.bytes.count)]
        }
        for _ in 0..<50 { ranges.append((Int64.random(in: 0..<spliced.size, using: &generator), Int.random(in: 1...300_000, using: &generator))) }
        for (offset, count) in ranges {
            let end = min(Int(spliced.size), Int(offset) + count)
            #expect(try spliced.read(at: offset, count: count) == Array(bytes[Int(offset)..<end]), "\(offset)+\(count)")
        }
        #expect(try spliced.read(at: spliced.size, count: 10).isEmpty)
    }
}
