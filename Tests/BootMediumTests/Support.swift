import Foundation
import Testing

@testable import BootMedium

/// A throw-away PLC root for one test, removed at deinit.
final class TestRoot: @unchecked Sendable {
    let path: String
    var root: PLCRoot { PLCRoot(path: path) }
    var nodesPath: String { path + "/nodes.json" }
    var workDir: String { path + "/var/tmp/bootmedium" }
    var store: JSONNodeStore { JSONNodeStore(path: nodesPath) }

    init(nodes: String = TestRoot.standardNodes, variants: [String: String] = ["build": "5.4", "build-alt": "5.4-alt"]) throws {
        let base = FileManager.default.temporaryDirectory.path + "/bootmedium-test-" + UUID().uuidString
        path = base
        let fm = FileManager.default
        try fm.createDirectory(atPath: base + "/etc/planetlab", withIntermediateDirectories: true)
        try """
            # demo
            PLC_NAME="TestPLC"
            PLC_BOOT_HOST="boot.example.org"
            PLC_BOOT_SSL_PORT="443"
            PLC_WWW_HOST="www.example.org"
            PLC_WWW_PORT="80"

            """.write(toFile: base + "/etc/planetlab/plc_config", atomically: true, encoding: .utf8)
        try "planetlab-x86_64\n".write(toFile: base + "/etc/planetlab/nodefamily", atomically: true, encoding: .utf8)
        for (variant, version) in variants {
            let tree = base + "/usr/share/bootcd-planetlab-x86_64/" + variant
            try fm.createDirectory(atPath: tree + "/isofs", withIntermediateDirectories: true)
            try (version + "\n").write(toFile: tree + "/version.txt", atomically: true, encoding: .utf8)
        }
        try nodes.write(toFile: nodesPath, atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func service(epoch: Int64? = 1_700_000_000, nodes: (any NodeSource)? = nil) -> BootMediumService {
        BootMediumService(root: root, nodes: nodes ?? store, clock: BuildClock(sourceDateEpoch: epoch))
    }

    /// Every file under the root, relative, sorted (hidden ones included).
    func files(under sub: String = "") -> [String] {
        let base = path + sub
        guard let e = FileManager.default.enumerator(atPath: base) else { return [] }
        return e.compactMap { $0 as? String }.filter {
            var dir: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: base + "/" + $0, isDirectory: &dir)
            return !dir.boolValue
        }.sorted()
    }

    func nodeKey(_ id: Int) throws -> String? {
        let data = try Data(contentsOf: URL(fileURLWithPath: nodesPath))
        let object = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let nodes = object["nodes"] as! [[String: Any]]
        return nodes.first { ($0["node_id"] as? Int) == id }?["key"] as? String
    }

    static let standardNodes = """
        {"nodes": [
          {"node_id": 12, "hostname": "node1.example.org", "site_id": 1, "peer_id": null, "key": "old-key",
           "node_type": "regular", "nodegroups": ["planetlab-x86_64"], "tags": {}, "interface_ids": [5, 6],
           "unknown_field": {"kept": true}},
          {"node_id": 13, "hostname": "node2.other.org", "site_id": 2, "key": "k2", "node_type": "regular",
           "nodegroups": [], "interface_ids": [7]},
          {"node_id": 14, "hostname": "res.example.org", "site_id": 1, "key": "k3", "node_type": "reservable",
           "interface_ids": [8]},
          {"node_id": 15, "hostname": "peer.remote.org", "site_id": 1, "peer_id": 7, "key": "k4", "interface_ids": [9]},
          {"node_id": 16, "hostname": "tagged.example.org", "site_id": 1, "key": "k5",
           "tags": {"serial": "ttyS1:9600", "kargs": "quiet loglevel=3", "kvariant": "build-alt",
                    "no-hangcheck": "", "cramfs": "yes"}, "interface_ids": [10]},
          {"node_id": 17, "hostname": "nodot", "site_id": 1, "interface_ids": [11]},
          {"node_id": 18, "hostname": "noprimary.example.org", "site_id": 1, "interface_ids": [12]}
        ],
        "interfaces": [
          {"interface_id": 5, "node_id": 12, "is_primary": true, "method": "static",
           "ip": "192.0.2.10", "gateway": "192.0.2.1", "network": "192.0.2.0",
           "broadcast": "192.0.2.255", "netmask": "255.255.255.0", "dns1": "192.0.2.53", "dns2": null,
           "mac": "52:54:00:AB:CD:EF",
           "settings": [{"category": "wireless", "name": "mode", "value": "managed"},
                        {"category": null, "name": "ignored", "value": "x"},
                        {"category": "multihome", "name": "ifname", "value": "eth1"},
                        {"category": "wireless", "name": "essid", "value": "Lab net; it's & *"}]},
          {"interface_id": 6, "node_id": 12, "is_primary": false, "method": "ipmi",
           "ip": "192.0.2.11", "mac": "52:54:00:AB:CD:F0"},
          {"interface_id": 7, "node_id": 13, "is_primary": true, "method": "dhcp"},
          {"interface_id": 8, "node_id": 14, "is_primary": true, "method": "dhcp"},
          {"interface_id": 9, "node_id": 15, "is_primary": true, "method": "dhcp"},
          {"interface_id": 10, "node_id": 16, "is_primary": true, "method": "dhcp", "mac": "aa:bb:cc:dd:ee:ff"},
          {"interface_id": 11, "node_id": 17, "is_primary": true, "method": "dhcp"},
          {"interface_id": 12, "node_id": 18, "is_primary": false, "method": "dhcp"}
        ]}
        """
}

/// Runs a program, returning exit status, stdout and stderr.
@discardableResult
func runProcess(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
    stdin: FileHandle? = nil
) throws -> (status: Int32, stdout: Data, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    if let stdin { process.standardInput = stdin }
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, outData, String(decoding: errData, as: UTF8.self))
}

