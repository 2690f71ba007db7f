import Crypto
import Foundation
import Synchronization
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

extension FileBytes {
    /// A file on disk by path, opened as an input (the tests' shorthand for ``file(_:)``).
    static func path(_ path: String) -> FileBytes {
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

// MARK: - The demo root and its copies (formerly DemoRootSupport.swift)

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
        // An image URL (tools/boot-check reads it by HTTP) has no folder to put this beside.
        let file = image.contains("://") ? NSTemporaryDirectory() + "/expected-plnode-\(UUID().uuidString)" : image + ".expected-plnode"
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

// MARK: - Failures: measured runs, clean failures (formerly FailureSupport.swift)

/// One `bootmedium` run with its wall time and peak RSS.
struct MeasuredRun {
    let status: Int32
    let stdout: String
    let stderr: String
    let seconds: Double
    /// The peak resident set size of the process, in KiB (nil when it could not be measured).
    let peakRSSKiB: Int?
    /// What the process asked the kernel (`strace -f`), when a trace was asked for.
    var trace: String = ""
    /// Whether the run was killed at its time limit.
    var timedOut: Bool { status == 137 }
}

/// Runs `bootmedium ARGS` (environment: ours with `SOURCE_DATE_EPOCH`), killed after `timeout`
/// seconds (so a hang fails the test instead of the suite), with its peak RSS measured by
/// `/usr/bin/time -v` or, without it, by Python's `getrusage` of the child.
/// `BOOTMEDIUM_TEST_EXECUTABLE` runs another build instead (to see these tests fail on one
/// without the checks), unless `executable` names one. With `trace` (an strace `trace=` set,
/// such as `file` or `process`) the run goes through `strace -f` and its log is returned.
func runMeasured(
    _ arguments: [String], timeout: Int = 30, executable: String? = nil, env: [String: String] = [:],
    trace: String? = nil
) throws -> MeasuredRun {
    var environment = ProcessInfo.processInfo.environment
    environment["SOURCE_DATE_EPOCH"] = "1700000000"
    let report = FileManager.default.temporaryDirectory.path + "/bootmedium-rss-" + UUID().uuidString
    let traceLog = report + ".trace"
    defer {
        try? FileManager.default.removeItem(atPath: report)
        try? FileManager.default.removeItem(atPath: traceLog)
    }
    // timeout(1) runs under the measuring process: what it kills is bootmedium itself, and the
    // measurer's children's rusage covers that grandchild.
    let executable = executable ?? environment["BOOTMEDIUM_TEST_EXECUTABLE"] ?? bootmediumExecutable
    environment.merge(env) { $1 }
    let traced = trace.map { ["/usr/bin/strace", "-f", "-qq", "-o", traceLog, "-e", "trace=" + $0] } ?? []
    let limited = ["/usr/bin/timeout", "-s", "KILL", String(timeout)] + traced + [executable] + arguments
    let start = Date()
    let r: (status: Int32, stdout: Data, stderr: String)
    if FileManager.default.isExecutableFile(atPath: "/usr/bin/time") {
        r = try runProcess("/usr/bin/time", ["-v", "-o", report] + limited, environment: environment)
    } else {
        r = try runProcess("/usr/bin/python3", ["-c", """
            import resource, subprocess, sys
            rc = subprocess.call(sys.argv[2:])
            open(sys.argv[1], "w").write("Maximum resident set size (kbytes): %d\\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
            sys.exit(rc)
            """, report] + limited, environment: environment)
    }
    let seconds = Date().timeIntervalSince(start)
    let text = (try? String(contentsOfFile: report, encoding: .utf8)) ?? ""
    let rss = text.split(separator: "\n").first { $0.contains("Maximum resident set size") }
        .flatMap { Int($0.split(separator: ":").last!.trimmingCharacters(in: .whitespaces)) }
    return MeasuredRun(
        status: r.status, stdout: String(decoding: r.stdout, as: UTF8.self), stderr: r.stderr, seconds: seconds,
        peakRSSKiB: rss, trace: (try? String(contentsOfFile: traceLog, encoding: .utf8)) ?? "")
}

/// Every entry under `directory` (files, directories, links; hidden ones included), relative.
func allEntries(under directory: String) -> [String] {
    (FileManager.default.subpaths(atPath: directory) ?? []).sorted()
}

/// The names bootmedium gives its temp files: `.NAME.bootmedium-XXXX` (outputs) and
/// `.NAME.tmp-XXXX` (the node store's atomic replacement).
func isTempFileName(_ path: String) -> Bool {
    let name = (path as NSString).lastPathComponent
    return name.hasPrefix(".") && (name.contains(".bootmedium-") || name.contains(".tmp-"))
}

/// Expects `run` to have failed as the CLI must: non-zero exit (not killed at its limit),
/// exactly one line on stderr, `error[code]: ...`, nothing on stdout; the node store at
/// `storePath` still holds `storeBytes`; no temp file anywhere under `root`.
func expectCleanFailure(
    _ run: MeasuredRun, code: BootMediumError.Code, root: String, storePath: String, storeBytes: Data,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(!run.timedOut, "killed at its time limit", sourceLocation: sourceLocation)
    #expect(run.status != 0, sourceLocation: sourceLocation)
    let lines = run.stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
    #expect(lines.count == 1 && run.stderr.hasSuffix("\n"), "\(run.stderr)", sourceLocation: sourceLocation)
    #expect(lines.allSatisfy { $0.hasPrefix("error[\(code.rawValue)]: ") }, "\(run.stderr)", sourceLocation: sourceLocation)
    #expect(run.stdout.isEmpty, "\(run.stdout)", sourceLocation: sourceLocation)
    #expect(FileManager.default.contents(atPath: storePath) == storeBytes, "the node store changed", sourceLocation: sourceLocation)
    let temps = allEntries(under: root).filter(isTempFileName)
    #expect(temps.isEmpty, "temp files left: \(temps)", sourceLocation: sourceLocation)
}

extension TestRoot {
    /// The node store's bytes.
    var storeBytes: Data { FileManager.default.contents(atPath: nodesPath) ?? Data() }

    /// Runs `bootmedium build --root ROOT ARGS`.
    func build(_ arguments: [String], timeout: Int = 30) throws -> MeasuredRun {
        try runMeasured(["build", "--root", path] + arguments, timeout: timeout)
    }

    /// Replaces `PLC_NAME` in plc_config.
    func setPLCName(_ name: String) throws {
        let config = path + "/etc/planetlab/plc_config"
        let text = try String(contentsOfFile: config, encoding: .utf8)
        try text.replacingOccurrences(of: #"PLC_NAME="TestPLC""#, with: "PLC_NAME=\"\(name)\"")
            .write(toFile: config, atomically: true, encoding: .utf8)
    }
}

// MARK: - FAT and USB test inputs (formerly FATTestSupport.swift)

/// Writes an image to a file (the tests' ImageSink).
final class FATFileSink: ImageSink {
    let fd: Int32
    let path: String
    private(set) var count: Int64 = 0
    private(set) var writes = 0

    init(path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw BootMediumError(.io, "open \(path)") }
    }

    deinit { close(fd) }

    func write(_ bytes: UnsafeRawBufferPointer) throws(BootMediumError) {
        try Posix.writeAll(fd, bytes, path: path)
        count += Int64(bytes.count)
        writes += 1
    }
}

/// A scratch directory removed at deinit.
final class FATScratch: @unchecked Sendable {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.path + "/bootmedium-fat-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
}

/// Deterministic pseudo-random bytes (xorshift64*).
func fatTestBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    var out = [UInt8]()
    out.reserveCapacity(count)
    while out.count < count {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        let v = state &* 0x2545_F491_4F6C_DD1D
        for i in 0..<8 where out.count < count { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }
    return out
}

func fatSHA256(_ path: String) throws -> String {
    let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
    defer { try? handle.close() }
    var hasher = SHA256()
    while let chunk = try handle.read(upToCount: 1 << 22), !chunk.isEmpty { hasher.update(data: chunk) }
    return hasher.finalize().map { String(format: "%02x", $0) }.joined()
}

func readBytes(_ path: String, offset: Int64 = 0, count: Int) throws -> [UInt8] {
    let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
    defer { try? handle.close() }
    try handle.seek(toOffset: UInt64(offset))
    return [UInt8](try handle.read(upToCount: count) ?? Data())
}

let mtoolsEnvironment: [String: String] = {
    var env = ProcessInfo.processInfo.environment
    env["MTOOLS_SKIP_CHECK"] = "1"
    return env
}()

/// Runs a tool and returns (status, stdout + stderr as text).
@discardableResult
func fatTool(_ executable: String, _ arguments: [String]) throws -> (status: Int32, text: String, stdout: Data) {
    let r = try runProcess(executable, arguments, environment: mtoolsEnvironment)
    return (r.status, String(decoding: r.stdout, as: UTF8.self) + r.stderr, r.stdout)
}

/// The SYSLINUX payload carved from Debian's /usr/bin/syslinux (docs/syslinux-install.md §1): the
/// template found by content, the lengths from the (mtime, length) table in .rodata.
enum TestSyslinux {
    static let binary = "/usr/bin/syslinux"
    static let mbrBin = "/usr/lib/syslinux/mbr/mbr.bin"

    static func payload() throws -> SyslinuxPayload {
        let bin = [UInt8](try Data(contentsOf: URL(fileURLWithPath: binary)))
        let head: [UInt8] = [0xEB, 0x58, 0x90] + Array("SYSLINUX".utf8)
        var template: Int?
        for i in 0..<(bin.count - 512) where bin[i] == 0xEB && Array(bin[i..<(i + 11)]) == head {
            if bin.le32(at: i + 0x1F8) == 0x3EB2_02FE && bin[i + 0x1FE] == 0x55 && bin[i + 0x1FF] == 0xAA {
                template = i
                break
            }
        }
        let t = try #require(template, "no SYSLINUX boot sector template in \(binary)")
        var lengths: (Int, Int)?
        for j in stride(from: 0, to: bin.count - 24, by: 4) where bin.le32(at: j + 4) == 512 {
            let stamp = bin.le32(at: j)
            if bin.le32(at: j + 8) == stamp && bin.le32(at: j + 16) == stamp {
                let l = Int(bin.le32(at: j + 12)), c = Int(bin.le32(at: j + 20))
                if l % 512 == 0 && t + 512 + l + c <= bin.count { lengths = (l, c); break }
            }
        }
        let (l, c) = try #require(lengths, "no (mtime, length) table in \(binary)")
        return try SyslinuxPayload(
            bootSectorTemplate: Array(bin[t..<(t + 512)]), ldlinuxSys: Array(bin[(t + 512)..<(t + 512 + l)]),
            ldlinuxC32: Array(bin[(t + 512 + l)..<(t + 512 + l + c)]))
    }

    static func mbrCode() throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: mbrBin))) }
}

