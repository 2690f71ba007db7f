import Foundation
import Testing

@testable import BootMedium

@Suite struct PlannerTests {
    func plan(
        _ root: TestRoot, _ action: String, node: String? = "node1.example.org",
        options: [String] = [], filename: String? = nil, caller: Caller = .admin
    ) async throws -> BootPlan {
        try await root.service().planner.plan(
            BootMediumRequest(caller: caller, node: node, action: action, filename: filename, options: options))
    }

    @Test func actionsAndTheirTypes() async throws {
        let root = try TestRoot()
        await expectError(.unknownAction) { try await plan(root, "node-cdrom") }
        #expect(try await plan(root, "node-preview").imageType == nil)
        #expect(try await plan(root, "node-floppy").imageType == nil)
        #expect(try await plan(root, "node-iso").imageType == .iso)
        #expect(try await plan(root, "node-usb").imageType == .usb)
        #expect(try await plan(root, "node-usb", options: ["partition"]).imageType == .usbPartition)
        #expect(try await plan(root, "node-iso", options: ["cramfs"]).imageType == .isoCramfs)
        #expect(try await plan(root, "node-usb", options: ["cramfs"]).imageType == .usbCramfs)
        #expect(try await plan(root, "generic-iso", node: nil).imageType == .iso)
        #expect(try await plan(root, "generic-usb", node: nil).imageType == .usb)
        #expect(BootAction.allCases.map(\.suffix) == [".txt", ".txt", ".iso", ".usb", ".iso", ".usb"])
    }

    @Test func optionRules() async throws {
        let root = try TestRoot()
        await expectError(.optionsNotSupported) { try await plan(root, "node-preview", options: ["serial"]) }
        await expectError(.optionsNotSupported) { try await plan(root, "node-floppy", options: ["cramfs"]) }
        await expectError(.optionsNotSupported) { try await plan(root, "generic-iso", node: nil, options: ["serial"]) }
        await expectError(.invalidOption) { try await plan(root, "node-iso", options: ["turbo"]) }
        await expectError(.invalidOption) { try await plan(root, "node-iso", options: ["partition"]) }
        await expectError(.notSupported) { try await plan(root, "node-usb", options: ["partition", "cramfs"]) }
        await expectError(.invalidSerialSpec) { try await plan(root, "node-iso", options: ["serial:ttyS0:1234"]) }
        await expectError(.invalidOption) { try await plan(root, "node-iso", options: ["variant:../etc"]) }
        await expectError(.missingVariant) { try await plan(root, "node-iso", options: ["variant:nosuch"]) }

        let p = try await plan(
            root, "node-iso",
            options: ["serial:ttyS1:9600", "no-hangcheck", "systemd-console", "systemd-debug", "variant:build-alt"])
        #expect(p.console == (try SerialConsole(spec: "ttyS1:9600")))
        #expect(p.kernelCommandLine.appendArguments.hasPrefix("console=ttyS1,9600n8 hcheck_reboot0 systemd.log_target=console"))
        #expect(p.kernelCommandLine.appendArguments.hasSuffix("systemd.log_level=debug"))
        #expect(p.tree?.version == "5.4-alt")
        #expect(p.defaultImageName == "TestPLC-BootCD-5.4-alt-serial-ttyS19600n8.iso")
        #expect(try await plan(root, "node-iso", options: ["serial"]).defaultImageName == "TestPLC-BootCD-5.4-serial.iso")
        #expect(try await plan(root, "node-iso", options: ["serial:default"]).console == .default)
        #expect(try await plan(root, "node-usb", options: ["partition"]).defaultImageName == "TestPLC-BootCD-5.4-partition.usb")
        #expect(try await plan(root, "node-iso").kernelCommandLine.isEmpty)
    }

