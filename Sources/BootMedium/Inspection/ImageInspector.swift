import Foundation

/// A medium's filesystem the inspector lists and reads files of: ISO 9660 (``ISO9660Reader``) and
/// FAT (``FATReader``). A cramfs (a whole image, or the `cramfs.img` inside a medium) is walked by
/// ``CramfsReader`` through `inspectCramfs` instead (a bare cramfs carries no manifest).
protocol InspectableFileSystem {
    /// Every regular file: path (with a leading slash) and size.
    func files() throws(BootMediumError) -> [InspectionReport.File]
    /// The bytes of a file (bounded by ``ImageBytes/maximumRead``).
    func read(_ path: String) throws(BootMediumError) -> [UInt8]
    /// The SHA-256 of a file with `zeroed` ranges hashed as zeros.
    func sha256(_ path: String, zeroed: [[Int64]]?) throws(BootMediumError) -> String
    /// Where a file's bytes lie in the image when they are contiguous (nil otherwise).
    func contiguousExtent(_ path: String) throws(BootMediumError) -> (offset: Int64, size: Int64)?
}

extension FATReader {
    func contiguousExtent(_ path: String) throws(BootMediumError) -> (offset: Int64, size: Int64)? {
        let entry = try entry(path)
        guard entry.size > 0 else { return nil }
        let needed = Int((Int64(entry.size) + bytesPerCluster - 1) / bytesPerCluster)
        let clusters = try chain(entry.firstCluster, prefix: needed)
        guard clusters.count == needed, zip(clusters, clusters.dropFirst()).allSatisfy({ $1 == $0 + 1 }) else { return nil }
        let start = offset + (firstDataSector + Int64(entry.firstCluster - 2) * (bytesPerCluster / 512)) * 512
        return (start, Int64(entry.size))
    }
}

extension ISO9660Reader: InspectableFileSystem {
    private func entry(_ path: String) throws(BootMediumError) -> Entry {
        try filesByPath.file(path, in: "the image", walk: walk)
    }
    func files() throws(BootMediumError) -> [InspectionReport.File] {
        try walk().filter { !$0.isDirectory }.map { InspectionReport.File(path: $0.path, size: Int64($0.size)) }
    }
    func read(_ path: String) throws(BootMediumError) -> [UInt8] { try contents(try entry(path)) }
    func sha256(_ path: String, zeroed: [[Int64]]?) throws(BootMediumError) -> String {
        let e = try entry(path)
        return try image.sha256(Int64(e.extent) * Self.sector, Int64(e.size), zeroed: zeroed, what: path)
    }
    func contiguousExtent(_ path: String) throws(BootMediumError) -> (offset: Int64, size: Int64)? {
        let e = try entry(path)
        return (Int64(e.extent) * Self.sector, Int64(e.size))
    }
}

/// `bootmedium inspect`: what an image holds, read by bounded readers without mounting it.
public enum ImageInspector {
    /// Files of a bootmedium image that its manifest does not list.
    static let unlisted: Set<String> = ["/boot.cat", "/" + Manifest.path]

    /// Inspects the image at `path`. `showSecrets` keeps `NODE_KEY` instead of redacting it.
    public static func inspect(path: String, showSecrets: Bool = false) throws(BootMediumError) -> InspectionReport {
        let image = try ImageBytes(path: path)
        guard image.size > 0 else { throw BootMediumError(.invalidImage, "\(path) is empty", context: ["path": path]) }
        let probe = try Blkid.probe(fd: image.fd, size: image.size, path: path)
        // A GPT disk keeps a (protective or hybrid) MBR in sector 0: both are reported.
        let partitions = probe.partitionTable == "dos" || probe.partitionTable == "gpt" ? try mbrPartitions(image) : nil
        var report = try inspectFileSystem(image, probe: probe, partitions: partitions, showSecrets: showSecrets)
        report.gpt = try gpt(image)
        return report
    }

