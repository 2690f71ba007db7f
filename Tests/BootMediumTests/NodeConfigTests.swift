import Foundation
import Testing

@testable import BootMedium

@Suite struct NodeConfigTests {
    static let staticPrimary = Interface(
        interfaceID: 5, nodeID: 12, isPrimary: true, method: "static", ip: "192.0.2.10",
        gateway: "192.0.2.1", network: "192.0.2.0", broadcast: "192.0.2.255",
        netmask: "255.255.255.0", dns1: "192.0.2.53", dns2: nil, mac: "52:54:00:AB:CD:EF",
        settings: [
            InterfaceSetting(category: "wireless", name: "mode", value: "managed"),
            InterfaceSetting(category: nil, name: "ignored", value: "x"),
            InterfaceSetting(category: "multihome", name: "ifname", value: "eth1"),
            InterfaceSetting(category: "wireless", name: "essid", value: "Lab net; it's & *"),
        ])
    static let ipmi = Interface(
        interfaceID: 6, nodeID: 12, isPrimary: false, method: "ipmi", ip: "192.0.2.11",
        mac: "52:54:00:AB:CD:F0")
    static let node1 = Node(nodeID: 12, hostname: "node1.example.org", siteID: 1, interfaceIDs: [5, 6])

    func golden(_ name: String) throws -> String {
        let url = Bundle.module.url(forResource: "Golden/\(name)", withExtension: "txt")!
        return try String(contentsOf: url, encoding: .utf8)
    }

    @Test func staticWithTwoCategories() throws {
        let config = try NodeConfig(node: Self.node1, interfaces: [Self.staticPrimary])
        #expect(try config.render() == golden("static-two-categories"))
    }

    @Test func dhcpWithoutMAC() throws {
        let node = Node(nodeID: 13, hostname: "node2.other.org")
        let config = try NodeConfig(
            node: node, interfaces: [Interface(interfaceID: 7, isPrimary: true, method: "dhcp")])
        #expect(try config.render() == golden("dhcp-no-mac"))
    }

    @Test func ipmiInterface() throws {
        let node = Node(nodeID: 20, hostname: "bmc-node.lab.example.org")
        let interfaces = [
            Interface(interfaceID: 1, isPrimary: true, method: "dhcp", mac: "AA:BB:CC:DD:EE:FF"),
            Interface(interfaceID: 2, isPrimary: false, method: "ipmi", ip: "192.0.2.21", mac: "52:54:00:AB:CD:F1"),
            Interface(interfaceID: 3, isPrimary: false, method: "ipmi", ip: "192.0.2.99"),
        ]
        #expect(try NodeConfig(node: node, interfaces: interfaces).render() == golden("ipmi"))
    }

    @Test func renewedKey() throws {
        let config = try NodeConfig(node: Self.node1, interfaces: [Self.staticPrimary, Self.ipmi])
        let renewal = KeyRenewal(nodeID: 12, key: "TESTKEYabc123+/xyz", date: 1_700_000_000)
        #expect(try config.render(renewal: renewal) == golden("renewed-key"))
    }

    @Test func preview() throws {
        let config = try NodeConfig(node: Self.node1, interfaces: [Self.staticPrimary, Self.ipmi])
        #expect(try config.render() == golden("preview"))
    }

    @Test func previewThroughTheServiceMatchesGolden() async throws {
        let root = try TestRoot()
        let result = try await root.service().getBootMedium(
            caller: .admin, node: "node1.example.org", action: "node-preview", filename: "")
        #expect(result == .text(try golden("preview")))
    }

    @Test func hostnameAndPrimaryChecks() {
        #expect(throws: BootMediumError(.invalidHostname, "Node hostname nodot is invalid", context: ["hostname": "nodot"])) {
            try NodeConfig(node: Node(nodeID: 1, hostname: "nodot"), interfaces: [Interface(interfaceID: 1, isPrimary: true, method: "dhcp")])
        }
        do {
            _ = try NodeConfig(node: Self.node1, interfaces: [Interface(interfaceID: 1, isPrimary: false, method: "dhcp")])
            Issue.record("accepted a node without primary interface")
        } catch { #expect(error.code == .noPrimaryInterface) }
    }