    @Test func nodeTagsAreDefaultsThatOptionsOverride() async throws {
        let root = try TestRoot()
        let tagged = try await plan(root, "node-iso", node: "tagged.example.org")
        #expect(tagged.console == (try SerialConsole(spec: "ttyS1:9600")))
        #expect(tagged.kernelCommandLine.arguments == ["console=ttyS1,9600n8", "hcheck_reboot0", "quiet", "loglevel=3"])
        #expect(tagged.tree?.variant == "build-alt")
        #expect(tagged.imageType == .isoCramfs)
        let overridden = try await plan(
            root, "node-iso", node: "16", options: ["serial:ttyS0:57600", "variant:build"])
        #expect(overridden.console == (try SerialConsole(spec: "ttyS0:57600")))
        #expect(overridden.tree?.version == "5.4")
        // A partition request on a node whose tags ask for cramfs is the unsupported pair.
        await expectError(.notSupported) { try await plan(root, "node-usb", node: "16", options: ["partition"]) }
        // Tags do not matter for node configs.
        #expect(try await plan(root, "node-preview", node: "16").kernelCommandLine.isEmpty)
    }

    @Test func hostileTagValuesAreRefused() async throws {
        let nodes = TestRoot.standardNodes.replacingOccurrences(
            of: "\"kargs\": \"quiet loglevel=3\"", with: "\"kargs\": \"quiet $(reboot)\"")
        let root = try TestRoot(nodes: nodes)
        await expectError(.invalidKernelArgument) { try await plan(root, "node-iso", node: "16") }
        let nodes2 = TestRoot.standardNodes.replacingOccurrences(
            of: "\"serial\": \"ttyS1:9600\"", with: "\"serial\": \"ttyS1:9600 init=/bin/sh\"")
        let root2 = try TestRoot(nodes: nodes2)
        await expectError(.invalidSerialSpec) { try await plan(root2, "node-iso", node: "16") }
    }

    @Test func nodesAndPermissions() async throws {
        let root = try TestRoot()
        await expectError(.unknownNode) { try await plan(root, "node-preview", node: "nope.example.org") }
        await expectError(.unknownNode) { try await plan(root, "node-preview", node: "999") }
        await expectError(.unknownNode) { try await plan(root, "node-preview", node: nil) }
        await expectError(.notLocalNode) { try await plan(root, "node-preview", node: "peer.remote.org") }
        let pi1 = Caller(roles: ["pi"], siteIDs: [1])
        #expect(try await plan(root, "node-preview", node: "12", caller: pi1).node?.hostname == "node1.example.org")
        await expectError(.permissionDenied) { try await plan(root, "node-preview", node: "node2.other.org", caller: pi1) }
        #expect(try await plan(root, "node-preview", node: "NODE2.other.org").node?.nodeID == 13)
        await expectError(.invalidHostname) { try await plan(root, "node-preview", node: "nodot") }
        await expectError(.noPrimaryInterface) { try await plan(root, "node-preview", node: "noprimary.example.org") }
        // Generic actions need no node and ignore site scope.
        #expect(try await plan(root, "generic-iso", node: nil, caller: pi1).node == nil)
    }

    @Test func reservableNodesAllowOnlyThreeActions() async throws {
        let root = try TestRoot()
        #expect(try await plan(root, "node-preview", node: "res.example.org").node?.isReservable == true)
        #expect(try await plan(root, "node-iso", node: "res.example.org").imageType == .iso)
        #expect(try await plan(root, "node-usb", node: "res.example.org").imageType == .usb)
        await expectError(.actionNotAllowed) { try await plan(root, "node-floppy", node: "res.example.org") }
    }

