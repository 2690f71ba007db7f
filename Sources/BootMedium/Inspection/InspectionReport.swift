/// What `bootmedium inspect` reports about an image. The JSON form follows the versioned schema
/// `docs/inspect-schema.json` (``schemaID``); fields absent for an image type are omitted.
public struct InspectionReport: Codable, Equatable, Sendable {
    /// The schema identifier of this report's JSON.
    public static let schemaID = "bootmedium-inspect/1"

    /// The image file.
    public struct Image: Codable, Equatable, Sendable {
        public var path: String
        public var size: Int64
        /// `iso`, `usb` (FAT superfloppy), `usb_partition` (MBR disk), `cramfs` or `unknown`.
        public var type: String
        /// libblkid's filesystem type (`iso9660`, `vfat`, `cramfs`).
        public var filesystem: String?
        /// libblkid's partition table type (`dos`, `gpt`).
        public var partitionTable: String?
    }
    /// An El Torito boot entry.
    public struct ElToritoEntry: Codable, Equatable, Sendable {
        public var platform: String
        public var bootable: Bool
        public var emulation: String
        public var loadSectors: Int
        public var loadRBA: Int
        public var image: String?
        public var bootInfoTable: Bool
    }
    /// An MBR partition.
    public struct Partition: Codable, Equatable, Sendable {
        public var number: Int
        public var active: Bool
        public var type: String
        public var startSector: Int64
        public var sectors: Int64
    }
    /// A GPT (an ISO's hybrid layout): the primary header at LBA 1, checked, and its partitions.
    public struct GPT: Codable, Equatable, Sendable {
        public var diskGUID: String
        public var firstUsableLBA: Int64
        public var lastUsableLBA: Int64
        /// Whether the primary header's and the entry array's CRC-32 are right.
        public var headerCRCOK: Bool
        public var entriesCRCOK: Bool
        /// Whether the backup header (at the primary's alternate LBA) is present, with a right
        /// CRC-32 and the primary's entries.
        public var backupOK: Bool
        public var partitions: [GPTPartition]
    }
    /// A used GPT partition entry (sectors of 512 bytes).
    public struct GPTPartition: Codable, Equatable, Sendable {
        public var number: Int
        /// The type GUID, and its name when it is one bootmedium knows (`EFI system`, `basic data`).
        public var type: String
        public var typeName: String?
        public var guid: String
        public var firstLBA: Int64
        /// Inclusive.
        public var lastLBA: Int64
        public var name: String
        /// The attribute bits, hex.
        public var attributes: String
    }
    /// The EFI system partition image an ISO's El Torito EFI entry loads (a FAT volume).
    public struct ESP: Codable, Equatable, Sendable {
        /// The file in the ISO (`/efi.img`), or nil when the entry points at no file.
        public var path: String?
        public var volumeLabel: String
        public var files: [File]
        /// Why the volume could not be read, when it could not.
        public var problem: String? = nil
    }
    /// SYSLINUX on a FAT filesystem.
    public struct Syslinux: Codable, Equatable, Sendable {
        public var installed: Bool
        public var version: String?
    }
    /// A file of the image's filesystem.
    public struct File: Codable, Equatable, Sendable {
        public var path: String
        public var size: Int64
    }
    /// What an archive entry is.
    public enum EntryKind: String, Codable, Equatable, Sendable {
        case file, directory, symlink
        /// A device, FIFO or socket.
        case special
    }
    /// A file of the overlay archive.
    public struct OverlayFile: Codable, Equatable, Sendable {
        public var path: String
        public var mode: String
        public var kind: EntryKind
        public var size: Int64
        public var sha256: String?
    }
    /// The embedded manifest, checked against the image.
    public struct ManifestCheck: Codable, Equatable, Sendable {
        /// What the check found.
        public enum Status: String, Codable, Equatable, Sendable {
            /// Every listed file is in the image with its size and SHA-256, and no other.
            case ok
            /// The image differs from its manifest (``ManifestCheck/problems`` says how).
            case mismatch
            /// The image has no manifest.
            case missing
            /// The manifest cannot be read (too big, not JSON, another schema).
            case invalid
        }
        public var status: Status
        /// One line per difference.
        public var problems: [String]
        public var manifest: Manifest?
    }

    /// A cramfs root filesystem: the image itself, or `cramfs.img` on an ISO or FAT image.
    public struct CramfsRoot: Codable, Equatable, Sendable {
        /// `/cramfs.img` on the medium, absent when the image is the cramfs.
        public var path: String?
        public var volumeName: String
        public var size: Int64
        /// Whether the stored CRC-32 matches the image.
        public var crcOK: Bool
        /// Inodes, the root included.
        public var inodes: Int
        /// Regular files.
        public var files: Int
        /// Whether `/etc/inittab` starts `pl_rsysinit` and that script exists
        /// (docs/behaviour.md §5.4).
        public var readOnlyRoot: Bool
    }

