import Mustache
import Synchronization

/// The text templates of `templates/`, rendered with mustache.
///
/// The templates are part of the build: the EmbedTemplates plugin compiles every
/// `templates/*.mustache` into `EmbeddedTemplates`, and nothing else is read. So nothing on disk at
/// run time (a `templates/` folder in the current directory, beside the executable or in a source
/// checkout under a world-writable directory, nor an environment variable) can change what lands
/// in an image, such as the kernel command line, and a copied binary needs no files beside it.
enum Templates {
    private static let cache = Mutex<[String: MustacheTemplate]>([:])

    /// Renders template `name` (without `.mustache`) with `values`.
    static func render(_ name: String, _ values: [String: Any]) throws(BootMediumError) -> String {
        let template = try load(name)
        return template.render(values)
    }

    /// Template `name`, parsed on first use and cached.
    private static func load(_ name: String) throws(BootMediumError) -> MustacheTemplate {
        if let cached = cache.withLock({ $0[name] }) { return cached }
        guard let text = EmbeddedTemplates.byName[name] else {
            let known = EmbeddedTemplates.byName.keys.sorted().joined(separator: ", ")
            throw BootMediumError(
                .imageBuildFailed, "Template \(name).mustache is not embedded (templates: \(known))",
                context: ["template": name])
        }
        do {
            let template = try MustacheTemplate(string: text)
            cache.withLock { $0[name] = template }
            return template
        } catch {
            throw BootMediumError(
                .imageBuildFailed, "Template \(name).mustache does not parse: \(error)",
                context: ["template": name])
        }
    }
}