/// A small independent-of-the-writer FAT reader for the tests, built on the structure decoders:
/// finds a file's clusters and sectors in an image made by anyone (mkfs.fat + syslinux, or us).
struct TestFATReader {
    let image: String
    /// Byte offset of the volume in the image.
    let volumeOffset: Int64
    let boot: FATBootSector
    let fat: FileAllocationTable
    let clusterCount: Int
    var spc: Int { Int(boot.sectorsPerCluster) }
    var dataStart: Int {
        Int(boot.reservedSectors) + Int(boot.fatCount) * Int(boot.sectorsPerFAT) + Int(boot.rootEntryCount) * 32 / 512
    }

    init(image: String, volumeOffset: Int64 = 0) throws {
        self.image = image
        self.volumeOffset = volumeOffset
        boot = try FATBootSector(decoding: try readBytes(image, offset: volumeOffset, count: 512))
        let dataSectors = Int(boot.totalSectors) - (Int(boot.reservedSectors) + Int(boot.fatCount) * Int(boot.sectorsPerFAT) + Int(boot.rootEntryCount) * 32 / 512)
        clusterCount = dataSectors / Int(boot.sectorsPerCluster)
        let fatBytes = try readBytes(image, offset: volumeOffset + Int64(boot.reservedSectors) * 512, count: Int(boot.sectorsPerFAT) * 512)
        fat = try FileAllocationTable(decoding: fatBytes, type: boot.type, clusterCount: clusterCount)
    }

