import BootMedium

/// `--config FILE` (docs/server.md): one setting per line, `key = value`, the keys being the
/// long options' names without `--` (`root`, `nodes`, `users`, `host`, `port`, `public-url`,
/// ...); a value is a double-quoted string (`\"` and `\\` escaped) or a bare word or number;
/// `#` starts a comment. An unknown key, a key given twice or a line that is none of these is
/// `invalid-configuration` naming the line. Options on the command line win over the file.
struct ServerConfigFile: Equatable {
    /// The settings, by key.
    let values: [String: String]

    /// The keys a file may set.
    static let keys: Set<String> = [
        "root", "nodes", "users", "database", "host", "port", "public-url", "url-lifetime", "max-media",
        "max-media-bytes", "max-running", "max-waiting", "template-cache-size", "log-level",
    ]

    init(values: [String: String]) { self.values = values }

    /// Reads the file at `path` (at most 1 MiB).
    init(path: String) throws(BootMediumError) {
        let file = try InputFile.open(path, role: .serverConfig)
        guard let text = String(validating: try file.readAll(), as: UTF8.self) else {
            throw BootMediumError(.invalidConfiguration, "\(path) is not UTF-8 text", context: ["path": path])
        }
        try self.init(text: text, path: path)
    }

    init(text: String, path: String) throws(BootMediumError) {
        var values: [String: String] = [:]
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let where_ = "\(path) line \(index + 1)"
            let line = Self.withoutComment(raw).trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            guard let equals = line.firstIndex(of: "=") else {
                throw BootMediumError(.invalidConfiguration, "\(where_): expected key = value", context: ["path": path])
            }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            let rest = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            guard Self.keys.contains(key) else {
                throw BootMediumError(
                    .invalidConfiguration, "\(where_): unknown setting \(key.debugDescription); known: \(Self.keys.sorted().joined(separator: ", "))",
                    context: ["path": path])
            }
            guard values[key] == nil else {
                throw BootMediumError(.invalidConfiguration, "\(where_): \(key) is set twice", context: ["path": path])
            }
            guard let value = Self.value(rest) else {
                throw BootMediumError(.invalidConfiguration, "\(where_): \(key)'s value is neither a quoted string nor one word", context: ["path": path])
            }
            values[key] = value
        }
        self.values = values
    }

    /// The line up to a `#` outside quotes.
    private static func withoutComment(_ line: Substring) -> Substring {
        var quoted = false
        var escaped = false
        for index in line.indices {
            let c = line[index]
            if escaped { escaped = false; continue }
            if c == "\\" && quoted { escaped = true; continue }
            if c == "\"" { quoted.toggle() }
            if c == "#" && !quoted { return line[..<index] }
        }
        return line
    }

    private static func value(_ text: String) -> String? {
        guard text.hasPrefix("\"") else {
            return !text.isEmpty && !text.contains(where: { $0 == " " || $0 == "\t" || $0 == "\"" }) ? text : nil
        }
        var out = ""
        var escaped = false
        var closed = false
        for c in text.dropFirst() {
            if closed { return nil }  // text after the closing quote
            if escaped {
                guard c == "\"" || c == "\\" else { return nil }
                out.append(c)
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else if c == "\"" {
                closed = true
            } else {
                out.append(c)
            }
        }
        return closed ? out : nil
    }
}
