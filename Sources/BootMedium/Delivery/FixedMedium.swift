import Crypto
import Synchronization

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
        let file = try InputFile(made: scratch.descriptor, path: "the medium of \(fileName)")
        self.fileName = fileName
        size = file.size
        sha256 = try scratch.sha256(size: file.size, cancellation: cancellation)
        self.made = made
        ownBytes = file.size
        isSpliced = false
        backing = .built(file)
    }

    /// A generic image published under the PLC root (`var/www/html/download-<nodefamily>/`,
    /// as `generic-iso`/`generic-usb` publish them), for serving the same way: the file as it
    /// is now, held open (a newer one published meanwhile is the next request's). Its SHA-256
    /// is computed once per file version (device, inode, size, modification time) and kept in
    /// this process. A nodefamily or file name that is not one plain path component, a file
    /// outside the root or not a regular file: `invalid-input` or `outside-root`.
    public static func published(root: PLCRoot, nodefamily: String, fileName: String) throws(BootMediumError) -> FixedMedium {
        let family = try Nodefamily(parsing: nodefamily, source: "the request")
        guard Nodefamily.isPlainName(fileName.replacingOccurrences(of: "-", with: "_")) else {
            throw BootMediumError(.invalidInput, "Not a published image's name: \(fileName.debugDescription)")
        }
        let file = try root.open(root.genericDirectory(for: family) + "/" + fileName, role: .bootcd)
        let key = file.identity.description
        let known = publishedDigests.withLock { $0[key] }
        let digest: String
        if let known {
            digest = known
        } else {
            digest = try Digest.sha256(of: file, cancellation: CancellationFlag())
            publishedDigests.withLock { digests in
                if digests.count >= 256 { digests.removeAll() }
                digests[key] = digest
            }
        }
        return FixedMedium(file: file, fileName: fileName, sha256: digest, made: file.identity.modified / 1_000_000_000)
    }

    /// The SHA-256 of published images by file version.
    private static let publishedDigests = Mutex<[String: String]>([:])

    private init(file: InputFile, fileName: String, sha256: String, made: Int64) {
        self.fileName = fileName
        size = file.size
        self.sha256 = sha256
        self.made = made
        ownBytes = 0
        isSpliced = false
        backing = .built(file)
    }

    /// The medium's bytes `offset..<offset+count`, clamped to its size (empty past its end).
    public func read(at offset: Int64, count: Int) throws(BootMediumError) -> [UInt8] {
        guard offset >= 0, offset < size, count > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: Int(min(Int64(count), size - offset)))
        let n = try bytes.withMutableBytes { (buffer) throws(BootMediumError) in try read(into: buffer, at: offset) }
        return Array(bytes[..<n])
    }

    /// Reads the medium's bytes from `offset` into `buffer`, as many as fit or remain; returns
    /// how many (0 past its end). The template's bytes are read straight into `buffer`, the
    /// slots' copied over them: a download piece is one `pread` and a few small copies.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(BootMediumError) -> Int {
        guard offset >= 0, offset < size, buffer.count > 0 else { return 0 }
        let count = Int(min(Int64(buffer.count), size - offset))
        let file: InputFile
        let regions: [(offset: Int64, bytes: [UInt8])]
        switch backing {
        case .spliced(let medium): (file, regions) = (medium.template, medium.regions)
        case .built(let built): (file, regions) = (built, [])
        }
        var done = 0
        while done < count {
            let n = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done..<count]), at: offset + Int64(done))
            if n == 0 { throw BootMediumError(.imageBuildFailed, "\(file.path) ended early") }
            done += n
        }
        let end = offset + Int64(count)
        for region in regions where region.offset < end && region.offset + Int64(region.bytes.count) > offset {
            let from = max(region.offset, offset)
            let to = min(region.offset + Int64(region.bytes.count), end)
            region.bytes.withUnsafeBytes { bytes in
                let source = UnsafeRawBufferPointer(rebasing: bytes[Int(from - region.offset)..<Int(to - region.offset)])
                UnsafeMutableRawBufferPointer(rebasing: buffer[Int(from - offset)..<Int(to - offset)]).copyMemory(from: source)
            }
        }
        return count
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
        return try await planner.nodes.renewingKey(nodeID: node.nodeID, workDir: plan.root.workDir) {
            () throws(BootMediumError) -> KeyDelivery<FixedMedium> in
            let renewal = KeyRenewal(nodeID: node.nodeID, key: NodeKey.generate(), date: plan.clock.now)
            let medium = try await Self.fix(plan, configText: try plan.nodeConfig?.render(renewal: renewal), writer: writer, fileName: fileName)
            // Not out yet: a key that cannot be stored just means no URL.
            return KeyDelivery(result: medium, key: renewal.key)
        }
    }

    private static func fix(_ plan: BootPlan, configText: String?, writer: any ImageWriter, fileName: String)
        async throws(BootMediumError) -> FixedMedium
    {
        try await Blocking.run { (flag: CancellationFlag) throws(BootMediumError) in
            let inputs = try ImageInputs(plan: plan, nodeConfigText: configText)
            if let medium = writer as? MediumWriter, let spliced = try medium.splice(inputs, cancellation: flag) {
                let fixed = try FixedMedium(spliced: spliced, fileName: fileName, made: plan.clock.now, cancellation: flag)
                try inputs.plan.tree.checkUnchanged()
                return fixed
            }
            let scratch = try ScratchFile(directory: plan.root.workDir)
            try writer.write(inputs, to: DescriptorSink(fd: scratch.fd), cancellation: flag)
            try inputs.plan.tree.checkUnchanged()
            return try FixedMedium(built: scratch, fileName: fileName, made: plan.clock.now, cancellation: flag)
        }
    }
}
