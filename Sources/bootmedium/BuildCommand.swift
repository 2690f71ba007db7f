import ArgumentParser
import BootMedium
import BootMediumPostgres
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `bootmedium build`: one `GetBootMedium` request from the command line (docs/contract.md §3).
struct BuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build a node config, ISO or USB image for a node, or a generic image.",
        discussion: """
            Without --output: text actions print the config, node image actions write the image \
            to standard output (never to a terminal), generic actions publish the image under \
            var/www/html/download-<nodefamily>/ and print its path. With --output, the path \
            written is printed. Errors print one line `error[CODE]: message` on stderr.
            """)

    @Option(help: "One of: \(BootAction.allCases.map(\.rawValue).joined(separator: ", ")).")
    var action: String

    @Option(help: "The node's hostname or node_id (node actions).")
    var node: String?

    @Option(
        name: .customLong("option"),
        help: "serial, serial:SPEC, cramfs, partition, variant:NAME, no-hangcheck, systemd-console, systemd-debug (repeatable).")
    var options: [String] = []

    @Option(help: "Output path template; markers %d %n %s %p %f %a %v.")
    var output: String?

    @Option(help: "The PLC root directory.")
    var root: String = "/"

    @Option(help: "The node store (default: ROOT/nodes.json).")
    var nodes: String?

    @Option(help: "The node store in the PLC database instead of a file: postgres://USER@HOST:PORT/DATABASE.")
    var database: String?

    @Option(help: "Who asks: ROLE[,ROLE]:SITE_ID[,SITE_ID] (default: an admin).")
    var caller: String = "admin"

    @Flag(
        name: .customLong("no-sync"),
        help: "Do not flush a written image to the device before it gets its final name (like cp; for throwaway images). The node store is flushed either way.")
    var noSync = false

    @Option(
        name: .customLong("template-cache-size"),
        help: "Bound on the medium templates kept in the work dir, in bytes (suffix K, M or G; default 8G; 0 keeps only the latest).")
    var templateCacheSize: String?

    func run() async throws {
        let plcRoot = PLCRoot(path: root)
        do {
            if database != nil && nodes != nil {
                throw BootMediumError(.invalidOption, "Give --nodes FILE or --database URL, not both")
            }
            let plc = try database.map { (url: String) throws(BootMediumError) in PLCDatabase(try DatabaseURL(url)) }
            let store: any NodeSource = plc?.nodes ?? JSONNodeStore(path: nodes ?? plcRoot.defaultNodeStorePath)
            let who = try CallerSpec.parse(caller)
            let clock = try BuildClock(environment: ProcessInfo.processInfo.environment)
            let bound = try templateCacheSize.map { (text: String) throws(BootMediumError) in try ByteCount.parse(text, option: "--template-cache-size") } ?? TemplateCache.defaultMaximumBytes
            let service = BootMediumService(root: plcRoot, nodes: store, clock: clock, templates: TemplateCache(maximumBytes: bound))
            let actionKind = BootAction(rawValue: action)
            let destination: Destination
            if let output {
                destination = .template(output)
            } else if actionKind?.isGeneric == true {
                destination = .publish
            } else if actionKind?.isText == false {
                if isatty(STDOUT_FILENO) != 0 {
                    throw BootMediumError(
                        .invalidOutput,
                        "Refusing to write an image to a terminal: give --output or redirect standard output")
                }
                destination = .stream(STDOUT_FILENO)
            } else {
                destination = .inline
            }
            var request = BootMediumRequest(
                caller: who, node: node, action: action, destination: destination, options: options)
            request.syncsOutput = !noSync
            let result = try await service.run(request)
            await plc?.shutdown()
            switch result {
            case .path(let path): print(path)
            case .text(let text): FileHandle.standardOutput.write(Data(text.utf8))
            case .base64(let text): print(text)
            case .streamed: break
            }
        } catch let error as BootMediumError {
            Diagnostics.fail(error)
        }
    }
}

/// Parses `--caller ROLE[,ROLE]:SITE_ID[,SITE_ID]`.
enum CallerSpec {
    static func parse(_ text: String) throws(BootMediumError) -> Caller {
        let halves = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        let roles = halves[0].split(separator: ",").map(String.init)
        var sites: [Int] = []
        if halves.count > 1 {
            for part in halves[1].split(separator: ",") {
                guard let id = Int(part) else {
                    throw BootMediumError(
                        .invalidOption, "Invalid --caller \(text.debugDescription): site ids are numbers",
                        context: ["caller": text])
                }
                sites.append(id)
            }
        }
        guard !roles.isEmpty else {
            throw BootMediumError(
                .invalidOption, "Invalid --caller \(text.debugDescription): expected ROLE[,ROLE]:SITE_ID[,SITE_ID]",
                context: ["caller": text])
        }
        return Caller(roles: roles, siteIDs: sites)
    }
}
