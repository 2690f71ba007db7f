import Crypto
import Foundation

/// One file of a medium, before it is laid out in an ISO or a FAT volume.
struct MediumFile: Sendable {
    /// The name in the medium's root directory.
    let name: String
    /// Where the bytes come from.
    let source: FileBytes
    /// Byte ranges the image writer patches after layout (hashed as zeros in the manifest).
    var zeroed: [[Int64]]? = nil
    /// The SHA-256 when already known (a generated file behind a `.path`).
    var sha256: String? = nil
    /// Set on an ISO's ESP image alone: the manifest entries of the files inside that FAT
    /// volume, which is appended as a partition, not stored in the ISO 9660 file system.
    var espFiles: [Manifest.File]? = nil
    /// Whether this file is an ISO's ESP image.
    var isESP: Bool { espFiles != nil }
}

/// The sizes and SHA-256 of the tree's files a medium lists in its manifest, read once
/// (``TreeFileFacts`` caches them by file identity).
struct TreeSnapshot: Sendable {
    /// Size and SHA-256 (hex) by ``InputFile/reopenPath`` (one entry per open tree file).
    var files: [String: (size: Int64, sha256: String)] = [:]

    /// The facts of `files`' files on disk.
    static func take(_ plan: ImagePlan, files: [MediumFile], cancellation: CancellationFlag)
        throws(BootMediumError) -> TreeSnapshot
    {
        var snapshot = TreeSnapshot()
        for file in files {
            guard case .file(let input) = file.source, file.sha256 == nil, snapshot.files[input.reopenPath] == nil else { continue }
            let digest = try TreeFileFacts.sha256(of: input, cacheDirectory: plan.root.workDir, cancellation: cancellation)
            snapshot.files[input.reopenPath] = (input.size, digest)
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

/// What every image type of a plan carries (docs/behaviour.md §5): the overlay, the boot config
/// rendered from the one template, `pl_version`, the tree's kernel and bootcd.img, the UEFI
/// loader with its GRUB config when the tree has one, and the manifest listing them.
///
/// A plain (non-cramfs) medium keeps its per-request files (``MediumSlots``: overlay, boot
/// configs, manifest) in fixed-size slots, so that one template serves every request
/// (``MediumTemplate``); its other files are the same for all of them.
struct MediumContents {
    /// The files in medium order, the manifest last.
    let files: [MediumFile]
    /// The manifest.
    let manifest: Manifest
    /// The cramfs root of a cramfs image type: its anonymous file backs `cramfs.img`, so the
    /// contents must outlive the image write.
    var cramfs: CramfsRoot.Image? = nil

    /// The contents of a cramfs medium (built in full: the node config is inside its root).
    static func prepareCramfs(
        _ inputs: ImageInputs, tree: BootcdTree, configName: String, extra: [MediumFile], uefi placement: UEFIPlacement,
        cancellation: CancellationFlag
    ) throws(BootMediumError) -> MediumContents {
        let plan = inputs.plan
        // docs/behaviour.md §5.4: one cramfs initrd of the merged, read-only-adjusted tree.
        let overlay = try Overlay.entries(plan, nodeConfigText: inputs.nodeConfigText)
        let image = try CramfsRoot.build(plan, overlay: overlay, cancellation: cancellation)
        let config = try BootConfig.render(plan, ramdiskBytes: image.size, initrds: "cramfs.img", readOnlyRoot: true)
        let grubConfig = try BootConfig.renderGrub(plan, ramdiskBytes: image.size, initrds: ["cramfs.img"], readOnlyRoot: true)
        var files = [
            MediumFile(name: "kernel", source: .file(try kernel(tree))),
            MediumFile(name: "cramfs.img", source: .file(try InputFile(made: image.file.descriptor, path: "cramfs.img")), sha256: image.sha256),
            versionFile(plan),
        ] + extra
        files.append(MediumFile(name: configName, source: .bytes(Array(config.utf8))))
        files += try uefiFiles(plan, tree: tree, placement: placement, grubConfig: Array(grubConfig.utf8), cancellation: cancellation)
        let entries = try manifestEntries(files, snapshot: try TreeSnapshot.take(plan, files: files, cancellation: cancellation))
        let manifest = Manifest.of(plan, files: entries)
        files.append(MediumFile(name: Manifest.path, source: .bytes(try manifest.encoded())))
        return MediumContents(files: files, manifest: manifest, cramfs: image)
    }

    /// The slots of a plain medium of `tree` (GRUB's config among them when it has a UEFI loader).
    static func slots(_ tree: BootcdTree, configName: String, uefi placement: UEFIPlacement, capacities: SlotCapacities)
        throws(BootMediumError) -> MediumSlots
    {
        let grub: String? = try UEFIBoot.of(tree) == nil ? nil : (placement == .volume ? UEFIBoot.directory + "grub.cfg" : UEFIBoot.isoGrubConfig)
        return MediumSlots(configName: configName, grubName: grub, capacities: capacities)
    }

    /// The files of a plain medium in medium order, each slot holding its placeholder (the
    /// template's contents): kernel, bootcd.img, overlay.img, pl_version, `extra`, the boot
    /// config, the UEFI files, the manifest.
    static func plainFiles(
        _ plan: ImagePlan, tree: BootcdTree, slots: MediumSlots, extra: [MediumFile], uefi placement: UEFIPlacement,
        cancellation: CancellationFlag
    ) throws(BootMediumError) -> [MediumFile] {
        func slot(_ name: String) -> MediumFile { MediumFile(name: name, source: .bytes(slots.placeholder(name))) }
        var files = [
            MediumFile(name: "kernel", source: .file(try kernel(tree))),
            MediumFile(name: "bootcd.img", source: .file(try bootcd(tree))),
            slot(MediumSlots.overlayName),
            versionFile(plan),
        ] + extra
        files.append(slot(slots.configName))
        if let grub = slots.grubName {
            files += try uefiFiles(plan, tree: tree, placement: placement, grubConfig: slots.placeholder(grub), cancellation: cancellation)
        }
        files.append(slot(Manifest.path))
        return files
    }

    /// The unpadded per-request contents of a plain medium's slots other than the manifest:
    /// the overlay and the boot configs, whose `ramdisk_size` covers bootcd.img and the overlay
    /// uncompressed.
    static func slotContents(_ inputs: ImageInputs, tree: BootcdTree, slots: MediumSlots, cancellation: CancellationFlag)
        throws(BootMediumError) -> [String: [UInt8]]
    {
        let plan = inputs.plan
        let overlay = try Overlay.build(plan, nodeConfigText: inputs.nodeConfigText)
        let bootcdSize = try TreeFileFacts.uncompressedSize(
            of: try bootcd(tree), cacheDirectory: plan.root.workDir, cancellation: cancellation)
        let ramdisk = bootcdSize + overlay.uncompressedSize
        var contents = [
            MediumSlots.overlayName: overlay.bytes,
            slots.configName: Array(try BootConfig.render(plan, ramdiskBytes: ramdisk, initrds: "bootcd.img,overlay.img").utf8),
        ]
        if let grub = slots.grubName {
            contents[grub] = Array(try BootConfig.renderGrub(plan, ramdiskBytes: ramdisk, initrds: ["bootcd.img", "overlay.img"]).utf8)
        }
        return contents
    }

    /// The padded slot bytes of a request, the manifest (listing `fixed`, the entries of the
    /// files outside the slots, and the slots) included; nil when a content does not fit. With
    /// `growing`, slots too small grow to fit (``MediumSlots/grown(toFit:)``) and the slots
    /// used are returned.
    static func fill(
        _ plan: ImagePlan, slots given: MediumSlots, contents: [String: [UInt8]], fixed: [Manifest.File], growing: Bool = false
    ) throws(BootMediumError) -> (slots: MediumSlots, bytes: [String: [UInt8]], manifest: Manifest)? {
        var slots = growing ? given.grown(toFit: contents) : given
        var bytes: [String: [UInt8]] = [:]
        var entries = fixed
        for name in slots.names where name != Manifest.path {
            guard let padded = slots.padded(contents[name] ?? [], name) else { return nil }
            bytes[name] = padded
            entries.append(Manifest.File(path: name, size: Int64(padded.count), sha256: Digest.sha256(padded), zeroed: nil))
        }
        let manifest = Manifest.of(plan, files: entries, slots: slots.names)
        let encoded = try manifest.encoded()
        if growing { slots = slots.grown(toFit: [Manifest.path: encoded]) }
        guard let padded = slots.padded(encoded, Manifest.path) else { return nil }
        bytes[Manifest.path] = padded
        return (slots, bytes, manifest)
    }

    /// The manifest entries of `files` (the manifest itself left out): generated files hashed
    /// here, the tree's from `snapshot`.
    static func manifestEntries(_ files: [MediumFile], snapshot: TreeSnapshot) throws(BootMediumError) -> [Manifest.File] {
        var entries: [Manifest.File] = []
        for file in files where file.name != Manifest.path {
            switch file.source {
            case .bytes(let bytes):
                entries.append(
                    Manifest.File(
                        path: file.name, size: Int64(bytes.count),
                        sha256: Manifest.digest(bytes, zeroing: file.zeroed), zeroed: file.zeroed, files: file.espFiles))
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
        return entries
    }

    /// `pl_version`.
    private static func versionFile(_ plan: ImagePlan) -> MediumFile {
        MediumFile(name: "pl_version", source: .bytes(Array((plan.versionString + "\n").utf8)))
    }

    /// The UEFI files of a medium of `tree` with `grubConfig` (none when the tree has no loader).
    private static func uefiFiles(
        _ plan: ImagePlan, tree: BootcdTree, placement: UEFIPlacement, grubConfig: [UInt8], cancellation: CancellationFlag
    ) throws(BootMediumError) -> [MediumFile] {
        guard let uefi = try UEFIBoot.of(tree) else { return [] }
        switch placement {
        case .volume:
            return uefi.files(config: grubConfig)
        case .espImage:
            // The ESP holds the loader alone (the same for every node); GRUB's config lies in
            // the ISO 9660 file system.
            let esp = try UEFIBoot.espImage(uefi.files(config: nil), plan: plan, cancellation: cancellation)
            return [MediumFile(name: UEFIBoot.espImageName, source: .bytes(esp.bytes), espFiles: esp.files)]
                + UEFIBoot.isoFiles(config: grubConfig, versionString: plan.versionString)
        }
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

    /// A 32-bit identity (volume serial, disk signature) for `purpose`: derived from the inputs
    /// of the plan's template (image type, nodefamily, tree and PLC, not the node) when
    /// `SOURCE_DATE_EPOCH` is set, random otherwise.
    static func identity(_ plan: ImagePlan, purpose: String) -> UInt32 {
        guard let epoch = plan.clock.sourceDateEpoch else {
            var generator = SystemRandomNumberGenerator()
            return UInt32(truncatingIfNeeded: generator.next())
        }
        // The template's inputs only: every request a template serves shares these values.
        let text = [purpose, plan.type.rawValue, plan.nodefamily.name, plan.tree.version,
                    plan.configuration.plcName ?? "", String(epoch)].joined(separator: "\0")
        let digest = Array(SHA256.hash(data: Array(text.utf8)))
        return UInt32(digest[0]) | UInt32(digest[1]) << 8 | UInt32(digest[2]) << 16 | UInt32(digest[3]) << 24
    }

    /// A 16-byte GUID (UEFI byte order, RFC 4122 version 4) for `purpose`: derived from the
    /// plan's inputs under `SOURCE_DATE_EPOCH`, random otherwise.
    static func guid(_ plan: ImagePlan, purpose: String) -> [UInt8] {
        var bytes = (0..<4).flatMap { index -> [UInt8] in
            let word = identity(plan, purpose: "\(purpose) \(index)")
            return [UInt8(word & 0xFF), UInt8(word >> 8 & 0xFF), UInt8(word >> 16 & 0xFF), UInt8(word >> 24)]
        }
        bytes[7] = bytes[7] & 0x0F | 0x40
        bytes[8] = bytes[8] & 0x3F | 0x80
        return bytes
    }

    /// `<PLC_NAME>_<version>` in upper-case letters, digits and `_`, at most `length` characters.
    static func label(_ plan: ImagePlan, length: Int) -> String {
        let text = "\(plan.configuration.plcName ?? "BOOTCD")_\(plan.tree.version)".uppercased()
        return String(text.map { ($0.isASCII && ($0.isLetter || $0.isNumber)) ? $0 : "_" }.prefix(length))
    }
}
