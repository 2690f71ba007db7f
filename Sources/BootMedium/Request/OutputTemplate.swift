/// The filename template of a request and its markers (BEHAVIOUR.md §1):
/// `%d` work dir, `%n` node hostname (generic actions: a random name), `%s` suffix,
/// `%p` PLC name, `%f` nodefamily, `%a` arch, `%v` bootcd version.
/// Any other `%` sequence is `invalid-output`: a template must say what it means.
public struct OutputTemplate: Equatable, Sendable {
    /// The template text.
    public let text: String

    /// Wraps a template.
    public init(_ text: String) { self.text = text }

    /// The values markers expand to; `version` is nil when no tree could be read.
    public struct Values: Sendable {
        var workDir: String
        var name: String
        var suffix: String
        var plcName: String?
        var nodefamily: Nodefamily
        var version: String?
        var versionError: BootMediumError?
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
            case "n": result += values.name
            case "s": result += values.suffix
            case "p":
                guard let name = values.plcName, !name.isEmpty else {
                    throw BootMediumError(
                        .invalidConfiguration, "%p needs PLC_NAME in plc_config",
                        context: ["key": "PLC_NAME"])
                }
                result += name
            case "f": result += values.nodefamily.name
            case "a": result += values.nodefamily.arch
            case "v":
                guard let version = values.version else {
                    throw values.versionError
                        ?? BootMediumError(.missingBootcd, "%v needs a bootcd tree")
                }
                result += version
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
}
