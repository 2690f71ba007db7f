/// The node config file, `plnode.txt` (docs/behaviour.md §2, docs/contract.md §2).
///
/// Built and validated once from the node and its interfaces; rendered with or without a key
/// renewal. Line order: [`NODE_ID`, `NODE_KEY`, `KEY_RENEWAL_DATE`], `NET_DEVICE` (if a MAC),
/// `IP_METHOD`, the static addresses (static only; unset ones empty), `HOST_NAME`,
/// `DOMAIN_NAME`, then each setting category of the primary interface in order of first
/// appearance (`### Category : NAME` and `CATEGORY_NAME="value"` lines in listed order; settings
/// without a category skipped), then `IPMI_ADDRESS`/`IPMI_MAC` of the first `ipmi` interface.
/// Every value passes ``ShellAssignment``'s check.
public struct NodeConfig: Equatable, Sendable {
    /// The node's hostname.
    public let hostname: String
    private let body: [String]

    /// Validates and prepares the config of `node` with `interfaces` (in the node's order).
    public init(node: Node, interfaces: [Interface]) throws(BootMediumError) {
        guard let primary = interfaces.first(where: { $0.isPrimary }) else {
            throw BootMediumError(
                .noPrimaryInterface, "No primary network configured on \(node.hostname)",
                context: ["hostname": node.hostname])
        }
        let hostname = node.hostname
        guard let dot = hostname.firstIndex(of: "."), dot != hostname.startIndex,
            hostname.index(after: dot) != hostname.endIndex
        else {
            throw BootMediumError(
                .invalidHostname, "Node hostname \(hostname) is invalid",
                context: ["hostname": hostname])
        }
        var lines: [String] = []
        func add(_ name: String, _ value: String?, _ field: String) throws(BootMediumError) {
            lines.append(try ShellAssignment(name, value ?? "", field: field).line)
        }
        if let mac = primary.mac, !mac.isEmpty {
            try add("NET_DEVICE", mac.lowercased(), "primary interface mac")
        }
        try add("IP_METHOD", primary.method, "primary interface method")
        if primary.method == "static" {
            try add("IP_ADDRESS", primary.ip, "primary interface ip")
            try add("IP_GATEWAY", primary.gateway, "primary interface gateway")
            try add("IP_NETMASK", primary.netmask, "primary interface netmask")
            try add("IP_NETADDR", primary.network, "primary interface network")
            try add("IP_BROADCASTADDR", primary.broadcast, "primary interface broadcast")
            try add("IP_DNS1", primary.dns1, "primary interface dns1")
            try add("IP_DNS2", primary.dns2, "primary interface dns2")
        }
        try add("HOST_NAME", String(hostname[..<dot]), "hostname")
        try add("DOMAIN_NAME", String(hostname[hostname.index(after: dot)...]), "hostname")

        var categories: [String] = []
        for setting in primary.settings {
            if let category = setting.category, !categories.contains(category) {
                categories.append(category)
            }
        }
        for category in categories {
            try ShellAssignment.checkLiteral(category, field: "setting category \(category)")
            lines.append("### Category : \(category)\n")
            for setting in primary.settings where setting.category == category {
                try add(
                    "\(category.uppercased())_\(setting.name.uppercased())", setting.value,
                    "setting \(category)/\(setting.name)")
            }
        }
        if let ipmi = interfaces.first(where: { $0.method == "ipmi" }) {
            try add("IPMI_ADDRESS", ipmi.ip, "ipmi interface ip")
            if let mac = ipmi.mac, !mac.isEmpty {
                try add("IPMI_MAC", mac.lowercased(), "ipmi interface mac")
            }
        }
        self.hostname = hostname
        self.body = lines
    }

    /// The file's text; with `renewal`, preceded by `NODE_ID`, `NODE_KEY`, `KEY_RENEWAL_DATE`.
    public func render(renewal: KeyRenewal? = nil) throws(BootMediumError) -> String {
        var text = ""
        if let renewal {
            text += try ShellAssignment("NODE_ID", String(renewal.nodeID), field: "node id").line
            text += try ShellAssignment("NODE_KEY", renewal.key, field: "node key").line
            text += try ShellAssignment(
                "KEY_RENEWAL_DATE", renewal.formattedDate, field: "key renewal date"
            ).line
        }
        return text + body.joined()
    }
}
