import Foundation
import Testing

@testable import BootMedium

/// Values that become path components of an output (`%n %p %v %f %a`, the published generic
/// image's name) are single safe components whoever asks; a node's hostname is a DNS name.
@Suite(.tags(.demoRoot)) struct OutputNameTests {
    @Test(arguments: [
        "node1.example.org", "a", "A-b_c.d+e~f", "5.4~rc1", String(repeating: "x", count: 255), "..a", "a..",
        "PlanetLab Test",
    ])
    func safeComponents(_ value: String) {
        #expect(OutputTemplate.isSafeComponent(value))
    }

    @Test(arguments: [
        "", ".", "..", "a/b", "/", "../x", "a\u{0}b", "a\nb", "tab\tx", " a", "a ", " ", "é", "a\u{2028}b", "$x", "a*b", "~/x",
        String(repeating: "x", count: 256),
    ])
    func unsafeComponents(_ value: String) {
        #expect(!OutputTemplate.isSafeComponent(value))
    }

    @Test(arguments: [
        "node1.example.org", "a", "x-y.z9", "A.B", "nodot", String(repeating: "a", count: 63) + ".org",
        String([String](repeating: String(repeating: "a", count: 63), count: 4).joined(separator: ".").dropLast(2)),
    ])
    func dnsNames(_ name: String) {
        #expect(DNSName.isValid(name), "\(name)")
    }

    @Test(arguments: [
        "", ".", "a..b", ".a", "a.", "-a.org", "a-.org", "a_b.org", "a/b", "a../../../../tmp/x.y", "é.org", "a b.org",
        String(repeating: "a", count: 64) + ".org",
        [String](repeating: String(repeating: "a", count: 63), count: 4).joined(separator: "."),
    ])
    func notDNSNames(_ name: String) {
        #expect(!DNSName.isValid(name), "\(name)")
    }

    /// Markers whose values cannot be components: `invalid-output`, naming marker and value.
    @Test func badMarkerValuesAreRefused() throws {
        let good = OutputTemplate.Values(
            workDir: "/w", name: "n.example.org", nameIsHostname: true, suffix: ".iso", plcName: "P",
            nodefamily: Nodefamily(pldistro: "planetlab", arch: "x86_64"), version: "5.4", versionError: nil)
        #expect(try OutputTemplate("%d/%n-%p-%f-%a-%v%s").expand(good) == "/w/n.example.org-P-planetlab-x86_64-x86_64-5.4.iso")
        var random = good
        random.name = Planner.randomName()
        random.nameIsHostname = false
        #expect(try OutputTemplate("%d/%n").expand(random) == "/w/" + random.name)

        func refused(_ template: String, _ values: OutputTemplate.Values, _ code: BootMediumError.Code, _ context: [String: String]) {
            do {
                _ = try OutputTemplate(template).expand(values)
                Issue.record("\(template): accepted")
            } catch {
                #expect(error.code == code, "\(error)")
                for (key, value) in context { #expect(error.context[key] == value, "\(error.context)") }
                #expect(!error.message.contains("\n"))
            }
        }
        var v = good
        v.version = "../5.4"
        refused("%d/%v", v, .invalidOutput, ["marker": "%v", "value": "../5.4"])
        v = good
        v.nodefamily = Nodefamily(pldistro: "../x", arch: "x86_64")
        refused("%d/%f", v, .invalidOutput, ["marker": "%f", "value": "../x-x86_64"])
        v = good
        v.nodefamily = Nodefamily(pldistro: "planetlab", arch: "..")
        refused("%d/%a", v, .invalidOutput, ["marker": "%a", "value": ".."])
        v = good
        v.name = "a/b"
        v.nameIsHostname = false
        refused("%d/%n", v, .invalidOutput, ["marker": "%n", "value": "a/b"])
        v.nameIsHostname = true
        refused("%d/%n", v, .invalidHostname, ["hostname": "a/b", "marker": "%n"])
        v = good
        v.plcName = "a\nb"
        refused("%d/%p", v, .invalidConfiguration, ["key": "PLC_NAME", "value": "a\nb"])
        // Unused markers are not checked: the template decides what becomes a path.
        v = good
        v.version = "../x"
        #expect(try OutputTemplate("%d/%n").expand(v) == "/w/n.example.org")
    }

    // MARK: - Through the CLI

    /// What a failed request may leave in a test root: the work dir and its lock file.
    static let workDirEntries: Set = ["var", "var/tmp", "var/tmp/bootmedium", "var/tmp/bootmedium/.node-locks"]

    /// The fault: `--output %d/%n%s` with this hostname made directories and the file outside
    /// the work dir (an admin's output is not confined). Now `invalid-hostname`, nothing made.
    @Test(arguments: [
        ["--caller", "admin"], ["--caller", "pi:1"], [],
    ])
    func hostileHostnamesMakeNoPath(caller: [String]) throws {
        let escape = "bm-escape-" + UUID().uuidString.prefix(8).lowercased()
        for hostname in [
            "a../../../../tmp/x.y", "a" + String(repeating: "../", count: 16) + "tmp/\(escape).y", "a/b.example.org", "a/b",
        ] {
            let root = try TestRoot(nodes: TestRoot.standardNodes.replacingOccurrences(of: "node1.example.org", with: hostname))
            let before = root.storeBytes
            let entries = allEntries(under: root.path)
            for action in ["node-floppy", "node-preview"] {
                let r = try root.build(["--action", action, "--node", "12", "--output", "%d/%n%s"] + caller)
                expectCleanFailure(r, code: .invalidHostname, root: root.path, storePath: root.nodesPath, storeBytes: before)
                let target = ((root.workDir + "/" + hostname + ".txt") as NSString).standardizingPath
                #expect(!FileManager.default.fileExists(atPath: target), "\(target)")
                #expect(!FileManager.default.fileExists(atPath: "/tmp/\(escape).y.txt"))
                #expect(!FileManager.default.fileExists(atPath: root.workDir + "/a.."))
                #expect(!FileManager.default.fileExists(atPath: root.workDir + "/a"))
                #expect(allEntries(under: root.path).filter { !Self.workDirEntries.contains($0) } == entries)
            }
        }
    }

    /// `PLC_NAME` reaches paths through `%p` (and the published generic image's name).
    @Test(arguments: ["../x", "a/b", "..", " Planet", "Lab "])
    func hostilePLCNamesMakeNoPath(name: String) async throws {
        let root = try TestRoot()
        try root.setPLCName(name)
        let before = root.storeBytes
        let entries = allEntries(under: root.path)
        for caller in ["admin", "pi:1"] {
            let r = try root.build(["--action", "node-floppy", "--node", "12", "--output", "%d/%p-%n%s", "--caller", caller])
            expectCleanFailure(r, code: .invalidConfiguration, root: root.path, storePath: root.nodesPath, storeBytes: before)
            #expect(r.stderr.contains("PLC_NAME"), "\(r.stderr)")
            let target = ((root.workDir + "/\(name)-node1.example.org.txt") as NSString).standardizingPath
            #expect(!FileManager.default.fileExists(atPath: target), "\(target)")
            #expect(allEntries(under: root.path).filter { !Self.workDirEntries.contains($0) } == entries)
        }
        #expect(try root.nodeKey(12) == "old-key")
        let publish = BootMediumRequest(caller: .admin, node: nil, action: "generic-iso", destination: .publish)
        await expectError(.invalidConfiguration) { try await root.service().planner.plan(publish) }
    }

    /// MyPLC's default PLC_NAME, "PlanetLab Test", is one safe component: inner spaces are fine.
    @Test func aPLCNameWithInnerSpacesMakesAFile() throws {
        let root = try TestRoot()
        try root.setPLCName("PlanetLab Test")
        let r = try root.build(["--action", "node-floppy", "--node", "12", "--output", "%d/%p-%n%s"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: root.workDir + "/PlanetLab Test-node1.example.org.txt"))
    }

    /// What the demo root builds for real: node-iso through the CLI on a fresh copy, the node's
    /// hostname escaping the work dir. Nothing appears outside, the store keeps its bytes.
    @Test func demoRootImageWithHostileHostname() throws {
        let demo = try DemoCopy()
        let escape = "bm-escape-" + UUID().uuidString.prefix(8).lowercased()
        let store = demo.path + "/nodes.json"
        let text = try String(contentsOfFile: store, encoding: .utf8)
        let workBefore = demo.workFiles
        for hostname in ["a../../../../tmp/x.y", "a" + String(repeating: "../", count: 16) + "tmp/\(escape).y"] {
            try text.replacingOccurrences(of: DemoRoot.node1, with: hostname).write(toFile: store, atomically: true, encoding: .utf8)
            let before = FileManager.default.contents(atPath: store)!
            let r = try runMeasured(["build", "--root", demo.path, "--action", "node-iso", "--node", "1", "--output", "%d/%n%s"])
            expectCleanFailure(r, code: .invalidHostname, root: demo.path, storePath: store, storeBytes: before)
            let target = ((demo.workDir + "/" + hostname + ".iso") as NSString).standardizingPath
            #expect(!FileManager.default.fileExists(atPath: target), "\(target)")
            #expect(!FileManager.default.fileExists(atPath: "/tmp/\(escape).y.iso"))
            #expect(demo.workFiles.filter { $0 != ".node-locks" } == workBefore.filter { $0 != ".node-locks" })
        }
    }
}
