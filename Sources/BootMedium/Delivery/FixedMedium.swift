import Crypto

/// A node or generic medium whose bytes were fixed when it was made, read by byte range any
/// number of times: what the server serves by URL (docs/server.md). Every read of it returns
/// the same bytes, whatever happens to the node store, the tree or the template cache since.
///
/// A plain medium is its template (held open: an evicted template's blocks stay until the
/// medium goes) plus its slots' bytes, so it keeps O(overlay) bytes of its own. A cramfs
/// medium, or one whose contents outgrew their slots, is built in full into an anonymous file
/// in the work dir, gone when the medium goes.
public final class FixedMedium: @unchecked Sendable {
    // @unchecked: every stored property is immutable and reads are positioned (`pread`), so
    // any number of threads may read at once.

    /// The file name a download gets: what `%n%s` gives (the node's hostname, or a random
    /// name for a generic medium, and `.iso` or `.usb`).
    public let fileName: String
    /// The medium's size in bytes.
    public let size: Int64
    /// The SHA-256 of the medium's bytes, lower-case hex.
    public let sha256: String
    /// When the medium was made (seconds since the epoch; `SOURCE_DATE_EPOCH` when set).
    public let made: Int64
    /// The bytes the medium keeps of its own: its slots' bytes, or its whole size when it was
    /// built in full (on disk, in the work dir).
    public let ownBytes: Int64
    /// Whether the medium is its cached template with its own slots (not built in full).
    public let isSpliced: Bool
    private let backing: Backing

    private enum Backing {
        case spliced(SplicedMedium)
        case built(InputFile)
    }

    init(spliced: SplicedMedium, fileName: String, made: Int64, cancellation: CancellationFlag) throws(BootMediumError) {
        let hashing = HashingSink()
        try spliced.write(to: hashing, cancellation: cancellation)
        guard hashing.count == spliced.size else {
            throw BootMediumError(.internal, "Internal error: a spliced medium is not its size")
        }
        self.fileName = fileName
        size = spliced.size
        sha256 = hashing.digest
        self.made = made
        ownBytes = spliced.regions.reduce(0) { $0 + Int64($1.bytes.count) }
        isSpliced = true
        backing = .spliced(spliced)
    }

    init(built scratch: ScratchFile, fileName: String, made: Int64, cancellation: CancellationFlag) throws(BootMediumError) {
        let file = try InputFile(made: scratch.fd, path: "the medium of \(fileName)")
        self.fileName = fileName
        size = file.size
        sha256 = try scratch.sha256(size: file.size, cancellation: cancellation)
        self.made = made
        ownBytes = file.size
        isSpliced = false
        backing = .built(file)
    }

    /// The medium's bytes `offset..<offset+count`, clamped to its size (empty past its end).
    public func read(at offset: Int64, count: Int) throws(BootMediumError) -> [UInt8] {
        guard offset >= 0, offset < size, count > 0 else { return [] }
        switch backing {
        case .spliced(let medium): return try medium.read(at: offset, count: count)
        case .built(let file): return try file.bytes(at: offset, count: count)
        }
    }
}

/// Hashes what is written to it (SHA-256) and counts it.
final class HashingSink: ImageSink {
    private var hasher = SHA256()
    private(set) var count: Int64 = 0

    func write(_ bytes: UnsafeRawBufferPointer) throws(BootMediumError) {
        hasher.update(bufferPointer: bytes)
        count += Int64(bytes.count)
    }

    /// The SHA-256 of everything written, lower-case hex.
    var digest: String { Digest.hex(hasher.finalize()) }
}

extension BootMediumService {
    /// Makes the medium of an image action once and fixes its bytes, for serving by URL
    /// (`GetBootMediumURL`, docs/server.md): the same checks and permissions as
    /// ``run(_:)`` (the request's destination is ignored), a node action's key renewed once,
    /// under the node's lock, and saved only when the medium is complete. Text actions are
    /// `not-supported`: their result is the config itself.
    public func fixMedium(_ request: BootMediumRequest) async throws(BootMediumError) -> FixedMedium {
        var inline = request
        inline.destination = .inline
        let plan = try await planner.plan(inline)
        guard let type = plan.imageType else {
            throw BootMediumError(
                .notSupported, "Action \(plan.action.rawValue) returns a node config, not a medium to serve by URL",
                context: ["action": plan.action.rawValue])
        }
        if Task.isCancelled { throw BootMediumError(.cancelled, "The request was cancelled") }
        let writer = ImageWriters.writer(for: type, templates: templates)
        let fileName = (plan.node?.hostname ?? Planner.randomName()) + plan.action.suffix
        guard plan.action.renewsKey, let node = plan.node else {
            return try await Self.fix(plan, configText: try plan.nodeConfig?.render(renewal: nil), writer: writer, fileName: fileName)
        }
        return try await NodeLocks.withLock(node: node.nodeID, workDir: plan.root.workDir) { () throws(BootMediumError) in
            let renewal = KeyRenewal(nodeID: node.nodeID, key: NodeKey.generate(), date: plan.clock.now)
            let medium = try await Self.fix(plan, configText: try plan.nodeConfig?.render(renewal: renewal), writer: writer, fileName: fileName)
            do throws(BootMediumError) {
                try await planner.nodes.saveKey(renewal.key, forNodeID: renewal.nodeID)
            } catch {
                throw BootMediumError(
                    .nodeStoreUpdateFailed,
                    "The medium was built but the node's new key could not be saved, so it is not served: \(error.message)",
                    context: error.context)
            }
            return medium
        }
    }

    private static func fix(_ plan: BootPlan, configText: String?, writer: any ImageWriter, fileName: String)
        async throws(BootMediumError) -> FixedMedium
    {
        try await Blocking.run { (flag: CancellationFlag) throws(BootMediumError) in
            let inputs = ImageInputs(plan: plan, nodeConfigText: configText)
            if let medium = writer as? MediumWriter, let spliced = try medium.splice(inputs, cancellation: flag) {
                let fixed = try FixedMedium(spliced: spliced, fileName: fileName, made: plan.clock.now, cancellation: flag)
                try plan.tree?.checkUnchanged()
                return fixed
            }
            let scratch = try ScratchFile(directory: plan.root.workDir)
            try writer.write(inputs, to: DescriptorSink(fd: scratch.fd), cancellation: flag)
            try plan.tree?.checkUnchanged()
            return try FixedMedium(built: scratch, fileName: fileName, made: plan.clock.now, cancellation: flag)
        }
    }
}
