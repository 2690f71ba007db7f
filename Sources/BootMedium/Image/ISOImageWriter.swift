import Foundation

/// Writes `iso` images (node-iso, generic-iso) with libisofs (docs/behaviour.md §5.3): Rock Ridge +
/// Joliet, El Torito no-emulation boot of `isolinux.bin` (load size 4, boot info table,
/// `boot.cat`), `ldlinux.c32` beside it, and an isohybrid MBR from the tree's `isohdpfx.bin` so
/// the same image boots from a USB disk. All dates come from the plan's clock.
struct ISOImageWriter: ImageWriter {
    /// The boot info table libisofs writes into `isolinux.bin` after layout.
    static let bootInfoTable: [[Int64]] = [[8, 64]]

    func write(_ inputs: ImageInputs, to sink: any ImageSink, cancellation: CancellationFlag)
        throws(BootMediumError)
    {
        let plan = inputs.plan
        guard let tree = plan.tree else { throw BootMediumError(.imageBuildFailed, "An image needs a bootcd tree") }
        let loader = [
            MediumFile(name: "isolinux.bin", source: .bytes(try MediumContents.read(tree, tree.isolinuxBinPath)), zeroed: Self.bootInfoTable),
            MediumFile(name: "ldlinux.c32", source: .file(try tree.file(tree.isolinuxLdlinuxC32Path, role: .loader))),
        ]
        let isohybridMBR = try MediumContents.read(tree, tree.isohybridMBRPath)
        let gptGUID = MediumContents.guid(plan, purpose: "gpt disk guid")
        func layout(_ files: [MediumFile]) -> ISOLayout {
            ISOLayout(
                volumeID: MediumContents.label(plan, length: 32),
                files: files.map { ISOFile(name: $0.name, source: $0.source) },
                bootImage: "isolinux.bin", isohybridMBR: isohybridMBR,
                efiBootImage: files.contains { $0.name == UEFIBoot.espImageName } ? UEFIBoot.espImageName : nil,
                gptGUID: gptGUID, timestamp: plan.clock.now)
        }
        // Into a file, the files on disk (bootcd.img above all) start copying now, to where the
        // layout will put them, while the generated files are made (EarlyFileCopy).
        // The tree's facts are read first: the manifest then describes the files as they were
        // before the copy, which fails if they change.
        var early: EarlyFileCopy?
        defer { early?.abandon() }
        var snapshot: TreeSnapshot?
        if let file = sink as? any RandomAccessSink, plan.imageType?.isCramfs != true {
            let skeleton = try MediumContents.skeleton(tree, configName: "isolinux.cfg", extra: loader)
            let facts = try TreeSnapshot.take(plan, files: skeleton, plain: true, cancellation: cancellation)
            snapshot = facts
            if let predicted = try Isofs.predictCopyPlan(layout(skeleton)),
                predicted.plan.extents.allSatisfy({ facts.files[$0.path]?.size == $0.size })
            {
                try file.reserve(predicted.imageBytes)
                early = EarlyFileCopy(predicted.plan, into: file, cancellation: cancellation)
            }
        }
        let contents = try MediumContents.prepare(
            inputs, configName: "isolinux.cfg", extra: loader, uefi: .espImage, snapshot: snapshot, cancellation: cancellation)
        let final = layout(contents.files)
        // The contents may hold the anonymous file behind cramfs.img: keep it open until written.
        try withExtendedLifetime(contents) { () throws(BootMediumError) in
            _ = try Isofs.write(final, to: sink, early: early, cancellation: cancellation)
        }
    }
}
