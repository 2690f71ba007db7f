/// The UEFI boot chain a medium carries when its bootcd tree has one (`efi/`, tools/demo/LAYOUT.md):
/// shim as the removable-media loader `EFI/BOOT/BOOTX64.EFI`, signed GRUB beside it as
/// `grubx64.efi` (the second stage shim loads from its own directory), shim's MOK manager
/// `mmx64.efi` when the tree has it, and `grub.cfg` there too: Debian's GRUB for removable media
/// (`gcdx64.efi.signed`) reads `$cmdpath/grub.cfg` when no `/.disk/info` is found. GRUB then
/// reads the kernel and initrds from the ISO 9660 or FAT file system itself, so nothing is
/// stored twice. A tree without `efi/shimx64.efi` gives BIOS-only media, never a failure.
struct UEFIBoot {
    /// Where the files go: `EFI/BOOT/` of a FAT volume (the USB image itself, or the ESP image
    /// an ISO's El Torito EFI entry points at).
    static let directory = "EFI/BOOT/"
    /// The ESP image's name in an ISO's root directory.
    static let espImageName = "efi.img"
    /// GRUB's config in an ISO 9660 file system.
    static let isoGrubConfig = "boot/grub/grub.cfg"

    let shim: InputFile
    let grub: InputFile
    let mokManager: InputFile?

    /// The tree's UEFI loader, or nil when the tree has none.
    static func of(_ tree: BootcdTree) throws(BootMediumError) -> UEFIBoot? {
        func optional(_ path: String) throws(BootMediumError) -> InputFile? {
            do {
                return try tree.file(path, role: .loader)
            } catch where error.code == .missingBootcd {
                return nil
            }
        }
        guard let shim = try optional(tree.shimPath) else { return nil }
        return UEFIBoot(shim: shim, grub: try tree.file(tree.grubPath, role: .loader), mokManager: try optional(tree.mokManagerPath))
    }

    /// The files under `EFI/BOOT/`, with `config` as `grub.cfg` when given.
    func files(config: [UInt8]?) -> [MediumFile] {
        var files = [
            MediumFile(name: Self.directory + "BOOTX64.EFI", source: .file(shim)),
            MediumFile(name: Self.directory + "grubx64.efi", source: .file(grub)),
        ]
        if let mokManager { files.append(MediumFile(name: Self.directory + "mmx64.efi", source: .file(mokManager))) }
        if let config { files.append(MediumFile(name: Self.directory + "grub.cfg", source: .bytes(config))) }
        return files
    }

    /// What an ISO 9660 file system carries for GRUB beside the ESP image: `/.disk/info` (the
    /// medium's name), which GRUB for removable media searches to find its root on a CD and on a
    /// disk alike, and the config it then reads, `/boot/grub/grub.cfg`. (`$cmdpath` names the
    /// disc, not the El Torito image, on a CD.)
    static func isoFiles(config: [UInt8], versionString: String) -> [MediumFile] {
        [
            MediumFile(name: ".disk/info", source: .bytes(Array((versionString + "\n").utf8))),
            MediumFile(name: isoGrubConfig, source: .bytes(config)),
        ]
    }

    /// An EFI system partition image (a FAT volume, sized to fit) holding `files`, for the El
    /// Torito EFI boot entry of an ISO, with the manifest entries of those files; its serial
    /// number derives from the plan's inputs under `SOURCE_DATE_EPOCH`.
    static func espImage(_ files: [MediumFile], plan: ImagePlan, cancellation: CancellationFlag)
        throws(BootMediumError) -> (bytes: [UInt8], files: [Manifest.File])
    {
        var specs: [FATFileSpec] = []
        var entries: [Manifest.File] = []
        for file in files {
            let path = file.name.split(separator: "/").map(String.init)
            let bytes: [UInt8]
            switch file.source {
            case .bytes(let given): bytes = given
            case .file(let input): bytes = try input.readAll()
            }
            specs.append(FATFileSpec(path: path, bytes: bytes))
            entries.append(Manifest.File(path: file.name, size: Int64(bytes.count), sha256: Digest.sha256(bytes), zeroed: nil))
        }
        let options = FATVolumeOptions(
            label: "EFIBOOT", volumeID: MediumContents.identity(plan, purpose: "esp volume id"), timestamp: plan.clock.now)
        let volume = try FATVolume.sized(files: specs, bootLoader: nil, options: options, freeBytes: 0, leadingSectors: 0)
        let sink = MemorySink()
        let stream = ImageStream(sink: sink, cancellation: cancellation)
        try volume.write(to: stream)
        try stream.flush()
        return (Array(sink.data), entries.sorted { $0.path < $1.path })
    }
}
