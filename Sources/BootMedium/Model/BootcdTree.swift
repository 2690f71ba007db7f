#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// A nodefamily's bootcd tree, `usr/share/bootcd-<nodefamily>/<variant>/` (docs/behaviour.md §4).
///
/// Layout read (see `tools/demo/LAYOUT.md`):
/// `version.txt`, `passwd`, `isofs/kernel`, `isofs/bootcd.img`, the ISOLINUX files under
/// `isolinux/` (`isolinux.bin`, `ldlinux.c32`, `isohdpfx.bin`), the SYSLINUX FAT payload under
/// `syslinux/` (`ldlinux.bss`, `ldlinux.sys`, `ldlinux.c32`, `mbr.bin`) and, optionally, the
/// UEFI loader under `efi/` (`shimx64.efi`, `grubx64.efi`, `mmx64.efi`).
///
/// Every file is read through ``file(_:role:)``: resolved beneath the PLC root, checked for its
/// type and size, and opened once per tree value, so what a request measures and what it copies
/// are the same file; ``checkUnchanged()`` tells whether any was written to since.
public struct BootcdTree: Equatable, Sendable {
    /// The default variant directory name.
    public static let defaultVariant = "build"

    /// The tree's directory.
    public let path: String
    /// The variant directory name (`build` unless another variant was selected).
    public let variant: String
    /// The bootcd version: the first line of `version.txt`.
    public let version: String
    /// The PLC root the tree lies in (absolute, empty for `/`): no file may resolve outside it.
    public let root: String
    /// The files opened so far, by path.
    private let opened: OpenedFiles

    private final class OpenedFiles: Sendable {
        let files = Mutex<[String: InputFile]>([:])
    }

    public static func == (a: BootcdTree, b: BootcdTree) -> Bool {
        a.path == b.path && a.variant == b.variant && a.version == b.version && a.root == b.root
    }

    /// The tree file at `path` (one of the paths below), opened on first use.
    public func file(_ path: String, role: InputRole) throws(BootMediumError) -> InputFile {
        if let known = opened.files.withLock({ $0[path] }) { return known }
        let file = try InputFile.open(path, inRoot: root, role: role)
        return opened.files.withLock { files in
            if let known = files[path] { return known }
            files[path] = file
            return file
        }
    }

    /// Fails unless every tree file read so far is as it was when first opened.
    public func checkUnchanged() throws(BootMediumError) {
        for file in opened.files.withLock({ Array($0.values) }) { try file.checkUnchanged() }
    }

    /// Opens the tree `variant` under `bootcdDirectory` (inside the PLC root `root`), reading
    /// its version.
    ///
    /// A missing default tree is `missing-bootcd`; a missing other variant is `missing-variant`.
    public init(bootcdDirectory: String, variant: String = BootcdTree.defaultVariant, root: String)
        throws(BootMediumError)
    {
        guard Self.isValidVariantName(variant) else {
            throw BootMediumError(
                .missingVariant,
                "Invalid variant name \(variant.debugDescription): a plain directory name is expected",
                context: ["variant": variant])
        }
        let path = bootcdDirectory + "/" + variant
        let versionPath = path + "/version.txt"
        self.root = root
        self.opened = OpenedFiles()
        guard try InputFile.isDirectory(path, inRoot: root) else {
            if variant == Self.defaultVariant {
                throw BootMediumError(
                    .missingBootcd, "No bootcd tree at \(path)", context: ["path": path])
            }
            throw BootMediumError(
                .missingVariant, "No bootcd variant \(variant.debugDescription) at \(path)",
                context: ["variant": variant, "path": path])
        }
        let data: [UInt8]
        do {
            data = try InputFile.open(versionPath, inRoot: root, role: .treeText).readAll()
        } catch where error.code == .missingBootcd {
            throw BootMediumError(
                .missingBootcd, "The bootcd tree has no version.txt: \(versionPath)",
                context: ["path": versionPath])
        }
        let version = String(decoding: data, as: UTF8.self).split(separator: "\n").first
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        guard !version.isEmpty, version.count <= 64,
            version.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-+~".contains($0)) })
        else {
            throw BootMediumError(
                .missingBootcd,
                "The bootcd version in \(versionPath) is empty or not a plain version string",
                context: ["path": versionPath, "version": version])
        }
        self.path = path
        self.variant = variant
        self.version = version
    }

    /// Whether `name` can name a variant directory.
    static func isValidVariantName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && !name.hasPrefix(".")
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
    }

    /// `isofs/kernel`.
    public var kernelPath: String { path + "/isofs/kernel" }
    /// `isofs/bootcd.img`.
    public var bootcdImagePath: String { path + "/isofs/bootcd.img" }
    /// `passwd`.
    public var passwdPath: String { path + "/passwd" }
    /// `isolinux/isolinux.bin`.
    public var isolinuxBinPath: String { path + "/isolinux/isolinux.bin" }
    /// `isolinux/ldlinux.c32`, the module matching `isolinux.bin`.
    public var isolinuxLdlinuxC32Path: String { path + "/isolinux/ldlinux.c32" }
    /// `isolinux/isohdpfx.bin`, the isohybrid MBR template.
    public var isohybridMBRPath: String { path + "/isolinux/isohdpfx.bin" }
    /// `syslinux/ldlinux.bss`, the FAT boot sector template.
    public var syslinuxBootSectorPath: String { path + "/syslinux/ldlinux.bss" }
    /// `syslinux/ldlinux.sys`, unpatched.
    public var syslinuxLdlinuxSysPath: String { path + "/syslinux/ldlinux.sys" }
    /// `syslinux/ldlinux.c32`, the module matching `ldlinux.sys`.
    public var syslinuxLdlinuxC32Path: String { path + "/syslinux/ldlinux.c32" }
    /// `syslinux/mbr.bin`, the MBR boot code of a partitioned USB image.
    public var mbrPath: String { path + "/syslinux/mbr.bin" }
    /// `efi/shimx64.efi`, the signed shim firmware loads as `EFI/BOOT/BOOTX64.EFI` (UEFI).
    public var shimPath: String { path + "/efi/shimx64.efi" }
    /// `efi/grubx64.efi`, signed GRUB for removable media (Debian's `gcdx64.efi.signed`), which
    /// shim loads from its own directory.
    public var grubPath: String { path + "/efi/grubx64.efi" }
    /// `efi/mmx64.efi`, shim's MOK manager (optional).
    public var mokManagerPath: String { path + "/efi/mmx64.efi" }
}
