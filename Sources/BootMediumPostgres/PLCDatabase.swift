import BootMedium
import Logging
import PostgresNIO
import Synchronization

/// The PLC's PostgreSQL database (docs/database.md): a connection pool (postgres-nio's
/// `PostgresClient`, reconnecting by itself when the database comes back), the node store
/// and the persons over PLCAPI's own tables, and `db init`.
public final class PLCDatabase: Sendable {
    /// Where it is.
    public let url: DatabaseURL
    let client: PostgresClient
    private let runner: Task<Void, Never>

    /// Connects to `url` lazily (the first query opens the first connection). The pool logs
    /// to `logger` (nothing by default: the CLI's stderr carries one error line at most).
    public init(_ url: DatabaseURL, logger: Logger = Logger(label: "bootmedium-database", factory: { _ in SwiftLogNoOpLogHandler() })) {
        self.url = url
        let client = PostgresClient(configuration: url.configuration, backgroundLogger: logger)
        self.client = client
        runner = Task { await client.run() }
    }

    /// Closes the pool's connections.
    public func shutdown() async {
        runner.cancel()
        await runner.value
    }

    /// The node store over this database.
    public var nodes: PostgresNodeStore { PostgresNodeStore(database: self) }
    /// The persons over this database.
    public var persons: PostgresPersonStore { PostgresPersonStore(database: self) }

    /// Creates PLCAPI's tables bootmedium uses where they are missing (``PLCSchema``), in one
    /// transaction; returns how many statements ran.
    public func initialize() async throws(BootMediumError) -> Int {
        try await run("initialize the schema of") { client in
            try await client.withTransaction(logger: Self.quiet) { connection in
                for statement in PLCSchema.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: Self.quiet)
                }
            }
            return PLCSchema.statements.count
        }
    }

    static let quiet = Logger(label: "bootmedium-database-query")

    /// Runs `body` on the pool; a database error (unreachable, refused, a failed statement) is
    /// `node-store-unavailable` with what the database said.
    func run<T>(_ doing: String, _ body: (PostgresClient) async throws -> T) async throws(BootMediumError) -> T {
        do {
            return try await body(client)
        } catch let error as BootMediumError {
            throw error
        } catch {
            throw unavailable(error, doing: doing)
        }
    }

    /// Runs `body` on a connection of the pool, as ``run(_:_:)``; when no connection is to be
    /// had within the connect timeout (the database is down: the pool would wait for it,
    /// retrying), the call fails then instead of waiting.
    func read<T: Sendable>(_ doing: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws(BootMediumError) -> T {
        let leased = LeaseFlag()
        let wait = url.configuration.options.connectTimeout + .seconds(1)
        return try await run(doing) { client in
            try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask {
                    try await client.withConnection { connection in
                        leased.flag.store(true, ordering: .relaxed)
                        return try await body(connection)
                    }
                }
                group.addTask {
                    try await Task.sleep(for: wait)
                    if !leased.flag.load(ordering: .relaxed) { throw NoConnection() }
                    return nil
                }
                while let next = try await group.next() {
                    if let value = next {
                        group.cancelAll()
                        return value
                    }
                }
                throw NoConnection()
            }
        }
    }

    private final class LeaseFlag: Sendable {
        let flag = Atomic<Bool>(false)
    }

    private struct NoConnection: Error, CustomStringConvertible {
        var description: String { "no connection within the connect timeout: it is down or unreachable" }
    }

    func unavailable(_ error: any Error, doing: String) -> BootMediumError {
        var detail = String(describing: error)
        if detail.contains("CircuitBreakerTripped") {
            // postgres-nio's pool after failed connection attempts (its type is in an
            // underscored module): it goes on trying in the background, backing off up to 60 s.
            detail = "it does not accept connections (down or unreachable); the server keeps trying and recovers on its own"
        } else if let psql = error as? PSQLError {
            if let message = psql.serverInfo?[.message] {
                detail = message + (psql.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? "")
            } else {
                detail = "\(psql.code)" + (psql.underlying.map { ": \($0)" } ?? "")
            }
        }
        return BootMediumError(
            .nodeStoreUnavailable, "Cannot \(doing) the database \(url.shown): \(detail)", context: ["database": url.shown])
    }
}

