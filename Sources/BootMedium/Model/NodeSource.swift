/// How a request names a node: by id (all digits) or by hostname.
public enum NodeReference: Equatable, Hashable, Sendable, CustomStringConvertible {
    case id(Int)
    case hostname(String)

    /// Reads `text` as an id when it is all digits, else as a hostname.
    public init(_ text: String) {
        if !text.isEmpty, text.count < 18, text.allSatisfy({ $0.isASCII && $0.isNumber }),
            let id = Int(text)
        {
            self = .id(id)
        } else {
            self = .hostname(text)
        }
    }

    public var description: String {
        switch self {
        case .id(let id): String(id)
        case .hostname(let name): name
        }
    }
}

/// Where nodes, their interfaces and keys come from. The CLI uses ``JSONNodeStore``; the API
/// server supplies its own.
public protocol NodeSource: Sendable {
    /// The node named by `reference`, or nil.
    func node(_ reference: NodeReference) async throws(BootMediumError) -> Node?
    /// The interfaces of `node`, in the order of its `interfaceIDs`.
    func interfaces(of node: Node) async throws(BootMediumError) -> [Interface]
    /// Stores `key` as the node's new key. Called only after the medium was delivered.
    func saveKey(_ key: String, forNodeID nodeID: Int) async throws(BootMediumError)

    /// Runs one key renewal of node `nodeID`: `deliver` makes and delivers the medium with a
    /// new key and returns it; the key is stored only once `deliver` returned, and if storing
    /// fails, the delivery is withdrawn and the error is `node-store-update-failed`. Renewals of
    /// one node never overlap. The default serializes them with ``NodeLocks`` (in this process
    /// and, through a lock file in `workDir`, across processes on this host) and stores the key
    /// with ``saveKey(_:forNodeID:)``; a database store locks the node's row instead, for the
    /// whole renewal, and commits the key in the same transaction.
    func renewingKey<T: Sendable>(
        nodeID: Int, workDir: String, _ deliver: () async throws(BootMediumError) -> KeyDelivery<T>
    ) async throws(BootMediumError) -> T
}

/// What one key renewal delivered: its result, the new key, and how to take the delivery back
/// when the key cannot be stored.
public struct KeyDelivery<Result: Sendable>: Sendable {
    /// What the request returns.
    public let result: Result
    /// The key the delivered medium carries.
    public let key: String
    /// Takes the delivery back (removes a delivered file); nothing for a medium not yet out.
    public let withdraw: @Sendable () -> Void

    public init(result: Result, key: String, withdraw: @escaping @Sendable () -> Void = {}) {
        self.result = result
        self.key = key
        self.withdraw = withdraw
    }

    /// The error when the key of a delivered medium could not be stored (after ``withdraw``).
    public static func notStored(_ error: BootMediumError) -> BootMediumError {
        BootMediumError(
            .nodeStoreUpdateFailed,
            "The medium was built but the node's new key could not be saved, so it was withdrawn: \(error.message)",
            context: error.context)
    }
}

extension NodeSource {
    public func renewingKey<T: Sendable>(
        nodeID: Int, workDir: String, _ deliver: () async throws(BootMediumError) -> KeyDelivery<T>
    ) async throws(BootMediumError) -> T {
        try await NodeLocks.withLock(node: nodeID, workDir: workDir) { () throws(BootMediumError) -> T in
            let delivery = try await deliver()
            do throws(BootMediumError) {
                try await saveKey(delivery.key, forNodeID: nodeID)
            } catch {
                delivery.withdraw()
                throw KeyDelivery<T>.notStored(error)
            }
            return delivery.result
        }
    }
}
