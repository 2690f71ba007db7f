import Foundation
import PackagePlugin

/// Embeds the package's `templates/*.mustache` into the target it is applied to: one generated
/// `EmbeddedTemplates.swift` (written by the `embed-templates` tool) with every template's text.
/// Templates are part of the build, so nothing on disk at run time (a `templates/` folder beside
/// the binary, in the current directory or in a source checkout) can change what lands in an
/// image, and a binary copied elsewhere needs no files beside it.
@main
struct EmbedTemplates: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
        // The package's own folder, not the target's: the templates are shared text of the package.
        let directory = context.package.directoryURL.appending(path: "templates")
        let templates = try FileManager.default.contentsOfDirectory(
            at: directory, includingPropertiesForKeys: nil
        )
        .filter { $0.pathExtension == "mustache" && !$0.lastPathComponent.hasPrefix(".") }
        .sorted { $0.lastPathComponent < $1.lastPathComponent }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedTemplates.swift")
        return [
            .buildCommand(
                displayName: "Embedding the templates into \(target.name)",
                executable: try context.tool(named: "embed-templates").url,
                // The tool lists the folder itself: SwiftPM reuses this command until the package
                // changes, so a list made here would miss a template added later.
                arguments: [output.path, directory.path],
                // Every template is an input (editing one reruns the tool), and so is the folder
                // (adding or removing one does). A template added after SwiftPM last planned is
                // embedded, but edits to it alone are seen only once SwiftPM plans again
                // (Package.swift or a target's file list changes); TemplateEmbeddingTests
                // compares the embedded text with the files.
                inputFiles: [directory] + templates,
                outputFiles: [output])
        ]
    }
}
