import Crypto
import Foundation

/// One file of a medium, before it is laid out in an ISO or a FAT volume.
struct MediumFile: Sendable {
    /// The name in the medium's root directory.
    let name: String
    /// Where the bytes come from.
    let source: ISOFile.Source
    /// Byte ranges the image writer patches after layout (hashed as zeros in the manifest).
    var zeroed: [[Int64]]? = nil
    /// The SHA-256 when already known (a generated file behind a `.path`).
    var sha256: String? = nil
}

/// The facts a medium's manifest and boot config take from the tree's files on disk (their
/// sizes and SHA-256, bootcd.img's uncompressed size), read once, before any of them is copied,
/// so that a file changing while the image is written fails the copy (which checks the sizes)
/// rather than the manifest.
struct TreeSnapshot: Sendable {
    /// Size and SHA-256 (hex) by ``InputFile/reopenPath`` (the name image writers copy from).
    var files: [String: (size: Int64, sha256: String)] = [:]
    /// bootcd.img's uncompressed size (plain images only).
    var bootcdUncompressedSize: Int64?

    /// The facts of `files`' files on disk; bootcd.img's uncompressed size when `plain`.
    static func take(_ plan: BootPlan, files: [MediumFile], plain: Bool, cancellation: CancellationFlag)
        throws(BootMediumError) -> TreeSnapshot
    {
        var snapshot = TreeSnapshot()
        for file in files {
            guard case .file(let input) = file.source, file.sha256 == nil, snapshot.files[input.reopenPath] == nil else { continue }
            let digest = try TreeFileFacts.sha256(of: input, cacheDirectory: plan.root.workDir, cancellation: cancellation)
            snapshot.files[input.reopenPath] = (input.size, digest)
        }
        if plain, let tree = plan.tree {
            snapshot.bootcdUncompressedSize = try TreeFileFacts.uncompressedSize(
                of: try tree.file(tree.bootcdImagePath, role: .bootcd), cacheDirectory: plan.root.workDir,
                cancellation: cancellation)
        }
        return snapshot
    }
}

/// Where a medium carries its UEFI boot files (``UEFIBoot``), when its tree has them.
enum UEFIPlacement {
    /// In `EFI/BOOT/` of the medium's own FAT volume (USB images).
    case volume
    /// In an ESP image `efi.img` that an El Torito EFI entry points at (ISO images).
    case espImage
}

/// What every image type of a plan carries, prepared once (docs/behaviour.md §5): the overlay, the
/// boot config rendered from the one template, `pl_version`, the tree's kernel and bootcd.img,
/// the UEFI loader with its GRUB config when the tree has one, and the manifest listing them.
struct MediumContents {
    /// The files in medium order, the manifest last.
    let files: [MediumFile]
    /// The manifest.
    let manifest: Manifest
    /// The cramfs root of a cramfs image type: its anonymous file backs `cramfs.img`, so the
    /// contents must outlive the image write.
    var cramfs: CramfsRoot.Image? = nil

