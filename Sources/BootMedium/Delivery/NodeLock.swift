#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Serializes requests that renew the same node's key, so two media never carry different
/// keys silently.
///
/// Within a process an actor queues waiters per (work dir, node id); across processes (two CLI runs) an
/// open-file-description lock on byte `node_id` of `<work dir>/.node-locks` is taken on a
/// blocking thread. That lock file is empty and never holds data; the work dir's only other
/// files of bootmedium's are the tree-facts cache and its key (`TreeFileFacts`).
actor NodeLocks {
    static let shared = NodeLocks()
    private var held: Set<String> = []
    private var waiters: [String: [CheckedContinuation<Void, Never>]] = [:]

    func acquire(_ id: String) async {
        if !held.contains(id) {
            held.insert(id)
            return
        }
        await withCheckedContinuation { waiters[id, default: []].append($0) }
    }

    func release(_ id: String) {
        if var queue = waiters[id], !queue.isEmpty {
            let next = queue.removeFirst()
            waiters[id] = queue.isEmpty ? nil : queue
            next.resume()
        } else {
            held.remove(id)
        }
    }

    /// Runs `body` holding node `id`'s lock in this process and across processes.
    static func withLock<T: Sendable>(
        node id: Int, workDir: String, _ body: () async throws(BootMediumError) -> T
    ) async throws(BootMediumError) -> T {
        let key = "\(workDir)#\(id)"
        await shared.acquire(key)
        let fileLock: FileRangeLock
        do throws(BootMediumError) {
            fileLock = try await Blocking.run { () throws(BootMediumError) in
                try FileRangeLock(directory: workDir, byte: Int64(id))
            }
        } catch {
            await shared.release(key)
            throw error
        }
        do throws(BootMediumError) {
            let result = try await body()
            fileLock.release()
            await shared.release(key)
            return result
        } catch {
            fileLock.release()
            await shared.release(key)
            throw error
        }
    }
}

/// An exclusive OFD lock on one byte of `<directory>/.node-locks`.
final class FileRangeLock: Sendable {
    private let fd: Int32
    /// `F_OFD_SETLKW` (Linux, not exported without _GNU_SOURCE).
    static let ofdSetLockWait: Int32 = 38

    init(directory: String, byte: Int64) throws(BootMediumError) {
        let dfd = try OutputFile.openCreatingDirectories(directory, confinedTo: nil)
        defer { close(dfd) }
        let fd = Posix.retrying {
            openat(dfd, ".node-locks", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        }
        if fd < 0 { throw .io("open", path: directory + "/.node-locks", errno: errno) }
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        lock.l_start = off_t(byte)
        lock.l_len = 1
        if Posix.retrying({ fcntl(fd, Self.ofdSetLockWait, &lock) }) != 0 {
            let code = errno
            close(fd)
            throw .io("lock", path: directory + "/.node-locks", errno: code)
        }
        self.fd = fd
    }

    func release() { close(fd) }
}
