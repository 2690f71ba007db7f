import Foundation
import Testing

@testable import BootMedium

/// The templates are embedded at build time (Plugins/EmbedTemplates): the embedded text is the
/// files' text, and nothing on disk at run time (`$BOOTMEDIUM_TEMPLATES`, a `templates/` folder
/// beside the executable or in the current directory) changes an image.
@Suite(.serialized, .tags(.demoRoot)) struct TemplateEmbeddingTests {
    /// `templates/*.mustache` of the source tree (the test's own #filePath finds it), hidden
    /// files left out as the tool leaves them out.
    static var templateFiles: [String: Data] {
        get throws {
            let dir = packageDirectory + "/templates"
            var result: [String: Data] = [:]
            for file in try FileManager.default.contentsOfDirectory(atPath: dir) where file.hasSuffix(".mustache") && !file.hasPrefix(".") {
                result[String(file.dropLast(".mustache".count))] = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + file))
            }
            return result
        }
    }

    @Test func embeddedTextIsEveryTemplateFileByteForByte() throws {
        let files = try Self.templateFiles
        #expect(files.count >= 5)
        #expect(Set(EmbeddedTemplates.byName.keys) == Set(files.keys))
        for (name, data) in files {
            #expect(EmbeddedTemplates.byName[name].map { Data($0.utf8) } == data, "\(name)")
        }
        // The awkward characters the real templates hold made it through the literal's escaping.
        #expect(EmbeddedTemplates.byName["etc-issue"]?.contains(#"Node: \n"#) == true)
        #expect(EmbeddedTemplates.byName["pl_rsysinit"]?.contains(#"echo "pl_rsysinit: "#) == true)
    }

    @Test func everyEmbeddedTemplateParsesAndUnknownNamesFail() async throws {
        for name in EmbeddedTemplates.byName.keys {
            _ = try Templates.render(name, [:])
        }
        await expectError(.imageBuildFailed) { try Templates.render("no-such-template", [:]) }
    }

    /// The generator's literals hold awkward text exactly: the tool's output for such templates,
    /// compiled (warnings as errors, as BootMedium builds) and printed back, gives every byte;
    /// the files in another order, or their folder, give the same source.
    @Test func awkwardTextSurvivesTheGeneratedLiteral() throws {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.path + "/bootmedium-embed-" + UUID().uuidString
        defer { try? fm.removeItem(atPath: dir) }
        try fm.createDirectory(atPath: dir + "/t", withIntermediateDirectories: true)
        let texts: [String: String] = [
            "quotes": ###"x"""\###n"\(x)" \#(y) #"raw"# ##"""## \n \\ a line ending in \\###n\###n"""\###n"###,
            "controls": "a\tb\r\nc\0d\u{1B}[0m\u{7F}\u{0B}\u{0C}\r",
            "unicode": "\u{FEFF}é ü ✓ 🙂 e\u{301} \u{2028} \u{2029} \u{85} \u{200B}\n",
            "spaces": "   \n\t\n  leading\ntrailing   \n\n\n",
            "empty": "",
            "no-newline": "{{{last}}} line without a newline",
            "name with \"quote\" \\ and é": "x\n",
        ]
        var paths: [String] = []
        for (name, text) in texts {
            paths.append(dir + "/t/" + name + ".mustache")
            try Data(text.utf8).write(to: URL(fileURLWithPath: paths.last!))
        }
        let binDir = (bootmediumExecutable as NSString).deletingLastPathComponent
        let tool = try #require(
            ["/embed-templates-tool", "/embed-templates"].map { binDir + $0 }.first { fm.isExecutableFile(atPath: $0) },
            "no embed-templates beside \(bootmediumExecutable)")
        let first = try runProcess(tool, [dir + "/a.swift"] + paths.sorted())
        #expect(first.status == 0, "\(first.stderr)")
        let second = try runProcess(tool, [dir + "/b.swift"] + paths.sorted().reversed())
        #expect(second.status == 0, "\(second.stderr)")
        let source = try Data(contentsOf: URL(fileURLWithPath: dir + "/a.swift"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/b.swift")) == source)
        // The folder given instead (as the plugin does): the same; an editor's hidden file is no template.
        try Data("lock".utf8).write(to: URL(fileURLWithPath: dir + "/t/.#quotes.mustache"))
        let listed = try runProcess(tool, [dir + "/d.swift", dir + "/t"])
        #expect(listed.status == 0, "\(listed.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/d.swift")) == source)
        #expect(source.allSatisfy { $0 < 0x80 })  // plain ASCII, whatever the templates hold
        // Prints each name and text as hex bytes, sorted by name.
        try """
            for name in EmbeddedTemplates.byName.keys.sorted() {
                let hex = { (s: String) in s.utf8.map { String($0, radix: 16) }.joined(separator: " ") }
                print(hex(name) + ":" + hex(EmbeddedTemplates.byName[name]!))
            }
            """.write(toFile: dir + "/main.swift", atomically: true, encoding: .utf8)
        let swiftc = try #require(
            ((ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { $0 + "/swiftc" } + ["/opt/swift/usr/bin/swiftc"])
                .first { fm.isExecutableFile(atPath: $0) })
        let compile = try runProcess(swiftc, ["-warnings-as-errors", "-o", dir + "/print", dir + "/a.swift", dir + "/main.swift"])
        try #require(compile.status == 0, "\(compile.stderr)")
        let printed = try runProcess(dir + "/print", [])
        #expect(printed.status == 0, "\(printed.stderr)")
        let hex = { (s: String) in s.utf8.map { String($0, radix: 16) }.joined(separator: " ") }
        let expected = texts.keys.sorted().map { hex($0) + ":" + hex(texts[$0]!) + "\n" }.joined()
        #expect(String(decoding: printed.stdout, as: UTF8.self) == expected)
        // Not UTF-8: the build fails rather than embed something else.
        try Data([0x61, 0xFF, 0x0A]).write(to: URL(fileURLWithPath: dir + "/t/bad.mustache"))
        let bad = try runProcess(tool, [dir + "/c.swift", dir + "/t/bad.mustache"])
        #expect(bad.status != 0 && bad.stderr.contains("not valid UTF-8"), "\(bad.stderr)")
    }

    /// A hostile directory holds a booby-trapped copy of every template (`init=/bin/sh`) where
    /// the old search path looked (`$BOOTMEDIUM_TEMPLATES`, `<bin>/templates`,
    /// `<bin>/../share/bootmedium/templates`) and in the current directory (`./templates`). The
    /// CLI run from there, as built and as a copy placed in that directory, gives the same images
    /// as a plain run and opens no `.mustache` file at all (strace is the witness; the source
    /// checkout, the old last resort, is covered by that alone).
    @Test func templatesOnDiskAtRunTimeChangeNothing() throws {
        let demo = try DemoCopy()
        let fm = FileManager.default
        let hostile = fm.temporaryDirectory.path + "/bootmedium-hostile-" + UUID().uuidString
        defer { try? fm.removeItem(atPath: hostile) }
        let trap = "DEFAULT kernel\nLABEL kernel\n  LINUX kernel\n  APPEND root=/dev/ram0 rw init=/bin/sh\n"
        for dir in ["/templates", "/bin/templates", "/share/bootmedium/templates"] {
            try fm.createDirectory(atPath: hostile + dir, withIntermediateDirectories: true)
            for name in EmbeddedTemplates.byName.keys {
                try trap.write(toFile: hostile + dir + "/" + name + ".mustache", atomically: true, encoding: .utf8)
            }
        }
        let copied = hostile + "/bin/bootmedium"
        try fm.copyItem(atPath: bootmediumExecutable, toPath: copied)

        /// Runs `bootmedium build` in `cwd` under strace; returns the strace log.
        func build(_ exe: String, in cwd: String, hostileEnvironment: Bool, _ args: [String]) throws -> String {
            var environment = ProcessInfo.processInfo.environment
            environment["SOURCE_DATE_EPOCH"] = "1700000000"
            environment["BOOTMEDIUM_TEMPLATES"] = hostileEnvironment ? hostile + "/templates" : nil
            let log = demo.path + "/strace-" + UUID().uuidString + ".txt"
            let r = try runProcess(
                "/bin/sh",
                ["-c", #"cd "$1" && shift && exec "$@""#, "sh", cwd,
                 "/usr/bin/strace", "-f", "-qq", "-e", "trace=file", "-o", log,
                 exe, "build", "--root", demo.path] + args,
                environment: environment)
            #expect(r.status == 0, "\(r.stderr)")
            return try String(contentsOfFile: log, encoding: .utf8)
        }

        let runs: [(name: String, exe: String, cwd: String, hostile: Bool)] = [
            ("plain", bootmediumExecutable, demo.path, false),
            ("in-hostile-dir", bootmediumExecutable, hostile, true),
            ("copied-into-hostile-dir", copied, hostile, true),
        ]
        var generic: [String] = []
        var cramfsConfigs: [String] = []
        var cramfsTrees: [[String: Data]] = []
        for run in runs {
            for (action, options, suffix) in [("generic-iso", [String](), "g"), ("node-iso", ["--node", DemoRoot.node1, "--option", "cramfs", "--option", "serial"], "c")] {
                let output = demo.workDir + "/\(run.name)-\(suffix).iso"
                let log = try build(run.exe, in: run.cwd, hostileEnvironment: run.hostile, ["--action", action, "--output", output] + options)
                // The trace saw the run (plc_config is read) and no template file.
                #expect(log.contains("etc/planetlab/plc_config\""), "\(run.name) \(action): strace saw nothing")  // openat2 beneath the root: a relative name
                let touched = log.split(separator: "\n").filter { $0.contains(".mustache") || $0.contains("/templates") }
                #expect(touched.isEmpty, "\(run.name) \(action): \(touched)")
                let config = String(decoding: try isoFile(output, "/isolinux.cfg"), as: UTF8.self)
                #expect(!config.contains("init=/bin/sh"), "\(run.name) \(action): \(config)")
                #expect(config.contains("DISPLAY pl_version"), "\(run.name) \(action): \(config)")
                if action == "generic-iso" {
                    generic.append(try sha256(output))
                } else {
                    // The cramfs image holds the renewed node key, so its size (ramdisk_size, in
                    // KiB) may differ from run to run; every other byte of the config must not.
                    cramfsConfigs.append(config.replacing(#/ramdisk_size=[0-9]+ /#, with: "ramdisk_size=N "))
                    #expect(config.hasPrefix("SERIAL 0 115200\n"), "\(config)")
                    cramfsTrees.append(try cramfsFiles(of: output, into: demo.path + "/x-" + run.name))
                }
            }
        }
        // The same image bytes (generic-iso is reproducible) and the same boot config each way.
        #expect(generic.count == 3 && Set(generic).count == 1, "\(generic)")
        #expect(cramfsConfigs.count == 3 && Set(cramfsConfigs).count == 1, "\(cramfsConfigs)")
        // The read-only root's files rendered from templates (fstab, pl_rsysinit, the serial
        // inittab line, etc/issue) and every other file: the same each way.
        try #require(cramfsTrees.count == 3)
        let rsysinit = try #require(cramfsTrees[0]["etc/rc.d/init.d/pl_rsysinit"])
        #expect(String(decoding: rsysinit, as: UTF8.self).contains("handing over to pl_sysinit"))
        #expect(cramfsTrees[0]["etc/fstab"].map { String(decoding: $0, as: UTF8.self).contains("cramfs") } == true)
        for tree in cramfsTrees.dropFirst() {
            #expect(tree.keys.sorted() == cramfsTrees[0].keys.sorted())
            let differing = tree.keys.filter { tree[$0] != cramfsTrees[0][$0] }.sorted()
            #expect(differing.isEmpty, "\(differing)")
        }
    }

    /// The regular files of the cramfs root in ISO `iso` (extracted by fsck.cramfs), by relative
    /// path; the node config, which holds the key renewed by each build, left out.
    func cramfsFiles(of iso: String, into dir: String) throws -> [String: Data] {
        let image = dir + ".cramfs"
        try isoFile(iso, "/cramfs.img").write(to: URL(fileURLWithPath: image))
        let r = try runProcess("/usr/sbin/fsck.cramfs", ["--extract=" + dir, image])
        try #require(r.status == 0, "fsck.cramfs: \(r.stderr)")
        var files: [String: Data] = [:]
        for path in FileManager.default.subpaths(atPath: dir) ?? [] where path != "usr/boot/plnode.txt" {
            let type = try FileManager.default.attributesOfItem(atPath: dir + "/" + path)[.type] as? FileAttributeType
            guard type == .typeRegular else { continue }
            files[path] = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + path))
        }
        return files
    }
}
