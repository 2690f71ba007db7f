import ArgumentParser
import BootMedium
import Foundation
import Hummingbird
import Logging

/// `bootmedium-server`: PLCAPI's GetBootMedium over XML-RPC and media by URL, over the library
/// in-process (docs/server.md, docs/contract.md §5).
@main
struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bootmedium-server",
        abstract: "Serve GetBootMedium over XML-RPC and node media by URL.",
        discussion: "Prints `listening on http://HOST:PORT` once it accepts connections; SIGTERM or SIGINT stop it gracefully.",
        version: BootMediumVersion.string)

    @Option(help: "The PLC root directory.")
    var root: String = "/"

    @Option(help: "The node store (default: ROOT/nodes.json).")
    var nodes: String?

    @Option(help: "The persons file (JSON, PLCAPI's person fields, crypt(3) password hashes).")
    var users: String?

    @Option(help: "A PostgreSQL node store (not yet supported: issue 20).")
    var database: String?

    @Option(help: "The address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "The port to listen on (0: any free port; the one taken is printed).")
    var port: Int = 8000

    @Option(name: .customLong("public-url"), help: "The server's URL as clients reach it, for media URLs (default: http://HOST:PORT).")
    var publicURL: String?

    @Option(name: .customLong("url-lifetime"), help: "Seconds a media URL stays valid.")
    var urlLifetime: Int = 3600

    @Option(name: .customLong("max-media"), help: "The most media served by URL at once.")
    var maxMedia: Int = 1024

    @Option(name: .customLong("max-media-bytes"), help: "The most bytes the media served by URL keep of their own (suffix K, M or G).")
    var maxMediaBytes: String = "4G"

    @Option(name: .customLong("max-running"), help: "The most media being made at once.")
    var maxRunning: Int = 4

    @Option(name: .customLong("max-waiting"), help: "The most calls waiting for their turn; more are answered 503.")
    var maxWaiting: Int = 64

    @Option(name: .customLong("template-cache-size"), help: "Bound on the medium templates kept in the work dir (suffix K, M or G; default 8G).")
    var templateCacheSize: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func run() async throws {
        var logger = Logger(label: "bootmedium-server")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        do throws(BootMediumError) {
            if database != nil {
                throw BootMediumError(.notSupported, "--database is not supported yet (issue 20); use --nodes and --users")
            }
            guard let users else {
                throw BootMediumError(.invalidOption, "Give --users FILE (the persons who may call the server)")
            }
            guard (1...65535).contains(port) || port == 0 else {
                throw BootMediumError(.invalidOption, "--port takes 0-65535, not \(port)")
            }
            let plcRoot = PLCRoot(path: root)
            let store = JSONNodeStore(path: nodes ?? plcRoot.defaultNodeStorePath)
            let clock = try BuildClock(environment: ProcessInfo.processInfo.environment)
            let cacheBound = try templateCacheSize.map { (text: String) throws(BootMediumError) in try ByteCount.parse(text, option: "--template-cache-size") } ?? TemplateCache.defaultMaximumBytes
            let service = BootMediumService(
                root: plcRoot, nodes: store, clock: clock, templates: TemplateCache(maximumBytes: cacheBound))
            let media = MediaStore(
                lifetime: Int64(max(1, urlLifetime)), maximumCount: max(1, maxMedia), maximumBytes: try ByteCount.parse(maxMediaBytes, option: "--max-media-bytes"))
            let metrics = ServerMetrics()
            metrics.bootstrap()
            let shownHost = host.contains(":") ? "[\(host)]" : host
            let base = PublicURL(publicURL ?? "http://\(shownHost):\(port)")
            let givenURL = publicURL != nil
            let routes = ServerRoutes(
                api: PLCAPI(service: service, persons: JSONPersonStore(path: users), media: media, publicURL: base),
                work: WorkQueue(running: maxRunning, waiting: maxWaiting), metrics: metrics, logger: logger,
                parser: XMLRPCParser())
            let router = Router()
            routes.install(on: router)
            let host = self.host
            let app = Application(
                router: router,
                configuration: .init(address: .hostname(host, port: port), serverName: "bootmedium-server"),
                onServerRunning: { channel in
                    let bound = channel.localAddress?.port ?? port
                    if !givenURL { base.set("http://\(shownHost):\(bound)") }
                    FileHandle.standardOutput.write(Data("listening on http://\(shownHost):\(bound)\n".utf8))
                },
                logger: logger)
            do {
                try await app.runService()
            } catch {
                throw BootMediumError(.io, "The server stopped: \(error)")
            }
            media.removeAll()
        } catch {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            throw ExitCode(1)
        }
    }
}
