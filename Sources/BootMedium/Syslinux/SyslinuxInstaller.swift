/// The work of `syslinux --install` (SYSLINUX 6.04, mtools installer, default options) done on
/// bytes, following docs/syslinux-install.md: given where `ldlinux.sys` lands on the FAT volume, it
/// produces the installed `ldlinux.sys` (core + 2 ADV sectors, patched) and the volume's new
/// boot sector (the volume's BPB merged with the template's code, patched).
///
/// All sector numbers are relative to the start of the FAT volume (not the disk), whatever the
/// partition offset, as the real installer stores them.
struct SyslinuxInstaller: Sendable {
    /// The names of the files SYSLINUX keeps in the volume's root.
    static let ldlinuxSysName = "ldlinux.sys"
    static let ldlinuxC32Name = "ldlinux.c32"

    /// Attributes of both files as the installer leaves them: archive, system, hidden, read-only.
    static let fileAttributes: UInt8 = 0x27
    /// NT case byte of both files (lower-case 8.3 base and extension, no long name).
    static let caseFlags: UInt8 = 0x18
    /// `ldlinux.sys` data sectors may join one extent while the extent stays under 64 KiB.
    static let maximumExtentSectors = 127
    /// Default `maxtransfer` (sectors per BIOS read; 1 with `--stupid`).
    static let maximumTransfer: UInt16 = 127

    static let advMagicHead: UInt32 = 0x5A2D_2FA5
    static let advMagicTail: UInt32 = 0xDD28_BF64
    static let advChecksumBase: UInt32 = 0xA304_1767

    let payload: SyslinuxPayload

    /// The result of an installation.
    struct Installation: Equatable, Sendable {
        /// The installed `ldlinux.sys` (`payload.installedSysSize` bytes).
        let ldlinuxSys: [UInt8]
        /// The volume's boot sector with SYSLINUX's code.
        let bootSector: [UInt8]
    }

    /// Installs for a file whose 512-byte sectors are `sectors` (in file order, volume
    /// relative; `payload.installedSysSize / 512` of them), merging into the volume's own
    /// `bootSector`. Throws `imageBuildFailed` when the sector count is wrong or the file is too
    /// fragmented for the extent table.
    func install(sectors: [UInt64], bootSector: [UInt8]) throws(BootMediumError) -> Installation {
        let area = payload.patchArea
        let core = payload.ldlinuxSys
        let dataSectors = core.count / 512
        guard sectors.count == dataSectors + 2, bootSector.count == 512 else {
            throw BootMediumError(
                .imageBuildFailed, "ldlinux.sys needs \(dataSectors + 2) sectors",
                context: ["sectors": String(sectors.count)])
        }
        var sys = core + Self.blankADV() + Self.blankADV()

        // Patch area: sizes, checksum field cleared, maxtransfer.
        sys.putLE16(UInt16(dataSectors), at: area.offset + 8)
        sys.putLE16(2, at: area.offset + 10)
        sys.putLE32(UInt32(core.count / 4), at: area.offset + 12)
        sys.putLE32(0, at: area.offset + 16)
        sys.putLE16(Self.maximumTransfer, at: area.offset + 20)

        // Extents over sectors 1 ..< N-2 (the boot sector loads sector 0; the last two are ADVs).
        let extents = Self.extents(of: sectors[1..<(sectors.count - 2)])
        guard extents.count <= area.extentSlots else {
            throw BootMediumError(
                .imageBuildFailed, "ldlinux.sys is too fragmented for SYSLINUX's extent table",
                context: ["extents": String(extents.count)])
        }
        sys.replaceSubrange(
            area.extentTable..<(area.extentTable + area.extentSlots * 10),
            with: [UInt8](repeating: 0, count: area.extentSlots * 10))
        for (i, extent) in extents.enumerated() {
            sys.putLE64(extent.lba, at: area.extentTable + 10 * i)
            sys.putLE16(UInt16(extent.count), at: area.extentTable + 10 * i + 8)
        }
        // ADV pointers.
        sys.putLE64(sectors[sectors.count - 2], at: area.advPointers)
        sys.putLE64(sectors[sectors.count - 1], at: area.advPointers + 8)
        // Checksum over the core (ADV excluded), computed last.
        var sum: UInt32 = 0
        for i in stride(from: 0, to: core.count, by: 4) { sum &+= sys.le32(at: i) }
        sys.putLE32(SyslinuxPatchArea.magic &- sum, at: area.offset + 16)

        // Boot sector: the volume's BPB (0x0B-0x59) and signature, the template's jump, OEM name
        // and code (0x5A-0x1FD), then the sector pointer and the RAID patch.
        let template = payload.bootSectorTemplate
        var boot = bootSector
        boot.replaceSubrange(0..<0x0B, with: template[0..<0x0B])
        boot.replaceSubrange(0x5A..<0x1FE, with: template[0x5A..<0x1FE])
        boot.putLE32(UInt32(truncatingIfNeeded: sectors[0]), at: area.bootSectorPointerLow)
        boot.putLE32(UInt32(truncatingIfNeeded: sectors[0] >> 32), at: area.bootSectorPointerHigh)
        boot.put([0xCD, 0x16], at: area.bootSectorRAID)
        return Installation(ldlinuxSys: sys, bootSector: boot)
    }

