import ArgumentParser
import BootMedium
import BootMediumPostgres
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
        discussion: """
            Prints `listening on http://HOST:PORT` once it accepts connections; SIGTERM or SIGINT \
            stop it gracefully (no new connections, running calls finished, exit 0). Settings come \
            from the options, else from --config FILE (`key = value` lines, the options' names), \
            else the defaults shown.
            """,
        version: BootMediumVersion.string)

    @Option(help: "A settings file: one `key = value` per line, keys named as the options below.")
    var config: String?

    @Option(help: "The PLC root directory (default: /).")
    var root: String?

    @Option(help: "The node store (default: ROOT/nodes.json; relative paths are under ROOT).")
    var nodes: String?

    @Option(help: "The persons file: JSON, PLCAPI's person fields, crypt(3) password hashes (relative paths are under ROOT).")
    var users: String?

    @Option(help: "The PLC database for nodes and persons, instead of --nodes and --users: postgres://USER@HOST:PORT/DATABASE.")
    var database: String?

    @Option(help: "The address to listen on (default: 127.0.0.1).")
    var host: String?

    @Option(help: "The port to listen on; 0 takes any free port, printed (default: 8000).")
    var port: Int?

    @Option(name: .customLong("public-url"), help: "The server's URL as clients reach it, for media URLs (default: http://HOST:PORT).")
    var publicURL: String?

    @Option(name: .customLong("url-lifetime"), help: "Seconds a media URL stays valid (default: 3600).")
    var urlLifetime: Int?

    @Option(name: .customLong("max-media"), help: "The most media served by URL at once (default: 1024).")
    var maxMedia: Int?

    @Option(name: .customLong("max-media-bytes"), help: "The most bytes the media served by URL keep of their own; K, M or G (default: 4G).")
    var maxMediaBytes: String?

    @Option(name: .customLong("max-running"), help: "The most media being made at once (default: 4).")
    var maxRunning: Int?

    @Option(name: .customLong("max-waiting"), help: "The most calls waiting for their turn; more are answered 503 (default: 64).")
    var maxWaiting: Int?

    @Option(name: .customLong("template-cache-size"), help: "Bound on the medium templates kept in the work dir; K, M or G (default: 8G).")
    var templateCacheSize: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (default: info).")
    var logLevel: String?

    func run() async throws {
        do throws(BootMediumError) {
            let file = try config.map { (path: String) throws(BootMediumError) in try ServerConfigFile(path: path) } ?? ServerConfigFile(values: [:])
            try await serve(Settings(self, file: file))
        } catch {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            throw ExitCode(1)
        }
    }

    /// The settings in force: the command line's, else the file's, else the defaults.
    struct Settings {
        var root = "/", nodes: String?, users: String?, database: DatabaseURL?, host = "127.0.0.1", port = 8000, publicURL: String?
        var urlLifetime = 3600, maxMedia = 1024, maxMediaBytes: Int64 = 4 << 30, maxRunning = 4, maxWaiting = 64
        var templateCacheSize = TemplateCache.defaultMaximumBytes, logLevel = Logger.Level.info

        init(_ options: ServerCommand, file: ServerConfigFile) throws(BootMediumError) {
            func text(_ given: String?, _ key: String) -> String? { given ?? file.values[key] }
            func number(_ given: Int?, _ key: String) throws(BootMediumError) -> Int? {
                if let given { return given }
                guard let value = file.values[key] else { return nil }
                guard let n = Int(value) else { throw BootMediumError(.invalidConfiguration, "\(key) must be a number, not \(value.debugDescription)") }
                return n
            }
            func bytes(_ given: String?, _ key: String) throws(BootMediumError) -> Int64? {
                try text(given, key).map { (value: String) throws(BootMediumError) in try ByteCount.parse(value, option: key) }
            }
            root = text(options.root, "root") ?? root
            let under = { (path: String) in path.hasPrefix("/") ? path : (root == "/" ? "" : root) + "/" + path }
            nodes = text(options.nodes, "nodes").map(under)
            users = text(options.users, "users").map(under)
            database = try text(options.database, "database").map { (url: String) throws(BootMediumError) in try DatabaseURL(url) }
            if database != nil && (nodes != nil || users != nil) {
                throw BootMediumError(.invalidOption, "Give --nodes FILE --users FILE, or --database URL (nodes and persons), not both")
            }
            if database == nil && users == nil {
                throw BootMediumError(.invalidOption, "Give --users FILE (the persons who may call the server) or --database URL")
            }
            host = text(options.host, "host") ?? host
            port = try number(options.port, "port") ?? port
            guard (0...65535).contains(port) else { throw BootMediumError(.invalidOption, "The port must be 0-65535, not \(port)") }
            publicURL = text(options.publicURL, "public-url")
            urlLifetime = max(1, try number(options.urlLifetime, "url-lifetime") ?? urlLifetime)
            maxMedia = max(1, try number(options.maxMedia, "max-media") ?? maxMedia)
            maxMediaBytes = try bytes(options.maxMediaBytes, "max-media-bytes") ?? maxMediaBytes
            maxRunning = max(1, try number(options.maxRunning, "max-running") ?? maxRunning)
            maxWaiting = max(0, try number(options.maxWaiting, "max-waiting") ?? maxWaiting)
            templateCacheSize = try bytes(options.templateCacheSize, "template-cache-size") ?? templateCacheSize
            if let level = text(options.logLevel, "log-level") {
                guard let known = Logger.Level(rawValue: level) else { throw BootMediumError(.invalidOption, "Unknown log level \(level.debugDescription)") }
                logLevel = known
            }
        }
    }

    private func serve(_ settings: Settings) async throws(BootMediumError) {
        var logger = Logger(label: "bootmedium-server")
        logger.logLevel = settings.logLevel
        let plcRoot = PLCRoot(path: settings.root)
        let plc = settings.database.map { PLCDatabase($0, logger: logger) }
        let store: any NodeSource = plc?.nodes ?? JSONNodeStore(path: settings.nodes ?? plcRoot.defaultNodeStorePath)
        let persons: any PersonSource = plc?.persons ?? JSONPersonStore(path: settings.users ?? "")
        let clock = try BuildClock(environment: ProcessInfo.processInfo.environment)
        let service = BootMediumService(
            root: plcRoot, nodes: store, clock: clock, templates: TemplateCache(maximumBytes: settings.templateCacheSize))
        let media = MediaStore(lifetime: Int64(settings.urlLifetime), maximumCount: settings.maxMedia, maximumBytes: settings.maxMediaBytes)
        let metrics = ServerMetrics()
        metrics.bootstrap()
        let host = settings.host
        let shownHost = host.contains(":") ? "[\(host)]" : host
        let base = PublicURL(settings.publicURL ?? "http://\(shownHost):\(settings.port)")
        let givenURL = settings.publicURL != nil
        let routes = ServerRoutes(
            api: PLCAPI(service: service, persons: persons, media: media, publicURL: base),
            work: WorkQueue(running: settings.maxRunning, waiting: settings.maxWaiting), metrics: metrics, logger: logger,
            parser: XMLRPCParser())
        let router = Router()
        routes.install(on: router)
        let port = settings.port
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
            await plc?.shutdown()
            throw BootMediumError(.io, "The server stopped: \(error)")
        }
        media.removeAll()
        await plc?.shutdown()
    }
}
