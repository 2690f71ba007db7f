/// A node as PLCAPI describes it (only the fields bootmedium reads).
public struct Node: Equatable, Sendable, Codable {
    /// `node_id`.
    public var nodeID: Int
    /// `hostname`, fully qualified.
    public var hostname: String
    /// `site_id`.
    public var siteID: Int?
    /// `peer_id`: non-nil for a node of another PLC.
    public var peerID: Int?
    /// `key`: the node's current authentication key.
    public var key: String?
    /// `node_type`: `regular` or `reservable`.
    public var nodeType: String?
    /// Names of the node's node groups.
    public var nodegroups: [String]
    /// Node tags (`serial`, `kargs`, `kvariant`, `pldistro`, `arch`, ...).
    public var tags: [String: String]
    /// The node's interfaces, by id.
    public var interfaceIDs: [Int]

    /// Creates a node.
    public init(
        nodeID: Int, hostname: String, siteID: Int? = nil, peerID: Int? = nil, key: String? = nil,
        nodeType: String? = "regular", nodegroups: [String] = [], tags: [String: String] = [:],
        interfaceIDs: [Int] = []
    ) {
        self.nodeID = nodeID
        self.hostname = hostname
        self.siteID = siteID
        self.peerID = peerID
        self.key = key
        self.nodeType = nodeType
        self.nodegroups = nodegroups
        self.tags = tags
        self.interfaceIDs = interfaceIDs
    }

    enum CodingKeys: String, CodingKey {
        case nodeID = "node_id", hostname, siteID = "site_id", peerID = "peer_id", key
        case nodeType = "node_type", nodegroups, tags, interfaceIDs = "interface_ids"
    }

    /// Decodes PLCAPI's fields; missing optional fields are nil or empty.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        nodeID = try c.decode(Int.self, forKey: .nodeID)
        hostname = try c.decode(String.self, forKey: .hostname)
        siteID = try c.decodeIfPresent(Int.self, forKey: .siteID)
        peerID = try c.decodeIfPresent(Int.self, forKey: .peerID)
        key = try c.decodeIfPresent(String.self, forKey: .key)
        nodeType = try c.decodeIfPresent(String.self, forKey: .nodeType)
        nodegroups = try c.decodeIfPresent([String].self, forKey: .nodegroups) ?? []
        tags = try c.decodeIfPresent([String: String].self, forKey: .tags) ?? [:]
        interfaceIDs = try c.decodeIfPresent([Int].self, forKey: .interfaceIDs) ?? []
    }

    /// Whether the node is `reservable`.
    public var isReservable: Bool { nodeType == "reservable" }
}

/// One network interface of a node.
public struct Interface: Equatable, Sendable, Codable {
    /// `interface_id`.
    public var interfaceID: Int
    /// `node_id`.
    public var nodeID: Int?
    /// `is_primary`.
    public var isPrimary: Bool
    /// `method`: `static`, `dhcp`, `ipmi`, ...
    public var method: String
    /// Addresses; nil when unset.
    public var ip: String?, gateway: String?, network: String?, broadcast: String?
    public var netmask: String?, dns1: String?, dns2: String?
    /// The MAC address, as stored.
    public var mac: String?
    /// The interface's settings (tags) in listed order.
    public var settings: [InterfaceSetting]

    /// Creates an interface.
    public init(
        interfaceID: Int, nodeID: Int? = nil, isPrimary: Bool, method: String, ip: String? = nil,
        gateway: String? = nil, network: String? = nil, broadcast: String? = nil,
        netmask: String? = nil, dns1: String? = nil, dns2: String? = nil, mac: String? = nil,
        settings: [InterfaceSetting] = []
    ) {
        self.interfaceID = interfaceID
        self.nodeID = nodeID
        self.isPrimary = isPrimary
        self.method = method
        self.ip = ip
        self.gateway = gateway
        self.network = network
        self.broadcast = broadcast
        self.netmask = netmask
        self.dns1 = dns1
        self.dns2 = dns2
        self.mac = mac
        self.settings = settings
    }

    enum CodingKeys: String, CodingKey {
        case interfaceID = "interface_id", nodeID = "node_id", isPrimary = "is_primary", method
        case ip, gateway, network, broadcast, netmask, dns1, dns2, mac, settings
    }

    /// Decodes PLCAPI's fields; missing optional fields are nil or empty.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        interfaceID = try c.decode(Int.self, forKey: .interfaceID)
        nodeID = try c.decodeIfPresent(Int.self, forKey: .nodeID)
        isPrimary = try c.decodeIfPresent(Bool.self, forKey: .isPrimary) ?? false
        method = try c.decodeIfPresent(String.self, forKey: .method) ?? ""
        ip = try c.decodeIfPresent(String.self, forKey: .ip)
        gateway = try c.decodeIfPresent(String.self, forKey: .gateway)
        network = try c.decodeIfPresent(String.self, forKey: .network)
        broadcast = try c.decodeIfPresent(String.self, forKey: .broadcast)
        netmask = try c.decodeIfPresent(String.self, forKey: .netmask)
        dns1 = try c.decodeIfPresent(String.self, forKey: .dns1)
        dns2 = try c.decodeIfPresent(String.self, forKey: .dns2)
        mac = try c.decodeIfPresent(String.self, forKey: .mac)
        settings = try c.decodeIfPresent([InterfaceSetting].self, forKey: .settings) ?? []
    }
}

/// One interface setting (PLCAPI's interface tag) with its category.
public struct InterfaceSetting: Equatable, Sendable, Codable {
    /// The category; settings without one are not written to plnode.txt.
    public var category: String?
    /// The setting's name.
    public var name: String
    /// The setting's value.
    public var value: String

    /// Creates a setting.
    public init(category: String?, name: String, value: String) {
        self.category = category
        self.name = name
        self.value = value
    }
}

/// Who asks: PLCAPI's roles and site ids of the authenticated person.
public struct Caller: Equatable, Sendable {
    /// Roles such as `admin`, `pi`, `tech`.
    public let roles: [String]
    /// The sites the caller belongs to.
    public let siteIDs: [Int]

    /// Creates a caller.
    public init(roles: [String], siteIDs: [Int]) {
        self.roles = roles
        self.siteIDs = siteIDs
    }

    /// An administrator of the whole PLC.
    public static let admin = Caller(roles: ["admin"], siteIDs: [])

    /// Whether the caller has the `admin` role.
    public var isAdmin: Bool { roles.contains("admin") }
}