    func sectors(ofChain first: Int) throws -> [Int] {
        try fat.chain(from: first).flatMap { c in (0..<spc).map { dataStart + (c - 2) * spc + $0 } }
    }

    /// Raw directory bytes of the root.
    func rootDirectory() throws -> [UInt8] {
        if boot.type == .fat16 {
            let start = Int(boot.reservedSectors) + Int(boot.fatCount) * Int(boot.sectorsPerFAT)
            return try readBytes(image, offset: volumeOffset + Int64(start) * 512, count: Int(boot.rootEntryCount) * 32)
        }
        return try read(sectors: try sectors(ofChain: Int(boot.fat32!.rootCluster)))
    }

    func read(sectors: [Int]) throws -> [UInt8] {
        var out: [UInt8] = []
        for s in sectors { out += try readBytes(image, offset: volumeOffset + Int64(s) * 512, count: 512) }
        return out
    }

    /// Entries of a directory: (long name or display name, entry).
    static func entries(_ bytes: [UInt8]) throws -> [(name: String, entry: DirectoryEntry)] {
        var result: [(String, DirectoryEntry)] = []
        var pending: [LongNameEntry] = []
        for i in stride(from: 0, to: bytes.count, by: 32) {
            let raw = Array(bytes[i..<(i + 32)])
            if raw[0] == 0 { break }
            if raw[0] == 0xE5 { pending = []; continue }
            if raw[11] == FATAttributes.longName { pending.append(try LongNameEntry(decoding: raw)); continue }
            let entry = DirectoryEntry(decoding: raw)
            var name = entry.displayName
            if !pending.isEmpty, let long = LongNameEntry.name(from: pending),
                pending[0].checksum == LongNameEntry.checksum(of: entry.name)
            {
                name = long
            }
            pending = []
            result.append((name, entry))
        }
        return result
    }

    func rootEntry(_ name: String) throws -> DirectoryEntry {
        try #require(try Self.entries(try rootDirectory()).first { $0.name == name }?.entry, "no \(name) in the root")
    }
}

/// The plain node media: how each is asked for and laid out.
enum Medium: String, CaseIterable, Sendable {
    case iso, usb, usbPartition
    var action: String { self == .iso ? "node-iso" : "node-usb" }
    var options: [String] { self == .usbPartition ? ["partition"] : [] }
    var layout: any MediumLayout {
        switch self {
        case .iso: ISOMediumLayout()
        case .usb: FATMediumLayout(partitioned: false)
        case .usbPartition: FATMediumLayout(partitioned: true)
        }
    }
}