    /// Prepares the contents of `plan`; `configName` is `isolinux.cfg` or `syslinux.cfg`, `extra`
    /// the boot loader files of the image type. The tree's facts come from `snapshot` when given
    /// (taken from ``skeleton(_:configName:extra:)``'s files), else they are read here.
    static func prepare(
        _ inputs: ImageInputs, configName: String, extra: [MediumFile], uefi placement: UEFIPlacement,
        snapshot given: TreeSnapshot? = nil, cancellation: CancellationFlag
    ) throws(BootMediumError) -> MediumContents {
        let plan = inputs.plan
        guard let tree = plan.tree else { throw BootMediumError(.imageBuildFailed, "An image needs a bootcd tree") }
        let version = MediumFile(name: "pl_version", source: .bytes(Array(((plan.versionString ?? "") + "\n").utf8)))
        var files: [MediumFile]
        let config: String
        let grubConfig: String
        var cramfs: CramfsRoot.Image?
        if plan.imageType?.isCramfs == true {
            // docs/behaviour.md §5.4: one cramfs initrd of the merged, read-only-adjusted tree.
            let overlay = try Overlay.entries(plan, nodeConfigText: inputs.nodeConfigText)
            let image = try CramfsRoot.build(plan, overlay: overlay, cancellation: cancellation)
            cramfs = image
            config = try BootConfig.render(plan, ramdiskBytes: image.size, initrds: "cramfs.img", readOnlyRoot: true)
            grubConfig = try BootConfig.renderGrub(plan, ramdiskBytes: image.size, initrds: ["cramfs.img"], readOnlyRoot: true)
            files = [
                MediumFile(name: "kernel", source: .file(try kernel(tree))),
                MediumFile(name: "cramfs.img", source: .file(try InputFile(made: image.file.fd, path: "cramfs.img")), sha256: image.sha256),
                version,
            ] + extra
        } else {
            let overlay = try Overlay.build(plan, nodeConfigText: inputs.nodeConfigText)
            let bootcdSize: Int64
            if let known = given?.bootcdUncompressedSize {
                bootcdSize = known
            } else {
                bootcdSize = try TreeFileFacts.uncompressedSize(
                    of: try tree.file(tree.bootcdImagePath, role: .bootcd), cacheDirectory: plan.root.workDir,
                    cancellation: cancellation)
            }
            config = try BootConfig.render(
                plan, ramdiskBytes: bootcdSize + overlay.uncompressedSize, initrds: "bootcd.img,overlay.img")
            grubConfig = try BootConfig.renderGrub(
                plan, ramdiskBytes: bootcdSize + overlay.uncompressedSize, initrds: ["bootcd.img", "overlay.img"])
            files = try Self.files(tree: tree, overlay: overlay.bytes, version: version, extra: extra)
        }
        files.append(MediumFile(name: configName, source: .bytes(Array(config.utf8))))
        if let uefi = try UEFIBoot.of(tree) {
            switch placement {
            case .volume:
                files += uefi.files(config: grubConfig)
            case .espImage:
                // The ESP holds the loader alone (the same for every node); GRUB's config lies
                // in the ISO 9660 file system.
                let bytes = try UEFIBoot.espImage(uefi.files(config: nil), plan: plan, cancellation: cancellation)
                files.append(MediumFile(name: UEFIBoot.espImageName, source: .bytes(bytes)))
                files += UEFIBoot.isoFiles(config: grubConfig, versionString: plan.versionString ?? "")
            }
        }
        let snapshot: TreeSnapshot
        if let given {
            snapshot = given
        } else {
            snapshot = try TreeSnapshot.take(plan, files: files, plain: false, cancellation: cancellation)
        }
        var entries: [Manifest.File] = []
        for file in files {
            switch file.source {
            case .bytes(let bytes):
                entries.append(
                    Manifest.File(
                        path: file.name, size: Int64(bytes.count),
                        sha256: Manifest.digest(bytes, zeroing: file.zeroed), zeroed: file.zeroed))
            case .file(let input):
                if let known = file.sha256 {
                    entries.append(Manifest.File(path: file.name, size: input.size, sha256: known, zeroed: nil))
                } else {
                    guard let facts = snapshot.files[input.reopenPath] else {
                        throw BootMediumError(.imageBuildFailed, "Internal error: no facts for \(input.path)")
                    }
                    entries.append(Manifest.File(path: file.name, size: facts.size, sha256: facts.sha256, zeroed: nil))
                }
            }
        }
        let manifest = Manifest.of(plan, files: entries)
        files.append(MediumFile(name: Manifest.path, source: .bytes(try manifest.encoded())))
        return MediumContents(files: files, manifest: manifest, cramfs: cramfs)
    }

    /// The files of a (non-cramfs) image before its boot config and manifest, in medium order.
    private static func files(tree: BootcdTree, overlay: [UInt8], version: MediumFile, extra: [MediumFile])
        throws(BootMediumError) -> [MediumFile]
    {
        [
            MediumFile(name: "kernel", source: .file(try kernel(tree))),
            MediumFile(name: "bootcd.img", source: .file(try bootcd(tree))),
            MediumFile(name: "overlay.img", source: .bytes(overlay)),
            version,
        ] + extra
    }

