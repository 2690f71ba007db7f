import ArgumentParser
import BootMedium
import Foundation

/// `bootmedium`: the command line of docs/contract.md §3.
@main
struct BootmediumCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bootmedium",
        abstract: "Builds boot media (node configs, ISO and USB images) for PlanetLab-style nodes.",
        version: BootMediumVersion.string,
        subcommands: [BuildCommand.self, InspectCommand.self, VerifyCommand.self])

    /// Parses and runs; a usage error is one `error[usage]: ...` line like every other error.
    static func main() async {
        Diagnostics.installSignalHandlers()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let exit as ExitCode {
            Foundation.exit(exit.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            Diagnostics.printError(code: "usage", message: message(for: error))
            Foundation.exit(code == .validationFailure ? 64 : code.rawValue)
        }
    }
}