/// The node store of a PLC database: PLCAPI's `nodes`, `node_tag`, `tag_types`, `nodegroups`,
/// `interfaces`, `interface_tag` and `peer_node` (docs/database.md). A key renewal is one
/// transaction that holds the node's row lock (`SELECT ... FOR UPDATE`) while the medium is
/// made and commits the new key only once it was delivered.
public struct PostgresNodeStore: NodeSource {
    let database: PLCDatabase

    public func node(_ reference: NodeReference) async throws(BootMediumError) -> Node? {
        try await database.read("read a node from") { connection in try await Self.node(reference, on: connection) }
    }

    static func node(_ reference: NodeReference, on connection: PostgresConnection) async throws -> Node? {
        let rows: PostgresRowSequence
        switch reference {
        case .id(let id):
            rows = try await connection.query(
                """
                SELECT n.node_id, n.hostname, n.site_id, pn.peer_id, n.key, n.node_type
                FROM nodes n LEFT JOIN peer_node pn USING (node_id) WHERE n.deleted IS false AND n.node_id = \(id)
                """, logger: PLCDatabase.quiet)
        case .hostname(let name):
            rows = try await connection.query(
                """
                SELECT n.node_id, n.hostname, n.site_id, pn.peer_id, n.key, n.node_type
                FROM nodes n LEFT JOIN peer_node pn USING (node_id)
                WHERE n.deleted IS false AND lower(n.hostname) = lower(\(name))
                """, logger: PLCDatabase.quiet)
        }
        var found: [Node] = []
        for try await (id, hostname, site, peer, key, type) in rows.decode((Int32, String, Int32, Int32?, String?, String?).self) {
            found.append(Node(nodeID: Int(id), hostname: hostname, siteID: Int(site), peerID: peer.map(Int.init), key: key, nodeType: type))
        }
        guard var node = found.first else { return nil }
        guard found.count == 1 else {
            throw BootMediumError(
                .invalidNodeStore, "The database holds \(found.count) nodes named \(reference.description.debugDescription)",
                context: ["node": reference.description])
        }
        let id = node.nodeID
        let tags = try await connection.query(
            """
            SELECT t.tagname, nt.value FROM node_tag nt JOIN tag_types t USING (tag_type_id)
            WHERE nt.node_id = \(id) ORDER BY nt.node_tag_id
            """, logger: PLCDatabase.quiet)
        for try await (name, value) in tags.decode((String, String?).self) where node.tags[name] == nil {
            node.tags[name] = value ?? ""
        }
        let groups = try await connection.query(
            """
            SELECT g.groupname FROM nodegroups g JOIN node_tag nt ON nt.tag_type_id = g.tag_type_id AND nt.value = g.value
            WHERE nt.node_id = \(id) ORDER BY g.nodegroup_id
            """, logger: PLCDatabase.quiet)
        for try await name in groups.decode(String.self) { node.nodegroups.append(name) }
        let interfaces = try await connection.query(
            "SELECT interface_id FROM interfaces WHERE node_id = \(id) ORDER BY is_primary DESC, interface_id", logger: PLCDatabase.quiet)
        for try await interface in interfaces.decode(Int32.self) { node.interfaceIDs.append(Int(interface)) }
        return node
    }

    public func interfaces(of node: Node) async throws(BootMediumError) -> [Interface] {
        try await database.read("read the interfaces of a node from") { connection in
            do {
                let rows = try await connection.query(
                    """
                    SELECT interface_id, is_primary, method, ip, gateway, network, broadcast, netmask, dns1, dns2, mac
                    FROM interfaces WHERE node_id = \(node.nodeID)
                    """, logger: PLCDatabase.quiet)
                var byID: [Int: Interface] = [:]
                for try await (id, primary, method, ip, gateway, network, broadcast, netmask, dns1, dns2, mac) in rows.decode(
                    (Int32, Bool, String, String?, String?, String?, String?, String?, String?, String?, String?).self)
                {
                    byID[Int(id)] = Interface(
                        interfaceID: Int(id), nodeID: node.nodeID, isPrimary: primary, method: method, ip: ip, gateway: gateway,
                        network: network, broadcast: broadcast, netmask: netmask, dns1: dns1, dns2: dns2, mac: mac)
                }
                let settings = try await connection.query(
                    """
                    SELECT it.interface_id, t.category, t.tagname, it.value
                    FROM interface_tag it JOIN tag_types t USING (tag_type_id) JOIN interfaces i USING (interface_id)
                    WHERE i.node_id = \(node.nodeID) ORDER BY it.interface_tag_id
                    """, logger: PLCDatabase.quiet)
                for try await (id, category, name, value) in settings.decode((Int32, String?, String, String?).self) {
                    // tag_types.category is NOT NULL: the empty category is the JSON store's null
                    // (a setting not written to plnode.txt).
                    let known = category.flatMap { $0.isEmpty ? nil : $0 }
                    byID[Int(id)]?.settings.append(InterfaceSetting(category: known, name: name, value: value ?? ""))
                }
                return node.interfaceIDs.compactMap { byID[$0] }
            }
        }
    }

