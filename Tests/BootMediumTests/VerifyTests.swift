import Foundation
import Testing

@testable import BootMedium

/// `bootmedium verify`: current images pass; each kind of drift is one line.
@Suite(.tags(.demoRoot)) struct VerifyTests {
    func differences(_ demo: DemoCopy, _ image: String, node: String? = "1") async throws -> [String] {
        try await ImageVerifier.differences(image: image, node: node, planner: demo.service().planner)
    }

    /// Replaces a (possibly hard-linked) file of the copy without touching the cached root.
    func replace(_ path: String, _ text: String) throws {
        try FileManager.default.removeItem(atPath: path)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
    }

    @Test func aFreshImageIsCurrentAndDriftIsReported() async throws {
        let demo = try DemoCopy()
        let iso = try await demo.build("node-iso", options: ["serial:ttyS1:9600"], name: "v.iso")
        #expect(try await differences(demo, iso) == [])
        let cli = try runProcess(bootmediumExecutable, ["verify", iso, "--node", DemoRoot.node1, "--root", demo.path])
        #expect(cli.status == 0, "\(cli.stderr)")

        // The node's settings changed.
        let nodes = try String(contentsOfFile: demo.path + "/nodes.json", encoding: .utf8)
        try replace(demo.path + "/nodes.json", nodes.replacingOccurrences(of: "\"DemoNet\"", with: "\"OtherNet\""))
        #expect(try await differences(demo, iso) == ["plnode.txt: WIRELESS_ESSID is \"DemoNet\" in the image, \"OtherNet\" now"])
        let failed = try runProcess(bootmediumExecutable, ["verify", iso, "--node", "1", "--root", demo.path])
        #expect(failed.status == 1)
        #expect(String(decoding: failed.stdout, as: UTF8.self) == "plnode.txt: WIRELESS_ESSID is \"DemoNet\" in the image, \"OtherNet\" now\n")
        try replace(demo.path + "/nodes.json", nodes)

        // The tree moved to a new version.
        try replace(demo.tree + "/version.txt", "5.5-demo\n")
        #expect(try await differences(demo, iso) == ["bootcd version: 5.4-demo in the image, 5.5-demo now"])
        // Asking about another node.
        let other = try await differences(demo, iso, node: "2")
        #expect(other.contains("node: 1 in the image, 2 now"))
    }

    @Test func tagsAndTamperingAndGenericImages() async throws {
        let demo = try DemoCopy()
        let iso = try await demo.build("node-iso", name: "t.iso")
        let nodes = try String(contentsOfFile: demo.path + "/nodes.json", encoding: .utf8)
        // Give node 1 a kargs tag: the kernel arguments drift.
        var object = try JSONSerialization.jsonObject(with: Data(nodes.utf8)) as! [String: Any]
        var list = object["nodes"] as! [[String: Any]]
        let i = list.firstIndex { ($0["node_id"] as? Int) == 1 }!
        var tags = (list[i]["tags"] as? [String: String]) ?? [:]
        tags["kargs"] = "quiet"
        list[i]["tags"] = tags
        object["nodes"] = list
        try FileManager.default.removeItem(atPath: demo.path + "/nodes.json")
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: demo.path + "/nodes.json"))
        let drift = try await differences(demo, iso)
        #expect(drift == ["kernel arguments: none in the image, quiet now"])
        // A generic image asked about a node.
        let generic = try await demo.build("generic-iso", node: nil, name: "g.iso")
        #expect(try await differences(demo, generic) == ["the image is generic-iso, not a node image"])
        #expect(try await differences(demo, generic, node: nil) == [])
        // A tampered image (a block of bootcd.img's data): the manifest says so.
        let extent = try #require(try ISO9660Reader(try ImageBytes(path: generic)).contiguousExtent("/bootcd.img"))
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: generic))
        try handle.seek(toOffset: UInt64(extent.offset + 4 * 2048))
        let block = try handle.read(upToCount: 2048)!
        try handle.seek(toOffset: UInt64(extent.offset + 4 * 2048))
        try handle.write(contentsOf: Data(block.map { $0 ^ 0x5A }))
        try handle.close()
        let tampered = try await differences(demo, generic, node: nil)
        #expect(tampered.first == "manifest: mismatch")
        #expect(tampered.count >= 2)
    }
}
