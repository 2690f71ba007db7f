import BootMedium
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// Reads an XML-RPC `methodCall` with libxml2 (through Foundation's `XMLParser`), within
/// bounds: a body of at most ``Limits/bytes``, elements nested at most ``Limits/depth`` deep,
/// at most ``Limits/elements`` elements. XML-RPC has no use for a DTD, so a body with a
/// document type declaration (the way to entities, external or recursive: billion laughs) or
/// any other `<!` markup but comments and CDATA is refused before it is parsed, as is one
/// that is not UTF-8 or declares another encoding.
struct XMLRPCParser {
    struct Limits: Sendable {
        var bytes = 1 << 20
        var depth = 64
        var elements = 100_000
    }
    let limits: Limits

    init(limits: Limits = Limits()) { self.limits = limits }

    private static func invalid(_ message: String) -> BootMediumError {
        BootMediumError(.invalidCall, message)
    }

    /// The call in `body`, or `invalid-call`.
    func parse(_ body: [UInt8]) throws(BootMediumError) -> XMLRPCCall {
        guard body.count <= limits.bytes else {
            throw Self.invalid("The XML-RPC body has \(body.count) bytes, more than the \(limits.bytes) allowed")
        }
        guard let text = String(validating: body, as: UTF8.self) else {
            throw Self.invalid("The XML-RPC body is not UTF-8")
        }
        try Self.refuseMarkupDeclarations(text)
        let root = try tree(Data(body))
        return try Self.call(root)
    }

    /// Refuses `<!DOCTYPE`, `<!ENTITY` and every other `<!` but `<!--` and `<![CDATA[`, and an
    /// XML declaration naming an encoding other than UTF-8 or US-ASCII.
    static func refuseMarkupDeclarations(_ text: String) throws(BootMediumError) {
        let utf8 = Array(text.utf8)
        var i = 0
        while i + 1 < utf8.count {
            if utf8[i] == UInt8(ascii: "<") && utf8[i + 1] == UInt8(ascii: "!") {
                let rest = utf8[(i + 2)...]
                if !rest.starts(with: "--".utf8) && !rest.starts(with: "[CDATA[".utf8) {
                    throw invalid("The XML-RPC body declares a document type or entities; XML-RPC has none")
                }
            }
            i += 1
        }
        if text.hasPrefix("<?xml"), let end = text.range(of: "?>") {
            let declaration = text[..<end.lowerBound].lowercased()
            if let at = declaration.range(of: "encoding") {
                let value = declaration[at.upperBound...].drop { $0 == " " || $0 == "=" || $0 == "\"" || $0 == "'" }
                if !(value.hasPrefix("utf-8") || value.hasPrefix("us-ascii")) {
                    throw invalid("The XML-RPC body declares an encoding other than UTF-8")
                }
            }
        }
    }

    /// An element: its name, its text (character data directly inside it) and its children.
    final class Element {
        let name: String
        var text = ""
        var children: [Element] = []
        init(name: String) { self.name = name }
    }

    private func tree(_ data: Data) throws(BootMediumError) -> Element {
        let builder = TreeBuilder(limits: limits)
        let parser = XMLParser(data: data)
        parser.shouldResolveExternalEntities = false
        parser.shouldProcessNamespaces = false
        parser.delegate = builder
        let ok = parser.parse()
        if let refusal = builder.refusal { throw refusal }
        guard ok, let root = builder.root else {
            let reason = parser.parserError.map { " (\($0.localizedDescription))" } ?? ""
            throw Self.invalid("The XML-RPC body is not well-formed XML\(reason)")
        }
        return root
    }

    private final class TreeBuilder: NSObject, XMLParserDelegate {
        let limits: Limits
        var stack: [Element] = []
        var root: Element?
        var count = 0
        var refusal: BootMediumError?

        init(limits: Limits) { self.limits = limits }

        func parser(
            _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
            attributes: [String: String] = [:]
        ) {
            count += 1
            if count > limits.elements {
                refuse(parser, "The XML-RPC body has more than \(limits.elements) elements")
                return
            }
            if stack.count >= limits.depth {
                refuse(parser, "The XML-RPC body nests elements more than \(limits.depth) deep")
                return
            }
            let element = Element(name: name)
            if let parent = stack.last {
                parent.children.append(element)
            } else if root == nil {
                root = element
            }
            stack.append(element)
        }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            _ = stack.popLast()
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            stack.last?.text += string
        }