    /// The report of the file system libblkid found.
    private static func inspectFileSystem(
        _ image: ImageBytes, probe: Blkid.Probe, partitions: [InspectionReport.Partition]?, showSecrets: Bool
    ) throws(BootMediumError) -> InspectionReport {
        let path = image.path
        switch probe.filesystem {
        case "iso9660":
            let iso = try ISO9660Reader(image)
            let bootEntries = try iso.bootEntries()
            // The ESP: what El Torito's UEFI entry loads (the appended partition).
            let esp = bootEntries.first { $0.platform == "UEFI" }.map { (offset: Int64($0.loadRBA) * ISO9660Reader.sector, size: Int64($0.loadSectors) * 512) }
            var report = try report(
                fs: iso, image: image, type: "iso", probe: probe, partitions: partitions, esp: esp, showSecrets: showSecrets)
            report.volumeID = iso.volumeID
            let entries = try iso.walk()
            var boots: [InspectionReport.ElToritoEntry] = []
            for boot in bootEntries {
                let file = entries.first { !$0.isDirectory && $0.extent == boot.loadRBA }
                boots.append(
                    InspectionReport.ElToritoEntry(
                        platform: boot.platform, bootable: boot.bootable, emulation: boot.emulation,
                        loadSectors: Int(boot.loadSectors), loadRBA: Int(boot.loadRBA), image: file?.path,
                        bootInfoTable: try iso.bootInfoTable(rba: boot.loadRBA, file: file)))
            }
            report.elTorito = boots
            if let efi = boots.first(where: { $0.platform == "UEFI" }) {
                report.efiLoader = true
                // A damaged ESP is reported, not fatal: the rest of the image still reads.
                do throws(BootMediumError) {
                    let volume = try FATReader(image, offset: Int64(efi.loadRBA) * ISO9660Reader.sector)
                    report.esp = InspectionReport.ESP(
                        path: efi.image, volumeLabel: String(decoding: volume.boot.extended.volumeLabel, as: UTF8.self).trimmingCharacters(in: .whitespaces),
                        files: try volume.files())
                } catch {
                    report.esp = InspectionReport.ESP(path: efi.image, volumeLabel: "", files: [], problem: error.message)
                }
            }
            return report
        case "vfat":
            let fat = try FATReader(image)
            var report = try report(
                fs: fat, image: image, type: "usb", probe: probe, partitions: partitions, showSecrets: showSecrets)
            report.volumeID = probe.label
            report.syslinux = try fat.syslinux()
            return report
        case nil where probe.partitionTable == "dos":
            let fatTypes: Set<String> = ["0x04", "0x06", "0x0b", "0x0c", "0x0e"]
            guard let part = partitions?.first(where: { fatTypes.contains($0.type) }) else {
                throw BootMediumError(.invalidImage, "\(path): an MBR disk without a FAT partition", context: ["path": path])
            }
            let fat = try FATReader(image, offset: part.startSector * 512)
            var report = try report(
                fs: fat, image: image, type: "usb_partition", probe: probe, partitions: partitions, showSecrets: showSecrets)
            report.image.filesystem = "vfat"
            report.syslinux = try fat.syslinux()
            return report
        case "cramfs":
            let cramfs = try CramfsReader(image, what: "cramfs image")
            let (summary, nodeConfig, version, entries) = try inspectCramfs(cramfs, path: nil, showSecrets: showSecrets)
            let files = entries.filter { $0.kind == .file }.map { InspectionReport.File(path: $0.path, size: $0.size) }
            return InspectionReport(
                image: .init(path: image.path, size: image.size, type: "cramfs", filesystem: probe.filesystem, partitionTable: probe.partitionTable),
                volumeID: cramfs.info.volumeName, elTorito: nil, partitions: partitions, syslinux: nil, efiLoader: false, files: files,
                bootConfigs: [], overlay: nil, nodeConfig: nodeConfig, bootcdVersion: version,
                manifest: .init(status: .missing, problems: [], manifest: nil), cramfs: summary)
        default:
            throw BootMediumError(
                .invalidImage,
                "\(path): not an image bootmedium can read (libblkid: \(probe.filesystem ?? "no filesystem")\(probe.partitionTable.map { ", \($0) partition table" } ?? ""))",
                context: ["path": path])
        }
    }

