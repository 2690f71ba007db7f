import Crypto
import Foundation

/// `overlay.img`: the node-specific files laid over the bootcd's root filesystem
/// (docs/behaviour.md §5.1), as a gzip-compressed cpio newc archive written with libarchive.
///
/// Entries are sorted by path (parents first), owned by 0:0, directories `0755`, files `0644`
/// except `usr/boot/plnode.txt` (`0600`: it holds the node key); every mtime is the plan's
/// clock (`SOURCE_DATE_EPOCH` when set). The root password hash in `etc/passwd` is
/// SHA-512-crypt (see ``Crypt``); its salt is random, or derived from the inputs when
/// `SOURCE_DATE_EPOCH` is set so that the same inputs give the same bytes.
struct Overlay {
    /// The entries, sorted.
    let entries: [CpioEntry]
    /// The compressed archive.
    let bytes: [UInt8]
    /// The uncompressed (cpio) size.
    let uncompressedSize: Int64

    /// Builds the overlay of `plan` with the node config `nodeConfigText` (node actions).
    static func build(_ plan: ImagePlan, nodeConfigText: String?) throws(BootMediumError) -> Overlay {
        let entries = try Self.entries(plan, nodeConfigText: nodeConfigText)
        let archive = try Archive.gzippedNewc(entries, timestamp: plan.clock.now)
        return Overlay(entries: entries, bytes: archive.bytes, uncompressedSize: archive.uncompressedSize)
    }

    static func entries(_ plan: ImagePlan, nodeConfigText: String?) throws(BootMediumError) -> [CpioEntry] {
        let tree = plan.tree, versionString = plan.versionString
        let config = plan.configuration
        let bootHost = try config.required("PLC_BOOT_HOST")
        guard Self.isHostname(bootHost) else {
            throw BootMediumError(
                .invalidConfiguration, "PLC_BOOT_HOST \(bootHost.debugDescription) is not a host name",
                context: ["key": "PLC_BOOT_HOST"])
        }
        let bootPort = config["PLC_BOOT_SSL_PORT"].flatMap { $0.isEmpty ? nil : $0 } ?? "443"
        guard let portNumber = Int(bootPort), (1...65535).contains(portNumber) else {
            throw BootMediumError(
                .invalidConfiguration, "PLC_BOOT_SSL_PORT \(bootPort.debugDescription) is not a port",
                context: ["key": "PLC_BOOT_SSL_PORT"])
        }
        let caCert = try readServerFile(plan, key: "PLC_BOOT_CA_SSL_CRT")
        let gpgKey = try readServerFile(plan, key: "PLC_ROOT_GPG_KEY_PUB")
        let version = Array((versionString + "\n").utf8)

        var files: [String: [UInt8]] = [:]
        var modes: [String: mode_t] = [:]
        files["pl_version"] = version
        files["usr/isolinux/pl_version"] = version
        for dir in ["usr/boot", "usr/boot/backup"] {
            files["\(dir)/cacert.pem"] = caCert
            files["\(dir)/pubring.gpg"] = gpgKey
            files["\(dir)/boot_server"] = Array((bootHost + "\n").utf8)
            files["\(dir)/boot_server_port"] = Array("\(portNumber)\n".utf8)
            files["\(dir)/boot_server_path"] = Array("/boot/\n".utf8)
        }
        files["usr/bootme/cacert/\(bootHost)/cacert.pem"] = caCert
        files["usr/bootme/ID"] = version
        files["usr/bootme/BOOTSERVER"] = Array((bootHost + "\n").utf8)
        files["usr/bootme/BOOTSERVER_IP"] = Array((bootHost + "\n").utf8)
        files["usr/bootme/BOOTPORT"] = Array("\(portNumber)\n".utf8)
        files["etc/issue"] = Array(try issue(plan, versionString: versionString).utf8)
        files["etc/passwd"] = try passwd(plan, tree: tree, versionString: versionString)
        if let nodeConfigText {
            files["usr/boot/plnode.txt"] = Array(nodeConfigText.utf8)
            modes["usr/boot/plnode.txt"] = 0o600
        }
        if let kargs = plan.kernelCommandLine.kargsFileContents {
            files["kargs.txt"] = Array(kargs.utf8)
        }

        var directories = Set<String>()
        for path in files.keys {
            var parts = path.split(separator: "/").dropLast()
            while !parts.isEmpty {
                directories.insert(parts.joined(separator: "/"))
                parts = parts.dropLast()
            }
        }
        var entries = directories.map { CpioEntry(path: $0, mode: 0o755, kind: .directory) }
        entries += files.map { CpioEntry(path: $0.key, mode: modes[$0.key] ?? 0o644, kind: .file($0.value)) }
        return entries.sorted { Array($0.path.utf8).lexicographicallyPrecedes(Array($1.path.utf8)) }
    }

