import BootMedium
import Foundation
import Synchronization

/// An XML-RPC fault as PLCAPI raises them (PLC/Faults.py): its numeric code, and a string
/// that carries our stable error code, `<PLCAPI's text>: error[CODE]: message`.
struct PLCFault: Error, Sendable {
    let code: Int
    let error: BootMediumError

    /// PLCAPI's fault codes.
    static let invalidAPIMethod = 100
    static let invalidArgumentCount = 101
    static let invalidArgument = 102
    static let authenticationFailure = 103
    static let databaseError = 106
    static let permissionDenied = 108
    static let apiError = 111

    init(code: Int, _ error: BootMediumError) {
        self.code = code
        self.error = error
    }

    /// The fault PLCAPI raises for what `error` means.
    init(_ error: BootMediumError) {
        switch error.code {
        case .authenticationFailed: code = Self.authenticationFailure
        case .permissionDenied, .outputOutsideWorkDir: code = Self.permissionDenied
        case .invalidNodeStore, .nodeStoreUpdateFailed, .invalidPersonStore, .nodeStoreUnavailable: code = Self.databaseError
        case .internal, .io, .imageBuildFailed, .cancelled, .invalidImage, .serverBusy, .invalidConfiguration,
            .missingBootcd, .outsideRoot, .invalidInput:
            code = Self.apiError
        default: code = Self.invalidArgument
        }
        self.error = error
    }

    var text: String {
        let prefix =
            switch code {
            case Self.invalidAPIMethod: "Invalid method"
            case Self.invalidArgumentCount: "Invalid argument count"
            case Self.invalidArgument: "Invalid argument"
            case Self.authenticationFailure: "Failed to authenticate call"
            case Self.databaseError: "Database error"
            case Self.permissionDenied: "Permission denied"
            default: "Internal API error"
            }
        return "\(prefix): \(error.description)"
    }
}

/// What a call answers: a value, or an image to stream as a base64 string (an inline image:
/// never base64-encoded whole in memory).
enum PLCAnswer: Sendable {
    case value(XMLRPCValue)
    case base64Medium(FixedMedium)
}

/// What a call was, for the request's log line and metrics.
struct CallSummary: Sendable {
    var method = "-"
    var node = "-"
    var action = "-"
}

/// PLCAPI's methods as this server offers them (docs/server.md): `GetBootMedium`,
/// `GetBootMediumURL`, `system.listMethods`, `system.methodHelp`.
struct PLCAPI: Sendable {
    let service: BootMediumService
    let persons: any PersonSource
    let media: MediaStore
    /// The server's URL as clients reach it, without a trailing slash.
    let publicURL: PublicURL

    /// The roles that may call GetBootMedium and GetBootMediumURL (PLCAPI's `roles`).
    static let roles = ["admin", "pi", "tech"]

    static let help: [String: String] = [
        "GetBootMedium": """
            GetBootMedium(auth, node_id_or_hostname, action, filename, options=[]): builds a node \
            config (node-preview, node-floppy), a node image (node-iso, node-usb) or a generic image \
            (generic-iso, generic-usb). An empty filename returns the result inline (images as base64); \
            otherwise filename is a template with markers %d %n %s %p %f %a %v, the file is written and \
            its path returned. Non-admins may use nodes of their sites only and must write under %d. \
            Options: serial, serial:SPEC, cramfs, partition, variant:NAME, no-hangcheck, systemd-console, \
            systemd-debug. Roles: admin, pi, tech.
            """,
        "GetBootMediumURL": """
            GetBootMediumURL(auth, node_id_or_hostname, action, options=[]): for an image action, renews \
            the node's key once, fixes the medium and returns {url, size, sha256, expires}: GET or HEAD on \
            url (byte ranges supported) serves exactly those bytes until expires (seconds since the epoch). \
            The same permissions and options as GetBootMedium. Roles: admin, pi, tech.
            """,
        "system.listMethods": "system.listMethods(): the methods this server offers.",
        "system.methodHelp": "system.methodHelp(name): a method's documentation.",
    ]

    /// Runs `call`; `summary` is filled in as the call is understood.
    func handle(_ call: XMLRPCCall, summary: inout CallSummary) async throws(PLCFault) -> PLCAnswer {
        summary.method = call.method
        let params = call.params
        switch call.method {
        case "system.listMethods":
            try Self.count(params, 0...0)
            return .value(.array(Self.help.keys.sorted().map { .string($0) }))
        case "system.methodHelp":
            try Self.count(params, 1...1)
            guard case .string(let name) = params[0] else { throw Self.type("method name", "string", params[0]) }
            guard let text = Self.help[name] else { throw Self.unknownMethod(name) }
            return .value(.string(text))
        case "GetBootMedium":
            try Self.count(params, 4...5)
            var request = try await request(params, filename: nil, optionsAt: 4, summary: &summary)
            guard case .string(let filename) = params[3] else { throw Self.type("filename", "string", params[3]) }
            if !filename.isEmpty { request.destination = .template(filename) }
            let action = request.action
            do throws(BootMediumError) {
                if filename.isEmpty, let kind = BootAction(rawValue: action), !kind.isText {
                    // An inline image, streamed as base64 from its fixed bytes.
                    return .base64Medium(try await service.fixMedium(request))
                }
                switch try await service.run(request) {
                case .path(let path): return .value(.string(path))
                case .text(let text): return .value(.string(text))
                case .base64(let text): return .value(.string(text))
                case .streamed: throw BootMediumError(.internal, "Internal error: a server request streamed to a descriptor")
                }
            } catch {
                throw PLCFault(error)
            }
        case "GetBootMediumURL":
            try Self.count(params, 3...4)
            let request = try await request(params, filename: nil, optionsAt: 3, summary: &summary)
            do throws(BootMediumError) {
                let medium = try await service.fixMedium(request)
                let (token, expires) = try media.add(medium)
                let url = "\(publicURL.value)/media/\(token)/\(Self.percentEncoded(medium.fileName))"
                return .value(
                    .struct([
                        "url": .string(url), "size": .int(Int(medium.size)), "sha256": .string(medium.sha256),
                        "expires": .int(Int(expires)),
                    ]))
            } catch {
                throw PLCFault(error)
            }
        default:
            throw Self.unknownMethod(call.method)
        }
    }

