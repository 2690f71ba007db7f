/// How many bytes each per-request file of a plain (non-cramfs) medium may take: the fixed-size
/// slots a medium template keeps for them (docs/templates.md). A request whose content does not
/// fit is built in full, with its slots grown to fit (``grown(toFit:)``).
public struct SlotCapacities: Codable, Hashable, Sendable {
    /// `overlay.img`: the gzip'd newc cpio, then zeros (the kernel's initramfs unpacker skips
    /// zero padding).
    public var overlay: Int
    /// `isolinux.cfg` / `syslinux.cfg` and GRUB's `grub.cfg`, padded with newlines.
    public var bootConfig: Int
    /// `bootmedium.json`, padded with spaces and a final newline.
    public var manifest: Int

    /// 1 MiB overlay, 16 KiB per boot config, 64 KiB manifest.
    public static let standard = SlotCapacities(overlay: 1 << 20, bootConfig: 16 << 10, manifest: 64 << 10)

    public init(overlay: Int, bootConfig: Int, manifest: Int) {
        self.overlay = overlay
        self.bootConfig = bootConfig
        self.manifest = manifest
    }
}

/// The slots of one plain medium: their names in the medium and their capacities.
struct MediumSlots: Sendable, Equatable {
    static let overlayName = "overlay.img"

    /// `isolinux.cfg` or `syslinux.cfg`.
    let configName: String
    /// Where GRUB's config lies (`boot/grub/grub.cfg` on an ISO, `EFI/BOOT/grub.cfg` on FAT),
    /// nil for a BIOS-only medium.
    let grubName: String?
    let capacities: SlotCapacities

    /// Every slot's name, the manifest last.
    var names: [String] { [Self.overlayName, configName] + (grubName.map { [$0] } ?? []) + [Manifest.path] }

    /// The bytes slot `name` holds.
    func capacity(_ name: String) -> Int {
        switch name {
        case Self.overlayName: capacities.overlay
        case Manifest.path: capacities.manifest
        default: capacities.bootConfig
        }
    }

    /// What a template holds in slot `name` before any request: zeros for the overlay (an
    /// empty initramfs), padding alone for the texts.
    func placeholder(_ name: String) -> [UInt8] {
        pad([], name)
    }

    /// `content` padded to slot `name`'s capacity, or nil when it does not fit.
    func padded(_ content: [UInt8], _ name: String) -> [UInt8]? {
        fits(content, name) ? pad(content, name) : nil
    }

    /// Whether `content` fits slot `name` (a text slot keeps at least one padding byte).
    func fits(_ content: [UInt8], _ name: String) -> Bool {
        content.count <= capacity(name) - (name == Self.overlayName ? 0 : 1)
    }

    private func pad(_ content: [UInt8], _ name: String) -> [UInt8] {
        let free = capacity(name) - content.count
        switch name {
        case Self.overlayName: return content + [UInt8](repeating: 0, count: free)
        case Manifest.path: return content + [UInt8](repeating: 0x20, count: free - 1) + [0x0A]
        default: return content + [UInt8](repeating: 0x0A, count: free)
        }
    }

    /// Capacities that fit `contents` (by slot name): each slot that is too small grows to the
    /// next power of two that holds its content.
    func grown(toFit contents: [String: [UInt8]]) -> MediumSlots {
        var capacities = capacities
        func fit(_ current: Int, _ needed: Int) -> Int {
            var size = current
            while size < needed { size *= 2 }
            return size
        }
        for (name, bytes) in contents {
            let needed = bytes.count + (name == Self.overlayName ? 0 : 1)
            switch name {
            case Self.overlayName: capacities.overlay = fit(capacities.overlay, needed)
            case Manifest.path: capacities.manifest = fit(capacities.manifest, needed)
            default: capacities.bootConfig = fit(capacities.bootConfig, needed)
            }
        }
        return MediumSlots(configName: configName, grubName: grubName, capacities: capacities)
    }
}
