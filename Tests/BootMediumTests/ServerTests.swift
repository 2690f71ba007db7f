import Foundation
import Testing

@testable import BootMedium

/// `bootmedium-server` (docs/server.md), run as its own process on 127.0.0.1 over a copy of the
/// demo root, and checked by real clients: Python's `xmlrpc.client` and `http.client`, curl,
/// and qemu booting a node ISO from its URL (ServerClients/plcapi_client.py holds the checks).
@Suite(.serialized, .tags(.demoRoot)) struct ServerTests {
    /// A running server: its demo root copy, its persons file, its URL.
    final class Server: @unchecked Sendable {
        let demo: DemoCopy
        let process = Process()
        let url: String
        let errors: String
        private let output = Pipe()

        /// `users`: give `--users` (the test persons); false for a server on a database.
        init(_ arguments: [String] = [], demo: DemoCopy? = nil, users withUsers: Bool = true) throws {
            let demo = try demo ?? DemoCopy()
            self.demo = demo
            let users = demo.path + "/users.json"
            try Self.persons().write(toFile: users, atomically: true, encoding: .utf8)
            errors = demo.path + "/server-\(UUID().uuidString).log"
            _ = FileManager.default.createFile(atPath: errors, contents: nil)
            process.executableURL = URL(fileURLWithPath: Self.executable)
            process.arguments = ["--root", demo.path] + (withUsers ? ["--users", users] : []) + ["--port", "0"] + arguments
            var environment = ProcessInfo.processInfo.environment
            environment["SOURCE_DATE_EPOCH"] = "1700000000"
            process.environment = environment
            process.standardOutput = output
            process.standardError = FileHandle(forWritingAtPath: errors)
            try process.run()
            // The first line is `listening on http://HOST:PORT` once it accepts connections.
            var line = Data()
            let reader = output.fileHandleForReading
            let deadline = Date().addingTimeInterval(60)
            while !line.contains(UInt8(ascii: "\n")) && Date() < deadline {
                let byte = reader.readData(ofLength: 1)
                if byte.isEmpty { break }
                line.append(byte)
            }
            let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard text.hasPrefix("listening on http://127.0.0.1:") else {
                process.terminate()
                throw BootMediumError(.io, "bootmedium-server did not start: \(text) \((try? String(contentsOfFile: errors, encoding: .utf8)) ?? "")")
            }
            url = String(text.dropFirst("listening on ".count))
        }

        deinit {
            if process.isRunning {
                process.terminate()
                process.waitUntilExit()
            }
        }

        /// The server binary, built beside the tests.
        static var executable: String {
            let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
            return (exe as NSString).deletingLastPathComponent + "/bootmedium-server"
        }

        /// The persons the clients use (ServerClients/plcapi_client.py), with SHA-512-crypt
        /// hashes made by libcrypt here.
        static func persons() throws -> String {
            func hash(_ password: String) throws -> String {
                try Crypt.sha512Crypt(password, saltBytes: Array(password.utf8) + [UInt8](repeating: 7, count: 16))
            }
            let persons: [[String: Any]] = [
                ["person_id": 1, "email": "admin@example.org", "password": try hash("adminpw"), "roles": ["admin"], "site_ids": [Int](), "enabled": true],
                ["person_id": 2, "email": "pi@site1.example.org", "password": try hash("pipw"), "roles": ["pi"], "site_ids": [1], "enabled": true],
                ["person_id": 3, "email": "user@site1.example.org", "password": try hash("userpw"), "roles": ["user"], "site_ids": [1], "enabled": true],
                ["person_id": 4, "email": "off@example.org", "password": try hash("offpw"), "roles": ["admin"], "site_ids": [Int](), "enabled": false],
            ]
            let data = try JSONSerialization.data(withJSONObject: ["persons": persons], options: [.sortedKeys])
            return String(decoding: data, as: UTF8.self)
        }

        /// Runs a check of plcapi_client.py; returns its JSON result, or fails the test with
        /// what the check said and the server's log.
        @discardableResult
        func check(_ name: String, _ arguments: [String] = [], base: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
            let script = packageDirectory + "/Tests/BootMediumTests/ServerClients/plcapi_client.py"
            let r = try runProcess("/usr/bin/env", ["python3", script, name, base ?? url] + arguments)
            let log = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
            #expect(r.status == 0, "\(name): \(r.stderr)\nserver log (tail):\n\(log.suffix(3000))", sourceLocation: sourceLocation)
            let object = try? JSONSerialization.jsonObject(with: r.stdout) as? [String: Any]
            return object ?? [:]
        }

        /// The server's peak resident memory so far, in KiB (`VmHWM`).
        var peakRSS: Int {
            let status = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8)) ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
        }

        /// The descriptors the server holds open now.
        var openDescriptors: Int {
            (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(process.processIdentifier)/fd").count) ?? -1
        }

        /// Sends `signal` and waits (at most `seconds`) for the exit status.
        func stop(_ signal: Int32 = SIGTERM, within seconds: Double = 30) -> Int32? {
            kill(process.processIdentifier, signal)
            let deadline = Date().addingTimeInterval(seconds)
            while process.isRunning && Date() < deadline { usleep(50_000) }
            return process.isRunning ? nil : process.terminationStatus
        }
    }

    /// Every action, inline and filename modes, admin and a site's PI, and every documented
    /// error, through `xmlrpc.client`; node-preview is byte for byte the CLI's.
    @Test func xmlrpcClientsGetEveryActionAndEveryFault() throws {
        let server = try Server()
        let cli = try runProcess(
            bootmediumExecutable, ["build", "--root", server.demo.path, "--action", "node-preview", "--node", DemoRoot.node1],
            environment: ["SOURCE_DATE_EPOCH": "1700000000"])
        #expect(cli.status == 0)
        let preview = server.demo.path + "/cli-preview.txt"
        try cli.stdout.write(to: URL(fileURLWithPath: preview))
        let result = try server.check("calls", [server.demo.workDir, preview])
        #expect(result["ok"] as? Bool == true)
        // Filename mode delivered real media: independent readers agree.
        let iso = server.demo.workDir + "/\(DemoRoot.node1)-pi.iso"
        let info = try runProcess("/usr/bin/isoinfo", ["-d", "-i", iso])
        #expect(info.status == 0 && String(decoding: info.stdout, as: UTF8.self).contains("Volume id:"))
        let usb = (server.demo.workDir as NSString).deletingLastPathComponent + "/admin-elsewhere.usb"
        let fsck = try runProcess("/sbin/fsck.fat", ["-n", usb])
        #expect(fsck.status == 0, "\(fsck.stderr)")
        // The node's key is the one of the medium delivered last, and its plnode.txt is what the
        // library renders.
        _ = try #require(try server.demo.nodeKey(1))
    }

    /// GetBootMediumURL: HEAD, GET, byte ranges (206, 416, If-Range), curl --range parts that
    /// concatenate to the whole, two downloads with one SHA-256, forged and expired tokens 404,
    /// the key renewed once at URL creation.
    @Test func mediaByURLServeExactlyTheFixedBytes() throws {
        let server = try Server(["--url-lifetime", "4"])
        let result = try server.check("url", [server.demo.path + "/nodes.json", "4"])
        #expect((result["size"] as? Int ?? 0) > 0)
        // The medium served is the node's current medium: its key is the store's.
        let key = try #require(try server.demo.nodeKey(1))
        #expect(key.count > 0)
    }

    /// A published generic image is served the same way at /download/<nodefamily>/<name>:
    /// whole, by range, with its SHA-256 as ETag; other names are 404.
    @Test func publishedGenericImagesAreServedByURL() throws {
        let server = try Server()
        let cli = try runProcess(bootmediumExecutable, ["build", "--root", server.demo.path, "--action", "generic-iso"])
        let published = String(decoding: cli.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(cli.status == 0, "\(cli.stderr)")
        let directory = (published as NSString).deletingLastPathComponent
        let family = String((directory as NSString).lastPathComponent.dropFirst("download-".count))
        let name = (published as NSString).lastPathComponent
        let url = server.url + "/download/\(family)/\(name)"
        let copy = server.demo.path + "/published-copy.iso"
        #expect(try runProcess("/usr/bin/curl", ["-sf", "-o", copy, url]).status == 0)
        let expected = try Data(contentsOf: URL(fileURLWithPath: published))
        #expect(try Data(contentsOf: URL(fileURLWithPath: copy)) == expected)
        let head = try runProcess("/usr/bin/curl", ["-sfI", url])
        let headers = String(decoding: head.stdout, as: UTF8.self).lowercased()
        #expect(headers.contains("etag: \"\(Digest.sha256(Array(expected)))\""), "\(headers)")
        #expect(headers.contains("content-length: \(expected.count)"))
        let part = try runProcess("/usr/bin/curl", ["-sf", "--range", "100-199", url])
        #expect(part.stdout == expected[100..<200])
        for bad in ["/download/\(family)/..%2Fnodes.json", "/download/\(family)/nope.iso", "/download/..%2F..%2Fetc/passwd", "/download/x/\(name)"] {
            let r = try runProcess("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", server.url + bad])
            #expect(String(decoding: r.stdout, as: UTF8.self) == "404", "\(bad)")
        }
    }

    /// A BMC-like reader: qemu boots the node ISO from its URL (the curl block driver, one Range
    /// request per read) and the node prints exactly its plnode.txt.
    @Test(.tags(.qemu)) func qemuBootsANodeISOFromItsURL() async throws {
        let server = try Server()
        let script = """
            import sys, xmlrpc.client
            s = xmlrpc.client.ServerProxy(sys.argv[1] + "/PLCAPI/")
            auth = {"AuthMethod": "password", "Username": "admin@example.org", "AuthString": "adminpw"}
            print(s.GetBootMediumURL(auth, "\(DemoRoot.node1)", "node-iso", ["serial"])["url"])
            """
        let r = try runProcess("/usr/bin/env", ["python3", "-c", script, server.url])
        #expect(r.status == 0, "\(r.stderr)")
        let url = String(decoding: r.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        // What the node must print: the plnode.txt inside the medium the URL serves.
        let copy = server.demo.path + "/by-url.iso"
        let curl = try runProcess("/usr/bin/curl", ["-sf", "-o", copy, url])
        #expect(curl.status == 0)
        let plnode = try await renderedPlnode(copy, demo: server.demo, nodeID: 1, hostname: DemoRoot.node1) { image in
            try isoFile(image, "/overlay.img")
        }
        let boot = try bootCheck(url, cmdline: ["console=ttyS0,115200n8"], plnode: .some(plnode))
        #expect(boot.passed, "\(boot.output)")
        let ranges = try String(contentsOfFile: server.errors, encoding: .utf8).components(separatedBy: "range=bytes=").count - 1
        #expect(ranges > 100, "qemu read the ISO in \(ranges) range requests")
        print("qemu booted from the URL with \(ranges) range requests")
    }

    /// 50 concurrent node-iso calls: all succeed, every image is valid, every delivered key is
    /// different and the node store holds exactly one of them (the others' media are stale);
    /// downloads per second and peak RSS are reported.
    @Test func fiftyConcurrentCallsAllSucceedAndOneKeyWins() throws {
        let server = try Server(["--max-running", "4", "--max-waiting", "64"])
        let outputs = server.demo.path + "/load"
        try FileManager.default.createDirectory(atPath: outputs, withIntermediateDirectories: true)
        let result = try server.check("load", [outputs, "50"])
        let paths = try #require(result["paths"] as? [String])
        #expect(paths.count == 50)
        var keys: [String] = []
        for (i, path) in paths.enumerated() {
            let info = try runProcess("/usr/bin/isoinfo", ["-d", "-i", path])
            #expect(info.status == 0, "\(path): \(info.stderr)")
            let overlay = server.demo.path + "/ov-\(i).img"
            try isoFile(path, "/overlay.img").write(to: URL(fileURLWithPath: overlay))
            try extractOverlay(overlay, into: overlay + ".d")
            let plnode = try String(contentsOfFile: overlay + ".d/usr/boot/plnode.txt", encoding: .utf8)
            let line = plnode.split(separator: "\n").first { $0.hasPrefix("NODE_KEY=") } ?? ""
            keys.append(String(line))
        }
        #expect(Set(keys).count == 50, "two media carry one key")
        let stored = "NODE_KEY=\"\(try #require(try server.demo.nodeKey(1)))\""
        #expect(keys.filter { $0 == stored }.count == 1, "the store's key is not exactly one delivered medium's")
        let downloads = try server.check("downloads", ["40"])
        print("load: \(result["count"] ?? 0) calls in \(result["wall_s"] ?? 0) s, median \(result["median_s"] ?? 0) s, max \(result["max_s"] ?? 0) s; downloads \(downloads["per_second"] ?? 0)/s (\(downloads["mib_per_second"] ?? 0) MiB/s); peak RSS \(server.peakRSS / 1024) MiB")
        #expect(server.peakRSS > 0 && server.peakRSS < 512 << 10, "peak RSS \(server.peakRSS) KiB")
    }

    /// Different nodes, types and options at once (templates built in parallel): each medium
    /// by URL downloads to its SHA-256 and is the type asked for.
    @Test func concurrentCallsOfEveryTypeForSeveralNodesStayCorrect() throws {
        let server = try Server(["--max-running", "6"])
        let result = try server.check("mixed")
        #expect(result["media"] as? Int == 24)
    }

    /// Past its work queue the server answers 503 with Retry-After instead of queuing without
    /// bound; the calls it took succeed.
    @Test func aFullWorkQueueAnswers503WithRetryAfter() throws {
        let server = try Server(["--max-running", "1", "--max-waiting", "1"])
        let result = try server.check("busy", ["12"])
        #expect((result["busy"] as? Int ?? 0) > 0)
    }

    /// A client that goes away mid-download leaves nothing: no file, no descriptor kept.
    @Test func aClientDisconnectingMidDownloadLeavesNothing() throws {
        let server = try Server()
        try server.check("disconnect")
        let before = server.openDescriptors
        let files = allEntries(under: server.demo.workDir).filter { !$0.contains("/.templates/") }
        try server.check("disconnect")
        usleep(500_000)
        #expect(server.openDescriptors <= before + 2, "descriptors: \(before) before, \(server.openDescriptors) after")
        #expect(allEntries(under: server.demo.workDir).filter { !$0.contains("/.templates/") } == files)
        #expect(!allEntries(under: server.demo.path).contains(where: isTempFileName))
    }

    /// SIGTERM under load: the server stops accepting, finishes what runs, exits 0, and every
    /// output file is a complete medium (no partial file, no temp file).
    @Test func sigtermDuringLoadLeavesNoPartialFile() throws {
        let server = try Server(["--max-running", "2"])
        let outputs = server.demo.path + "/term"
        try FileManager.default.createDirectory(atPath: outputs, withIntermediateDirectories: true)
        let script = packageDirectory + "/Tests/BootMediumTests/ServerClients/plcapi_client.py"
        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        client.arguments = ["python3", script, "sigterm-load", server.url, outputs, "24"]
        let out = Pipe()
        client.standardOutput = out
        try client.run()
        usleep(600_000)
        let status = server.stop(SIGTERM, within: 60)
        #expect(status == 0, "exit status \(String(describing: status))")
        let result = out.fileHandleForReading.readDataToEndOfFile()
        client.waitUntilExit()
        let summary = try #require(try JSONSerialization.jsonObject(with: result) as? [String: Any])
        let delivered = Set(summary["delivered"] as? [String] ?? [])
        let present = Set(try FileManager.default.contentsOfDirectory(atPath: outputs).map { outputs + "/" + $0 })
        #expect(present.isSubset(of: delivered), "files nobody was told of: \(present.subtracting(delivered))")
        for path in present {
            #expect(try runProcess("/usr/bin/isoinfo", ["-d", "-i", path]).status == 0, "\(path) is not a complete ISO")
        }
        #expect(!allEntries(under: server.demo.path).contains(where: isTempFileName))
        print("SIGTERM under load: \(delivered.count) delivered, \(summary["failed"] ?? 0) refused or cut")
    }

    /// Malformed XML, billion laughs, external entities, a 100 MB body (declared and chunked),
    /// 10 000-deep nesting, too many elements, wrong types, unknown methods, huge base64: each a
    /// fault or a 4xx in bounded time, memory bounded, and the server answers afterwards.
    @Test func hostileRequestsGetAFaultOrA4xxInBoundedTimeAndMemory() throws {
        let server = try Server()
        let result = try server.check("hostile")
        #expect(!result.isEmpty)
        #expect(server.peakRSS < 256 << 10, "peak RSS \(server.peakRSS) KiB")
        print("hostile: peak RSS \(server.peakRSS / 1024) MiB; \(result)")
    }

    /// `GET /metrics` counts calls by action and outcome, served bytes and template cache hits;
    /// `GET /healthz` is 200 while the node store answers and 503 when it cannot be read.
    @Test func metricsAndHealth() throws {
        let server = try Server()
        _ = try runProcess(
            "/usr/bin/env",
            ["python3", "-c", """
                import sys, xmlrpc.client
                s = xmlrpc.client.ServerProxy(sys.argv[1] + "/PLCAPI/")
                a = {"AuthMethod": "password", "Username": "admin@example.org", "AuthString": "adminpw"}
                s.GetBootMedium(a, "\(DemoRoot.node1)", "node-iso", "", [])
                s.GetBootMedium(a, "\(DemoRoot.node1)", "node-iso", "", [])
                try:
                    s.GetBootMedium(a, "no.such.node", "node-iso", "", [])
                except xmlrpc.client.Fault:
                    pass
                """, server.url])
        let metrics = try runProcess("/usr/bin/curl", ["-sf", server.url + "/metrics"])
        let text = String(decoding: metrics.stdout, as: UTF8.self)
        #expect(text.contains(#"bootmedium_requests_total{method="GetBootMedium",action="node-iso",outcome="ok"} 2"#), "\(text)")
        #expect(text.contains(#"outcome="unknown-node"} 1"#), "\(text)")
        #expect(text.contains("bootmedium_template_cache_hits_total 1"), "\(text)")
        #expect(text.contains(#"bootmedium_served_bytes_total{kind="inline"}"#), "\(text)")
        #expect(text.contains("bootmedium_request_duration_seconds_bucket"), "\(text)")
        let healthy = try runProcess("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", server.url + "/healthz"])
        #expect(String(decoding: healthy.stdout, as: UTF8.self) == "200")
        try "{ not json".write(toFile: server.demo.path + "/nodes.json", atomically: true, encoding: .utf8)
        let sick = try runProcess("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", server.url + "/healthz"])
        #expect(String(decoding: sick.stdout, as: UTF8.self) == "503")
    }
}
