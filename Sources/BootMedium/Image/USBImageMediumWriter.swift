/// The `usb` (FAT superfloppy) and `usb_partition` (MBR + FAT) image types (docs/behaviour.md §5.3),
/// laid out by the pure-Swift FAT writer and SYSLINUX installer: the same files as the ISO with
/// `syslinux.cfg` (the same template as `isolinux.cfg`), the tree's SYSLINUX payload, and the
/// UEFI loader in `EFI/BOOT/` when the tree has one.
struct FATMediumLayout: MediumLayout {
    let partitioned: Bool

    var configName: String { "syslinux.cfg" }
    var uefiPlacement: UEFIPlacement { .volume }

    func loaderFiles(_ tree: BootcdTree) throws(BootMediumError) -> [MediumFile] { [] }

    func treeInputs(_ tree: BootcdTree) throws(BootMediumError) -> [InputFile] {
        let paths = [tree.syslinuxBootSectorPath, tree.syslinuxLdlinuxSysPath, tree.syslinuxLdlinuxC32Path] + (partitioned ? [tree.mbrPath] : [])
        return try paths.map { path throws(BootMediumError) in try tree.file(path, role: .loader) }
    }

    func write(_ contents: [MediumFile], plan: ImagePlan, to sink: any ImageSink, cancellation: CancellationFlag)
        throws(BootMediumError)
    {
        let tree = plan.tree
        // Names such as EFI/BOOT/BOOTX64.EFI are paths on the volume.
        let files = contents.map { FATFileSpec(path: $0.name.split(separator: "/").map(String.init), source: $0.source) }
        let payload = try SyslinuxPayload(
            bootSectorTemplate: MediumContents.read(tree, tree.syslinuxBootSectorPath),
            ldlinuxSys: MediumContents.read(tree, tree.syslinuxLdlinuxSysPath),
            ldlinuxC32: MediumContents.read(tree, tree.syslinuxLdlinuxC32Path))
        let partitioning: USBPartitioning =
            partitioned
            ? .mbr(bootCode: try MediumContents.read(tree, tree.mbrPath), diskSignature: MediumContents.identity(plan, purpose: "disk signature"))
            : .superfloppy
        let options = USBImageOptions(
            label: MediumContents.label(plan, length: 11), volumeID: MediumContents.identity(plan, purpose: "volume id"),
            timestamp: plan.clock.now, partitioning: partitioning)
        try USBImageWriter.write(files: files, syslinux: payload, options: options, to: sink, cancellation: cancellation)
    }

    func locate(_ names: [String], inImageAt path: String) throws(BootMediumError) -> [String: (offset: Int64, size: Int64)] {
        let image = try ImageBytes(path: path)
        var offset: Int64 = 0
        if partitioned {
            let mbr = try MBR(decoding: try image.read(0, 512, what: "MBR"))
            offset = Int64(mbr.partitions[0].startLBA) * 512
        }
        let fat = try FATReader(image, offset: offset)
        var found: [String: (offset: Int64, size: Int64)] = [:]
        for name in names {
            if let extent = try fat.contiguousExtent("/" + name) { found[name] = extent }
        }
        return found
    }
}