    public var schema = InspectionReport.schemaID
    public var image: Image
    public var volumeID: String?
    public var elTorito: [ElToritoEntry]?
    public var partitions: [Partition]?
    /// The GPT, when the image has one (ISOs: the hybrid layout's).
    public var gpt: GPT? = nil
    /// The ESP image of an ISO's EFI boot entry.
    public var esp: ESP? = nil
    public var syslinux: Syslinux?
    public var efiLoader: Bool
    public var files: [File]
    public var bootConfigs: [ParsedBootConfig]
    /// GRUB's configs (UEFI): `/boot/grub/grub.cfg` on an ISO, `/EFI/BOOT/grub.cfg` on FAT.
    public var grubConfigs: [ParsedGrubConfig]? = nil
    public var overlay: [OverlayFile]?
    public var nodeConfig: ParsedNodeConfig?
    public var bootcdVersion: String?
    public var manifest: ManifestCheck
    public var cramfs: CramfsRoot?

    /// The short human form.
    public var summary: String {
        var lines: [String] = []
        let mib = String(format: "%.1f MiB", Double(image.size) / 1_048_576)
        lines.append("image     \(image.path) (\(mib)): \(image.type)"
            + [image.filesystem, image.partitionTable.map { "\($0) partition table" }].compactMap { $0 }.map { ", " + $0 }.joined())
        if let volumeID { lines.append("volume    \(volumeID)") }
        if let bootcdVersion { lines.append("bootcd    \(bootcdVersion)") }
        for entry in elTorito ?? [] {
            lines.append("el torito \(entry.platform) \(entry.bootable ? "bootable" : "not bootable"), emulation \(entry.emulation), load \(entry.loadSectors) sectors from \(entry.image ?? "block \(entry.loadRBA)")\(entry.bootInfoTable ? ", boot info table" : "")")
        }
        for p in partitions ?? [] {
            lines.append("partition \(p.number)\(p.active ? " (active)" : "") type \(p.type), sectors \(p.startSector)+\(p.sectors)")
        }
        if let gpt {
            lines.append("gpt       disk \(gpt.diskGUID), header \(gpt.headerCRCOK && gpt.entriesCRCOK ? "ok" : "BAD CRC"), backup \(gpt.backupOK ? "ok" : "missing or bad")")
            for p in gpt.partitions {
                lines.append("          \(p.number) \(p.typeName ?? p.type) \"\(p.name)\", sectors \(p.firstLBA)-\(p.lastLBA)")
            }
        }
        if let esp {
            lines.append("esp       \(esp.path ?? "(no file)") (\(esp.volumeLabel)): \(esp.files.map { $0.path }.joined(separator: " "))")
        }
        if let syslinux { lines.append("syslinux  \(syslinux.installed ? "installed" + (syslinux.version.map { " (\($0))" } ?? "") : "not installed")") }
        if efiLoader { lines.append("efi       loader present") }
        for config in bootConfigs {
            let serial = config.serial.map { ", serial \($0.port) \($0.baud.map(String.init) ?? "")" } ?? ""
            lines.append("config    \(config.path): default \(config.defaultLabel ?? "-")\(serial)")
            if let entry = config.defaultEntry {
                lines.append("          kernel \(entry.kernel ?? "-"), initrd \(entry.initrds.joined(separator: ",")), append \(entry.append.joined(separator: " "))")
            }
        }
        for grub in grubConfigs ?? [] {
            let serial = grub.serial.map { ", serial \($0.unit) \($0.speed.map(String.init) ?? "")" } ?? ""
            lines.append("grub      \(grub.path): root by /\(grub.rootMarker ?? "-")\(serial)")
            lines.append("          kernel \(grub.kernel ?? "-"), initrd \(grub.initrds.joined(separator: " ")), append \(grub.arguments.joined(separator: " "))")
        }
        if let overlay { lines.append("overlay   \(overlay.filter { $0.kind == .file }.count) files") }
        if let cramfs {
            lines.append(
                "cramfs    \(cramfs.path ?? "the image") (\(cramfs.volumeName)): \(cramfs.inodes) inodes, \(cramfs.files) files, CRC \(cramfs.crcOK ? "ok" : "BAD")\(cramfs.readOnlyRoot ? ", read-only root via pl_rsysinit" : "")")
        }
        if let node = nodeConfig {
            let host = [node.value("HOST_NAME"), node.value("DOMAIN_NAME")].compactMap { $0 }.joined(separator: ".")
            lines.append("node      \(host) (\(node.value("IP_METHOD") ?? "?"))\(node.value("NODE_ID").map { ", NODE_ID \($0), key \(node.value("NODE_KEY") ?? "none")" } ?? "")")
        } else if overlay != nil || cramfs != nil {
            lines.append("node      none (generic image)")
        }
        lines.append("manifest  \(manifest.status.rawValue)\(manifest.manifest.map { " (\($0.files.count) files, \($0.tool))" } ?? "")")
        for problem in manifest.problems { lines.append("          - \(problem)") }
        return lines.joined(separator: "\n") + "\n"
    }
}
