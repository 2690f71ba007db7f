import Foundation

/// The server configuration `etc/planetlab/plc_config`: shell `KEY="value"` lines, parsed as
/// data and never executed.
///
/// Accepted line forms: `KEY="value"` (with `\"`, `\\`, `\$` and `` \` `` escapes),
/// `KEY='value'`, `KEY=value`, an optional leading `export `, blank lines and `#` comments.
/// Other lines are ignored. Lines end at LF or CRLF, so no key or value holds a line end.
public struct PLCConfiguration: Equatable, Sendable {
    /// Every key read, with its value.
    public let values: [String: String]

    /// Parses the text of a `plc_config` file.
    public init(parsing text: String) {
        var values: [String: String] = [:]
        // `\r\n` is one Character: split at it too, or a CRLF file is one line.
        for rawLine in text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            var line = Substring(rawLine.trimmingCharacters(in: .whitespaces))
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line = line.dropFirst(7) }
            guard let eq = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<eq])
            guard !key.isEmpty, key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") })
            else { continue }
            var rest = line[line.index(after: eq)...]
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                var escaped = false
                for ch in rest {
                    if escaped {
                        if !"\"\\$`".contains(ch) { value.append("\\") }
                        value.append(ch)
                        escaped = false
                    } else if ch == "\\" {
                        escaped = true
                    } else if ch == "\"" {
                        break
                    } else {
                        value.append(ch)
                    }
                }
            } else if rest.first == "'" {
                value = String(rest.dropFirst().prefix(while: { $0 != "'" }))
            } else {
                value = String(rest.prefix(while: { $0 != " " && $0 != "\t" && $0 != "#" }))
            }
            values[key] = value
        }
        self.values = values
    }

    /// Creates a configuration from values.
    public init(values: [String: String]) { self.values = values }

    /// The value of `key`, or nil.
    public subscript(key: String) -> String? { values[key] }

    /// The value of `key`; a missing or empty one is `invalid-configuration`.
    public func required(_ key: String) throws(BootMediumError) -> String {
        guard let value = values[key], !value.isEmpty else {
            throw BootMediumError(
                .invalidConfiguration, "plc_config has no \(key)", context: ["key": key])
        }
        return value
    }

    /// `PLC_NAME`.
    public var plcName: String? { values["PLC_NAME"] }
}
