// ParsedBootConfig (isolinux.cfg / syslinux.cfg) and ParsedNodeConfig (plnode.txt) on hostile text.
import FuzzSupport

@testable import BootMedium

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBootConfig(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let text = String(decoding: fuzzBytes(data, size), as: UTF8.self)
    let config = ParsedBootConfig(path: "/isolinux.cfg", text: text)
    _ = config.defaultEntry
    for shown in [false, true] {
        let node = ParsedNodeConfig(text: text, showSecrets: shown)
        // NODE_KEY is never shown unless asked.
        if !shown, let key = node.value("NODE_KEY"), key != "<redacted>" { fatalError("NODE_KEY not redacted") }
        _ = node.value("HOST_NAME")
    }
    return 0
}
