/// The `iso` image type (node-iso, generic-iso) laid out by libisofs (docs/behaviour.md §5.3): Rock
/// Ridge + Joliet, El Torito no-emulation boot of `isolinux.bin` (load size 4, boot info table,
/// `boot.cat`), `ldlinux.c32` beside it, an isohybrid MBR from the tree's `isohdpfx.bin` so the
/// same image boots from a USB disk, and the UEFI entry with its ESP image when the tree has a
/// UEFI loader. All dates come from the plan's clock.
struct ISOMediumLayout: MediumLayout {
    /// The boot info table libisofs writes into `isolinux.bin` after layout.
    static let bootInfoTable: [[Int64]] = [[8, 64]]

    var configName: String { "isolinux.cfg" }
    var uefiPlacement: UEFIPlacement { .espImage }

    func loaderFiles(_ tree: BootcdTree) throws(BootMediumError) -> [MediumFile] {
        [
            MediumFile(name: "isolinux.bin", source: .bytes(try MediumContents.read(tree, tree.isolinuxBinPath)), zeroed: Self.bootInfoTable),
            MediumFile(name: "ldlinux.c32", source: .file(try tree.file(tree.isolinuxLdlinuxC32Path, role: .loader))),
        ]
    }

    func treeInputs(_ tree: BootcdTree) throws(BootMediumError) -> [InputFile] {
        try [tree.isolinuxBinPath, tree.isolinuxLdlinuxC32Path, tree.isohybridMBRPath].map { path throws(BootMediumError) in
            try tree.file(path, role: .loader)
        }
    }

    func write(_ files: [MediumFile], plan: ImagePlan, to sink: any ImageSink, cancellation: CancellationFlag)
        throws(BootMediumError)
    {
        let tree = plan.tree
        // The ESP image is no file of the ISO 9660 file system: it is appended as a partition.
        var esp: [UInt8]?
        var inISO: [ISOFile] = []
        for file in files {
            if file.isESP, case .bytes(let bytes) = file.source {
                esp = bytes
            } else {
                inISO.append(ISOFile(name: file.name, source: file.source))
            }
        }
        let layout = ISOLayout(
            volumeID: MediumContents.label(plan, length: 32), files: inISO,
            bootImage: "isolinux.bin", isohybridMBR: try MediumContents.read(tree, tree.isohybridMBRPath),
            espImage: esp, gptGUID: MediumContents.guid(plan, purpose: "gpt disk guid"), timestamp: plan.clock.now)
        try Isofs.write(layout, to: sink, cancellation: cancellation)
    }

    func locate(_ names: [String], inImageAt path: String) throws(BootMediumError) -> [String: (offset: Int64, size: Int64)] {
        let iso = try ISO9660Reader(try ImageBytes(path: path))
        var found: [String: (offset: Int64, size: Int64)] = [:]
        for name in names {
            if let extent = try iso.contiguousExtent("/" + name) { found[name] = extent }
        }
        return found
    }
}
