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
    }

    /// The stable code of this error.
    public let code: Code
    /// A one-line explanation for a person.
    public let message: String
    /// The values involved (hostname, path, option, ...), for logs and API faults.
    public let context: [String: String]

    /// Creates an error.
    public init(_ code: Code, _ message: String, context: [String: String] = [:]) {
        self.code = code
        self.message = message
        self.context = context
    }

    /// `error[CODE]: message`, the form the CLI prints.
    public var description: String { "error[\(code.rawValue)]: \(message)" }
}

extension BootMediumError {
    /// An I/O failure on `path`, carrying the C `errno` text.
    static func io(_ operation: String, path: String, errno code: Int32) -> BootMediumError {
        BootMediumError(
            .io, "\(operation) \(path): \(String(cString: strerror(code)))",
            context: ["path": path, "errno": String(code)])
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
