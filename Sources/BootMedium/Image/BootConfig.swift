/// The boot loader configuration (docs/behaviour.md §5.2): `isolinux.cfg` on an ISO, `syslinux.cfg`
/// on a USB image, both rendered from `templates/boot.cfg.mustache` (one rendering path), and
/// GRUB's `grub.cfg` for UEFI from `templates/grub.cfg.mustache` with the same console, kernel
/// arguments, `ramdisk_size` and initrds.
enum BootConfig {
    /// Renders the config.
    /// - Parameters:
    ///   - ramdiskBytes: the total uncompressed size of the initrds; `ramdisk_size` is that in KiB,
    ///     rounded up.
    ///   - initrds: `bootcd.img,overlay.img` (or `cramfs.img`).
    ///   - readOnlyRoot: `ro` instead of `rw` (cramfs).
    static func render(
        _ plan: ImagePlan, ramdiskBytes: Int64, initrds: String, readOnlyRoot: Bool = false
    ) throws(BootMediumError) -> String {
        // Absent keys, not empty strings, switch mustache sections off.
        var values: [String: Any] = [
            "ramdiskSize": String((ramdiskBytes + 1023) / 1024),
            "initrds": initrds,
            "rootMode": readOnlyRoot ? "ro" : "rw",
        ]
        if let console = plan.console { values["serialDirective"] = console.syslinuxDirective }
        if !plan.kernelCommandLine.isEmpty {
            values["kernelArguments"] = plan.kernelCommandLine.appendArguments
        }
        return try Templates.render("boot.cfg", values)
    }

    /// Renders GRUB's config (signed GRUB under shim, UEFI): a serial terminal when the plan has a
    /// console (`serial --unit --speed --parity --word`), no menu, the root found by the file
    /// every bootmedium medium carries (``Manifest/path``: the ESP inside an ISO has none, so the
    /// search lands on the ISO 9660 or FAT file system holding the kernel), then the kernel with
    /// SYSLINUX's APPEND arguments and the same initrds. Nothing a node or a tag sets reaches it
    /// unchecked: the arguments are ``KernelCommandLine``'s validated words, the rest is ours.
    static func renderGrub(
        _ plan: ImagePlan, ramdiskBytes: Int64, initrds: [String], readOnlyRoot: Bool = false
    ) throws(BootMediumError) -> String {
        var values: [String: Any] = [
            "ramdiskSize": String((ramdiskBytes + 1023) / 1024),
            "initrds": initrds.map { "/" + $0 }.joined(separator: " "),
            "rootMode": readOnlyRoot ? "ro" : "rw",
            "marker": Manifest.path,
        ]
        if let console = plan.console {
            let parity = switch console.parity {
            case .none: "no"
            case .odd: "odd"
            case .even: "even"
            }
            values["serial"] = [
                "unit": String(console.port), "speed": String(console.baud), "parity": parity, "word": String(console.bits),
            ]
        }
        if !plan.kernelCommandLine.isEmpty {
            values["kernelArguments"] = plan.kernelCommandLine.appendArguments
        }
        return try Templates.render("grub.cfg", values)
    }
}
