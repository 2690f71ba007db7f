import Foundation
import Mustache
import Synchronization

/// The text templates of `templates/`, loaded at run time and rendered with mustache.
enum Templates {
    private static let cache = Mutex<[String: MustacheTemplate]>([:])

    /// Candidate template directories, in order.
    static var searchPath: [String] {
        var result: [String] = []
        if let env = ProcessInfo.processInfo.environment["BOOTMEDIUM_TEMPLATES"], !env.isEmpty {
            result.append(env)
        }
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            let dir = (exe as NSString).deletingLastPathComponent
            result += [dir + "/templates", dir + "/../share/bootmedium/templates"]
        }
        var source = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { source.deleteLastPathComponent() }  // Image, BootMedium, Sources, package
        result.append(source.path + "/templates")
        return result
    }

    /// Renders template `name` (without `.mustache`) with `values`.
    static func render(_ name: String, _ values: [String: Any]) throws(BootMediumError) -> String {
        let template = try load(name)
        return template.render(values)
    }

    private static func load(_ name: String) throws(BootMediumError) -> MustacheTemplate {
        if let cached = cache.withLock({ $0[name] }) { return cached }
        for dir in searchPath {
            let path = dir + "/" + name + ".mustache"
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            do {
                let template = try MustacheTemplate(string: String(decoding: data, as: UTF8.self))
                cache.withLock { $0[name] = template }
                return template
            } catch {
                throw BootMediumError(
                    .imageBuildFailed, "Template \(path) does not parse: \(error)",
                    context: ["template": path])
            }
        }
        throw BootMediumError(
            .imageBuildFailed,
            "Template \(name).mustache not found (searched \(searchPath.joined(separator: ", ")))",
            context: ["template": name])
    }
}
