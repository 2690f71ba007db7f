import Foundation

/// A PLC server's files under a root directory (docs/contract.md §1).
public struct PLCRoot: Sendable {
    /// The root directory, absolute, without a trailing slash (empty for `/`).
    public let path: String

    /// Opens the root at `path` (made absolute against the current directory).
    public init(path: String) {
        var absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        while absolute.count > 1 && absolute.hasSuffix("/") { absolute.removeLast() }
        self.path = absolute == "/" ? "" : absolute
    }

    /// `DIR/<relative>`; `relative` is a server-absolute path such as `/etc/planetlab/x`.
    public func resolve(_ serverPath: String) -> String {
        let relative = serverPath.hasPrefix("/") ? serverPath : "/" + serverPath
        return path + relative
    }

    /// `etc/planetlab/plc_config`.
    public var configPath: String { resolve("/etc/planetlab/plc_config") }
    /// `etc/planetlab/nodefamily`.
    public var nodefamilyPath: String { resolve("/etc/planetlab/nodefamily") }
    /// The work dir, `%d`: `var/tmp/bootmedium`.
    public var workDir: String { resolve("/var/tmp/bootmedium") }
    /// The default node store, `DIR/nodes.json`.
    public var defaultNodeStorePath: String { resolve("/nodes.json") }

    /// `usr/share/bootcd-<nodefamily>/`.
    public func bootcdDirectory(for nodefamily: Nodefamily) -> String {
        resolve("/usr/share/bootcd-\(nodefamily.name)")
    }

    /// `var/www/html/download-<nodefamily>/`.
    public func genericDirectory(for nodefamily: Nodefamily) -> String {
        resolve("/var/www/html/download-\(nodefamily.name)")
    }

    /// Opens the file at `path` (under this root) for `role`: resolved beneath the root, a
    /// regular file within the role's size cap (``InputFile``).
    public func open(_ path: String, role: InputRole) throws(BootMediumError) -> InputFile {
        try InputFile.open(path, inRoot: self.path, role: role)
    }

    /// Reads and parses `plc_config`; a missing file is `invalid-configuration`.
    public func loadConfiguration() throws(BootMediumError) -> PLCConfiguration {
        let data = try open(configPath, role: .plcConfig).readAll()
        guard let text = String(validating: data, as: UTF8.self) else {
            throw BootMediumError(
                .invalidConfiguration, "The PLC configuration \(configPath) is not valid UTF-8",
                context: ["path": configPath])
        }
        return PLCConfiguration(parsing: text)
    }

    /// The server's default nodefamily from `etc/planetlab/nodefamily`, else `planetlab-i386`.
    public func defaultNodefamily() throws(BootMediumError) -> Nodefamily {
        let data: [UInt8]
        do {
            data = try open(nodefamilyPath, role: .nodefamily).readAll()
        } catch where error.code == .invalidConfiguration {  // missing
            return Nodefamily(pldistro: "planetlab", arch: "i386")
        }
        let text = String(decoding: data, as: UTF8.self)
        let line = text.split(separator: "\n").first.map(String.init)?
            .trimmingCharacters(in: .whitespaces) ?? ""
        return try Nodefamily(parsing: line, source: nodefamilyPath)
    }
}