        func parser(_ parser: XMLParser, foundCDATA block: Data) {
            stack.last?.text += String(decoding: block, as: UTF8.self)
        }

        func parser(_ parser: XMLParser, foundInternalEntityDeclarationWithName name: String, value: String?) {
            refuse(parser, "The XML-RPC body declares entities; XML-RPC has none")
        }

        func parser(_ parser: XMLParser, foundExternalEntityDeclarationWithName name: String, publicID: String?, systemID: String?) {
            refuse(parser, "The XML-RPC body declares entities; XML-RPC has none")
        }

        private func refuse(_ parser: XMLParser, _ message: String) {
            if refusal == nil { refusal = BootMediumError(.invalidCall, message) }
            parser.abortParsing()
        }
    }

    private static func call(_ root: Element) throws(BootMediumError) -> XMLRPCCall {
        guard root.name == "methodCall" else { throw invalid("The XML-RPC body is not a methodCall") }
        let elements = root.children
        guard let nameElement = elements.first(where: { $0.name == "methodName" }) else {
            throw invalid("The methodCall has no methodName")
        }
        let method = nameElement.text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !method.isEmpty, method.utf8.count <= 256 else { throw invalid("The methodCall's methodName is empty or too long") }
        for element in elements where element.name != "methodName" && element.name != "params" {
            throw invalid("The methodCall has an unexpected <\(element.name)>")
        }
        var params: [XMLRPCValue] = []
        if let paramsElement = elements.first(where: { $0.name == "params" }) {
            for param in paramsElement.children {
                guard param.name == "param", param.children.count == 1, param.children[0].name == "value" else {
                    throw invalid("A methodCall <param> must hold one <value>")
                }
                params.append(try value(param.children[0]))
            }
        }
        return XMLRPCCall(method: method, params: params)
    }

    private static func value(_ element: Element) throws(BootMediumError) -> XMLRPCValue {
        guard element.children.count <= 1 else { throw invalid("An XML-RPC <value> holds more than one type") }
        guard let typed = element.children.first else { return .string(element.text) }
        let text = typed.text
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        switch typed.name {
        case "int", "i4", "i8":
            guard let n = Int(trimmed) else { throw invalid("Invalid XML-RPC <\(typed.name)> \(trimmed.prefix(64).debugDescription)") }
            return .int(n)
        case "boolean":
            guard trimmed == "0" || trimmed == "1" else { throw invalid("Invalid XML-RPC <boolean> \(trimmed.prefix(64).debugDescription)") }
            return .bool(trimmed == "1")
        case "string": return .string(text)
        case "double":
            guard let d = Double(trimmed), d.isFinite else { throw invalid("Invalid XML-RPC <double> \(trimmed.prefix(64).debugDescription)") }
            return .double(d)
        case "dateTime.iso8601": return .dateTime(trimmed)
        case "base64":
            guard let data = Data(base64Encoded: trimmed, options: .ignoreUnknownCharacters) else {
                throw invalid("Invalid XML-RPC <base64>")
            }
            return .base64(Array(data))
        case "nil": return .nil
        case "array":
            guard typed.children.count == 1, typed.children[0].name == "data" else {
                throw invalid("An XML-RPC <array> must hold one <data>")
            }
            var items: [XMLRPCValue] = []
            for child in typed.children[0].children {
                guard child.name == "value" else { throw invalid("An XML-RPC <data> holds <\(child.name)>") }
                items.append(try value(child))
            }
            return .array(items)
        case "struct":
            var members: [String: XMLRPCValue] = [:]
            for member in typed.children {
                guard member.name == "member", member.children.count == 2,
                    let name = member.children.first(where: { $0.name == "name" }),
                    let value = member.children.first(where: { $0.name == "value" })
                else { throw invalid("An XML-RPC <member> must hold one <name> and one <value>") }
                let key = name.text
                guard members[key] == nil else { throw invalid("An XML-RPC <struct> names member \(key.prefix(64).debugDescription) twice") }
                members[key] = try Self.value(value)
            }
            return .struct(members)
        default:
            throw invalid("Unknown XML-RPC type <\(typed.name.prefix(64))>")
        }
    }
}
