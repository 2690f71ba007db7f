import Foundation
import Testing

@testable import BootMedium

/// plnode.txt is sourced by a shell and read line by line: characters that split a line for
/// another reader, or hide text from the operator, are refused like control characters.
@Suite struct LineSeparatorTests {
    static let node = Node(nodeID: 1, hostname: "node1.example.org")

    @Test(arguments: [
        0x2028, 0x2029, 0x0085, 0xFEFF, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069,
        0x061C, 0x200E, 0x200F,
    ] as [UInt32])
    func separatorsAndBidiControlsAreRefused(_ code: UInt32) {
        let value = "before" + String(Unicode.Scalar(code)!) + "after"
        let primary = Interface(
            interfaceID: 1, isPrimary: true, method: "dhcp",
            settings: [InterfaceSetting(category: "wireless", name: "essid", value: value)])
        do {
            _ = try NodeConfig(node: Self.node, interfaces: [primary])
            Issue.record("accepted U+\(String(code, radix: 16))")
        } catch {
            #expect(error.code == .unsafeValue)
            #expect(error.context["field"] == "setting wireless/essid")
            #expect(error.context["character"] == ShellAssignment.codePoint(Unicode.Scalar(code)!))
            #expect(!error.message.unicodeScalars.contains(Unicode.Scalar(code)!))
        }
    }

    @Test func codePointsAreShownAsUPlusHex() {
        #expect(ShellAssignment.codePoint("\u{1}") == "U+0001")
        #expect(ShellAssignment.codePoint("\u{2028}") == "U+2028")
        #expect(ShellAssignment.codePoint("\u{1F600}") == "U+1F600")
    }

    /// Python's `str.splitlines()` (as a node-side reader may use) sees a line per assignment:
    /// the values accepted never split.
    @Test func acceptedValuesNeverSplitALine() throws {
        let values = NodeConfigTests.literalValues + ["zero\u{200B}width", "nbsp\u{A0}x", "ideographic\u{3000}space"]
        var settings: [InterfaceSetting] = []
        for (i, value) in values.enumerated() {
            settings.append(InterfaceSetting(category: "test", name: "v\(i)", value: value))
        }
        let text = try NodeConfig(node: Self.node, interfaces: [Interface(interfaceID: 1, isPrimary: true, method: "dhcp", settings: settings)]).render()
        let r = try runProcess("/usr/bin/python3", ["-c", "import sys; t = sys.argv[1]; print(len(t.splitlines()), t.count(chr(10)))", text])
        let counts = String(decoding: r.stdout, as: UTF8.self).split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        #expect(counts.count == 2 && counts[0] == counts[1], "\(counts)")
    }

    /// The fault: U+2028 in a node value went into plnode.txt (exit 0). Now one coded line,
    /// no file, the store untouched.
    @Test func theCLIRefusesALineSeparatorInANodeValue() throws {
        let nodes = TestRoot.standardNodes.replacingOccurrences(of: "Lab net; it's & *", with: "Lab net\u{2028}NODE_KEY=x")
        let root = try TestRoot(nodes: nodes)
        let before = root.storeBytes
        for action in ["node-floppy", "node-preview"] {
            let r = try root.build(["--action", action, "--node", "12", "--output", "%d/%n%s"])
            expectCleanFailure(r, code: .unsafeValue, root: root.path, storePath: root.nodesPath, storeBytes: before)
            #expect(r.stderr.contains("U+2028"), "\(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: root.workDir + "/node1.example.org.txt"))
        }
    }
}
