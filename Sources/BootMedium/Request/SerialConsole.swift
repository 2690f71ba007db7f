import Foundation

/// A serial console, parsed once from a spec `tty:baud:parity:bits` and rendered per target.
///
/// Grammar (anything else is `invalid-serial-spec`, never passed through):
/// - `tty`: `ttyS0` … `ttyS3`: the four ports SYSLINUX's `SERIAL` directive can address by number
///   (COM1–COM4); a higher number would be read by SYSLINUX as an I/O port address.
/// - `baud`: one of ``SerialConsole/standardBaudRates`` (those SYSLINUX can set: 115200/baud is whole).
/// - `parity`: `n`, `o` or `e`.
/// - `bits`: 5 to 8.
/// Missing trailing parts default to `115200`, `n`, `8`; an empty spec or `default` is ``default``.
public struct SerialConsole: Equatable, Hashable, Sendable {
    /// The parity of a serial line.
    public enum Parity: String, Sendable { case none = "n", odd = "o", even = "e" }

    /// The baud rates accepted.
    public static let standardBaudRates: [Int] = [
        300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200,
    ]
    /// `ttyS0:115200:n:8`.
    public static let `default` = SerialConsole(port: 0, baud: 115200, parity: .none, bits: 8)

    /// The serial port number: 0 for `ttyS0`.
    public let port: Int
    /// The line speed.
    public let baud: Int
    /// The parity.
    public let parity: Parity
    /// Data bits per character.
    public let bits: Int

    init(port: Int, baud: Int, parity: Parity, bits: Int) {
        self.port = port
        self.baud = baud
        self.parity = parity
        self.bits = bits
    }

    /// Parses a spec such as `ttyS1:9600`, `ttyS0:115200:n:8` or `default`.
    public init(spec: String) throws(BootMediumError) {
        func bad(_ why: String) -> BootMediumError {
            BootMediumError(
                .invalidSerialSpec, "Invalid serial console spec \(spec.debugDescription): \(why)",
                context: ["spec": spec])
        }
        if spec.isEmpty || spec == "default" {
            self = .default
            return
        }
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count <= 4 else { throw bad("expected tty:baud:parity:bits") }
        let tty = parts[0]
        guard tty.hasPrefix("ttyS"), tty.count == 5, let digit = tty.last?.wholeNumberValue,
            (0...3).contains(digit), tty.last!.isASCII
        else { throw bad("the tty must be ttyS0, ttyS1, ttyS2 or ttyS3") }
        var baud = 115200
        if parts.count > 1 {
            guard parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(parts[1]),
                Self.standardBaudRates.contains(value)
            else {
                throw bad(
                    "the baud rate must be one of "
                        + Self.standardBaudRates.map(String.init).joined(separator: ", "))
            }
            baud = value
        }
        var parity = Parity.none
        if parts.count > 2 {
            guard let value = Parity(rawValue: parts[2]) else {
                throw bad("the parity must be n, o or e")
            }
            parity = value
        }
        var bits = 8
        if parts.count > 3 {
            guard parts[3].count == 1, let value = parts[3].first?.wholeNumberValue,
                (5...8).contains(value)
            else { throw bad("the data bits must be 5, 6, 7 or 8") }
            bits = value
        }
        self.init(port: digit, baud: baud, parity: parity, bits: bits)
    }

    /// `ttyS0`.
    public var tty: String { "ttyS\(port)" }
    /// The normalized spec `ttyS0:115200:n:8`.
    public var spec: String { "\(tty):\(baud):\(parity.rawValue):\(bits)" }
    /// The kernel argument `console=ttyS0,115200n8`.
    public var kernelArgument: String { "console=\(tty),\(baud)\(parity.rawValue)\(bits)" }
    /// The SYSLINUX/ISOLINUX directive `SERIAL 0 115200`.
    public var syslinuxDirective: String { "SERIAL \(port) \(baud)" }
    /// The part of a default output name: `-serial` for the default, else `-serial-ttyS19600n8`.
    public var nameSuffix: String {
        self == .default ? "-serial" : "-serial-" + spec.replacingOccurrences(of: ":", with: "")
    }
}
