import Testing

@testable import BootMedium

@Suite struct SerialConsoleTests {
    @Test(arguments: [
        ("", "ttyS0:115200:n:8"), ("default", "ttyS0:115200:n:8"), ("ttyS0", "ttyS0:115200:n:8"),
        ("ttyS1:9600", "ttyS1:9600:n:8"), ("ttyS2:38400:e", "ttyS2:38400:e:8"),
        ("ttyS3:300:o:7", "ttyS3:300:o:7"), ("ttyS0:115200:n:5", "ttyS0:115200:n:5"),
    ])
    func parsesWithDefaults(spec: String, normalized: String) throws {
        #expect(try SerialConsole(spec: spec).spec == normalized)
    }

    @Test(arguments: [
        "ttyS4", "ttyS", "ttyUSB0", "tty0", "ttyS0:9601", "ttyS0:115200:x", "ttyS0:115200:n:9",
        "ttyS0:115200:n:4", "ttyS0:115200:n:8:1", "ttyS0;reboot", "ttyS0:$(id)", "ttyS0:+9600",
        "ttyS0: 9600", "ttyS0:115200:N", "ttyS0:115200:n:8 ", "ttyS١",
    ])
    func refusesEverythingElse(spec: String) {
        #expect(throws: BootMediumError.self) { try SerialConsole(spec: spec) }
        do { _ = try SerialConsole(spec: spec) } catch { #expect(error.code == .invalidSerialSpec) }
    }

    @Test func rendersPerTarget() throws {
        let console = try SerialConsole(spec: "ttyS1:9600")
        #expect(console.kernelArgument == "console=ttyS1,9600n8")
        #expect(console.syslinuxDirective == "SERIAL 1 9600")
        #expect(console.nameSuffix == "-serial-ttyS19600n8")
        #expect(SerialConsole.default.kernelArgument == "console=ttyS0,115200n8")
        #expect(SerialConsole.default.syslinuxDirective == "SERIAL 0 115200")
        #expect(SerialConsole.default.nameSuffix == "-serial")
    }
}

@Suite struct KernelCommandLineTests {
    @Test func ordersAndRenders() throws {
        let line = try KernelCommandLine(
            console: .default, noHangcheck: true, systemdConsole: true, systemdDebug: true,
            extra: ["quiet", "loglevel=3"])
        #expect(
            line.appendArguments
                == "console=ttyS0,115200n8 hcheck_reboot0 systemd.log_target=console systemd.default_standard_output=journal+console systemd.default_standard_error=journal+console systemd.log_level=debug quiet loglevel=3"
        )
        #expect(line.kargsFileContents == line.appendArguments + "\n")
        #expect(try KernelCommandLine().kargsFileContents == nil)
    }

    @Test func splitsOnWhiteSpace() {
        #expect(KernelCommandLine.split("  quiet\tloglevel=3\n a ") == ["quiet", "loglevel=3", "a"])
    }

    @Test(arguments: ["a;b", "$(reboot)", "`id`", "a\"b", "a'b", "a\\b", "x|y", "a&b", "é"])
    func refusesShellText(argument: String) {
        do {
            _ = try KernelCommandLine(extra: [argument])
            Issue.record("accepted \(argument)")
        } catch { #expect(error.code == .invalidKernelArgument) }
    }
}