    /// Runs of consecutive sectors, each at most ``maximumExtentSectors`` long.
    static func extents(of sectors: ArraySlice<UInt64>) -> [(lba: UInt64, count: Int)] {
        var result: [(lba: UInt64, count: Int)] = []
        for sector in sectors {
            if let last = result.last, sector == last.lba + UInt64(last.count), last.count + 1 <= maximumExtentSectors {
                result[result.count - 1].count += 1
            } else {
                result.append((sector, 1))
            }
        }
        return result
    }

    /// An empty ADV sector: magic, checksum, 500 zero data bytes, tail magic.
    static func blankADV() -> [UInt8] {
        var adv = [UInt8](repeating: 0, count: 512)
        adv.putLE32(advMagicHead, at: 0)
        var sum: UInt32 = 0
        for i in stride(from: 8, to: 508, by: 4) { sum &+= adv.le32(at: i) }
        adv.putLE32(advChecksumBase &- sum, at: 4)
        adv.putLE32(advMagicTail, at: 508)
        return adv
    }
}

/// SYSLINUX as a FAT volume's boot loader: `ldlinux.sys` and `ldlinux.c32` in the root, first in
/// the data area, attributes 0x27, installed as `syslinux --install` would (boot sector code,
/// patched `ldlinux.sys`). The FAT32 backup boot sector the volume writes is the final boot
/// sector (the real installer leaves mkfs.fat's there; fsck.fat then reports a difference).
extension SyslinuxPayload: FATBootLoader {
    var reservedFiles: [FATFileSpec] {
        // The installed ldlinux.sys replaces these placeholder bytes once its sectors are known.
        var sys = FATFileSpec(path: [SyslinuxInstaller.ldlinuxSysName], bytes: [UInt8](repeating: 0, count: installedSysSize))
        sys.attributes = SyslinuxInstaller.fileAttributes
        var c32 = FATFileSpec(path: [SyslinuxInstaller.ldlinuxC32Name], bytes: ldlinuxC32)
        c32.attributes = SyslinuxInstaller.fileAttributes
        return [sys, c32]
    }

    func install(firstFileSectors: [UInt64], bootSector: [UInt8]) throws(BootMediumError)
        -> (bootSector: [UInt8], firstFile: [UInt8])
    {
        let installation = try SyslinuxInstaller(payload: self).install(sectors: firstFileSectors, bootSector: bootSector)
        return (installation.bootSector, installation.ldlinuxSys)
    }
}
