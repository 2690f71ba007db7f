import Foundation

/// The pristine SYSLINUX 6.04 blobs an installer needs, all from the same build
/// (docs/syslinux-install.md §1): the FAT boot sector template (`ldlinux.bss`, 512 bytes), the
/// unpatched core (`ldlinux.sys`, a multiple of 512 bytes, without ADV) and the matching
/// `ldlinux.c32`.
public struct SyslinuxPayload: Sendable, Equatable {
    /// `ldlinux.bss`: jump, `SYSLINUX` OEM name, zero BPB, boot code, 0x3EB202FE at 0x1F8.
    public let bootSectorTemplate: [UInt8]
    /// `ldlinux.sys` as built (no ADV sectors, unpatched).
    public let ldlinuxSys: [UInt8]
    /// `ldlinux.c32`, copied unchanged.
    public let ldlinuxC32: [UInt8]
    /// Where the patch area and the extended patch area are (read from `ldlinuxSys`).
    let patchArea: SyslinuxPatchArea

    /// Checks and keeps the three blobs. Throws `invalidImage` when the template is not a
    /// SYSLINUX boot sector, `ldlinux.sys` has no valid patch area, the two are from different
    /// builds, or `ldlinux.c32` is not an ELF file.
    public init(bootSectorTemplate: [UInt8], ldlinuxSys: [UInt8], ldlinuxC32: [UInt8]) throws(BootMediumError) {
        guard bootSectorTemplate.count == 512, bootSectorTemplate[0] == 0xEB,
            bootSectorTemplate.le32(at: 0x1F8) == SyslinuxPatchArea.magic
        else {
            throw BootMediumError(.invalidImage, "ldlinux.bss is not a SYSLINUX FAT boot sector template")
        }
        let area = try SyslinuxPatchArea(ldlinuxSys: ldlinuxSys)
        // The boot code compares ldlinux.sys's build instance (the dword after the magic) with
        // a constant compiled into it: a template from another build would not boot.
        let instance = ldlinuxSys.le32(at: area.offset + 4)
        guard (0x5A...0x1F4).contains(where: { bootSectorTemplate.le32(at: $0) == instance }) else {
            throw BootMediumError(
                .invalidImage, "ldlinux.bss and ldlinux.sys come from different SYSLINUX builds",
                context: ["instance": String(instance, radix: 16)])
        }
        guard ldlinuxC32.count > 52, ldlinuxC32.prefix(4) == [0x7F, 0x45, 0x4C, 0x46] else {
            throw BootMediumError(.invalidImage, "ldlinux.c32 is not an ELF module")
        }
        self.bootSectorTemplate = bootSectorTemplate
        self.ldlinuxSys = ldlinuxSys
        self.ldlinuxC32 = ldlinuxC32
        patchArea = area
    }

    /// Reads `ldlinux.bss`, `ldlinux.sys` and `ldlinux.c32` from `directory` (the bootcd's
    /// `build/syslinux/`).
    public static func load(directory: String) throws(BootMediumError) -> SyslinuxPayload {
        func read(_ name: String) throws(BootMediumError) -> [UInt8] {
            try InputFile.open(directory + "/" + name, role: .loader).readAll()
        }
        return try SyslinuxPayload(
            bootSectorTemplate: read("ldlinux.bss"), ldlinuxSys: read("ldlinux.sys"), ldlinuxC32: read("ldlinux.c32"))
    }

    /// The size of the installed `ldlinux.sys`: the core plus two ADV sectors.
    public var installedSysSize: Int { ldlinuxSys.count + 2 * 512 }
}

/// The offsets of ldlinux.sys's patch area and extended patch area (docs/syslinux-install.md §3),
/// read from the file itself.
struct SyslinuxPatchArea: Equatable, Sendable {
    /// LDLINUX_MAGIC, also at boot sector 0x1F8.
    static let magic: UInt32 = 0x3EB2_02FE

    /// Offset of the patch area (the magic) in ldlinux.sys.
    let offset: Int
    /// Offset of the extended patch area.
    let epaOffset: Int
    /// Where the two u64 ADV sector pointers go.
    let advPointers: Int
    /// The current-directory field and its length.
    let directoryField: Int
    let directoryLength: Int
    /// The extent table (10-byte slots) and its slot count.
    let extentTable: Int
    let extentSlots: Int
    /// Boot-sector offsets of the low / high dword of ldlinux.sys's first sector and of the RAID
    /// patch (`CD 16` / `CD 18`).
    let bootSectorPointerLow: Int
    let bootSectorPointerHigh: Int
    let bootSectorRAID: Int

    init(ldlinuxSys sys: [UInt8]) throws(BootMediumError) {
        func fail(_ what: String) -> BootMediumError {
            BootMediumError(.invalidImage, "ldlinux.sys: \(what)", context: ["size": String(sys.count)])
        }
        guard sys.count >= 1024, sys.count % 512 == 0 else { throw fail("size is not a multiple of 512") }
        guard let found = stride(from: 0, to: sys.count - 32, by: 4).first(where: { sys.le32(at: $0) == Self.magic }) else {
            throw fail("no patch area (magic 0x3EB202FE)")
        }
        offset = found
        let epa = Int(sys.le16(at: found + 22))
        guard epa + 22 <= sys.count else { throw fail("extended patch area out of range") }
        epaOffset = epa
        func field(_ n: Int) -> Int { Int(sys.le16(at: epa + n)) }
        advPointers = field(0)
        directoryField = field(2)
        directoryLength = field(4)
        extentTable = field(10)
        extentSlots = field(12)
        bootSectorPointerLow = field(14)
        bootSectorPointerHigh = field(16)
        bootSectorRAID = field(18)
        guard advPointers + 16 <= sys.count, directoryField + directoryLength <= sys.count,
            extentSlots > 0, extentTable + extentSlots * 10 <= sys.count
        else { throw fail("extended patch area points outside the file") }
        let code = 0x5A...0x1F6
        guard code.contains(bootSectorPointerLow + 3), code.contains(bootSectorPointerLow),
            code.contains(bootSectorPointerHigh), code.contains(bootSectorPointerHigh + 3),
            code.contains(bootSectorRAID), code.contains(bootSectorRAID + 1)
        else { throw fail("boot sector patch offsets outside the boot code") }
    }
}
