import ArgumentParser
import BootMedium
import Foundation

/// `bootmedium inspect IMAGE [--json]`: what an image holds, without mounting it.
struct InspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show what an image holds: type, boot records, boot configs, overlay, node config, manifest.",
        discussion: """
            Exit status: 0 when the image was read and its manifest (if any) matches, 1 when the \
            manifest does not match the image, non-zero with one `error[CODE]: message` line when \
            the image cannot be read. The JSON follows docs/inspect-schema.json.
            """)

    @Argument(help: "The image file.")
    var image: String

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Flag(help: "Show NODE_KEY instead of redacting it.")
    var showSecrets = false

    func run() async throws {
        do {
            let report = try ImageInspector.inspect(path: image, showSecrets: showSecrets)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                FileHandle.standardOutput.write(try encoder.encode(report) + Data("\n".utf8))
            } else {
                FileHandle.standardOutput.write(Data(report.summary.utf8))
            }
            if report.manifest.status == .mismatch || report.manifest.status == .invalid {
                throw ExitCode(1)
            }
        } catch let error as BootMediumError {
            Diagnostics.fail(error)
        }
    }
}
