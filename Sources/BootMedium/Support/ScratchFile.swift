#if canImport(Glibc)
import Glibc
#endif
import Crypto
import Foundation

/// An anonymous file in the work dir (`O_TMPFILE`): it has no name, so nothing is left behind
/// whatever happens to the process. Readable by path through `/proc/self/fd` while open.
final class ScratchFile {
    let fd: Int32
    /// A path that opens this file while it is open.
    var path: String { "/proc/self/fd/\(fd)" }

    init(directory: String) throws(BootMediumError) {
        // O_TMPFILE (__O_TMPFILE | O_DIRECTORY on Linux) is a composite macro Swift does not import.
        let oTmpfile: Int32 = 0o20_200_000
        var fd = Posix.retrying { open(directory, oTmpfile | O_RDWR | O_CLOEXEC, 0o600) }
        if fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL) {
            // A filesystem without O_TMPFILE: a named file removed at once.
            var template = Array((directory + "/.bootmedium-scratch-XXXXXX").utf8CString)
            fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
            if fd >= 0 {
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                _ = template.withUnsafeBufferPointer { unlink($0.baseAddress!) }
            }
        }
        if fd < 0 { throw .io("create a scratch file in", path: directory, errno: errno) }
        self.fd = fd
    }

    deinit { close(fd) }

    /// SHA-256 (hex) of the first `size` bytes.
    func sha256(size: Int64, cancellation: CancellationFlag) throws(BootMediumError) -> String {
        var hasher = SHA256()
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var done: Int64 = 0
        while done < size {
            let n = Posix.retrying { pread(fd, buffer.baseAddress, Int(min(Int64(chunk), size - done)), off_t(done)) }
            if n < 0 { throw .io("read", path: "cramfs scratch file", errno: errno) }
            if n == 0 { throw BootMediumError(.imageBuildFailed, "The cramfs scratch file ends early") }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            done += Int64(n)
            try cancellation.check()
        }
        return Digest.hex(hasher.finalize())
    }
}