    @Test func nodefamily() throws {
        let base = Nodefamily(pldistro: "planetlab", arch: "i386")
        func family(_ groups: [String], tags: [String: String] = [:]) -> String {
            Nodefamily.of(Node(nodeID: 1, hostname: "a.b", nodegroups: groups, tags: tags), default: base).name
        }
        #expect(family([]) == "planetlab-i386")
        #expect(family(["x86_64"]) == "planetlab-x86_64")
        #expect(family(["onelab-x86_64"]) == "onelab-x86_64")
        #expect(family(["onelab-x86_64", "i386"]) == "onelab-i386")
        #expect(family(["alpha-beta", "my-group", "sparc", "../x-x86_64"]) == "planetlab-i386")
        #expect(family([], tags: ["pldistro": "onelab", "fcdistro": "f37", "arch": "x86_64"]) == "onelab-f37-x86_64")
        #expect(family([], tags: ["pldistro": "../../etc"]) == "planetlab-i386")
        #expect(Nodefamily.of(nil, default: base) == base)
        #expect(throws: BootMediumError.self) { try Nodefamily(parsing: "planetlab", source: "f") }
        #expect(throws: BootMediumError.self) { try Nodefamily(parsing: "../x-i386", source: "f") }
        #expect(try Nodefamily(parsing: "planetlab-f37-x86_64", source: "f").fcdistro == "f37")
    }

    @Test func defaultNodefamilyWithoutFile() async throws {
        let root = try TestRoot()
        try FileManager.default.removeItem(atPath: root.path + "/etc/planetlab/nodefamily")
        #expect(try root.root.defaultNodefamily().name == "planetlab-i386")
        // node1 is in group planetlab-x86_64: still found.
        #expect(try await plan(root, "node-iso").nodefamily.name == "planetlab-x86_64")
        await expectError(.missingBootcd) { try await plan(root, "generic-iso", node: nil) }
    }

    @Test func outputMarkers() async throws {
        let root = try TestRoot()
        let p = try await plan(root, "node-iso", filename: "%d/%p-%f-%a-%v-%n%s")
        #expect(p.output == .file(path: root.workDir + "/TestPLC-planetlab-x86_64-x86_64-5.4-node1.example.org.iso", confinedTo: nil))
        let alt = try await plan(root, "node-iso", options: ["variant:build-alt"], filename: "%d/%v")
        #expect(alt.output == .file(path: root.workDir + "/5.4-alt", confinedTo: nil))
        let generic = try await plan(root, "generic-usb", node: nil, filename: "/x/%n%s", caller: Caller(roles: ["pi"], siteIDs: [1]))
        guard case .file(let path, let confined) = generic.output else { Issue.record("no file"); return }
        #expect(confined == root.workDir)
        let name = (path as NSString).lastPathComponent
        #expect(name.count == 12 && name.hasSuffix(".usb") && name.prefix(8).allSatisfy { $0.isUppercase })
        await expectError(.invalidOutput) { try await plan(root, "node-iso", filename: "%d/%x") }
        await expectError(.invalidOutput) { try await plan(root, "node-iso", filename: "%d/%") }
        #expect(try await plan(root, "node-preview", filename: "").output == .inline)
        #expect(try await plan(root, "node-preview", filename: nil).output == .inline)
    }

    @Test func versionMarkerWithoutTreeForConfigs() async throws {
        let root = try TestRoot(variants: [:])
        #expect(try await plan(root, "node-preview", filename: "%d/%n%s").output
            == .file(path: root.workDir + "/node1.example.org.txt", confinedTo: nil))
        await expectError(.missingBootcd) { try await plan(root, "node-preview", filename: "%d/%v") }
        await expectError(.missingBootcd) { try await plan(root, "node-iso") }
    }

    @Test func plcConfigIsParsedAsData() {
        let config = PLCConfiguration(parsing: """
            # comment
            PLC_NAME="My \\"PLC\\" $(reboot)"
            export PLC_BOOT_HOST='boot.example.org'
            PLC_WWW_PORT=8080 # trailing
            not a line
            """)
        #expect(config["PLC_NAME"] == "My \"PLC\" $(reboot)")
        #expect(config["PLC_BOOT_HOST"] == "boot.example.org")
        #expect(config["PLC_WWW_PORT"] == "8080")
        #expect(config.values.count == 3)
    }
}
