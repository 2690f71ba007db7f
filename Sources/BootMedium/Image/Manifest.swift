import Foundation

/// The small manifest every image bootmedium writes carries, at ``Manifest/path`` in the
/// image's root: what the image holds (path, size, SHA-256 of every other file), how it was
/// asked for (action, type, nodefamily, bootcd version, console, kernel arguments) and by which
/// tool. `bootmedium inspect` checks it against the image; `bootmedium verify` against a plan.
///
/// A file the writer patches in place after layout records the digest of its bytes with that
/// region zeroed, named in `zeroed`: `isolinux.bin` on an ISO (the El Torito boot info table,
/// bytes 8..<64).
public struct Manifest: Codable, Equatable, Sendable {
    /// The manifest's file name in the image root.
    public static let path = "bootmedium.json"
    /// The schema identifier written in every manifest.
    public static let schemaID = "bootmedium-manifest/1"

    /// One file of the image.
    public struct File: Codable, Equatable, Sendable {
        /// The path in the image, without a leading slash.
        public var path: String
        /// Bytes.
        public var size: Int64
        /// SHA-256, lower-case hex.
        public var sha256: String
        /// Byte ranges zeroed before hashing (`[start, end)` pairs), when the writer patches
        /// them after layout.
        public var zeroed: [[Int64]]?
        /// The files inside this file when it is itself a FAT volume (the ESP image `efi.img`
        /// of an ISO, ``Manifest/esp``), paths relative to that volume's root.
        public var files: [File]? = nil
    }

    /// ``schemaID``.
    public var schema: String
    /// `bootmedium VERSION`.
    public var tool: String
    /// The action.
    public var action: String
    /// The image type (`iso`, `usb`, ...).
    public var imageType: String
    /// The nodefamily.
    public var nodefamily: String
    /// The bootcd version of the tree used.
    public var bootcdVersion: String
    /// The serial console spec (`ttyS0:115200:n:8`) or nil.
    public var console: String?
    /// The extra kernel arguments, in order.
    public var kernelArguments: [String]
    /// The request's options (node tags are not included: they are read again by `verify`).
    public var options: [String]?
    /// The node's id, for node images.
    public var nodeID: Int?
    /// Every other file of the image.
    public var files: [File]
    /// The EFI system partition an ISO carries after its ISO 9660 data (GPT partition 2, loaded
    /// by El Torito's UEFI entry): its size and SHA-256, and its files (paths in the volume).
    public var esp: File? = nil
    /// The files that are per-request slots of a template (docs/templates.md), each stored at
    /// its slot's size: the same for a medium spliced from a template and one built in full.
    public var slots: [String]? = nil

    /// The manifest's JSON (sorted keys, so the same plan gives the same bytes).
    public func encoded() throws(BootMediumError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(self)) + [0x0A]
        } catch {
            throw BootMediumError(.imageBuildFailed, "Cannot encode the manifest: \(error)")
        }
    }

    /// Decodes a manifest read from an image.
    public static func decode(_ bytes: [UInt8]) throws(BootMediumError) -> Manifest {
        do {
            return try JSONDecoder().decode(Manifest.self, from: Data(bytes))
        } catch {
            throw BootMediumError(.invalidImage, "The image's manifest is not valid: \(error)")
        }
    }

    /// The manifest of `plan` listing `files`.
    static func of(_ plan: ImagePlan, files: [File], slots: [String]? = nil) -> Manifest {
        Manifest(
            schema: schemaID, tool: "bootmedium \(BootMediumVersion.string)",
            action: plan.action.rawValue, imageType: plan.type.rawValue,
            nodefamily: plan.nodefamily.name, bootcdVersion: plan.tree.version,
            console: plan.console?.spec, kernelArguments: plan.kernelCommandLine.arguments,
            options: plan.options, nodeID: plan.node?.nodeID,
            // The ESP image is a partition of an ISO, not one of its files.
            files: files.filter { !isESP($0) }.sorted { $0.path < $1.path }, esp: files.first(where: isESP), slots: slots)
    }

    /// Whether `file` is an ISO's ESP image (the FAT volume appended as a partition): the one
    /// entry that lists the files inside it (``MediumFile/espFiles``).
    static func isESP(_ file: File) -> Bool { file.files != nil }

    /// The SHA-256 of `bytes` with `zeroed` ranges set to zero.
    static func digest(_ bytes: [UInt8], zeroing zeroed: [[Int64]]?) -> String {
        var copy = bytes
        zero(&copy, at: 0, ranges: zeroed)
        return Digest.sha256(copy)
    }

    /// Sets to zero the parts of `chunk` (which starts at file offset `offset`) that fall in
    /// `ranges` (`[start, end)` pairs of file offsets).
    static func zero(_ chunk: inout [UInt8], at offset: Int64, ranges: [[Int64]]?) {
        for range in ranges ?? [] where range.count == 2 {
            let start = max(range[0], offset)
            let end = min(range[1], offset + Int64(chunk.count))
            if start < end { for i in Int(start - offset)..<Int(end - offset) { chunk[i] = 0 } }
        }
    }
}
