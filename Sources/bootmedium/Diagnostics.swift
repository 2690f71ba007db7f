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

    /// SIGTERM, SIGINT and SIGHUP remove every temp file before the process dies; SIGXFSZ and
    /// SIGPIPE are ignored so that a file-size limit or a closed pipe becomes an ordinary write
    /// error (and so an ordinary clean-up).
    ///
    /// The C handler only writes the signal number to a pipe (async-signal-safe); a dedicated
    /// thread reads it, removes the temp files, restores the default action and re-raises, so
    /// the exit status still says which signal ended the process.
    static func installSignalHandlers() {
        signal(SIGXFSZ, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return }
        signalPipeWriteEnd = fds[1]
        let readEnd = fds[0]
        let thread = Thread {
            var byte: UInt8 = 0
            while read(readEnd, &byte, 1) != 1 {}
            TempFileRegistry.shared.removeAll()
            let sig = Int32(byte)
            signal(sig, SIG_DFL)
            var set = sigset_t()
            sigemptyset(&set)
            sigaddset(&set, sig)
            pthread_sigmask(SIG_UNBLOCK, &set, nil)
            raise(sig)
            _exit(128 + sig)
        }
        thread.start()
        for sig in [SIGTERM, SIGINT, SIGHUP] {
            signal(sig) { received in
                var byte = UInt8(truncatingIfNeeded: received)
                _ = write(signalPipeWriteEnd, &byte, 1)
            }
        }
    }
}

/// The write end of the signal pipe, read by the C signal handler.
nonisolated(unsafe) var signalPipeWriteEnd: Int32 = -1
