import ArgumentParser
import BootMedium
import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Error reporting and process-level safety shared by the subcommands.
enum Diagnostics {
    /// Prints `error[CODE]: message` on one line and exits non-zero.
    static func fail(_ error: BootMediumError) -> Never {
        printError(code: error.code.rawValue, message: error.message)
        exit(1)
    }

    static func printError(code: String, message: String) {
        let line = "error[\(code)]: " + message.replacingOccurrences(of: "\n", with: " ") + "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    /// SIGTERM, SIGINT and SIGHUP remove every temp file before the process dies; SIGXFSZ and
    /// SIGPIPE are ignored so that a file-size limit or a closed pipe becomes an ordinary write
    /// error (and so an ordinary clean-up).
    static func installSignalHandlers() {
        signal(SIGXFSZ, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        for sig in [SIGTERM, SIGINT, SIGHUP] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                TempFileRegistry.shared.removeAll()
                signal(sig, SIG_DFL)
                raise(sig)
            }
            source.resume()
            sources.append(source)
        }
    }
}
