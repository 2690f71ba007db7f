import Foundation

/// An XML-RPC value (the spec's types, plus `nil`, which Python's client sends for None when
/// allowed).
enum XMLRPCValue: Equatable, Sendable {
    case int(Int)
    case bool(Bool)
    case string(String)
    case double(Double)
    case dateTime(String)
    case base64([UInt8])
    case array([XMLRPCValue])
    case `struct`([String: XMLRPCValue])
    case `nil`

    /// The spec's name of the value's type, for messages.
    var typeName: String {
        switch self {
        case .int: "int"
        case .bool: "boolean"
        case .string: "string"
        case .double: "double"
        case .dateTime: "dateTime.iso8601"
        case .base64: "base64"
        case .array: "array"
        case .struct: "struct"
        case .nil: "nil"
        }
    }

    /// The value as XML (`<value>...</value>`), appended to `out`.
    func encode(into out: inout String) {
        out += "<value>"
        switch self {
        case .int(let n): out += "<int>\(n)</int>"
        case .bool(let b): out += "<boolean>\(b ? 1 : 0)</boolean>"
        case .string(let s): out += "<string>" + Self.escaped(s) + "</string>"
        case .double(let d): out += "<double>\(d)</double>"
        case .dateTime(let s): out += "<dateTime.iso8601>" + Self.escaped(s) + "</dateTime.iso8601>"
        case .base64(let bytes): out += "<base64>" + Data(bytes).base64EncodedString() + "</base64>"
        case .array(let items):
            out += "<array><data>"
            for item in items { item.encode(into: &out) }
            out += "</data></array>"
        case .struct(let members):
            out += "<struct>"
            for name in members.keys.sorted() {
                out += "<member><name>" + Self.escaped(name) + "</name>"
                members[name]!.encode(into: &out)
                out += "</member>"
            }
            out += "</struct>"
        case .nil: out += "<nil/>"
        }
        out += "</value>"
    }

    /// `text` as XML character data: markup characters escaped, and the characters XML 1.0
    /// cannot carry at all (C0 controls but tab, LF, CR) replaced by U+FFFD.
    static func escaped(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\t", "\n", "\r": out.unicodeScalars.append(scalar)
            default:
                if scalar.value < 0x20 || scalar.value == 0xFFFE || scalar.value == 0xFFFF {
                    out += "\u{FFFD}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}

/// A parsed `methodCall`.
struct XMLRPCCall: Equatable, Sendable {
    let method: String
    let params: [XMLRPCValue]
}

/// The bodies of XML-RPC responses.
enum XMLRPCResponse {
    static let prologue = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"

    /// A `methodResponse` carrying `value`.
    static func success(_ value: XMLRPCValue) -> String {
        var out = prologue + "<methodResponse><params><param>"
        value.encode(into: &out)
        out += "</param></params></methodResponse>\n"
        return out
    }

    /// A `methodResponse` carrying a fault.
    static func fault(code: Int, message: String) -> String {
        var out = prologue + "<methodResponse><fault>"
        XMLRPCValue.struct(["faultCode": .int(code), "faultString": .string(message)]).encode(into: &out)
        out += "</fault></methodResponse>\n"
        return out
    }

    /// What comes before and after a string value that is streamed (an inline image's base64).
    static let streamedStringHead = prologue + "<methodResponse><params><param><value><string>"
    static let streamedStringTail = "</string></value></param></params></methodResponse>\n"
}
