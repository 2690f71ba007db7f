import Foundation

/// What a request delivered.
public enum DeliveredMedium: Equatable, Sendable {
    /// Written to this path (file and publish destinations).
    case path(String)
    /// Node config text, inline.
    case text(String)
    /// An image, base64-encoded, inline.
    case base64(String)
    /// Written to the descriptor given in the request: this many bytes.
    case streamed(Int)
}

/// The library entry point: `GetBootMedium` as one async call.
///
/// Long work (tree reading, image assembly, file I/O, lock waits) runs on Dispatch's threads,
/// not Swift's cooperative pool, and stops when the calling task is cancelled, leaving nothing
/// behind. A renewed node key is generated under a per-node lock and saved through the
/// ``NodeSource`` only after the medium was delivered; if saving fails, a delivered file is
/// removed again and the error reported.
public struct BootMediumService: Sendable {
    /// The planner (root, node source, clock).
    public let planner: Planner
    /// The medium templates plain media are made from (nil: every medium is built in full).
    public let templates: TemplateCache?

    /// Creates a service over a PLC root and a node source; plain media come from `templates`
    /// (docs/templates.md), kept in the work dir.
    public init(root: PLCRoot, nodes: any NodeSource, clock: BuildClock, templates: TemplateCache? = TemplateCache()) {
        planner = Planner(root: root, nodes: nodes, clock: clock)
        self.templates = templates
    }

    /// `GetBootMedium(auth, node_id_or_hostname, action, filename, options)`: an empty
    /// `filename` returns the medium inline, otherwise it is a template and the path written
    /// is returned.
    public func getBootMedium(
        caller: Caller, node: String?, action: String, filename: String?, options: [String] = []
    ) async throws(BootMediumError) -> DeliveredMedium {
        try await run(
            BootMediumRequest(
                caller: caller, node: node, action: action, filename: filename, options: options))
    }

    /// Runs a request to the end.
    public func run(_ request: BootMediumRequest) async throws(BootMediumError) -> DeliveredMedium {
        let plan = try await planner.plan(request)
        if Task.isCancelled { throw BootMediumError(.cancelled, "The request was cancelled") }
        let chosen = plan.image.map { ImageWriters.writer(for: $0.type, templates: templates) }
        guard plan.action.renewsKey, let node = plan.node else {
            return try await produce(plan, writer: chosen, renewal: nil, syncs: request.syncsOutput)
        }
        return try await planner.nodes.renewingKey(nodeID: node.nodeID, workDir: plan.root.workDir) {
            () throws(BootMediumError) -> KeyDelivery<DeliveredMedium> in
            let renewal = KeyRenewal(
                nodeID: node.nodeID, key: NodeKey.generate(), date: plan.clock.now)
            let delivered = try await deliver(plan, writer: chosen, renewal: renewal, syncs: request.syncsOutput)
            return KeyDelivery(result: delivered.medium, key: renewal.key, withdraw: { delivered.file?.withdraw() })
        }
    }

    private func produce(_ plan: BootPlan, writer: (any ImageWriter)?, renewal: KeyRenewal?, syncs: Bool)
        async throws(BootMediumError) -> DeliveredMedium
    {
        try await deliver(plan, writer: writer, renewal: renewal, syncs: syncs).medium
    }

    private func deliver(_ plan: BootPlan, writer: (any ImageWriter)?, renewal: KeyRenewal?, syncs: Bool)
        async throws(BootMediumError) -> Delivery
    {
        let configText = try plan.nodeConfig?.render(renewal: renewal)
        return try await Blocking.run { (flag: CancellationFlag) throws(BootMediumError) in
            try Self.deliver(plan, configText: configText, writer: writer, syncs: syncs, cancellation: flag)
        }
    }

    private struct Delivery: @unchecked Sendable {
        var medium: DeliveredMedium
        var file: OutputFile?
    }

    private static func deliver(
        _ plan: BootPlan, configText: String?, writer: (any ImageWriter)?, syncs: Bool,
        cancellation: CancellationFlag
    ) throws(BootMediumError) -> Delivery {
        func fill(_ sink: any ImageSink) throws(BootMediumError) {
            try cancellation.check()
            if let writer {
                let inputs = try ImageInputs(plan: plan, nodeConfigText: configText)
                try writer.write(inputs, to: sink, cancellation: cancellation)
                // What was measured is what was copied: a tree file written to meanwhile (its
                // size or times changed) fails the build before the medium gets its name.
                try inputs.plan.tree.checkUnchanged()
            } else {
                try Array((configText ?? "").utf8).withBytes { (buffer) throws(BootMediumError) in try sink.write(buffer) }
            }
            try cancellation.check()
        }
        switch plan.output {
        case .inline:
            let sink = MemorySink()
            try fill(sink)
            if writer == nil {
                return Delivery(medium: .text(configText ?? ""))
            }
            return Delivery(medium: .base64(sink.data.base64EncodedString()))
        case .stream(let fd):
            let sink = DescriptorSink(fd: fd)
            try fill(sink)
            return Delivery(medium: .streamed(sink.count))
        case .file(let path, let confinedTo):
            let file = try OutputFile(path: path, confinedTo: confinedTo, syncs: syncs)
            try fill(file)
            try file.commit()
            return Delivery(medium: .path(path), file: file)
        case .publish(let path):
            let file = try OutputFile(path: path, confinedTo: nil, replaces: true, syncs: syncs)
            try fill(file)
            try file.commit()
            return Delivery(medium: .path(path), file: nil)
        }
    }
}
