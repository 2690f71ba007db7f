import BootMedium
import Foundation
import NIOSSL
import PostgresNIO

/// `--database URL` (docs/database.md): `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`, or
/// with a Unix socket, `postgres://USER@/DATABASE?host=/run/postgresql` (the socket directory,
/// as libpq's `host`; the socket is `.s.PGSQL.<port>` in it). Query parameters: `sslmode`
/// (`disable`, `prefer`: the default over TCP, `require`), `statement_timeout` (milliseconds,
/// default 30000: a statement, a row lock wait included, that takes longer fails),
/// `connect_timeout` (seconds, default 5), `pool` (connections, default 16).
public struct DatabaseURL: Sendable {
    /// The URL as given, its password hidden (for messages).
    public let shown: String
    let configuration: PostgresClient.Configuration

    public init(_ text: String) throws(BootMediumError) {
        guard let url = URLComponents(string: text), url.scheme == "postgres" || url.scheme == "postgresql" else {
            throw BootMediumError(.invalidOption, "--database takes postgres://USER@HOST:PORT/DATABASE, not \(Self.hide(text).debugDescription)")
        }
        let query = Dictionary((url.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { _, last in last })
        let user = url.user.flatMap { $0.removingPercentEncoding } ?? "postgres"
        let password = url.password.flatMap { $0.removingPercentEncoding }
        var database = String(url.path.drop { $0 == "/" })
        if database.isEmpty { database = user }
        let port = url.port ?? Int(query["port"] ?? "") ?? 5432
        var configuration: PostgresClient.Configuration
        if let socketDirectory = query["host"], socketDirectory.hasPrefix("/") {
            configuration = .init(
                unixSocketPath: socketDirectory + "/.s.PGSQL.\(port)", username: user, password: password, database: database)
        } else {
            guard let host = url.host, !host.isEmpty else {
                throw BootMediumError(.invalidOption, "--database names no host: give HOST[:PORT] or ?host=/socket/directory")
            }
            let tls: PostgresClient.Configuration.TLS
            switch query["sslmode"] ?? "prefer" {
            case "disable": tls = .disable
            case "prefer", "allow": tls = .prefer(.makeClientConfiguration())
            case "require", "verify-ca", "verify-full": tls = .require(.makeClientConfiguration())
            case let other: throw BootMediumError(.invalidOption, "--database: unknown sslmode \(other.debugDescription)")
            }
            configuration = .init(host: host, port: port, username: user, password: password, database: database, tls: tls)
        }
        let timeout = Int(query["statement_timeout"] ?? "") ?? 30_000
        configuration.options.additionalStartupParameters = [("statement_timeout", String(timeout)), ("application_name", "bootmedium")]
        configuration.options.connectTimeout = .seconds(Int64(query["connect_timeout"].flatMap(Int.init) ?? 5))
        configuration.options.maximumConnections = max(2, Int(query["pool"] ?? "") ?? 16)
        self.configuration = configuration
        shown = Self.hide(text)
    }

    private static func hide(_ text: String) -> String {
        guard var url = URLComponents(string: text), url.password != nil else { return text }
        url.password = "***"
        return url.string ?? text
    }
}
