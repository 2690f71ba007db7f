import ArgumentParser
import BootMedium
import Foundation

/// `bootmedium`: the command line of docs/contract.md §3.
@main
struct BootmediumCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bootmedium",
        abstract: "Builds boot media (node configs, ISO and USB images) for PlanetLab-style nodes.",
        // Also the DESCRIPTION of bootmedium(1), which tools/package-deb generates from this parser.
        discussion: """
            `bootmedium build` writes a node's config (plnode.txt) or boot image, or a generic \
            image, from a PLC root (etc/planetlab/plc_config, the bootcd trees) and its node \
            store; `bootmedium inspect` shows what an image holds; `bootmedium verify` checks an \
            image against what would be built for its node now. `bootmedium help SUBCOMMAND` (or, \
            installed from the Debian package, `man bootmedium SUBCOMMAND`) tells more.

            SOURCE_DATE_EPOCH, when set, fixes every timestamp and every non-secret random value: \
            the same inputs give the same bytes. Errors print one line `error[CODE]: message` on \
            stderr and leave nothing behind.
            """,
        version: BootMediumVersion.string,
        subcommands: [BuildCommand.self, InspectCommand.self, VerifyCommand.self, DatabaseCommand.self])

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
