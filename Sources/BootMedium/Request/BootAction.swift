/// The six actions of `GetBootMedium`.
public enum BootAction: String, Sendable, CaseIterable {
    /// The node config text without `NODE_ID`/`NODE_KEY`; the key is not renewed.
    case nodePreview = "node-preview"
    /// The node config text with a renewed key.
    case nodeFloppy = "node-floppy"
    /// A bootable ISO9660 image carrying the node config (renews the key).
    case nodeISO = "node-iso"
    /// A bootable USB image carrying the node config (renews the key).
    case nodeUSB = "node-usb"
    /// The nodefamily's generic ISO, without node config.
    case genericISO = "generic-iso"
    /// The nodefamily's generic USB image, without node config.
    case genericUSB = "generic-usb"

    /// Parses an action name; anything else is `unknown-action`.
    public init(parsing name: String) throws(BootMediumError) {
        guard let action = BootAction(rawValue: name) else {
            throw BootMediumError(
                .unknownAction,
                "Unknown action \(name.debugDescription), expected one of "
                    + BootAction.allCases.map(\.rawValue).joined(separator: "|"),
                context: ["action": name])
        }
        self = action
    }

    /// Whether the action concerns one node (`node-*`).
    public var needsNode: Bool { !isGeneric }
    /// Whether the action is `generic-iso` or `generic-usb`.
    public var isGeneric: Bool { self == .genericISO || self == .genericUSB }
    /// Whether the node's key is renewed (and so `NODE_ID`/`NODE_KEY` are written).
    public var renewsKey: Bool { self == .nodeFloppy || self == .nodeISO || self == .nodeUSB }
    /// Whether the result is node config text rather than an image.
    public var isText: Bool { self == .nodePreview || self == .nodeFloppy }
    /// The medium family: `.iso`, `.usb` or `.text`.
    public var medium: MediumKind {
        switch self {
        case .nodePreview, .nodeFloppy: .text
        case .nodeISO, .genericISO: .iso
        case .nodeUSB, .genericUSB: .usb
        }
    }
    /// The file suffix (`%s`): `.txt`, `.iso` or `.usb`.
    public var suffix: String { medium.suffix }
}

/// What kind of medium an action produces.
public enum MediumKind: String, Sendable {
    case text, iso, usb
    /// `.txt`, `.iso` or `.usb`.
    public var suffix: String { "." + (self == .text ? "txt" : rawValue) }
}

/// The concrete image layout to write (docs/behaviour.md §5.3).
public enum ImageType: String, Sendable, CaseIterable {
    case iso
    case usb
    case usbPartition = "usb_partition"
    case isoCramfs = "iso_cramfs"
    case usbCramfs = "usb_cramfs"

    /// Whether the initrd is one cramfs image.
    public var isCramfs: Bool { self == .isoCramfs || self == .usbCramfs }
    /// The ending of a default output name: `.iso`, `.usb`, `-partition.usb`, `-cramfs.iso`, `-cramfs.usb`.
    public var nameEnding: String {
        switch self {
        case .iso: ".iso"
        case .usb: ".usb"
        case .usbPartition: "-partition.usb"
        case .isoCramfs: "-cramfs.iso"
        case .usbCramfs: "-cramfs.usb"
        }
    }
}