    /// The request both methods make of `(auth, node_id_or_hostname, action, ..., options)`:
    /// the caller authenticated, the node and action checked and noted in `summary`.
    private func request(_ params: [XMLRPCValue], filename: String?, optionsAt index: Int, summary: inout CallSummary)
        async throws(PLCFault) -> BootMediumRequest
    {
        let person = try await authenticate(params[0])
        let node = try Self.node(params[1])
        guard case .string(let action) = params[2] else { throw Self.type("action", "string", params[2]) }
        let options = try Self.options(params.count > index ? params[index] : .array([]))
        summary.node = node ?? "-"
        summary.action = action
        return BootMediumRequest(caller: person.caller, node: node, action: action, filename: filename, options: options)
    }

    /// A dummy SHA-512-crypt hash: an unknown user costs what a wrong password does, so the
    /// answer's timing does not tell which users exist.
    private static let decoy = Person(
        personID: 0, email: "", password: "$6$bootmediumdecoy$0000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        roles: [], siteIDs: [], enabled: false)

    /// PLCAPI's password authentication: an enabled person whose crypt(3) hash matches, with
    /// one of the method's roles. Unknown, disabled and wrong password give the same fault.
    private func authenticate(_ value: XMLRPCValue) async throws(PLCFault) -> Person {
        guard case .struct(let auth) = value else { throw Self.type("auth", "struct", value) }
        guard case .string("password")? = auth["AuthMethod"] else {
            throw PLCFault(
                code: PLCFault.authenticationFailure,
                BootMediumError(.authenticationFailed, "Only password authentication (AuthMethod \"password\") is supported"))
        }
        guard case .string(let username)? = auth["Username"], case .string(let password)? = auth["AuthString"] else {
            throw PLCFault(
                code: PLCFault.authenticationFailure,
                BootMediumError(.authenticationFailed, "Password authentication needs the strings Username and AuthString"))
        }
        let found: Person?
        do throws(BootMediumError) {
            found = try await persons.person(email: username)
        } catch {
            throw PLCFault(error)
        }
        let person = found ?? Self.decoy
        let matches = person.hasPassword(password)
        guard found != nil, person.enabled, matches else {
            throw PLCFault(code: PLCFault.authenticationFailure, BootMediumError(.authenticationFailed, "Wrong username or password"))
        }
        guard person.roles.contains(where: Self.roles.contains) else {
            throw PLCFault(
                code: PLCFault.authenticationFailure,
                BootMediumError(.authenticationFailed, "Not allowed to call the method: it needs one of the roles \(Self.roles.joined(separator: ", "))"))
        }
        return person
    }

    private static func count(_ params: [XMLRPCValue], _ range: ClosedRange<Int>) throws(PLCFault) {
        guard range.contains(params.count) else {
            let expected = range.lowerBound == range.upperBound ? "\(range.lowerBound)" : "\(range.lowerBound)-\(range.upperBound)"
            throw PLCFault(
                code: PLCFault.invalidArgumentCount,
                BootMediumError(.invalidCall, "Expected \(expected) arguments, got \(params.count)"))
        }
    }

    private static func type(_ name: String, _ expected: String, _ got: XMLRPCValue) -> PLCFault {
        PLCFault(code: PLCFault.invalidArgument, BootMediumError(.invalidCall, "Invalid \(name): expected \(expected), got \(got.typeName)"))
    }

    private static func unknownMethod(_ name: String) -> PLCFault {
        PLCFault(code: PLCFault.invalidAPIMethod, BootMediumError(.invalidCall, "No method \(name.debugDescription)"))
    }

    /// `node_id_or_hostname`: an int, a string, or nil (generic actions).
    private static func node(_ value: XMLRPCValue) throws(PLCFault) -> String? {
        switch value {
        case .int(let id): String(id)
        case .string(let name): name
        case .nil: nil
        default: throw type("node_id_or_hostname", "int or string", value)
        }
    }

    private static func options(_ value: XMLRPCValue) throws(PLCFault) -> [String] {
        guard case .array(let items) = value else { throw type("options", "array of strings", value) }
        var options: [String] = []
        for item in items {
            guard case .string(let option) = item else { throw type("option", "string", item) }
            options.append(option)
        }
        return options
    }

    /// `name` as a URL path segment.
    static func percentEncoded(_ name: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return name.addingPercentEncoding(withAllowedCharacters: allowed) ?? name
    }
}

/// The server's URL as clients reach it (`--public-url`, else `http://HOST:PORT` with the
/// port taken, known once the server listens).
final class PublicURL: Sendable {
    private let text: Mutex<String>

    init(_ text: String) { self.text = Mutex(Self.trimmed(text)) }

    var value: String { text.withLock { $0 } }

    func set(_ new: String) { text.withLock { $0 = Self.trimmed(new) } }

    private static func trimmed(_ text: String) -> String {
        var text = Substring(text)
        while text.last == "/" { text = text.dropLast() }
        return String(text)
    }
}
