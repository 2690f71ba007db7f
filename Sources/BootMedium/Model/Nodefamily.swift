/// A nodefamily: `pldistro-arch`, or `pldistro-fcdistro-arch` when an fcdistro is known.
///
/// It names the bootcd tree (`usr/share/bootcd-<name>/`) and the generic image directory.
/// Every part is checked to be a plain name (`A-Z a-z 0-9 . _`, not starting with `.`), since
/// it becomes part of a path.
public struct Nodefamily: Equatable, Hashable, Sendable {
    /// Architectures a node group may name.
    public static let knownArchitectures = ["i386", "x86_64"]

    /// The PlanetLab distribution, e.g. `planetlab`.
    public let pldistro: String
    /// The Fedora-like distribution, e.g. `f37`, when known.
    public let fcdistro: String?
    /// The architecture, e.g. `x86_64`.
    public let arch: String

    /// Creates a nodefamily.
    public init(pldistro: String, fcdistro: String? = nil, arch: String) {
        self.pldistro = pldistro
        self.fcdistro = fcdistro
        self.arch = arch
    }

    /// Parses `pldistro-arch` or `pldistro-fcdistro-arch`.
    public init(parsing text: String, source: String) throws(BootMediumError) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        let bad = BootMediumError(
            .invalidConfiguration,
            "Invalid nodefamily \(text.debugDescription) in \(source): expected pldistro-arch",
            context: ["nodefamily": text, "path": source])
        guard parts.count == 2 || parts.count == 3, parts.allSatisfy(Self.isPlainName) else {
            throw bad
        }
        self.init(
            pldistro: parts[0], fcdistro: parts.count == 3 ? parts[1] : nil, arch: parts.last!)
    }

    /// `pldistro-arch` or `pldistro-fcdistro-arch`.
    public var name: String {
        [pldistro, fcdistro, arch].compactMap { $0 }.joined(separator: "-")
    }

    /// Whether `part` can be a nodefamily part (and so a path component).
    static func isPlainName(_ part: String) -> Bool {
        !part.isEmpty && part.count <= 64 && !part.hasPrefix(".")
            && part.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ".") }
    }

    /// The nodefamily of `node` given the server default (docs/behaviour.md §3).
    ///
    /// Node groups are read in order: a known arch sets the arch, a `PLDISTRO-ARCH` name with a
    /// known arch sets both, anything else is ignored. Then the later PLCAPI's node tags apply:
    /// `pldistro`, `fcdistro` and `arch` (a known arch) override. Tag values that are not plain
    /// names are ignored like an unknown group.
    public static func of(_ node: Node?, default base: Nodefamily) -> Nodefamily {
        guard let node else { return base }
        var pldistro = base.pldistro
        var fcdistro = base.fcdistro
        var arch = base.arch
        for group in node.nodegroups {
            if knownArchitectures.contains(group) {
                arch = group
                continue
            }
            let parts = group.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
            if parts.count == 2, knownArchitectures.contains(parts[1]), isPlainName(parts[0]) {
                pldistro = parts[0]
                arch = parts[1]
            }
        }
        if let value = node.tags["pldistro"], isPlainName(value) { pldistro = value }
        if let value = node.tags["fcdistro"], isPlainName(value) { fcdistro = value }
        if let value = node.tags["arch"], knownArchitectures.contains(value) { arch = value }
        return Nodefamily(pldistro: pldistro, fcdistro: fcdistro, arch: arch)
    }
}