    public func saveKey(_ key: String, forNodeID nodeID: Int) async throws(BootMediumError) {
        try await database.read("save a node's key in") { connection in
            _ = try await connection.query("UPDATE nodes SET key = \(key) WHERE node_id = \(nodeID)", logger: PLCDatabase.quiet)
        }
    }

    /// One transaction: the node's row locked (`FOR UPDATE`: renewals of one node from any
    /// number of processes and hosts wait for each other, others do not), the medium made and
    /// delivered, the key written, committed. Any failure, a lost connection or a crash rolls
    /// back: the key stays the one of the medium delivered before. A commit that fails
    /// withdraws the delivery.
    public func renewingKey<T: Sendable>(
        nodeID: Int, workDir: String, _ deliver: () async throws(BootMediumError) -> KeyDelivery<T>
    ) async throws(BootMediumError) -> T {
        try await database.run("renew a node's key in") { client in
            try await client.withConnection { connection in
                try await connection.query("BEGIN", logger: PLCDatabase.quiet)
                do {
                    let locked = try await connection.query(
                        "SELECT node_id FROM nodes WHERE node_id = \(nodeID) AND deleted IS false FOR UPDATE", logger: PLCDatabase.quiet)
                    var found = false
                    for try await _ in locked.decode(Int32.self) { found = true }
                    guard found else {
                        throw BootMediumError(.unknownNode, "Node \(nodeID) is no longer in the database", context: ["node": String(nodeID)])
                    }
                    let delivery = try await deliver()
                    do {
                        try await connection.query("UPDATE nodes SET key = \(delivery.key) WHERE node_id = \(nodeID)", logger: PLCDatabase.quiet)
                        try await connection.query("COMMIT", logger: PLCDatabase.quiet)
                    } catch {
                        delivery.withdraw()
                        throw KeyDelivery<T>.notStored(database.unavailable(error, doing: "save a node's key in"))
                    }
                    return delivery.result
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: PLCDatabase.quiet)
                    throw error
                }
            }
        }
    }
}

/// The persons of a PLC database, for the server's authentication: PLCAPI's `persons`,
/// `person_role` and `roles`, `person_site`; deleted persons and other PLCs' (`peer_person`)
/// are not found.
public struct PostgresPersonStore: PersonSource {
    let database: PLCDatabase

    public func person(email: String) async throws(BootMediumError) -> Person? {
        try await database.read("read a person from") { connection in
            let rows = try await connection.query(
                """
                SELECT p.person_id, p.email, p.password, p.enabled,
                    array(SELECT r.name FROM person_role pr JOIN roles r USING (role_id) WHERE pr.person_id = p.person_id ORDER BY r.role_id),
                    array(SELECT ps.site_id FROM person_site ps WHERE ps.person_id = p.person_id ORDER BY ps.is_primary DESC, ps.site_id)
                FROM persons p LEFT JOIN peer_person pp USING (person_id)
                WHERE p.deleted IS false AND pp.peer_id IS NULL AND lower(p.email) = lower(\(email))
                """, logger: PLCDatabase.quiet)
            var found: [Person] = []
            for try await (id, address, password, enabled, roles, sites) in rows.decode((Int32, String, String, Bool, [String], [Int32]).self) {
                found.append(
                    Person(personID: Int(id), email: address, password: password, roles: roles, siteIDs: sites.map(Int.init), enabled: enabled))
            }
            guard found.count <= 1 else {
                throw BootMediumError(.invalidPersonStore, "The database holds \(found.count) persons with the email \(email.debugDescription)")
            }
            return found.first
        }
    }
}