    static func isHostname(_ text: String) -> Bool {
        !text.isEmpty && text.count <= 253 && !text.hasPrefix(".") && !text.hasPrefix("-")
            && !text.contains("..")
            && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") }
    }

    /// A file named by a `plc_config` key (a server-absolute path, resolved under the root).
    static func readServerFile(_ plan: ImagePlan, key: String) throws(BootMediumError) -> [UInt8] {
        let serverPath = try plan.configuration.required(key)
        return try plan.root.open(plan.root.resolve(serverPath), role: .serverFile(key)).readAll()
    }

    /// `etc/issue` from `templates/etc-issue.mustache`.
    static func issue(_ plan: ImagePlan, versionString: String) throws(BootMediumError) -> String {
        let config = plan.configuration
        let host = config["PLC_WWW_HOST"] ?? ""
        let port = config["PLC_WWW_PORT"] ?? "80"
        let url: String
        switch port {
        case "443": url = "https://\(host)/"
        case "80", "": url = "http://\(host)/"
        default: url = "http://\(host):\(port)/"
        }
        return try Templates.render(
            "etc-issue",
            [
                "versionString": versionString, "plcName": config.plcName ?? "",
                "webURL": url, "supportAddress": config["PLC_MAIL_SUPPORT_ADDRESS"] ?? "",
            ])
    }

    /// The tree's passwd with root's password field replaced by a hash of PLC_ROOT_PASSWORD.
    static func passwd(_ plan: ImagePlan, tree: BootcdTree, versionString: String)
        throws(BootMediumError) -> [UInt8]
    {
        let data: [UInt8]
        do {
            data = try tree.file(tree.passwdPath, role: .treeText).readAll()
        } catch where error.code == .missingBootcd {
            throw BootMediumError(
                .missingBootcd, "The bootcd tree has no passwd: \(tree.passwdPath)",
                context: ["path": tree.passwdPath])
        }
        let password = try plan.configuration.required("PLC_ROOT_PASSWORD")
        var saltBytes: [UInt8]
        if plan.clock.sourceDateEpoch != nil {
            var hasher = SHA256()
            hasher.update(data: Array("bootmedium passwd salt\0\(password)\0\(versionString)\0".utf8))
            hasher.update(data: data)
            saltBytes = Array(hasher.finalize())
        } else {
            var generator = SystemRandomNumberGenerator()
            saltBytes = (0..<16).map { _ in generator.next() }
        }
        let hash = try Crypt.sha512Crypt(password, saltBytes: saltBytes)
        var found = false
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        let rewritten = lines.map { line -> String in
            var fields = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard fields.count >= 2, fields[0] == "root" else { return String(line) }
            found = true
            fields[1] = hash
            return fields.joined(separator: ":")
        }
        guard found else {
            throw BootMediumError(
                .missingBootcd, "The bootcd tree's passwd has no root entry: \(tree.passwdPath)",
                context: ["path": tree.passwdPath])
        }
        return Array(rewritten.joined(separator: "\n").utf8)
    }
}