    /// The files ``prepare(_:configName:extra:snapshot:cancellation:)`` gives a plain
    /// (non-cramfs) image, each generated one a one-byte placeholder: their names and the files on
    /// disk, known before anything is generated, for predicting where the files on disk go
    /// (``Isofs/predictCopyPlan(_:)``).
    static func skeleton(_ tree: BootcdTree, configName: String, extra: [MediumFile]) throws(BootMediumError)
        -> [MediumFile]
    {
        let placeholder = ISOFile.Source.bytes([0])
        // The same names as the final contents (GRUB's directories are metadata before the data).
        let esp = try UEFIBoot.of(tree) == nil ? [] : ([MediumFile(name: UEFIBoot.espImageName, source: placeholder)]
            + UEFIBoot.isoFiles(config: "", versionString: "").map { MediumFile(name: $0.name, source: placeholder) })
        return try files(tree: tree, overlay: [0], version: MediumFile(name: "pl_version", source: placeholder), extra: extra)
            + [MediumFile(name: configName, source: placeholder)] + esp + [MediumFile(name: Manifest.path, source: placeholder)]
    }

    /// The tree's kernel, which must be an x86 Linux boot image (`HdrS` at 0x202): a 0-byte
    /// or foreign file would give a medium that cannot boot, so it is refused here.
    static func kernel(_ tree: BootcdTree) throws(BootMediumError) -> InputFile {
        let file = try tree.file(tree.kernelPath, role: .kernel)
        guard try file.bytes(at: 0x202, count: 4) == Array("HdrS".utf8) else {
            throw BootMediumError(
                .missingBootcd,
                "\(file.path) is not a Linux kernel image (no boot protocol header \"HdrS\" at 0x202; \(file.size) bytes)",
                context: ["path": file.path])
        }
        return file
    }

    /// The tree's bootcd.img.
    static func bootcd(_ tree: BootcdTree) throws(BootMediumError) -> InputFile {
        try tree.file(tree.bootcdImagePath, role: .bootcd)
    }

    /// Reads the tree's (small) boot loader file at `path` whole.
    static func read(_ tree: BootcdTree, _ path: String) throws(BootMediumError) -> [UInt8] {
        try tree.file(path, role: .loader).readAll()
    }

    /// A 32-bit identity (volume serial, disk signature) for `purpose`: derived from the plan's
    /// inputs (not the node key) when `SOURCE_DATE_EPOCH` is set, random otherwise.
    static func identity(_ plan: BootPlan, purpose: String) -> UInt32 {
        guard let epoch = plan.clock.sourceDateEpoch else {
            var generator = SystemRandomNumberGenerator()
            return UInt32(truncatingIfNeeded: generator.next())
        }
        let text = [purpose, plan.action.rawValue, plan.imageType?.rawValue ?? "", plan.node?.hostname ?? "",
                    plan.nodefamily.name, plan.tree?.version ?? "", plan.kernelCommandLine.appendArguments,
                    String(epoch)].joined(separator: "\0")
        let digest = Array(SHA256.hash(data: Array(text.utf8)))
        return UInt32(digest[0]) | UInt32(digest[1]) << 8 | UInt32(digest[2]) << 16 | UInt32(digest[3]) << 24
    }

    /// A 16-byte GUID (UEFI byte order, RFC 4122 version 4) for `purpose`: derived from the
    /// plan's inputs under `SOURCE_DATE_EPOCH`, random otherwise.
    static func guid(_ plan: BootPlan, purpose: String) -> [UInt8] {
        var bytes = (0..<4).flatMap { index -> [UInt8] in
            let word = identity(plan, purpose: "\(purpose) \(index)")
            return [UInt8(word & 0xFF), UInt8(word >> 8 & 0xFF), UInt8(word >> 16 & 0xFF), UInt8(word >> 24)]
        }
        bytes[7] = bytes[7] & 0x0F | 0x40
        bytes[8] = bytes[8] & 0x3F | 0x80
        return bytes
    }

    /// `<PLC_NAME>_<version>` in upper-case letters, digits and `_`, at most `length` characters.
    static func label(_ plan: BootPlan, length: Int) -> String {
        let text = "\(plan.configuration.plcName ?? "BOOTCD")_\(plan.tree?.version ?? "")".uppercased()
        return String(text.map { ($0.isASCII && ($0.isLetter || $0.isNumber)) ? $0 : "_" }.prefix(length))
    }
}
