// FATReader (FAT16/32 superfloppy, or inside an MBR partition) and the MBR decoder on hostile
// images. Input: a raw image, or the sparse form of FuzzSupport.SparseImage (FAT32 needs
// ≥ 33 MiB, which only the sparse form reaches).
import FuzzSupport

@testable import BootMedium

func exercise(_ image: ImageBytes, offset: Int64) {
    guard let fat = step("boot sector", { () throws(BootMediumError) in try FATReader(image, offset: offset) }) else { return }
    let entries = step("walk", { () throws(BootMediumError) in try fat.walk() }) ?? []
    _ = step("list root", { () throws(BootMediumError) in try fat.list(nil) })
    _ = step("syslinux", { () throws(BootMediumError) in try fat.syslinux() })
    guard !entries.isEmpty else { return }
    _ = step("files", { () throws(BootMediumError) in try fat.files() })
    for entry in entries.prefix(16) {
        if entry.isDirectory {
            _ = step("list", { () throws(BootMediumError) in try fat.list(entry) })
        } else {
            _ = step("read", { () throws(BootMediumError) in try fat.read(entry.path) })
            _ = step("sha256", { () throws(BootMediumError) in try fat.sha256(entry.path, zeroed: [[8, 64], [-5, 3]]) })
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFAT(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let path = FuzzImageFile.shared.load(SparseImage(decoding: fuzzBytes(data, size)))
    guard let image = step("open", { () throws(BootMediumError) in try ImageBytes(path: path) }) else { return 0 }
    exercise(image, offset: 0)
    // As inspect does for a partitioned USB image: every MBR partition holding a FAT volume.
    let partitions = step("MBR", { () throws(BootMediumError) in try ImageInspector.mbrPartitions(image) }) ?? nil
    for partition in partitions ?? [] {
        exercise(image, offset: partition.startSector * 512)
    }
    return 0
}
