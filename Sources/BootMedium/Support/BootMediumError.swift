#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one error type bootmedium reports.
///
/// Every failure carries a stable machine-readable ``code`` (used by the CLI as
/// `error[CODE]: message` and by the API server as the XML-RPC fault string), a human
/// ``message``, and a small ``context`` dictionary naming the values involved.
public struct BootMediumError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Stable error codes. Their raw values are part of the outside contract: never rename one.
    public enum Code: String, Sendable, CaseIterable {
        case unknownAction = "unknown-action"
        case invalidOption = "invalid-option"
        case optionsNotSupported = "options-not-supported"
        case invalidSerialSpec = "invalid-serial-spec"
        case invalidKernelArgument = "invalid-kernel-argument"
        case unknownNode = "unknown-node"
        case notLocalNode = "not-local-node"
        case permissionDenied = "permission-denied"
        case actionNotAllowed = "action-not-allowed"
        case invalidHostname = "invalid-hostname"
        case noPrimaryInterface = "no-primary-interface"
        case unsafeValue = "unsafe-value"
        case invalidOutput = "invalid-output"
        case outputOutsideWorkDir = "output-outside-workdir"
        case outputExists = "output-exists"
        case invalidConfiguration = "invalid-configuration"
        case invalidNodeStore = "invalid-node-store"
        case missingBootcd = "missing-bootcd"
        case missingVariant = "missing-variant"
        case notSupported = "not-supported"
        case imageBuildFailed = "image-build-failed"
        case invalidImage = "invalid-image"
        case io = "io-error"
        case cancelled = "cancelled"
        case nodeStoreUpdateFailed = "node-store-update-failed"
        /// A file read from the PLC root resolves outside it (`..`, a link leaving the root).
        case outsideRoot = "outside-root"
        /// An input is not a regular file, or is larger than its role allows.
        case invalidInput = "invalid-input"
        /// One of bootmedium's own invariants failed (a bug, not the caller's input).
        case `internal` = "internal"
        /// The server: the call's credentials are wrong, the person is disabled or unknown,
        /// or has none of the method's roles (PLCAPI's authentication failure).
        case authenticationFailed = "authentication-failed"
        /// The server: the persons file cannot be read or is not valid.
        case invalidPersonStore = "invalid-person-store"
        /// The server: the XML-RPC call is malformed, too large, or names no known method, or
        /// its arguments have the wrong number or types.
        case invalidCall = "invalid-call"
        /// The node store's database cannot be reached, or answered with an error (its message
        /// is given); calls succeed again once it answers, without a restart.
        case nodeStoreUnavailable = "node-store-unavailable"
        /// The server: too many requests are queued or too many media are served by URL;
        /// retry later.
        case serverBusy = "server-busy"
    }

    /// The stable code of this error.
    public let code: Code
    /// A one-line explanation for a person.
    public let message: String
    /// The values involved (hostname, path, option, ...), for logs and API faults.
    public let context: [String: String]

    /// The most bytes of ``message`` kept, and of each ``context`` value: an error quotes
    /// what it is about, and a hostile value of a megabyte must not come back as one.
    public static let messageLimit = 1024
    static let contextValueLimit = 256

    /// Creates an error. A longer message or context value is cut (see ``messageLimit``).
    public init(_ code: Code, _ message: String, context: [String: String] = [:]) {
        self.code = code
        self.message = Self.capped(Self.oneLine(message), Self.messageLimit)
        self.context = context.mapValues { Self.capped($0, Self.contextValueLimit) }
    }

    /// `text` with line breaks and other control characters written as `\u{XX}`: the CLI's
    /// error is one line whatever a quoted value holds.
    static func oneLine(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isBreaking) else { return text }
        var result = ""
        for scalar in text.unicodeScalars {
            if isBreaking(scalar) {
                result += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    private static func isBreaking(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029
    }

    /// `text` cut to at most `limit` UTF-8 bytes at a character boundary, saying how much was
    /// left out.
    static func capped(_ text: String, _ limit: Int) -> String {
        let total = text.utf8.count
        guard total > limit else { return text }
        var kept = ""
        var bytes = 0
        for character in text {
            let size = character.utf8.count
            if bytes + size > limit - 32 { break }
            kept.append(character)
            bytes += size
        }
        return kept + "… (\(total - bytes) more bytes)"
    }

    /// `error[CODE]: message`, the form the CLI prints.
    public var description: String { "error[\(code.rawValue)]: \(message)" }
}

extension BootMediumError {
    /// An I/O failure on `path`, carrying the C `errno` text.
    static func io(_ operation: String, path: String, errno code: Int32) -> BootMediumError {
        let path = InputFile.shown(path)
        return BootMediumError(
            .io, "\(operation) \(path): \(String(cString: strerror(code)))",
            context: ["path": path, "errno": String(code)])
    }
}