/// The `bootmedium` executable built beside the test bundle.
var bootmediumExecutable: String {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
    return (exe as NSString).deletingLastPathComponent + "/bootmedium"
}

/// The package's directory.
let packageDirectory: String = {
    var url = URL(fileURLWithPath: #filePath)
    url.deleteLastPathComponent()  // BootMediumTests
    url.deleteLastPathComponent()  // Tests
    url.deleteLastPathComponent()
    return url.path
}()

/// Expects `body` to throw a BootMediumError with `code`.
func expectError<T>(
    _ code: BootMediumError.Code, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> T
) async {
    do {
        _ = try await body()
        Issue.record("expected error \(code.rawValue), got success", sourceLocation: sourceLocation)
    } catch let error as BootMediumError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
}

/// Makes the kernel-copy path shrink (`"shrink"`: to 4 KiB) or grow (`"grow"`: 4 more bytes) the
/// source file at `path` after its first copied piece; remove the hook with
/// `FileCopy.beforePiece.withLock { $0.removeValue(forKey: path) }`.
func changeSourceDuringCopy(_ path: String, _ change: String) {
    FileCopy.beforePiece.withLock {
        $0[path] = { done in
            guard done > 0 else { return }
            if change == "shrink" {
                truncate(path, 4096)
            } else {
                let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
                _ = write(fd, "more", 4)
                close(fd)
            }
        }
    }
}

extension ISOFile.Source {
    /// A file on disk by path, opened as an input (the tests' shorthand for ``file(_:)``).
    static func path(_ path: String) -> ISOFile.Source {
        .file(try! InputFile.open(path, role: .bootcd))
    }
}

/// Whether process `pid` has an output open in `directory`: an anonymous file (`O_TMPFILE`,
/// shown by /proc as `DIR/#INODE (deleted)`) or a named temp file `.NAME.bootmedium-XXXX`.
func writingInto(_ directory: String, pid: Int32) -> Bool {
    let real = Posix.realPath(directory) ?? directory
    let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
    return fds.contains { fd in
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)") else { return false }
        let name = (target as NSString).lastPathComponent
        return (target as NSString).deletingLastPathComponent == real
            && (name.hasPrefix("#") || name.contains(".bootmedium-"))
    }
}

/// The test tiers (`tools/test --fast` runs the untagged unit tier alone).
extension Tag {
    /// Boots images under qemu (seconds to a minute each).
    @Tag static var qemu: Self
    /// Uses the demo PLC root (tools/demo-root: built from Debian packages the first time).
    @Tag static var demoRoot: Self
    /// Minutes, not seconds: a debootstrap (once, cached), apt, qemu.
    @Tag static var slow: Self
}
