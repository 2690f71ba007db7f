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
}
