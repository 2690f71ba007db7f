import Foundation
import Testing

/// The referee itself (issue: demo root and boot proof): an ISO made by xorriso from the demo
/// tree boots, and the same ISO without a boot loader is reported as a failed boot.
@Suite(.serialized, .tags(.qemu, .demoRoot)) struct BootHarnessTests {
    @Test func fixtureISOBootsAndAnUnbootableOneFails() throws {
        let root = try DemoRoot.path()
        let dir = FileManager.default.temporaryDirectory.path + "/fixture-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = dir + "/fixture.iso"
        let bad = dir + "/noloader.iso"
        #expect(try runProcess(packageDirectory + "/tools/fixture-iso", [root, good]).status == 0)
        #expect(try runProcess(packageDirectory + "/tools/fixture-iso", [root, bad, "--no-loader"]).status == 0)
        let plnode = try String(contentsOfFile: good + ".plnode.txt", encoding: .utf8)
        let pass = try bootCheck(good, cmdline: ["root=/dev/ram0"], plnode: .some(plnode))
        #expect(pass.passed, "\(pass.output)")
        let fail = try bootCheck(bad, plnode: .some(plnode), timeout: 60)
        #expect(!fail.passed, "\(fail.output)")
        // A wrong expectation fails too: the harness compares, it does not just watch.
        let wrong = try bootCheck(good, plnode: .some(plnode + "EXTRA=\"1\"\n"))
        #expect(!wrong.passed)
    }
}
