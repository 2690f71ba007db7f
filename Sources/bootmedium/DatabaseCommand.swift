import ArgumentParser
import BootMedium
import BootMediumPostgres
import Foundation

/// `bootmedium db`: the PLC database as node store (docs/database.md).
struct DatabaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db",
        abstract: "Manage the PLC database bootmedium uses as its node store.",
        subcommands: [InitCommand.self])

    /// `bootmedium db init --database URL`.
    struct InitCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init",
            abstract: "Create the tables of PLCAPI's schema (version 5) that bootmedium uses, where missing.",
            discussion: """
                Idempotent: creates only what is missing (nodes, interfaces, interface_tag, node_tag, \
                tag_types, nodegroups, sites, peers, peer_node, persons, person_role, roles, person_site \
                and their lookup tables), in one transaction; an existing PLC database is left as it is.
                """)

        @Option(help: "postgres://USER@HOST:PORT/DATABASE, or postgres://USER@/DATABASE?host=/socket/directory.")
        var database: String

        func run() async throws {
            do throws(BootMediumError) {
                let plc = PLCDatabase(try DatabaseURL(database))
                let result: Result<Int, BootMediumError>
                do throws(BootMediumError) {
                    result = .success(try await plc.initialize())
                } catch {
                    result = .failure(error)
                }
                await plc.shutdown()
                print("initialized: \(try result.get()) statements on \(plc.url.shown)")
            } catch {
                Diagnostics.fail(error)
            }
        }
    }
}
