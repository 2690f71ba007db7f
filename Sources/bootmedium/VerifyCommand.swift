import ArgumentParser
import BootMedium
import Foundation

/// `bootmedium verify IMAGE [--node HOST] [--nodes F] [--root D]`.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check that an image is what bootmedium would build for the node now.",
        discussion: """
            Exit 0 when the image matches (same node config except the key, same kernel \
            arguments, same bootcd version, manifest intact); otherwise exit 1 and print each \
            difference on its own line.
            """)

    @Argument(help: "The image file.")
    var image: String

    @Option(help: "The node's hostname or node_id (node images).")
    var node: String?

    @Option(help: "The node store (default: ROOT/nodes.json).")
    var nodes: String?

    @Option(help: "The PLC root directory.")
    var root: String = "/"

    func run() async throws {
        let plcRoot = PLCRoot(path: root)
        do {
            let clock = try BuildClock(environment: ProcessInfo.processInfo.environment)
            let planner = Planner(
                root: plcRoot, nodes: JSONNodeStore(path: nodes ?? plcRoot.defaultNodeStorePath), clock: clock)
            let differences = try await ImageVerifier.differences(image: image, node: node, planner: planner)
            if differences.isEmpty {
                print("ok: \(image) is current")
            } else {
                for line in differences { print(line) }
                throw ExitCode(1)
            }
        } catch let error as BootMediumError {
            Diagnostics.fail(error)
        }
    }
}
