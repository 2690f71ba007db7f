// The whole `bootmedium inspect` path: libblkid detection, then the ISO or FAT reader, MBR,
// boot configs, the overlay through libarchive, plnode.txt and the manifest check, then the
// report rendered as the CLI renders it (summary and JSON).
// Input: a raw image, or the sparse form of FuzzSupport.SparseImage.
import Foundation
import FuzzSupport

@testable import BootMedium

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzInspect(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let path = FuzzImageFile.shared.load(SparseImage(decoding: fuzzBytes(data, size)))
    guard let report = step("inspect", { () throws(BootMediumError) in try ImageInspector.inspect(path: path) }) else { return 0 }
    _ = report.summary
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    do {
        _ = try encoder.encode(report)
    } catch {
        fatalError("the report does not encode: \(error)")
    }
    // NODE_KEY stays redacted unless asked.
    if let key = report.nodeConfig?.value("NODE_KEY"), key != "<redacted>" { fatalError("NODE_KEY not redacted") }
    return 0
}
