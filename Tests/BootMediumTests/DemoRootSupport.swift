import Foundation
import Synchronization
import Testing

@testable import BootMedium

/// The demo PLC root of `tools/demo-root` (built once, cached outside the clone), and
/// throw-away copies of it for tests that write (node store, work dir).
enum DemoRoot {
    private static let built = Mutex<[Bool: String]>([:])

    /// The cached root's path (building it on first use).
    static func path(big: Bool = false) throws -> String {
        if let path = built.withLock({ $0[big] }) { return path }
        let r = try runProcess(packageDirectory + "/tools/demo-root", big ? ["--big"] : [])
        guard r.status == 0, let last = String(decoding: r.stdout, as: UTF8.self).split(separator: "\n").last else {
            throw BootMediumError(.io, "tools/demo-root failed: \(r.stderr.suffix(2000))")
        }
        let path = String(last)
        built.withLock { $0[big] = path }
        return path
    }

    static let node1 = "node1.site1.demo.example.org"
}

/// A copy of the demo root: files hard-linked (so cached sizes stay valid), `nodes.json` and
/// the writable folders real copies. Removed at deinit.
final class DemoCopy: @unchecked Sendable {
    let path: String
    var root: PLCRoot { PLCRoot(path: path) }
    var store: JSONNodeStore { JSONNodeStore(path: path + "/nodes.json") }
    var workDir: String { path + "/var/tmp/bootmedium" }
    var tree: String { path + "/usr/share/bootcd-planetlab-x86_64/build" }

    /// `at`: where the copy goes (on the cache's file system; default: a new temp dir).
    init(big: Bool = false, at location: String? = nil) throws {
        let source = try DemoRoot.path(big: big)
        path = location ?? FileManager.default.temporaryDirectory.path + "/bootmedium-demo-" + UUID().uuidString
        let r = try runProcess("/bin/cp", ["-al", source, path])
        guard r.status == 0 else { throw BootMediumError(.io, "cp -al: \(r.stderr)") }
        for file in ["nodes.json"] {
            try FileManager.default.removeItem(atPath: path + "/" + file)
            try FileManager.default.copyItem(atPath: source + "/" + file, toPath: path + "/" + file)
        }
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func service(epoch: Int64? = 1_700_000_000) -> BootMediumService {
        BootMediumService(root: root, nodes: store, clock: BuildClock(sourceDateEpoch: epoch))
    }

    /// Builds `action` for `node` into `name` under the work dir and returns its path.
    func build(_ action: String, node: String? = DemoRoot.node1, options: [String] = [], name: String, epoch: Int64? = 1_700_000_000)
        async throws -> String
    {
        let result = try await service(epoch: epoch).getBootMedium(
            caller: .admin, node: node, action: action, filename: workDir + "/" + name, options: options)
        guard case .path(let path) = result else { throw BootMediumError(.io, "no path: \(result)") }
        return path
    }

    /// Replaces the hard link at `path` (into the cached root) by a private copy of its bytes,
    /// which a test may then change; returns `path`.
    @discardableResult
    func makePrivate(_ path: String) throws -> String {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try FileManager.default.removeItem(atPath: path)
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Removes the tree's UEFI loader (`efi/`) from this copy: its media are BIOS-only.
    func removeUEFILoader() throws {
        try FileManager.default.removeItem(atPath: tree + "/efi")
    }

    func nodeKey(_ id: Int) throws -> String? {
        let data = try Data(contentsOf: URL(fileURLWithPath: path + "/nodes.json"))
        let object = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        return (object["nodes"] as! [[String: Any]]).first { ($0["node_id"] as? Int) == id }?["key"] as? String
    }

    /// Files under the work dir (hidden ones included), sorted.
    var workFiles: [String] {
        (FileManager.default.subpaths(atPath: workDir) ?? []).sorted()
    }
}

/// Boots an image with `tools/boot-check` and says whether the demo report matched.
@discardableResult
func bootCheck(
    _ image: String, firmware: String = "bios", secureBoot: Bool = false, media: String = "cd", cmdline: [String] = [],
    plnode: String?? = .some(nil), timeout: Int = 120
) throws -> (passed: Bool, output: String) {
    var args = [image, "--firmware", firmware, "--media", media, "--timeout", String(timeout)]
    if secureBoot { args.append("--secure-boot") }
    for s in cmdline { args += ["--expect-cmdline", s] }
    var expectFile: String?
    switch plnode {
    case .some(.some(let text)):
        let file = image + ".expected-plnode"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        expectFile = file
        args += ["--expect-plnode", file]
    case .some(.none): args.append("--expect-no-plnode")
    case .none: break
    }
    defer { if let expectFile { try? FileManager.default.removeItem(atPath: expectFile) } }
    let r = try runProcess(packageDirectory + "/tools/boot-check", args)
    return (r.status == 0, String(decoding: r.stdout, as: UTF8.self) + r.stderr)
}

/// The text a node config file holds inside an overlay, read with the system's `cpio`.
func extractOverlay(_ overlay: String, into dir: String) throws {
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let r = try runProcess("/bin/sh", ["-c", "cd \"$1\" && gzip -dc < \"$2\" | cpio -idm --quiet", "sh", dir, overlay])
    guard r.status == 0 else { throw BootMediumError(.io, "cpio: \(r.stderr)") }
}

/// Extracts one file of an ISO with isoinfo (Rock Ridge names).
func isoFile(_ image: String, _ path: String) throws -> Data {
    let r = try runProcess("/usr/bin/isoinfo", ["-R", "-i", image, "-x", path])
    guard r.status == 0 else { throw BootMediumError(.io, "isoinfo: \(r.stderr)") }
    return r.stdout
}
