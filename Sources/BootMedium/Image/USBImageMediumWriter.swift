/// Writes `usb` (FAT superfloppy) and `usb_partition` (MBR + FAT) images (docs/behaviour.md §5.3)
/// with the pure-Swift FAT writer and SYSLINUX installer: the same files as the ISO with
/// `syslinux.cfg` (the same template as `isolinux.cfg`) and the tree's SYSLINUX payload.
struct USBImageMediumWriter: ImageWriter {
    let partitioned: Bool

    func write(_ inputs: ImageInputs, to sink: any ImageSink, cancellation: CancellationFlag)
        throws(BootMediumError)
    {
        let plan = inputs.plan
        guard let tree = plan.tree else { throw BootMediumError(.imageBuildFailed, "An image needs a bootcd tree") }
        let contents = try MediumContents.prepare(
            inputs, configName: "syslinux.cfg", extra: [], uefi: .volume, cancellation: cancellation)
        var files: [FATFileSpec] = []
        for file in contents.files {
            // Names such as EFI/BOOT/BOOTX64.EFI are paths on the volume.
            let path = file.name.split(separator: "/").map(String.init)
            switch file.source {
            case .bytes(let bytes): files.append(FATFileSpec(path: path, bytes: bytes))
            case .file(let input): files.append(FATFileSpec(path: path, file: input.reopenPath, size: input.size))
            }
        }
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
        // The contents may hold the anonymous file behind cramfs.img: keep it open until written.
        try withExtendedLifetime(contents) { () throws(BootMediumError) in
            try USBImageWriter.write(files: files, syslinux: payload, options: options, to: sink, cancellation: cancellation)
        }
    }
}
