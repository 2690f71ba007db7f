import Foundation
import Testing

@testable import BootMedium

/// A throwaway PostgreSQL cluster (Debian's postgresql 15): `initdb` in a temp dir, started on
/// a free loopback port, trust authentication for `postgres`, stopped and removed at deinit.
final class PostgresCluster: @unchecked Sendable {
    let directory: String
    let port: Int
    static let bin = "/usr/lib/postgresql/15/bin"

    init() throws {
        directory = "/tmp/bootmedium-pg-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        port = try Self.freePort()
        _ = try runProcess("/bin/chown", ["postgres", directory])
        let initdb = try Self.asPostgres(Self.bin + "/initdb", ["-D", directory + "/data", "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
        guard initdb.status == 0 else { throw BootMediumError(.io, "initdb: \(initdb.stderr)") }
        try start()
        let created = try psql("CREATE DATABASE plc", database: "postgres")
        guard created.status == 0 else { throw BootMediumError(.io, "CREATE DATABASE: \(created.stderr)") }
    }

    deinit {
        _ = try? stop(mode: "immediate")
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// `postgres://postgres@127.0.0.1:PORT/plc`.
    var url: String { "postgres://postgres@127.0.0.1:\(port)/plc?sslmode=disable" }

    func start() throws {
        let r = try Self.asPostgres(
            Self.bin + "/pg_ctl",
            ["-D", directory + "/data", "-l", directory + "/log", "-w", "-t", "60", "-o",
             "-k \(directory) -c listen_addresses=127.0.0.1 -p \(port) -c fsync=off -c max_connections=200", "start"])
        guard r.status == 0 else { throw BootMediumError(.io, "pg_ctl start: \(r.stderr) \((try? String(contentsOfFile: directory + "/log", encoding: .utf8)) ?? "")") }
    }

    @discardableResult
    func stop(mode: String = "fast") throws -> Int32 {
        try Self.asPostgres(Self.bin + "/pg_ctl", ["-D", directory + "/data", "-m", mode, "-w", "stop"]).status
    }

    /// Runs SQL with psql (stdin when `sql` is nil and `input` given).
    @discardableResult
    func psql(_ sql: String? = nil, database: String = "plc", input: FileHandle? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        var args = ["-X", "-q", "-t", "-A", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1"]
        if let sql { args += ["-c", sql] }
        let r = try runProcess("/usr/bin/psql", args, stdin: input)
        return (r.status, String(decoding: r.stdout, as: UTF8.self), r.stderr)
    }

    /// Creates the schema (`bootmedium db init`) and seeds it with `nodes` (a JSON node store)
    /// and the test persons (seed_plc_db.py).
    func seed(nodes: String, persons: String, extraNodes: Int = 0) throws {
        let initialized = try runProcess(bootmediumExecutable, ["db", "init", "--database", url])
        guard initialized.status == 0 else { throw BootMediumError(.io, "db init: \(initialized.stderr)") }
        let script = packageDirectory + "/Tests/BootMediumTests/ServerClients/seed_plc_db.py"
        let sql = try runProcess("/usr/bin/env", ["python3", script, nodes, persons, "--extra-nodes", String(extraNodes)])
        guard sql.status == 0 else { throw BootMediumError(.io, "seed: \(sql.stderr)") }
        let file = directory + "/seed.sql"
        try sql.stdout.write(to: URL(fileURLWithPath: file))
        let applied = try psql(input: FileHandle(forReadingAtPath: file))
        guard applied.status == 0 else { throw BootMediumError(.io, "psql seed: \(applied.stderr)") }
    }

    /// The node's key in the database.
    func key(_ nodeID: Int) throws -> String {
        try psql("SELECT key FROM nodes WHERE node_id = \(nodeID)").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs a PostgreSQL program as the `postgres` user (runuser when we are root), its output
    /// in a file: spawned and waited for directly, since Foundation's `Process` does not see
    /// the exit of a runuser whose grandchild (the postmaster) daemonized.
    private static func asPostgres(_ executable: String, _ arguments: [String]) throws -> (status: Int32, stdout: Data, stderr: String) {
        let argv = (getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--", executable] : [executable]) + arguments
        let output = "/tmp/bootmedium-pg-output-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let shell = ["/bin/sh", "-c", "exec \"$@\" > \"$0\" 2>&1 < /dev/null", output] + argv
        var pid: pid_t = 0
        let cArgs = shell.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        let spawned = posix_spawn(&pid, shell[0], nil, nil, cArgs, environ)
        guard spawned == 0 else { throw BootMediumError(.io, "posix_spawn \(executable): \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        let exited = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exited, Data(text.utf8), text)
    }

    private static func freePort() throws -> Int {
        let r = try runProcess("/usr/bin/env", ["python3", "-c", "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"])
        guard let port = Int(String(decoding: r.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw BootMediumError(.io, "no free port")
        }
        return port
    }
}

/// Issue 20: the PLC database as the node store. A throwaway PostgreSQL cluster per test,
/// seeded with the demo nodes in PLCAPI's v5 tables; the CLI and bootmedium-server instances
/// on it, checked by real clients.
@Suite(.serialized, .tags(.demoRoot)) struct DatabaseTests {
    static let plcapiClient = packageDirectory + "/Tests/BootMediumTests/ServerClients/plcapi_client.py"

    /// A demo root copy, a cluster seeded with its nodes and the test persons.
    func seeded(big: Bool = false, extraNodes: Int = 0) throws -> (DemoCopy, PostgresCluster) {
        let demo = try DemoCopy(big: big)
        let cluster = try PostgresCluster()
        let persons = demo.path + "/persons.json"
        try ServerTests.Server.persons().write(toFile: persons, atomically: true, encoding: .utf8)
        try cluster.seed(nodes: demo.path + "/nodes.json", persons: persons, extraNodes: extraNodes)
        return (demo, cluster)
    }

    func cli(_ demo: DemoCopy, _ arguments: [String]) throws -> (status: Int32, stdout: Data, stderr: String) {
        try runProcess(bootmediumExecutable, ["build", "--root", demo.path] + arguments, environment: ["SOURCE_DATE_EPOCH": "1700000000"])
    }

    /// Every demo node: the database gives byte for byte the plnode.txt the JSON store gives
    /// (node-preview), the same error for the peer's node, and node-floppy writes the key it
    /// printed into `nodes.key`. `db init` is idempotent.
    @Test func everyDemoNodeGivesTheSameNodeConfigFromTheDatabase() throws {
        let (demo, cluster) = try seeded()
        let again = try runProcess(bootmediumExecutable, ["db", "init", "--database", cluster.url])
        #expect(again.status == 0, "\(again.stderr)")
        let document = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: demo.path + "/nodes.json"))) as? [String: Any]
        let nodes = try #require(document?["nodes"] as? [[String: Any]])
        #expect(nodes.count == 7)
        for node in nodes {
            let hostname = try #require(node["hostname"] as? String)
            let id = try #require(node["node_id"] as? Int)
            for reference in [hostname, String(id), hostname.uppercased()] {
                let fromFile = try cli(demo, ["--action", "node-preview", "--node", reference])
                let fromDatabase = try cli(demo, ["--action", "node-preview", "--node", reference, "--database", cluster.url])
                #expect(fromFile.status == fromDatabase.status && fromFile.stdout == fromDatabase.stdout && fromFile.stderr == fromDatabase.stderr,
                        "\(reference): file \(fromFile.stderr) database \(fromDatabase.stderr)")
            }
        }
        let floppy = try cli(demo, ["--action", "node-floppy", "--node", DemoRoot.node1, "--database", cluster.url])
        let text = String(decoding: floppy.stdout, as: UTF8.self)
        let stored = try cluster.key(1)
        #expect(floppy.status == 0 && text.contains("NODE_KEY=\"\(stored)\""), "\(text)")
        #expect(try demo.nodeKey(1) == "old-key-1", "the JSON store was written")
        // An image through the database, checked by an independent reader.
        let iso = demo.workDir + "/db.iso"
        let built = try cli(demo, ["--action", "node-iso", "--node", DemoRoot.node1, "--database", cluster.url, "--output", iso])
        #expect(built.status == 0, "\(built.stderr)")
        #expect(try runProcess("/usr/bin/isoinfo", ["-d", "-i", iso]).status == 0)
        let plnode = try String(contentsOfFile: try extractedPlnode(iso, in: demo), encoding: .utf8)
        #expect(plnode.contains("NODE_KEY=\"\(try cluster.key(1))\""))
    }

    func extractedPlnode(_ iso: String, in demo: DemoCopy) throws -> String {
        let overlay = demo.path + "/ov-\(UUID().uuidString).img"
        try isoFile(iso, "/overlay.img").write(to: URL(fileURLWithPath: overlay))
        try extractOverlay(overlay, into: overlay + ".d")
        return overlay + ".d/usr/boot/plnode.txt"
    }

    /// A database that does not answer is a clear error, not a hang.
    @Test func anUnreachableDatabaseIsAClearError() throws {
        let demo = try DemoCopy()
        let cluster = try PostgresCluster()
        try cluster.stop()
        let started = Date()
        let r = try cli(demo, ["--action", "node-preview", "--node", DemoRoot.node1, "--database", cluster.url])
        #expect(r.status == 1 && r.stderr.hasPrefix("error[node-store-unavailable]: "), "\(r.stderr)")
        #expect(Date().timeIntervalSince(started) < 30)
        let bad = try cli(demo, ["--action", "node-preview", "--node", DemoRoot.node1, "--database", "mysql://x"])
        #expect(bad.stderr.hasPrefix("error[invalid-option]: "), "\(bad.stderr)")
    }

    /// Three servers on one database, 50 concurrent key-renewing calls for one node spread over
    /// them: all succeed, in bounded time, every medium carries its own key and the database
    /// holds exactly one of them. 20 different nodes run in parallel.
    @Test func serversOnOneDatabaseSerializeOneNodeAndParallelizeMany() throws {
        let (demo, cluster) = try seeded(extraNodes: 20)
        let servers = try (0..<3).map { _ in try ServerTests.Server(["--database", cluster.url, "--max-running", "8"], demo: demo, users: false) }
        let outputs = demo.path + "/split"
        try FileManager.default.createDirectory(atPath: outputs, withIntermediateDirectories: true)
        let split = try servers[0].check("renew-split", [DemoRoot.node1, "50", outputs], base: servers.map(\.url).joined(separator: ","))
        let paths = try #require(split["paths"] as? [String])
        #expect(paths.count == 50)
        var keys: [String] = []
        for path in paths {
            let plnode = try String(contentsOfFile: try extractedPlnode(path, in: demo), encoding: .utf8)
            keys.append(String(plnode.split(separator: "\n").first { $0.hasPrefix("NODE_KEY=") } ?? ""))
        }
        #expect(Set(keys).count == 50, "two media carry one key")
        let stored = "NODE_KEY=\"\(try cluster.key(1))\""
        #expect(keys.filter { $0 == stored }.count == 1, "the database's key is not exactly one delivered medium's")
        // ... and it is the one of the medium delivered last (the newest file).
        let ctimes = try #require(split["ctimes"] as? [Int])
        let last = try #require(ctimes.indices.max { ctimes[$0] < ctimes[$1] })
        #expect(keys[last] == stored, "the database holds the key of another medium than the last delivered")
        #expect((split["wall_s"] as? Double ?? 99) < 60)
        // 20 different nodes at once on one server: they never wait for each other's row.
        let hosts = (0..<20).map { "extra\($0).site1.demo.example.org" }.joined(separator: ",")
        let parallel = try servers[1].check("parallel-nodes", [outputs, hosts])
        let serial = parallel["serial_sum_s"] as? Double ?? 0, wall = parallel["parallel_wall_s"] as? Double ?? 99
        #expect(wall < serial * 0.75, "20 nodes in parallel took \(wall) s against \(serial) s one after the other")
        print("database: 50 renewals of one node over 3 servers in \(split["wall_s"] ?? 0) s (slowest call \(split["max_s"] ?? 0) s); 20 nodes: \(wall) s in parallel, \(serial) s serial")
    }

    /// kill -9 of a server while it holds a node's row lock mid-build: the node's key is not
    /// changed, the lock is released (another server renews the key at once), no file is left.
    @Test func killDashNineMidRequestRollsBackAndReleasesTheRow() throws {
        let (demo, cluster) = try seeded(big: true)
        let victim = try ServerTests.Server(["--database", cluster.url], demo: demo, users: false)
        let other = try ServerTests.Server(["--database", cluster.url], demo: demo, users: false)
        // Warm the other server's template, so its call afterwards is quick.
        try other.check("one-call", [DemoRoot.node1, "node-iso", demo.workDir + "/warm.iso"])
        let before = try cluster.key(1)
        let output = demo.workDir + "/killed.iso"
        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        client.arguments = ["python3", Self.plcapiClient, "one-call", victim.url, DemoRoot.node1, "node-iso", output]
        client.standardOutput = FileHandle.nullDevice
        // A cramfs medium of the big tree takes seconds: the row stays locked meanwhile.
        client.arguments = ["python3", "-c", """
            import sys, xmlrpc.client
            a = {"AuthMethod": "password", "Username": "admin@example.org", "AuthString": "adminpw"}
            try:
                xmlrpc.client.ServerProxy(sys.argv[1] + "/PLCAPI/").GetBootMedium(a, sys.argv[2], "node-iso", sys.argv[3], ["cramfs"])
            except Exception:
                pass
            """, victim.url, DemoRoot.node1, output]
        try client.run()
        var locked = false
        let deadline = Date().addingTimeInterval(60)
        while !locked && Date() < deadline {
            let r = try cluster.psql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'nodes' AND l.mode = 'RowShareLock'")
            locked = (Int(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) > 0
            if !locked { usleep(20_000) }
        }
        try #require(locked, "the victim never locked the node's row")
        #expect(victim.stop(SIGKILL, within: 10) != nil)
        client.waitUntilExit()
        #expect(try cluster.key(1) == before, "a killed request changed the key")
        let started = Date()
        let after = try other.check("one-call", [DemoRoot.node1, "node-iso", demo.workDir + "/after.iso"])
        #expect(after["ok"] as? Bool == true, "\(after)")
        #expect(Date().timeIntervalSince(started) < 20, "the row stayed locked")
        #expect(try cluster.key(1) != before)
        #expect(!FileManager.default.fileExists(atPath: output))
        #expect(!allEntries(under: demo.path).contains(where: isTempFileName))
    }

    /// The database restarted under the server: calls fail with a clear error while it is down
    /// and succeed again once it is back, without restarting the server.
    @Test func theServerRecoversWhenTheDatabaseComesBack() throws {
        let (demo, cluster) = try seeded()
        let server = try ServerTests.Server(["--database", cluster.url], demo: demo, users: false)
        let first = try server.check("one-call", [DemoRoot.node1, "node-preview"])
        #expect(first["ok"] as? Bool == true, "\(first)")
        try cluster.stop()
        let down = try server.check("one-call", [DemoRoot.node1, "node-preview"])
        #expect(down["faultCode"] as? Int == 106 && (down["faultString"] as? String ?? "").contains("error[node-store-unavailable]"), "\(down)")
        let health = try runProcess("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", server.url + "/healthz"])
        #expect(String(decoding: health.stdout, as: UTF8.self) == "503")
        try cluster.start()
        var back: [String: Any] = [:]
        let started = Date()
        while Date().timeIntervalSince(started) < 120 {
            back = try server.check("one-call", [DemoRoot.node1, "node-iso", demo.workDir + "/back-\(UUID().uuidString).iso"])
            if back["ok"] as? Bool == true { break }
            usleep(500_000)
        }
        #expect(back["ok"] as? Bool == true, "\(back)")
        print("database: the server answered again \(Int(Date().timeIntervalSince(started))) s after the database came back")
    }
}
