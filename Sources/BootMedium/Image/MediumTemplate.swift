import Crypto
import Foundation

/// A generic medium of one tree and image type whose per-request files lie in fixed-size slots
/// (``MediumSlots``): a node medium is the template with its slots written (``SplicedMedium``).
/// This is its record, kept beside the image in the template cache (``TemplateCache``).
struct MediumTemplate: Codable, Equatable, Sendable {
    static let schemaID = "bootmedium-template/1"

    /// Where one slot's bytes lie in the image.
    struct Slot: Codable, Equatable, Sendable {
        var name: String
        var offset: Int64
        var capacity: Int
    }

    var schema = Self.schemaID
    /// The template's key (``MediumTemplate/key(_:slots:inputs:)``).
    var key: String
    /// The image's size in bytes.
    var size: Int64
    /// The slots, found in the written image by our ISO 9660 / FAT reader.
    var slots: [Slot]
    /// The manifest entries of every file outside the slots.
    var fixedFiles: [Manifest.File]
    /// The image file's identity once in the cache (``FileIdentity``): a template changed
    /// since is not used.
    var identity: String

    /// The key of `plan`'s template: what the template's bytes depend on — the tool, the image
    /// type, the tree files it is made of (their content, device, inode, size and modification
    /// time, so that a replaced or touched file gives a new key), the PLC's name and version
    /// string, the slot capacities
    /// and `SOURCE_DATE_EPOCH` (every date and derived serial number). The node, its key, its
    /// options and the console are not in it: they reach the medium through the slots.
    static func key(_ plan: ImagePlan, slots: MediumSlots, inputs: [InputFile], cancellation: CancellationFlag)
        throws(BootMediumError) -> String
    {
        var lines = [
            schemaID, "tool \(BootMediumVersion.string)", "type \(plan.type.rawValue)",
            "nodefamily \(plan.nodefamily.name)", "tree \(plan.tree.path) \(plan.tree.version)",
            "plc \(plan.configuration.plcName ?? "")", "version \(plan.versionString)",
            "epoch \(plan.clock.sourceDateEpoch.map(String.init) ?? "none")",
            "slots \(slots.names.map { "\($0)=\(slots.capacity($0))" }.joined(separator: " "))",
        ]
        for input in inputs {
            // Not the change time: a new hard link to a tree file changes it, not the file. A
            // rewrite that keeps the modification time changes the digest (computed anew for
            // any new change time).
            let digest = try TreeFileFacts.sha256(of: input, cacheDirectory: plan.root.workDir, cancellation: cancellation)
            let id = input.identity
            lines.append("file \(input.path) \(id.device):\(id.inode):\(id.size):\(id.modified) \(digest)")
        }
        return Digest.sha256(Array(lines.joined(separator: "\n").utf8))
    }

    /// The slot named `name`.
    func slot(_ name: String) -> Slot? { slots.first { $0.name == name } }
}
