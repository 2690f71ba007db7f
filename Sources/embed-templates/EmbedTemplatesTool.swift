import Foundation

/// `embed-templates OUTPUT (DIRECTORY | TEMPLATE)...`, the host tool of the EmbedTemplates
/// build-tool plugin: reads every given `NAME.mustache` file and every `*.mustache` file of each
/// given directory, and writes OUTPUT, one Swift file with
/// `enum EmbeddedTemplates { static let byName }` (NAME to the file's text, byte for byte).
/// The templates are compiled into the library, so nothing on disk at run time can change what
/// lands in an image.
enum EmbedTemplatesTool {
    /// Runs the tool on `arguments` (the program name first); a failure exits with status 1.
    static func run(_ arguments: [String]) {
        let arguments = arguments.dropFirst()
        guard let output = arguments.first else {
            fail("usage: embed-templates OUTPUT (DIRECTORY | TEMPLATE)...")
        }
        let source = generate(read(templatePaths(Array(arguments.dropFirst()))))
        // Replaced only when different, so an unchanged result does not recompile the library.
        guard FileManager.default.contents(atPath: output) != Data(source.utf8) else { return }
        do {
            try Data(source.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
        } catch {
            fail("cannot write \(output): \(error)")
        }
    }

    /// The files named by `arguments`: each file itself, each directory's `*.mustache` files.
    ///
    /// A directory is listed here, at build time, not by the plugin: SwiftPM keeps a build plan
    /// (and the plugin's command) until the package changes, so a list made by the plugin would
    /// miss a template added to the folder. The folder is an input of the command, so adding or
    /// removing a file reruns this.
    static func templatePaths(_ arguments: [String]) -> [String] {
        var paths: [String] = []
        for argument in arguments {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory) else {
                fail("no such file \(argument)")
            }
            guard isDirectory.boolValue else {
                paths.append(argument)
                continue
            }
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: argument) else {
                fail("cannot list \(argument)")
            }
            // Hidden files are an editor's (an Emacs lock `.#NAME.mustache`), not templates.
            paths += names.filter { $0.hasSuffix(".mustache") && !$0.hasPrefix(".") }
                .map { argument + "/" + $0 }
        }
        return paths
    }

    /// The text of each file at `paths`, by name (the file name without `.mustache`).
    static func read(_ paths: [String]) -> [String: String] {
        var templates: [String: String] = [:]
        for path in paths {
            let url = URL(fileURLWithPath: path)
            guard url.pathExtension == "mustache" else { fail("\(path) is not a .mustache file") }
            let name = url.deletingPathExtension().lastPathComponent
            guard templates[name] == nil else { fail("two templates named \(name)") }
            guard let data = FileManager.default.contents(atPath: path) else { fail("cannot read \(path)") }
            // Strict UTF-8, nothing dropped (a byte-order mark stays): the embedded text is the file.
            guard let text = String(validating: data, as: UTF8.self), Data(text.utf8) == data else {
                fail("\(path) is not valid UTF-8")
            }
            templates[name] = text
        }
        return templates
    }

    /// The generated Swift file; names sorted, so the same files give the same bytes.
    static func generate(_ templates: [String: String]) -> String {
        var source = """
            // Generated at build time by embed-templates (the EmbedTemplates plugin) from
            // templates/*.mustache. Do not edit: change the template files.

            /// The text of every `templates/*.mustache` file, embedded at build time: the name without
            /// `.mustache` to the file's text, byte for byte.
            enum EmbeddedTemplates {
                static let byName: [String: String] = [

            """
        if templates.isEmpty { source += "        :\n" }
        for name in templates.keys.sorted() {
            source += "        \(nameLiteral(name)): \"\"\"\n"
            source += literalBody(templates[name]!, indent: "            ") + "\n"
            source += "            \"\"\",\n"
        }
        return source + "    ]\n}\n"
    }

    /// The body of a multi-line string literal holding `text`, every non-empty line indented by
    /// `indent`. Printable ASCII is kept, except `\` and `"` (escaped, so no `\(`, `\#` or `"""`
    /// can form); line feeds stay line breaks; tab, carriage return and NUL get their short
    /// escapes and every other scalar (control characters, non-ASCII) `\u{...}`, so the generated
    /// file is plain ASCII and the compiler changes no line ending or invisible character.
    static func literalBody(_ text: String, indent: String) -> String {
        var line = ""
        var lines: [String] = []
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n":
                lines.append(line)
                line = ""
            case "\\": line += "\\\\"
            case "\"": line += "\\\""
            case "\t": line += "\\t"
            case "\r": line += "\\r"
            case "\0": line += "\\0"
            case " "..."~": line.unicodeScalars.append(scalar)
            default: line += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            }
        }
        lines.append(line)
        // Empty lines stay empty (a multi-line literal needs no indentation there).
        return lines.map { $0.isEmpty ? "" : indent + $0 }.joined(separator: "\n")
    }

    /// A single-line string literal for a template name.
    static func nameLiteral(_ name: String) -> String {
        "\"" + literalBody(name, indent: "").replacingOccurrences(of: "\n", with: "\\n") + "\""
    }

    /// Writes `message` to standard error and exits with status 1 (the build fails).
    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("embed-templates: \(message)\n".utf8))
        exit(1)
    }
}
