/// The filename template of a request and its markers (docs/behaviour.md §1):
/// `%d` work dir, `%n` node hostname (generic actions: a random name), `%s` suffix,
/// `%p` PLC name, `%f` nodefamily, `%a` arch, `%v` bootcd version.
/// Any other `%` sequence is `invalid-output`: a template must say what it means.
///
/// Every marker but `%d` (the work dir, a path) and `%s` (our own suffix) expands to a value
/// from the node store, `plc_config` or the tree, which must be one safe path component
/// (``isSafeComponent(_:)``), whoever asks: an admin's output is not confined to the work dir,
/// so a hostname such as `a../../../../tmp/x.y` would otherwise place files anywhere. A node's
/// hostname must moreover be a DNS name (``DNSName``, else `invalid-hostname`); a bad `%p` is
/// `invalid-configuration` naming `PLC_NAME`, any other `invalid-output`.
public struct OutputTemplate: Equatable, Sendable {
    /// The template text.
    public let text: String

    /// Wraps a template.
    public init(_ text: String) { self.text = text }

    /// The values markers expand to; `version` is nil when no tree could be read.
    public struct Values: Sendable {
        var workDir: String
        var name: String
        /// Whether `name` is a node's hostname (else the random name of a generic action).
        var nameIsHostname: Bool
        var suffix: String
        var plcName: String?
        var nodefamily: Nodefamily
        var version: String?
        var versionError: BootMediumError?
    }

    /// The longest path component, in bytes (Linux's `NAME_MAX`).
    static let maximumComponentLength = 255

    /// Whether `value` can be one path component as it is: non-empty, at most 255 bytes, not `.`
    /// or `..`, and only `A-Z a-z 0-9 . _ - + ~` and inner spaces (so no `/`, NUL, control,
    /// shell or Unicode character; `~` because bootcd versions may hold it, as in `5.4~rc1`; a
    /// space because MyPLC's default PLC_NAME is "PlanetLab Test").
    static func isSafeComponent(_ value: String) -> Bool {
        let bytes = value.utf8
        guard !bytes.isEmpty, bytes.count <= maximumComponentLength, value != ".", value != "..",
            bytes.first != UInt8(ascii: " "), bytes.last != UInt8(ascii: " ")
        else {
            return false
        }
        return bytes.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"),
                UInt8(ascii: "+"), UInt8(ascii: "~"), UInt8(ascii: " "):
                true
            default: false
            }
        }
    }

    /// Refuses a `PLC_NAME` that cannot be a path component (`%p`, published generic images).
    static func checkPLCName(_ name: String) throws(BootMediumError) {
        guard isSafeComponent(name) else {
            throw BootMediumError(
                .invalidConfiguration,
                "PLC_NAME \(name.debugDescription) in plc_config cannot be part of a file name: "
                    + "it must be 1-255 of A-Z a-z 0-9 . _ - + ~ and inner spaces, not . or ..",
                context: ["key": "PLC_NAME", "value": name])
        }
    }

    /// Expands every marker.
    public func expand(_ values: Values) throws(BootMediumError) -> String {
        var result = ""
        var iterator = text.makeIterator()
        while let ch = iterator.next() {
            guard ch == "%" else {
                result.append(ch)
                continue
            }
            let marker = iterator.next()
            switch marker {
            case "d": result += values.workDir
            case "n":
                if values.nameIsHostname, !DNSName.isValid(values.name) {
                    throw BootMediumError(
                        .invalidHostname,
                        "Node hostname \(values.name.debugDescription) is not a DNS name (labels of "
                            + "A-Z a-z 0-9 and inner -, 1-63 characters each, 253 in all), so %n cannot name a file",
                        context: ["hostname": values.name, "marker": "%n", "output": text])
                }
                result += try component(values.name, marker: "n")
            case "s": result += values.suffix
            case "p":
                guard let name = values.plcName, !name.isEmpty else {
                    throw BootMediumError(
                        .invalidConfiguration, "%p needs PLC_NAME in plc_config",
                        context: ["key": "PLC_NAME"])
                }
                try Self.checkPLCName(name)
                result += name
            case "f": result += try component(values.nodefamily.name, marker: "f")
            case "a": result += try component(values.nodefamily.arch, marker: "a")
            case "v":
                guard let version = values.version else {
                    throw values.versionError
                        ?? BootMediumError(.missingBootcd, "%v needs a bootcd tree")
                }
                result += try component(version, marker: "v")
            default:
                let shown = marker.map { "%" + String($0) } ?? "%"
                throw BootMediumError(
                    .invalidOutput,
                    "Unknown marker \(shown) in output \(text.debugDescription); known: %d %n %s %p %f %a %v",
                    context: ["output": text])
            }
        }
        return result
    }

    /// `value`, checked to be one safe path component, for `%marker`.
    private func component(_ value: String, marker: Character) throws(BootMediumError) -> String {
        guard Self.isSafeComponent(value) else {
            throw BootMediumError(
                .invalidOutput,
                "%\(marker) expands to \(value.debugDescription), which is not one safe file name "
                    + "(1-255 of A-Z a-z 0-9 . _ - + ~ and inner spaces, not . or ..) in output \(text.debugDescription)",
                context: ["marker": "%\(marker)", "value": value, "output": text])
        }
        return value
    }
}
