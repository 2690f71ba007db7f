// ISO9660Reader (ISO 9660 + Rock Ridge names + Joliet detection + El Torito) on hostile images.
// Input: a raw image, or the sparse form of FuzzSupport.SparseImage.
import FuzzSupport

@testable import BootMedium

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzISO9660(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let path = FuzzImageFile.shared.load(SparseImage(decoding: fuzzBytes(data, size)))
    guard let image = step("open", { () throws(BootMediumError) in try ImageBytes(path: path) }),
        let iso = step("descriptors", { () throws(BootMediumError) in try ISO9660Reader(image) })
    else { return 0 }
    _ = (iso.volumeID, iso.volumeBlocks, iso.hasJoliet)
    // The tree, then every file the way inspect reads them (content, digest with a zeroed range).
    let entries = step("walk", { () throws(BootMediumError) in try iso.walk() }) ?? []
    _ = step("list root", { () throws(BootMediumError) in try iso.list(iso.root) })
    for entry in entries.prefix(64) where !entry.isDirectory {
        _ = step("contents", { () throws(BootMediumError) in try iso.contents(entry) })
    }
    if !entries.isEmpty {
        _ = step("files", { () throws(BootMediumError) in try iso.files() })
        for entry in entries.prefix(16) where !entry.isDirectory {
            _ = step("read", { () throws(BootMediumError) in try iso.read(entry.path) })
            _ = step("sha256", { () throws(BootMediumError) in try iso.sha256(entry.path, zeroed: [[8, 64], [-5, 3], [Int64.max - 1, Int64.max]]) })
        }
    }
    // El Torito: the catalog, and the boot info table of each entry's image.
    for boot in step("boot catalog", { () throws(BootMediumError) in try iso.bootEntries() }) ?? [] {
        let file = entries.first { !$0.isDirectory && $0.extent == boot.loadRBA }
        _ = step("boot info table", { () throws(BootMediumError) in try iso.bootInfoTable(rba: boot.loadRBA, file: file) })
    }
    return 0
}