    /// The GPT whose primary header lies at LBA 1, checked (CRC-32 of header and entries, the
    /// backup header at its alternate LBA); nil when LBA 1 holds no GPT header.
    static func gpt(_ image: ImageBytes) throws(BootMediumError) -> InspectionReport.GPT? {
        guard image.size >= 1024 else { return nil }
        let sector = try image.read(512, 512, what: "GPT header")
        guard Array(sector[0..<8]) == GPTHeader.signature else { return nil }
        let header = try GPTHeader(decoding: sector)
        let entryBytes = header.entryBytes
        guard header.entriesLBA >= 2, Int64(header.entriesLBA) * 512 + Int64(entryBytes) <= image.size else {
            throw BootMediumError(.invalidImage, "The GPT's partition entries lie outside the image", context: ["path": image.path])
        }
        let entries = try image.read(Int64(header.entriesLBA) * 512, entryBytes, what: "GPT partition entries")
        var partitions: [InspectionReport.GPTPartition] = []
        for index in 0..<Int(header.entryCount) {
            let entry = GPTPartitionEntry(decoding: entries.bytes(at: index * Int(header.entrySize), count: GPTPartitionEntry.size))
            guard entry.isUsed else { continue }
            partitions.append(
                InspectionReport.GPTPartition(
                    number: index + 1, type: entry.type.description, typeName: entry.type.typeName, guid: entry.unique.description,
                    firstLBA: Int64(entry.firstLBA), lastLBA: Int64(entry.lastLBA), name: entry.name,
                    attributes: String(format: "0x%016llx", entry.attributes)))
        }
        var backupOK = false
        if header.alternateLBA > 1, Int64(header.alternateLBA) * 512 + 512 <= image.size {
            let backupSector = try image.read(Int64(header.alternateLBA) * 512, 512, what: "backup GPT header")
            if let backup = try? GPTHeader(decoding: backupSector), GPTHeader.crcMatches(backupSector),
                backup.currentLBA == header.alternateLBA, backup.entryCount == header.entryCount,
                backup.entrySize == header.entrySize, backup.entriesCRC == header.entriesCRC,
                Int64(backup.entriesLBA) * 512 + Int64(entryBytes) <= image.size
            {
                backupOK = try image.read(Int64(backup.entriesLBA) * 512, entryBytes, what: "backup GPT entries") == entries
            }
        }
        return InspectionReport.GPT(
            diskGUID: header.diskGUID.description, firstUsableLBA: Int64(header.firstUsableLBA),
            lastUsableLBA: Int64(header.lastUsableLBA), headerCRCOK: GPTHeader.crcMatches(sector),
            entriesCRCOK: CRC32.of(entries) == header.entriesCRC, backupOK: backupOK, partitions: partitions)
    }

    /// The four primary MBR partitions, when sector 0 carries the 55 AA signature and any entry.
    static func mbrPartitions(_ image: ImageBytes) throws(BootMediumError) -> [InspectionReport.Partition]? {
        guard image.size >= 512 else { return nil }
        guard let mbr = try? MBR(decoding: try image.read(0, 512, what: "MBR")) else { return nil }
        var result: [InspectionReport.Partition] = []
        for (i, entry) in mbr.partitions.enumerated() where entry.type != 0 {
            result.append(
                InspectionReport.Partition(
                    number: i + 1, active: entry.status == 0x80, type: String(format: "0x%02x", entry.type),
                    startSector: Int64(entry.startLBA), sectors: Int64(entry.sectorCount)))
        }
        return result.isEmpty ? nil : result
    }

