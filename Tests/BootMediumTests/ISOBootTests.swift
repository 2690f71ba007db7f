import Foundation
import Testing

@testable import BootMedium

/// The plnode.txt an image carries, read with the system's cpio, after checking it is the
/// node's preview with the renewed key (the one saved in the store) in front.
func renderedPlnode(_ image: String, demo: DemoCopy, nodeID: Int, hostname: String, overlayReader: (String) throws -> Data) async throws -> String {
    let overlay = demo.path + "/ov-\(UUID().uuidString).img"
    try overlayReader(image).write(to: URL(fileURLWithPath: overlay))
    let dir = overlay + ".d"
    try extractOverlay(overlay, into: dir)
    let text = try String(contentsOfFile: dir + "/usr/boot/plnode.txt", encoding: .utf8)
    let preview = try await demo.service().getBootMedium(caller: .admin, node: hostname, action: "node-preview", filename: nil)
    let key = try #require(try demo.nodeKey(nodeID))
    #expect(.text(String(text.split(separator: "\n", maxSplits: 3, omittingEmptySubsequences: false)[3])) == preview)
    #expect(text.hasPrefix("NODE_ID=\"\(nodeID)\"\nNODE_KEY=\"\(key)\"\nKEY_RENEWAL_DATE=\"2023/11/14 at 22:13 +0000\"\n"))
    return text
}

/// node-iso and generic-iso boot under qemu (BIOS, as CD and as an isohybrid disk) and the
/// node prints back exactly the plnode.txt we rendered.
@Suite(.serialized, .tags(.qemu, .demoRoot)) struct ISOBootTests {
    @Test(arguments: [
        ([String](), "cd", [String]()),
        (["serial"], "cd", ["console=ttyS0,115200n8"]),
        (["serial:ttyS1:9600"], "cd", ["console=ttyS1,9600n8"]),
        (["serial:ttyS1:9600"], "disk", ["console=ttyS1,9600n8"]),
        ([String](), "disk", [String]()),
    ])
    func nodeISOBoots(options: [String], media: String, cmdline: [String]) async throws {
        let demo = try DemoCopy()
        let iso = try await demo.build("node-iso", options: options, name: "boot.iso")
        let plnode = try await renderedPlnode(iso, demo: demo, nodeID: 1, hostname: DemoRoot.node1) { try isoFile($0, "/overlay.img") }
        let result = try bootCheck(iso, media: media, cmdline: ["root=/dev/ram0", "initrd=bootcd.img,overlay.img"] + cmdline, plnode: .some(plnode))
        #expect(result.passed, "\(result.output)")
    }

    @Test func genericISOBootsWithoutPlnode() async throws {
        let demo = try DemoCopy()
        let iso = try await demo.build("generic-iso", node: nil, name: "generic.iso")
        let result = try bootCheck(iso, plnode: .some(nil))
        #expect(result.passed, "\(result.output)")
    }

    @Test func nodeWithTagsBootsWithItsKernelArguments() async throws {
        let demo = try DemoCopy()
        // Node 5 of the demo root asks for a serial console and kargs by tags.
        let nodes = try String(contentsOfFile: demo.path + "/nodes.json", encoding: .utf8)
        #expect(nodes.contains("\"node_id\": 5"))
        let iso = try await demo.build("node-iso", node: "5", name: "tags.iso")
        let cfg = String(decoding: try isoFile(iso, "/isolinux.cfg"), as: UTF8.self)
        #expect(cfg.hasPrefix("SERIAL 0 115200\n"))
        let result = try bootCheck(iso, cmdline: ["console=ttyS0,115200n8"], plnode: nil)
        #expect(result.passed, "\(result.output)")
    }
}
