import Foundation
import Testing

@testable import BootMedium

/// The command line of docs/contract.md §3, run as a process.
@Suite struct CLITests {
    func cli(_ root: TestRoot, _ args: [String], env: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        var environment = ProcessInfo.processInfo.environment
        environment["SOURCE_DATE_EPOCH"] = "1700000000"
        environment.merge(env) { $1 }
        let r = try runProcess(bootmediumExecutable, ["build", "--root", root.path] + args, environment: environment)
        return (r.status, String(decoding: r.stdout, as: UTF8.self), r.stderr)
    }

    @Test func previewPrintsTheConfig() throws {
        let root = try TestRoot()
        let r = try cli(root, ["--action", "node-preview", "--node", "node1.example.org"])
        #expect(r.status == 0)
        let golden = try String(contentsOf: Bundle.module.url(forResource: "Golden/preview", withExtension: "txt")!, encoding: .utf8)
        #expect(r.stdout == golden)
        #expect(r.stderr.isEmpty)
    }

    @Test func outputPrintsOnlyThePath() throws {
        let root = try TestRoot()
        let r = try cli(root, ["--action", "node-floppy", "--node", "12", "--output", "%d/%n%s", "--caller", "pi,tech:1,3"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == root.workDir + "/node1.example.org.txt\n")
        #expect(try keyIn(String(contentsOfFile: root.workDir + "/node1.example.org.txt", encoding: .utf8)) == root.nodeKey(12))
    }

    @Test(arguments: [
        (["--action", "node-cd"], "unknown-action"),
        (["--action", "node-iso", "--node", "12", "--option", "serial:ttyS9"], "invalid-serial-spec"),
        (["--action", "node-iso", "--node", "12", "--option", "bogus"], "invalid-option"),
        (["--action", "node-preview", "--node", "12", "--option", "serial"], "options-not-supported"),
        (["--action", "node-preview", "--node", "nosuch.example.org"], "unknown-node"),
        (["--action", "node-preview", "--node", "node2.other.org", "--caller", "pi:1"], "permission-denied"),
        (["--action", "node-floppy", "--node", "12", "--output", "/tmp/x", "--caller", "pi:1"], "output-outside-workdir"),
        (["--action", "node-preview", "--node", "12", "--caller", "pi:x"], "invalid-option"),
        (["--node", "12"], "usage"),
    ])
    func errorsAreOneCodedLine(args: [String], code: String) throws {
        let root = try TestRoot()
        let r = try cli(root, args)
        #expect(r.status != 0)
        #expect(r.stderr.hasPrefix("error[\(code)]: "), "\(r.stderr)")
        #expect(r.stderr.filter { $0 == "\n" }.count == 1)
        #expect(r.stdout.isEmpty)
        #expect(try root.nodeKey(12) == "old-key")
        #expect(root.files(under: "/var").allSatisfy { $0.hasSuffix(".node-locks") })
    }

    @Test func versionAndHelp() throws {
        let v = try runProcess(bootmediumExecutable, ["--version"])
        #expect(v.status == 0)
        #expect(String(decoding: v.stdout, as: UTF8.self) == BootMediumVersion.string + "\n")
        let h = try runProcess(bootmediumExecutable, ["build", "--help"])
        #expect(h.status == 0)
        #expect(String(decoding: h.stdout, as: UTF8.self).contains("--output"))
    }

    /// A file-size limit (SIGXFSZ, then EFBIG) fails the write: no file, no temp file, old key.
    @Test func fileSizeLimitLeavesNothing() throws {
        let root = try TestRoot()
        let r = try runProcess("/bin/sh", ["-c", "ulimit -f 0; exec \"$0\" \"$@\"", bootmediumExecutable,
            "build", "--root", root.path, "--action", "node-floppy", "--node", "12", "--output", "%d/big.txt"])
        #expect(r.status != 0)
        #expect(r.stderr.hasPrefix("error[io-error]: write"), "\(r.stderr)")
        #expect(root.files(under: "/var/tmp/bootmedium") == [".node-locks"])
        #expect(try root.nodeKey(12) == "old-key")
    }

    /// A full disk (ENOSPC on a tiny tmpfs mounted as the work dir) leaves nothing.
    @Test func fullDiskLeavesNothing() throws {
        let root = try TestRoot()
        try FileManager.default.createDirectory(atPath: root.workDir, withIntermediateDirectories: true)
        let mount = try runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=16k", "tmpfs", root.workDir])
        try #require(mount.status == 0, "mount: \(mount.stderr)")
        defer { _ = try? runProcess("/bin/umount", [root.workDir]) }
        // Fill it (dd stops with ENOSPC).
        _ = try runProcess("/bin/sh", ["-c", "dd if=/dev/zero of=\(root.workDir)/filler bs=1k count=1000 2>/dev/null; true"])
        // Take the lock file's place in advance so only the output can fail.
        let r = try cli(root, ["--action", "node-floppy", "--node", "12", "--output", "%d/full.txt"])
        #expect(r.status != 0)
        #expect(r.stderr.hasPrefix("error[io-error]:"), "\(r.stderr)")
        #expect(r.stderr.contains("No space left on device"), "\(r.stderr)")
        #expect(root.files(under: "/var/tmp/bootmedium").allSatisfy { $0 == "filler" || $0 == ".node-locks" })
        #expect(try root.nodeKey(12) == "old-key")
    }

    /// SIGTERM while a request waits for its node's lock: the process dies, leaving nothing.
    @Test func sigtermWhileWaitingLeavesNothing() async throws {
        let root = try TestRoot()
        let held = try FileRangeLock(directory: root.workDir, byte: 12)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: bootmediumExecutable)
        process.arguments = ["build", "--root", root.path, "--action", "node-floppy", "--node", "12", "--output", "%d/t.txt"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        try await Task.sleep(for: .milliseconds(700))
        #expect(process.isRunning)
        process.terminate()
        process.waitUntilExit()
        held.release()
        #expect(process.terminationReason == .uncaughtSignal)
        #expect(process.terminationStatus == SIGTERM)
        #expect(root.files(under: "/var/tmp/bootmedium") == [".node-locks"])
        #expect(try root.nodeKey(12) == "old-key")
    }
}
