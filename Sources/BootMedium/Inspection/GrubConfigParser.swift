/// A GRUB configuration as bootmedium writes it (`templates/grub.cfg.mustache`), parsed for
/// `inspect` and `verify`: the serial terminal, the root search, the kernel with its arguments
/// and the initrds. Lines are split into words at blanks; anything else GRUB reads is ignored.
public struct ParsedGrubConfig: Codable, Equatable, Sendable {
    /// `serial --unit --speed --parity --word`.
    public struct Serial: Codable, Equatable, Sendable {
        public var unit: Int
        public var speed: Int?
        public var parity: String?
        public var word: Int?
    }
    public var path: String
    public var serial: Serial?
    /// Whether `terminal_output` names `serial`.
    public var serialTerminal: Bool
    /// The file `search --file` finds the root by.
    public var rootMarker: String?
    public var kernel: String?
    public var arguments: [String]
    public var initrds: [String]

    /// Parses the text of `path` (at most 1000 lines are read).
    init(path: String, text: String) {
        self.path = path
        serial = nil
        serialTerminal = false
        rootMarker = nil
        kernel = nil
        arguments = []
        initrds = []
        for raw in text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).prefix(1000) {
            let words = raw.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let command = words.first, !command.hasPrefix("#") else { continue }
            let rest = Array(words.dropFirst())
            func option(_ name: String) -> String? {
                rest.first { $0.hasPrefix("--\(name)=") }.map { String($0.dropFirst(name.count + 3)) }
            }
            switch command {
            case "serial":
                serial = Serial(
                    unit: option("unit").flatMap { Int($0) } ?? 0, speed: option("speed").flatMap { Int($0) },
                    parity: option("parity"), word: option("word").flatMap { Int($0) })
            case "terminal_output": serialTerminal = rest.contains("serial")
            case "search": rootMarker = rest.last { !$0.hasPrefix("-") }
            case "linux", "linuxefi":
                kernel = rest.first
                arguments = Array(rest.dropFirst())
            case "initrd", "initrdefi": initrds = rest.map { $0.hasPrefix("/") ? String($0.dropFirst()) : $0 }
            default: break
            }
        }
    }
}
