import Foundation

/// Writes `iso` images (node-iso, generic-iso) with libisofs (BEHAVIOUR.md §5.3): Rock Ridge +
/// Joliet, El Torito no-emulation boot of `isolinux.bin` (load size 4, boot info table,
/// `boot.cat`), `ldlinux.c32` beside it, and an isohybrid MBR from the tree's `isohdpfx.bin` so
/// the same image boots from a USB disk. All dates come from the plan's clock.
struct ISOImageWriter: ImageWriter {
    func write(_ inputs: ImageInputs, to sink: any ImageSink, cancellation: CancellationFlag)
        throws(BootMediumError)
    {
        let plan = inputs.plan
        guard let tree = plan.tree else {
            throw BootMediumError(.imageBuildFailed, "An image needs a bootcd tree")
        }
        let overlay = try Overlay.build(plan, nodeConfigText: inputs.nodeConfigText)
        let bootcdSize = try RamdiskSizes.uncompressedSize(
            of: tree.bootcdImagePath, cacheDirectory: plan.root.workDir, cancellation: cancellation)
        let config = try BootConfig.render(
            plan, ramdiskBytes: bootcdSize + overlay.uncompressedSize,
            initrds: "bootcd.img,overlay.img")
        let layout = ISOLayout(
            volumeID: Self.volumeID(plan),
            files: [
                ISOFile(name: "kernel", source: .path(tree.kernelPath)),
                ISOFile(name: "bootcd.img", source: .path(tree.bootcdImagePath)),
                ISOFile(name: "overlay.img", source: .bytes(overlay.bytes)),
                ISOFile(name: "pl_version", source: .bytes(Array(((plan.versionString ?? "") + "\n").utf8))),
                ISOFile(name: "isolinux.bin", source: .path(tree.isolinuxBinPath)),
                ISOFile(name: "ldlinux.c32", source: .path(tree.isolinuxLdlinuxC32Path)),
                ISOFile(name: "isolinux.cfg", source: .bytes(Array(config.utf8))),
            ],
            bootImage: "isolinux.bin",
            isohybridMBR: try Self.read(tree.isohybridMBRPath),
            timestamp: plan.clock.now)
        for file in layout.files {
            if case .path(let path) = file.source, access(path, R_OK) != 0 {
                throw BootMediumError(
                    .missingBootcd, "The bootcd tree lacks \(path)", context: ["path": path])
            }
        }
        try Isofs.write(layout, to: sink, cancellation: cancellation)
    }

    static func read(_ path: String) throws(BootMediumError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw BootMediumError(.missingBootcd, "The bootcd tree lacks \(path)", context: ["path": path])
        }
        return Array(data)
    }

    /// `<PLC_NAME>_<version>` in ISO 9660 d-characters (A-Z 0-9 _), at most 32.
    static func volumeID(_ plan: BootPlan) -> String {
        let text = "\(plan.configuration.plcName ?? "BOOTCD")_\(plan.tree?.version ?? "")".uppercased()
        return String(
            text.map { ($0.isASCII && ($0.isLetter || $0.isNumber)) ? $0 : "_" }.prefix(32))
    }
}
