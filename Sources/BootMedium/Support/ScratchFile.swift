#if canImport(Glibc)
import Glibc
#endif
import Crypto
import Foundation

/// An anonymous file in the work dir (`O_TMPFILE`): it has no name, so nothing is left behind
/// whatever happens to the process. Readable by path through `/proc/self/fd` while open.
final class ScratchFile {
    let descriptor: OwnedDescriptor
    var fd: Int32 { descriptor.rawValue }
    /// A path that opens this file while it is open.
    var path: String { "/proc/self/fd/\(fd)" }

    init(directory: String) throws(BootMediumError) {
        // O_TMPFILE (__O_TMPFILE | O_DIRECTORY on Linux) is a composite macro Swift does not import.
        let oTmpfile: Int32 = 0o20_200_000
        do {
            descriptor = try OwnedDescriptor.open(directory, flags: oTmpfile | O_RDWR | O_CLOEXEC, mode: 0o600)
        } catch where error.code == EOPNOTSUPP || error.code == EISDIR || error.code == EINVAL {
            // A filesystem without O_TMPFILE: a named file removed at once.
            var template = Array((directory + "/.bootmedium-scratch-XXXXXX").utf8CString)
            do {
                descriptor = OwnedDescriptor(adopting: try Posix.syscall { template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) } })
            } catch {
                throw .io("create a scratch file in", path: directory, errno: error.code)
            }
            _ = fcntl(descriptor.rawValue, F_SETFD, FD_CLOEXEC)
            _ = template.withUnsafeBufferPointer { unlink($0.baseAddress!) }
        } catch {
            throw .io("create a scratch file in", path: directory, errno: error.code)
        }
    }

    /// SHA-256 (hex) of the first `size` bytes.
    func sha256(size: Int64, cancellation: CancellationFlag) throws(BootMediumError) -> String {
        var hasher = SHA256()
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var done: Int64 = 0
        while done < size {
            let piece = UnsafeMutableRawBufferPointer(rebasing: buffer[..<Int(min(Int64(chunk), size - done))])
            let n = try Posix.read(fd, into: piece, at: done, path: "cramfs scratch file")
            if n == 0 { throw BootMediumError(.imageBuildFailed, "The cramfs scratch file ends early") }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            done += Int64(n)
            try cancellation.check()
        }
        return Digest.hex(hasher.finalize())
    }
}
