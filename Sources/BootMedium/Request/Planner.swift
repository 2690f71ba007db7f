import Foundation

/// A request as `GetBootMedium` receives it.
public struct BootMediumRequest: Sendable {
    /// Who asks.
    public var caller: Caller
    /// `node_id_or_hostname`; ignored by generic actions.
    public var node: String?
    /// The action name.
    public var action: String
    /// Where the result goes.
    public var destination: Destination
    /// The option strings.
    public var options: [String]
    /// Whether an image written to a file is flushed to the device (`fsync`) before it appears
    /// under its final name, so that a crash or power loss never leaves a medium with missing
    /// data under that name (the default). `false` skips the flush, as `cp` does: faster, for
    /// throwaway images (CI). The node store is flushed either way.
    public var syncsOutput = true

    /// Creates a request. An empty or nil `filename` means inline; otherwise it is a template.
    public init(
        caller: Caller, node: String?, action: String, filename: String?, options: [String] = []
    ) {
        self.init(
            caller: caller, node: node, action: action,
            destination: (filename ?? "").isEmpty ? .inline : .template(filename!),
            options: options)
    }

    /// Creates a request with an explicit destination.
    public init(
        caller: Caller, node: String?, action: String, destination: Destination,
        options: [String] = []
    ) {
        self.caller = caller
        self.node = node
        self.action = action
        self.destination = destination
        self.options = options
    }
}

/// Turns a request into a ``BootPlan``: every check of docs/behaviour.md §1 and §3, in the
/// original's order (action, options, node and permissions, nodefamily, tree, output).
public struct Planner: Sendable {
    /// The PLC root.
    public let root: PLCRoot
    /// Where nodes come from.
    public let nodes: any NodeSource
    /// Timestamps.
    public let clock: BuildClock

    /// Creates a planner.
    public init(root: PLCRoot, nodes: any NodeSource, clock: BuildClock) {
        self.root = root
        self.nodes = nodes
        self.clock = clock
    }

    /// Actions a `reservable` node allows.
    public static let reservableActions: [BootAction] = [.nodePreview, .nodeISO, .nodeUSB]

