import Foundation

/// A PLC server's files under a root directory (CONTRACT.md §1).
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

    /// Reads and parses `plc_config`; a missing file is `invalid-configuration`.
    public func loadConfiguration() throws(BootMediumError) -> PLCConfiguration {
        guard let data = FileManager.default.contents(atPath: configPath),
            let text = String(data: data, encoding: .utf8)
        else {
            throw BootMediumError(
                .invalidConfiguration, "Cannot read the PLC configuration \(configPath)",
                context: ["path": configPath])
        }
        return PLCConfiguration(parsing: text)
    }

    /// The server's default nodefamily from `etc/planetlab/nodefamily`, else `planetlab-i386`.
    public func defaultNodefamily() throws(BootMediumError) -> Nodefamily {
        guard let data = FileManager.default.contents(atPath: nodefamilyPath) else {
            return Nodefamily(pldistro: "planetlab", arch: "i386")
        }
        let text = String(decoding: data, as: UTF8.self)
        let line = text.split(separator: "\n").first.map(String.init)?
            .trimmingCharacters(in: .whitespaces) ?? ""
        return try Nodefamily(parsing: line, source: nodefamilyPath)
    }
}
