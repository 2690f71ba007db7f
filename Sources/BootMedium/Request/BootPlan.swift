import Foundation

/// Where a medium goes.
public enum Destination: Equatable, Sendable {
    /// Returned in the result: config text as is, images base64-encoded (empty filename).
    case inline
    /// A filename template with markers, written without replacing an existing file.
    case template(String)
    /// Written to an open file descriptor (the CLI's standard output).
    case stream(Int32)
    /// Published as the nodefamily's generic image, replacing the previous one atomically
    /// (generic actions only).
    case publish
}

/// The resolved output of a plan.
public enum OutputPlan: Equatable, Sendable {
    /// Returned inline.
    case inline
    /// Written to this absolute path; non-admins' paths were checked to resolve inside the
    /// work dir (`confinedTo`).
    case file(path: String, confinedTo: String?)
    /// Written to the descriptor.
    case stream(Int32)
    /// Published at this absolute path, replacing a previous image.
    case publish(path: String)
}

/// One validated, immutable request: everything an image writer needs, nothing it must check.
public struct BootPlan: Sendable {
    /// The action.
    public let action: BootAction
    /// The image layout, for image actions.
    public let imageType: ImageType?
    /// The extra kernel arguments (serial console included).
    public let kernelCommandLine: KernelCommandLine
    /// The nodefamily.
    public let nodefamily: Nodefamily
    /// The bootcd tree, for image actions (and text actions when it exists).
    public let tree: BootcdTree?
    /// Where the result goes.
    public let output: OutputPlan
    /// The node, for node actions.
    public let node: Node?
    /// The node config, for node actions.
    public let nodeConfig: NodeConfig?
    /// The server configuration.
    public let configuration: PLCConfiguration
    /// The PLC root.
    public let root: PLCRoot
    /// Timestamps.
    public let clock: BuildClock
    /// The request's option strings, as given.
    public let options: [String]

    /// The serial console, if any.
    public var console: SerialConsole? { kernelCommandLine.console }

    /// The plan as the image writers see it, for image actions (nil for text actions).
    public var image: ImagePlan? { ImagePlan(self) }

    /// `<PLC_NAME> BootCD <version>`, for image actions.
    public var versionString: String? {
        guard let tree, let name = configuration.plcName else { return nil }
        return "\(name) BootCD \(tree.version)"
    }

    /// The default image name of docs/behaviour.md §5.3:
    /// `<PLC_NAME>-BootCD-<version>[-serial[-<spec>]]<ending>`.
    public var defaultImageName: String? {
        guard let tree, let imageType, let name = configuration.plcName else { return nil }
        return "\(name)-BootCD-\(tree.version)\(console?.nameSuffix ?? "")\(imageType.nameEnding)"
    }
}

/// The plan of an image action as the image writers see it: every field of its ``BootPlan``
/// (by member lookup), with the image type, the bootcd tree and the version string, which an
/// image action always has (the ``Planner`` refuses one without them), not optional.
@dynamicMemberLookup
public struct ImagePlan: Sendable {
    /// The whole plan.
    public let plan: BootPlan
    /// The image layout.
    public let type: ImageType
    /// The bootcd tree the image is made from.
    public let tree: BootcdTree
    /// `<PLC_NAME> BootCD <version>`.
    public let versionString: String

    /// The image part of `plan`; nil for a text action.
    init?(_ plan: BootPlan) {
        guard let type = plan.imageType, let tree = plan.tree, let versionString = plan.versionString else { return nil }
        self.plan = plan
        self.type = type
        self.tree = tree
        self.versionString = versionString
    }

    /// The plan's other fields.
    public subscript<Value>(dynamicMember field: KeyPath<BootPlan, Value>) -> Value { plan[keyPath: field] }
}