    @Test func keysAreRandomBase64WithoutPadding() {
        let keys = (0..<50).map { _ in NodeKey.generate() }
        #expect(Set(keys).count == 50)
        for key in keys {
            #expect(key.count == 43)  // 32 bytes -> 44 base64 chars, minus one '='
            #expect(!key.contains("="))
            #expect(Data(base64Encoded: key + "=")?.count == 32)
        }
    }

    // MARK: values a shell must read back literally

    /// Values that are literal inside double quotes: sourcing the file yields them exactly.
    static let literalValues = [
        "plain", "with space", "it's", "semi;colon && amp | pipe", "star * ? [a]", "~user #hash",
        "{brace} (paren) <lt> >gt", "!bang", "ünïcødé ✓", "trailing space ", "%percent", "=eq=",
    ]

    @Test func literalValuesRoundTripThroughSh() throws {
        var settings: [InterfaceSetting] = []
        for (i, value) in Self.literalValues.enumerated() {
            settings.append(InterfaceSetting(category: "test", name: "v\(i)", value: value))
        }
        let primary = Interface(interfaceID: 1, isPrimary: true, method: "dhcp", settings: settings)
        let text = try NodeConfig(node: Self.node1, interfaces: [primary]).render()
        let dir = FileManager.default.temporaryDirectory.path + "/plnode-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try text.write(toFile: dir + "/plnode.txt", atomically: true, encoding: .utf8)
        for (i, value) in Self.literalValues.enumerated() {
            let result = try runProcess(
                "/bin/sh", ["-c", ". \(dir)/plnode.txt && printf '%s' \"$TEST_V\(i)\""])
            #expect(result.status == 0)
            #expect(String(decoding: result.stdout, as: UTF8.self) == value)
        }
    }

    /// Values a shell would not read back literally are refused, naming the field.
    @Test(arguments: [
        "a\"b", "$(touch /tmp/pwned)", "`reboot`", "back\\slash", "new\nline", "cr\rx", "tab\tx",
        "nul\u{0}x", "esc\u{1B}[2J", "del\u{7F}", "c1\u{85}x", "$HOME",
    ])
    func hostileSettingValueIsRefused(value: String) {
        let primary = Interface(
            interfaceID: 1, isPrimary: true, method: "dhcp",
            settings: [InterfaceSetting(category: "wireless", name: "essid", value: value)])
        do {
            _ = try NodeConfig(node: Self.node1, interfaces: [primary])
            Issue.record("accepted \(value.debugDescription)")
        } catch {
            #expect(error.code == .unsafeValue)
            #expect(error.context["field"] == "setting wireless/essid")
        }
    }

    @Test(arguments: ["bad-name", "a b", "x;reboot", "é"])
    func settingNamesMustBeShellIdentifiers(name: String) {
        let primary = Interface(
            interfaceID: 1, isPrimary: true, method: "dhcp",
            settings: [InterfaceSetting(category: "cat", name: name, value: "v")])
        #expect(throws: BootMediumError.self) { try NodeConfig(node: Self.node1, interfaces: [primary]) }
    }

    @Test func hostileValuesElsewhereAreRefused() {
        let hostile = Interface(
            interfaceID: 1, isPrimary: true, method: "static", ip: "1.2.3.4\"; reboot; \"",
            mac: "aa:bb")
        #expect(throws: BootMediumError.self) { try NodeConfig(node: Self.node1, interfaces: [hostile]) }
        let badHost = Node(nodeID: 1, hostname: "x$(id).example.org")
        #expect(throws: BootMediumError.self) {
            try NodeConfig(node: badHost, interfaces: [Interface(interfaceID: 1, isPrimary: true, method: "dhcp")])
        }
    }
}
