import Foundation

/// A SYSLINUX/ISOLINUX configuration, parsed for `inspect` (docs/behaviour.md §5.2, both the
/// legacy and the LABEL form).
public struct ParsedBootConfig: Codable, Equatable, Sendable {
    /// One `LABEL` block (the legacy form without LABEL gives one label named after `DEFAULT`).
    public struct Label: Codable, Equatable, Sendable {
        public var name: String
        public var kernel: String?
        public var initrds: [String]
        public var append: [String]
    }
    /// `SERIAL port baud`.
    public struct Serial: Codable, Equatable, Sendable {
        public var port: Int
        public var baud: Int?
    }
    public var path: String
    public var defaultLabel: String?
    public var serial: Serial?
    public var labels: [Label]

    /// Parses the text of `path` (at most 1000 lines are read). Lines end at `\n` or `\r\n`, as
    /// for SYSLINUX (`\r\n` is one Character in Swift: splitting at "\n" alone read a DOS-edited
    /// config as one line).
    init(path: String, text: String) {
        self.path = path
        var labels: [Label] = []
        var defaultLabel: String?
        var serial: Serial?
        for raw in text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).prefix(1000) {
            let line = raw.trimmingCharacters(in: .whitespaces.union(.controlCharacters))
            if line.isEmpty || line.hasPrefix("#") { continue }
            let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            let keyword = parts[0].uppercased()
            let rest = parts.count > 1 ? String(parts[1]).trimmingCharacters(in: .whitespaces) : ""
            switch keyword {
            case "DEFAULT": defaultLabel = rest
            case "SERIAL":
                let numbers = rest.split(separator: " ").compactMap { Int($0) }
                if let port = numbers.first { serial = Serial(port: port, baud: numbers.dropFirst().first) }
            case "LABEL": labels.append(Label(name: rest, kernel: nil, initrds: [], append: []))
            case "LINUX", "KERNEL":
                if !labels.isEmpty { labels[labels.count - 1].kernel = rest }
            case "INITRD":
                if !labels.isEmpty { labels[labels.count - 1].initrds = rest.split(separator: ",").map(String.init) }
            case "APPEND":
                var args: [String] = []
                var initrds: [String] = []
                for word in rest.split(separator: " ").map(String.init) {
                    if word.hasPrefix("initrd=") {
                        initrds = word.dropFirst("initrd=".count).split(separator: ",").map(String.init)
                    } else {
                        args.append(word)
                    }
                }
                if labels.isEmpty {
                    labels.append(Label(name: defaultLabel ?? "", kernel: defaultLabel, initrds: initrds, append: args))
                } else {
                    labels[labels.count - 1].append = args
                    if !initrds.isEmpty { labels[labels.count - 1].initrds = initrds }
                }
            default: break
            }
        }
        self.defaultLabel = defaultLabel
        self.serial = serial
        self.labels = labels
    }

    /// The label `DEFAULT` names, or the first.
    var defaultEntry: Label? { labels.first { $0.name == defaultLabel } ?? labels.first }
}

/// plnode.txt read back: `NAME="value"` lines in order, comments kept as categories.
public struct ParsedNodeConfig: Codable, Equatable, Sendable {
    /// One assignment.
    public struct Assignment: Codable, Equatable, Sendable {
        public var name: String
        public var value: String
    }
    public var assignments: [Assignment]
    /// Lines that are neither assignments nor `### Category` comments (should be none).
    public var unexpectedLines: Int

    init(text: String, showSecrets: Bool) {
        var assignments: [Assignment] = []
        var unexpected = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: true).prefix(10_000) {
            if line.hasPrefix("### Category : ") { continue }
            guard let eq = line.firstIndex(of: "="), line.hasSuffix("\""),
                line[line.index(after: eq)...].first == "\"", line.count >= line.distance(from: line.startIndex, to: eq) + 3
            else {
                unexpected += 1
                continue
            }
            let name = String(line[..<eq])
            var value = String(line[line.index(eq, offsetBy: 2)...].dropLast())
            if name == "NODE_KEY" && !showSecrets { value = "<redacted>" }
            assignments.append(Assignment(name: name, value: value))
        }
        self.assignments = assignments
        self.unexpectedLines = unexpected
    }

    /// The value of `name`.
    func value(_ name: String) -> String? { assignments.first { $0.name == name }?.value }
}
