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
        let isolinux = try Self.read(tree.isolinuxBinPath)
        var files: [ISOFile] = [
            ISOFile(name: "kernel", source: .path(tree.kernelPath)),
            ISOFile(name: "bootcd.img", source: .path(tree.bootcdImagePath)),
            ISOFile(name: "overlay.img", source: .bytes(overlay.bytes)),
            ISOFile(name: "pl_version", source: .bytes(Array(((plan.versionString ?? "") + "\n").utf8))),
            ISOFile(name: "isolinux.bin", source: .bytes(isolinux)),
            ISOFile(name: "ldlinux.c32", source: .path(tree.isolinuxLdlinuxC32Path)),
            ISOFile(name: "isolinux.cfg", source: .bytes(Array(config.utf8))),
        ]
        let manifest = try Self.manifest(plan, files: files, cancellation: cancellation)
        files.append(ISOFile(name: Manifest.path, source: .bytes(try manifest.encoded())))
        let layout = ISOLayout(
            volumeID: Self.volumeID(plan), files: files, bootImage: "isolinux.bin",
            isohybridMBR: try Self.read(tree.isohybridMBRPath), timestamp: plan.clock.now)
        try Isofs.write(layout, to: sink, cancellation: cancellation)
    }

    /// The boot info table libisofs writes into `isolinux.bin` after layout.
    static let bootInfoTable: [[Int64]] = [[8, 64]]

    /// The manifest of the files (tree files hashed once per identity, see ``TreeFileFacts``).
    static func manifest(_ plan: BootPlan, files: [ISOFile], cancellation: CancellationFlag)
        throws(BootMediumError) -> Manifest
    {
        var entries: [Manifest.File] = []
        for file in files {
            switch file.source {
            case .bytes(let bytes):
                let zeroed = file.name == "isolinux.bin" ? bootInfoTable : nil
                entries.append(
                    Manifest.File(
                        path: file.name, size: Int64(bytes.count),
                        sha256: Manifest.digest(bytes, zeroing: zeroed), zeroed: zeroed))
            case .path(let path):
                var info = stat()
                guard stat(path, &info) == 0 else {
                    throw BootMediumError(.missingBootcd, "The bootcd tree lacks \(path)", context: ["path": path])
                }
                let digest = try TreeFileFacts.sha256(
                    of: path, cacheDirectory: plan.root.workDir, cancellation: cancellation)
                entries.append(Manifest.File(path: file.name, size: Int64(info.st_size), sha256: digest, zeroed: nil))
            }
        }
        return Manifest.of(plan, files: entries)
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
