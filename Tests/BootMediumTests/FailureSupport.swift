import Foundation
import Testing

@testable import BootMedium

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