    /// The parts every image type shares: files, boot configs, overlay, node config, manifest.
    static func report(
        fs: some InspectableFileSystem, image: ImageBytes, type: String, probe: Blkid.Probe,
        partitions: [InspectionReport.Partition]?, esp: (offset: Int64, size: Int64)? = nil, showSecrets: Bool
    ) throws(BootMediumError) -> InspectionReport {
        let files = try fs.files()
        func has(_ path: String) -> InspectionReport.File? { files.first { $0.path.lowercased() == path.lowercased() } }
        var configs: [ParsedBootConfig] = []
        for name in ["/isolinux.cfg", "/syslinux.cfg", "/boot/syslinux/syslinux.cfg", "/syslinux/syslinux.cfg"] {
            if let file = has(name), file.size <= 1 << 16 {
                configs.append(ParsedBootConfig(path: file.path, text: String(decoding: try fs.read(file.path), as: UTF8.self)))
            }
        }
        var grubConfigs: [ParsedGrubConfig] = []
        for name in ["/boot/grub/grub.cfg", "/EFI/BOOT/grub.cfg"] {
            if let file = has(name), file.size <= 1 << 16 {
                grubConfigs.append(ParsedGrubConfig(path: file.path, text: String(decoding: try fs.read(file.path), as: UTF8.self)))
            }
        }
        var overlay: [InspectionReport.OverlayFile]?
        var nodeConfig: ParsedNodeConfig?
        if let file = has("/overlay.img") {
            guard file.size <= 64 << 20 else { throw BootMediumError(.invalidImage, "overlay.img is larger than 64 MiB") }
            let entries = try Archive.readArchive(try fs.read(file.path))
            overlay = entries.map {
                InspectionReport.OverlayFile(
                    path: $0.path, mode: String($0.mode & 0o7777, radix: 8), kind: $0.kind, size: $0.size,
                    sha256: $0.contents.map { Digest.sha256($0) })
            }
            if let plnode = entries.first(where: { $0.path == "usr/boot/plnode.txt" }), let bytes = plnode.contents {
                nodeConfig = ParsedNodeConfig(text: String(decoding: bytes, as: UTF8.self), showSecrets: showSecrets)
            }
        }
        var cramfs: InspectionReport.CramfsRoot?
        if let file = has("/cramfs.img") {
            guard let extent = try fs.contiguousExtent(file.path) else {
                throw BootMediumError(.invalidImage, "cramfs.img is not stored contiguously", context: ["path": image.path])
            }
            let reader = try CramfsReader(image, offset: extent.offset, length: extent.size, what: "cramfs.img")
            let found = try inspectCramfs(reader, path: file.path, showSecrets: showSecrets)
            cramfs = found.summary
            nodeConfig = nodeConfig ?? found.nodeConfig
        }
        var version: String?
        if let file = has("/pl_version"), file.size <= 4096 {
            version = String(decoding: try fs.read(file.path), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let efi = has("/EFI/BOOT/BOOTX64.EFI") != nil
        return InspectionReport(
            image: .init(path: image.path, size: image.size, type: type, filesystem: probe.filesystem, partitionTable: probe.partitionTable),
            volumeID: nil, elTorito: nil, partitions: partitions, syslinux: nil, efiLoader: efi, files: files,
            bootConfigs: configs, grubConfigs: grubConfigs.isEmpty ? nil : grubConfigs, overlay: overlay, nodeConfig: nodeConfig, bootcdVersion: version,
            manifest: try checkManifest(fs: fs, files: files, image: image, esp: esp), cramfs: cramfs)
    }

    /// Walks a cramfs once (checking every block), and reads its node config, version and init
    /// setup; returns the walk's entries too.
    static func inspectCramfs(_ reader: CramfsReader, path: String?, showSecrets: Bool) throws(BootMediumError)
        -> (summary: InspectionReport.CramfsRoot, nodeConfig: ParsedNodeConfig?, version: String?, entries: [CramfsReader.Entry])
    {
        let entries = try reader.walk(verifyData: true)
        func small(_ name: String) throws(BootMediumError) -> String? {
            guard let entry = entries.first(where: { $0.path == name && $0.kind == .file }), entry.size <= 1 << 20 else { return nil }
            return String(decoding: try reader.read(name), as: UTF8.self)
        }
        var readOnly = false
        if let inittab = try small("/etc/inittab") {
            for line in inittab.split(separator: "\n") where !line.hasPrefix("#") && line.contains("pl_rsysinit") {
                if let process = line.split(whereSeparator: { $0 == ":" || $0 == " " }).first(where: { $0.contains("pl_rsysinit") }) {
                    // The script may sit behind a link (etc/init.d -> rc.d/init.d): accept it by name.
                    let name = process.split(separator: "/").last.map(String.init) ?? ""
                    readOnly = readOnly || entries.contains { $0.kind == .file && $0.path.hasSuffix("/" + name) }
                }
            }
        }
        let summary = InspectionReport.CramfsRoot(
            path: path, volumeName: reader.info.volumeName, size: reader.info.size, crcOK: reader.info.crcOK,
            inodes: entries.count, files: entries.filter { $0.kind == .file }.count, readOnlyRoot: readOnly)
        let nodeConfig = try small("/usr/boot/plnode.txt").map { ParsedNodeConfig(text: $0, showSecrets: showSecrets) }
        let version = try small("/pl_version")?.trimmingCharacters(in: .whitespacesAndNewlines)
        return (summary, nodeConfig, version, entries)
    }

    /// Checks the embedded manifest against the files.
    static func checkManifest(
        fs: some InspectableFileSystem, files: [InspectionReport.File], image: ImageBytes, esp: (offset: Int64, size: Int64)? = nil
    ) throws(BootMediumError)
        -> InspectionReport.ManifestCheck
    {
        guard let file = files.first(where: { $0.path == "/" + Manifest.path }) else {
            return .init(status: .missing, problems: [], manifest: nil)
        }
        guard file.size <= 1 << 20 else {
            return .init(status: .invalid, problems: ["the manifest is larger than 1 MiB"], manifest: nil)
        }
        let manifest: Manifest
        do throws(BootMediumError) {
            manifest = try Manifest.decode(try fs.read(file.path))
        } catch {
            return .init(status: .invalid, problems: [error.message], manifest: nil)
        }
        guard manifest.schema == Manifest.schemaID else {
            return .init(status: .invalid, problems: ["unknown manifest schema \(manifest.schema)"], manifest: manifest)
        }
        var (problems, listed) = try compare(
            manifest.files, with: files, name: { $0 }, place: "the image",
            hash: { (path, zeroed) throws(BootMediumError) in try fs.sha256(path, zeroed: zeroed) }
        ) { (entry, actual) throws(BootMediumError) -> [String] in
            guard let inner = entry.files else { return [] }
            guard let extent = try fs.contiguousExtent(actual.path) else { return ["\(entry.path): not stored contiguously"] }
            return try checkVolume(entry.path, listing: inner, at: extent.offset, image: image)
        }
        if let listed = manifest.esp {
            if let esp, esp.size == listed.size, esp.offset + esp.size <= image.size {
                if try image.sha256(esp.offset, esp.size, what: "the ESP") != listed.sha256 {
                    problems.append("\(listed.path): SHA-256 of the EFI system partition differs from the manifest")
                }
                problems += try checkVolume(listed.path, listing: listed.files ?? [], at: esp.offset, image: image)
            } else {
                problems.append("\(listed.path): the manifest lists an EFI system partition of \(listed.size) bytes, the image's UEFI boot entry \(esp.map { "loads \($0.size)" } ?? "is missing")")
            }
        }
        for actual in files where !listed.contains(actual.path.lowercased()) && !unlisted.contains(actual.path.lowercased()) {
            if !actual.path.lowercased().hasPrefix("/ldlinux.") {
                problems.append("\(actual.path.dropFirst()): in the image, not in the manifest")
            }
        }
        return .init(status: problems.isEmpty ? .ok : .mismatch, problems: problems, manifest: manifest)
    }

    /// The differences between a manifest's `listing` and the `files` found (in `place`): each
    /// entry listed once, present (case-insensitively), of its size and, by `hash`, its SHA-256;
    /// `inner`'s problems for each entry found right. Returns the problems and the listed paths
    /// (lower-cased). Each file is hashed at most once: a hostile manifest may list the same big
    /// file thousands of times.
    private static func compare(
        _ listing: [Manifest.File], with files: [InspectionReport.File], name: (String) -> String, place: String,
        hash: (_ path: String, _ zeroed: [[Int64]]?) throws(BootMediumError) -> String,
        inner: (Manifest.File, InspectionReport.File) throws(BootMediumError) -> [String] = { _, _ in [] }
    ) throws(BootMediumError) -> (problems: [String], listed: Set<String>) {
        var problems: [String] = []
        var listed: Set<String> = []
        var byPath: [String: InspectionReport.File] = [:]
        for file in files { byPath[file.path.lowercased()] = byPath[file.path.lowercased()] ?? file }
        for entry in listing {
            let path = "/" + entry.path
            guard listed.insert(path.lowercased()).inserted else {
                problems.append("\(name(entry.path)): listed more than once in the manifest")
                continue
            }
            guard let actual = byPath[path.lowercased()] else {
                problems.append("\(name(entry.path)): listed in the manifest, missing from \(place)")
                continue
            }
            if actual.size != entry.size {
                problems.append("\(name(entry.path)): size \(actual.size), manifest says \(entry.size)")
                continue
            }
            if try hash(actual.path, entry.zeroed) != entry.sha256 {
                problems.append("\(name(entry.path)): SHA-256 differs from the manifest")
            }
            problems += try inner(entry, actual)
        }
        return (problems, listed)
    }

    /// The differences between the files of the FAT volume at `offset` (the ESP image, named
    /// `path` in the manifest) and the manifest's `listing` of them.
    static func checkVolume(_ path: String, listing: [Manifest.File], at offset: Int64, image: ImageBytes)
        throws(BootMediumError) -> [String]
    {
        let volume: FATReader
        do throws(BootMediumError) {
            volume = try FATReader(image, offset: offset)
        } catch {
            return ["\(path): not a FAT volume (\(error.message))"]
        }
        let found: [InspectionReport.File]
        do throws(BootMediumError) {
            found = try volume.files()
        } catch {
            return ["\(path): its FAT volume cannot be read (\(error.message))"]
        }
        var (problems, listed) = try compare(
            listing, with: found, name: { "\(path)/\($0)" }, place: "the volume",
            hash: { (file, _) throws(BootMediumError) in (try? volume.sha256(file, zeroed: nil)) ?? "" })
        for actual in found where !listed.contains(actual.path.lowercased()) {
            problems.append("\(path)\(actual.path): in the volume, not in the manifest")
        }
        return problems.sorted()
    }
}
