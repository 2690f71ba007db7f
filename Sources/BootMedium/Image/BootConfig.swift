/// The boot loader configuration (BEHAVIOUR.md §5.2): `isolinux.cfg` on an ISO, `syslinux.cfg`
/// on a USB image, both rendered from `templates/boot.cfg.mustache` (one rendering path).
enum BootConfig {
    /// Renders the config.
    /// - Parameters:
    ///   - ramdiskBytes: the total uncompressed size of the initrds; `ramdisk_size` is that in KiB,
    ///     rounded up.
    ///   - initrds: `bootcd.img,overlay.img` (or `cramfs.img`).
    ///   - readOnlyRoot: `ro` instead of `rw` (cramfs).
    static func render(
        _ plan: BootPlan, ramdiskBytes: Int64, initrds: String, readOnlyRoot: Bool = false
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
}
