// PLCConfiguration (etc/planetlab/plc_config) on hostile text, then what the planner and the
// overlay read from it: PLC_NAME (`required`, `%p` of an output template, the published name),
// the `required` keys of an image, PLC_BOOT_HOST as the overlay checks it (it becomes a path
// component of the overlay), the boot port, and etc/issue rendered from the PLC_WWW_* values.
//
// Properties besides "no crash, no hang": every key is `[A-Za-z0-9_]+` (the parser's key rule);
// no key or value holds a line feed (the file is read line by line); `required` returns the
// value exactly when it is non-empty, else `invalid-configuration`; a PLC_NAME that
// `checkPLCName` or `%p` accepts is one safe path component as OutputTemplate documents it; a
// PLC_BOOT_HOST the overlay accepts is a host name, so no `/` and no `..`. The text is decoded
// both as the root reads it (`String(validating:)`, else refused) and UTF-8-lossily.
import FuzzSupport

@testable import BootMedium

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPLCConfig(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = fuzzBytes(data, size)
    let lossy = PLCConfiguration(parsing: String(decoding: bytes, as: UTF8.self))
    check(lossy)
    if let text = String(validating: bytes, as: UTF8.self) {  // as PLCRoot.loadConfiguration reads it
        let strict = PLCConfiguration(parsing: text)
        if strict != lossy { fatalError("valid UTF-8 parsed differently strictly and lossily") }
    }
    return 0
}

private let keyBytes = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_".utf8))
private let safeComponentBytes = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-+~ ".utf8))
private let hostnameBytes = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-".utf8))

private func check(_ config: PLCConfiguration) {
    for (key, value) in config.values {
        guard !key.utf8.isEmpty, key.utf8.allSatisfy(keyBytes.contains) else {
            fatalError("key \(key.debugDescription) is not [A-Za-z0-9_]+")
        }
        if value.utf8.contains(0x0A) { fatalError("value of \(key) spans lines: \(value.debugDescription)") }
        if config[key] != value { fatalError("subscript disagrees for \(key)") }
    }
    for key in ["PLC_NAME", "PLC_ROOT_PASSWORD", "PLC_BOOT_HOST", "PLC_BOOT_CA_SSL_CRT", "PLC_ROOT_GPG_KEY_PUB"] {
        do throws(BootMediumError) {
            let value = try config.required(key)
            if value.isEmpty || config.values[key] != value { fatalError("required(\(key)) returned \(value.debugDescription)") }
        } catch {
            if error.code != .invalidConfiguration || !(config.values[key] ?? "").isEmpty {
                fatalError("required(\(key)) threw \(error) for \(String(describing: config.values[key]))")
            }
            _ = error.description
        }
    }
    if config.plcName != config.values["PLC_NAME"] { fatalError("plcName is not PLC_NAME") }
    if let name = config.plcName {
        let version = "\(name) BootCD 5.4"  // BootPlan.versionString
        do throws(BootMediumError) {
            try OutputTemplate.checkPLCName(name)
            checkSafeComponent(name)
        } catch {
            if error.code != .invalidConfiguration { fatalError("checkPLCName threw \(error)") }
            _ = error.description
        }
        _ = version.uppercased()
    }
    let values = OutputTemplate.Values(
        workDir: "/w", name: "RANDOMNM", nameIsHostname: false, suffix: ".iso", plcName: config.plcName,
        nodefamily: Nodefamily(pldistro: "planetlab", arch: "x86_64"), version: "5.4", versionError: nil)
    do throws(BootMediumError) {
        let path = try OutputTemplate("%d/%p-%v%s").expand(values)
        guard let name = config.plcName, path == "/w/\(name)-5.4.iso" else { fatalError("%p expanded to \(path.debugDescription)") }
        checkSafeComponent(name)
    } catch {
        if error.code != .invalidConfiguration { fatalError("%p threw \(error)") }
        _ = error.description
    }
    if let host = config["PLC_BOOT_HOST"], Overlay.isHostname(host) {
        let bytes = Array(host.utf8)
        guard !bytes.isEmpty, bytes.count <= 253, bytes.allSatisfy(hostnameBytes.contains), bytes.first != UInt8(ascii: "."),
            bytes.first != UInt8(ascii: "-"), !host.contains("..")
        else { fatalError("PLC_BOOT_HOST \(host.debugDescription) passed as a host name") }
    }
    let port = config["PLC_BOOT_SSL_PORT"].flatMap { $0.isEmpty ? nil : $0 } ?? "443"
    if let number = Int(port), (1...65535).contains(number) { _ = "\(number)\n" }
    let wwwPort = config["PLC_WWW_PORT"] ?? "80"
    let host = config["PLC_WWW_HOST"] ?? ""
    let url = wwwPort == "443" ? "https://\(host)/" : wwwPort == "80" || wwwPort.isEmpty ? "http://\(host)/" : "http://\(host):\(wwwPort)/"
    do throws(BootMediumError) {
        _ = try Templates.render(
            "etc-issue",
            [
                "versionString": "\(config.plcName ?? "") BootCD 5.4", "plcName": config.plcName ?? "",
                "webURL": url, "supportAddress": config["PLC_MAIL_SUPPORT_ADDRESS"] ?? "",
            ])
    } catch {
        fatalError("etc-issue: \(error)")
    }
}

/// OutputTemplate's rule for a name that becomes a path component: 1-255 bytes of
/// `A-Z a-z 0-9 . _ - + ~` and inner spaces, not `.` or `..`.
private func checkSafeComponent(_ name: String) {
    let bytes = Array(name.utf8)
    guard !bytes.isEmpty, bytes.count <= 255, bytes.allSatisfy(safeComponentBytes.contains), name != ".", name != "..",
        bytes.first != UInt8(ascii: " "), bytes.last != UInt8(ascii: " ")
    else { fatalError("PLC_NAME \(name.debugDescription) passed as a path component") }
}