    /// Validates `request` and resolves everything it implies.
    public func plan(_ request: BootMediumRequest) async throws(BootMediumError) -> BootPlan {
        let action = try BootAction(parsing: request.action)
        if action.isText && !request.options.isEmpty {
            throw BootMediumError(
                .optionsNotSupported, "Options are not supported for node configs",
                context: ["action": action.rawValue])
        }
        if action.isGeneric && !request.options.isEmpty {
            throw BootMediumError(
                .optionsNotSupported, "Options are not supported for generic images",
                context: ["action": action.rawValue])
        }
        let requested = try MediumOptions(parsing: request.options)
        if requested.partition && action.medium != .usb {
            throw BootMediumError(
                .invalidOption, "Option 'partition' is for USB images only",
                context: ["option": "partition", "action": action.rawValue])
        }

        // The node, and who may use it.
        var node: Node?
        var interfaces: [Interface] = []
        if action.needsNode {
            guard let name = request.node, !name.isEmpty else {
                throw BootMediumError(
                    .unknownNode, "Action \(action.rawValue) needs a node",
                    context: ["action": action.rawValue])
            }
            guard let found = try await nodes.node(NodeReference(name)) else {
                throw BootMediumError(
                    .unknownNode, "No such node \(name.debugDescription)", context: ["node": name])
            }
            guard found.peerID == nil else {
                throw BootMediumError(
                    .notLocalNode, "Not a local node", context: ["hostname": found.hostname])
            }
            if !request.caller.isAdmin {
                guard let site = found.siteID, request.caller.siteIDs.contains(site) else {
                    throw BootMediumError(
                        .permissionDenied,
                        "Not allowed to generate a configuration file for \(found.hostname)",
                        context: ["hostname": found.hostname])
                }
            }
            if found.isReservable && !Self.reservableActions.contains(action) {
                throw BootMediumError(
                    .actionNotAllowed,
                    "Action \(action.rawValue) is not allowed for reservable node \(found.hostname); allowed: "
                        + Self.reservableActions.map(\.rawValue).joined(separator: ", "),
                    context: ["hostname": found.hostname, "action": action.rawValue])
            }
            node = found
            interfaces = try await nodes.interfaces(of: found)
        }

        let configuration = try root.loadConfiguration()
        let nodefamily = Nodefamily.of(node, default: try root.defaultNodefamily())

        // Settings in force: node tags, overridden by options (image actions only).
        let settings = action.isText ? requested : try requested.applyingTags(of: node)
        var imageType: ImageType?
        switch action.medium {
        case .text: imageType = nil
        case .iso: imageType = settings.cramfs ? .isoCramfs : .iso
        case .usb:
            if settings.partition && settings.cramfs {
                throw BootMediumError(
                    .notSupported,
                    "A partitioned USB image with cramfs (usb_partition + cramfs) is not supported",
                    context: ["options": "partition,cramfs"])
            }
            imageType = settings.partition ? .usbPartition : (settings.cramfs ? .usbCramfs : .usb)
        }
        let kernelCommandLine =
            action.isText
            ? try KernelCommandLine()
            : try KernelCommandLine(
                console: settings.serial, noHangcheck: settings.noHangcheck,
                systemdConsole: settings.systemdConsole, systemdDebug: settings.systemdDebug,
                extra: KernelCommandLine.split(node?.tags["kargs"] ?? ""))

        // The tree: required for images, read when present for text actions (for %v).
        var tree: BootcdTree?
        var treeError: BootMediumError?
        do throws(BootMediumError) {
            tree = try BootcdTree(
                bootcdDirectory: root.bootcdDirectory(for: nodefamily),
                variant: settings.variant ?? BootcdTree.defaultVariant, root: root.path)
        } catch {
            if action.isText { treeError = error } else { throw error }
        }

        let nodeConfig = try node.map { n throws(BootMediumError) in
            try NodeConfig(node: n, interfaces: interfaces)
        }
        if action.medium != .text {
            _ = try configuration.required("PLC_NAME")
        }

        let output = try resolveOutput(
            request: request, action: action, node: node, nodefamily: nodefamily, tree: tree,
            treeError: treeError, configuration: configuration)

        return BootPlan(
            action: action, imageType: imageType, kernelCommandLine: kernelCommandLine,
            nodefamily: nodefamily, tree: tree, output: output, node: node,
            nodeConfig: nodeConfig, configuration: configuration, root: root, clock: clock,
            options: request.options)
    }

    private func resolveOutput(
        request: BootMediumRequest, action: BootAction, node: Node?, nodefamily: Nodefamily,
        tree: BootcdTree?, treeError: BootMediumError?, configuration: PLCConfiguration
    ) throws(BootMediumError) -> OutputPlan {
        switch request.destination {
        case .inline: return .inline
        case .stream(let fd): return .stream(fd)
        case .publish:
            guard action.isGeneric, let tree, let name = configuration.plcName else {
                throw BootMediumError(
                    .invalidOutput, "Only generic images are published",
                    context: ["action": action.rawValue])
            }
            // The same rules as %p: PLC_NAME becomes part of a file name here too.
            try OutputTemplate.checkPLCName(name)
            return .publish(
                path: root.genericDirectory(for: nodefamily)
                    + "/\(name)-BootCD-\(tree.version)\(action.suffix)")
        case .template(let text):
            let values = OutputTemplate.Values(
                workDir: root.workDir, name: node?.hostname ?? Self.randomName(), nameIsHostname: node != nil,
                suffix: action.suffix, plcName: configuration.plcName, nodefamily: nodefamily,
                version: tree?.version, versionError: treeError)
            let expanded = try OutputTemplate(text).expand(values)
            if expanded.isEmpty { return .inline }
            guard !expanded.contains("\0"), !expanded.hasSuffix("/"), expanded.utf8.count < 4096 else {
                throw BootMediumError(
                    .invalidOutput, "Output \(expanded.debugDescription) is not a file path",
                    context: ["output": expanded])
            }
            let absolute =
                expanded.hasPrefix("/")
                ? expanded : FileManager.default.currentDirectoryPath + "/" + expanded
            return .file(path: absolute, confinedTo: request.caller.isAdmin ? nil : root.workDir)
        }
    }

    /// A mktemp-like name for `%n` of generic actions: 8 random upper-case letters.
    static func randomName() -> String {
        var generator = SystemRandomNumberGenerator()
        return String((0..<8).map { _ in Character(UnicodeScalar(65 + UInt8(generator.next() % 26))) })
    }
}
