/// The extra kernel arguments of a medium, parsed once and rendered per target.
///
/// Rendered as the tail of the boot loader's `APPEND` line (``appendArguments``) and as the
/// one-line `kargs.txt` of the overlay (``kargsFileContents``). Order: the serial console first,
/// then `hcheck_reboot0`, the systemd-console arguments, `systemd.log_level=debug`, then the
/// free arguments of the `kargs` tag in their order.
///
/// A free argument may only hold the characters `A-Z a-z 0-9 . _ , : = / + @ -`: the arguments
/// end up in a boot loader config line and in `kargs.txt`, which the node's scripts read; a
/// quote, `$`, backtick, `;`, backslash or white space inside one is refused
/// (`invalid-kernel-argument`), so no text a node executes can carry shell syntax.
public struct KernelCommandLine: Equatable, Sendable {
    /// The serial console, when one is asked for.
    public let console: SerialConsole?
    /// `no-hangcheck`: adds `hcheck_reboot0`.
    public let noHangcheck: Bool
    /// `systemd-console`: routes systemd's output to the console.
    public let systemdConsole: Bool
    /// `systemd-debug`: `systemd.log_level=debug`.
    public let systemdDebug: Bool
    /// Free arguments from the node's `kargs` tag.
    public let extra: [String]

    /// The arguments `systemd-console` adds.
    public static let systemdConsoleArguments = [
        "systemd.log_target=console",
        "systemd.default_standard_output=journal+console",
        "systemd.default_standard_error=journal+console",
    ]

    /// Builds a command line, validating every free argument.
    public init(
        console: SerialConsole? = nil, noHangcheck: Bool = false, systemdConsole: Bool = false,
        systemdDebug: Bool = false, extra: [String] = []
    ) throws(BootMediumError) {
        for argument in extra {
            try Self.validate(argument)
        }
        self.console = console
        self.noHangcheck = noHangcheck
        self.systemdConsole = systemdConsole
        self.systemdDebug = systemdDebug
        self.extra = extra
    }

    /// Splits a `kargs` tag value on white space.
    public static func split(_ text: String) -> [String] {
        text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
            .map(String.init)
    }

    static func validate(_ argument: String) throws(BootMediumError) {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._,:=/+@-")
        guard !argument.isEmpty, argument.count <= 256, argument.allSatisfy(allowed.contains) else {
            throw BootMediumError(
                .invalidKernelArgument,
                "Kernel argument \(argument.debugDescription) is not allowed: only A-Z a-z 0-9 . _ , : = / + @ - may appear",
                context: ["argument": argument])
        }
    }

    /// Every argument in order.
    public var arguments: [String] {
        var result: [String] = []
        if let console { result.append(console.kernelArgument) }
        if noHangcheck { result.append("hcheck_reboot0") }
        if systemdConsole { result += Self.systemdConsoleArguments }
        if systemdDebug { result.append("systemd.log_level=debug") }
        return result + extra
    }

    /// Whether there is any argument at all.
    public var isEmpty: Bool { arguments.isEmpty }

    /// The arguments joined by spaces, for the end of the `APPEND` line.
    public var appendArguments: String { arguments.joined(separator: " ") }

    /// `kargs.txt`: one line, or `nil` when there are no arguments.
    public var kargsFileContents: String? { isEmpty ? nil : appendArguments + "\n" }
}
