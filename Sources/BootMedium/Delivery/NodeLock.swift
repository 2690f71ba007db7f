#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

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
    /// The lock file's open file description, which holds the lock until it is closed.
    private let file: Mutex<OwnedDescriptor?>
    /// `F_OFD_SETLKW` (Linux, not exported without _GNU_SOURCE).
    static let ofdSetLockWait: Int32 = 38

    init(directory: String, byte: Int64) throws(BootMediumError) {
        let path = directory + "/.node-locks"
        let locked: OwnedDescriptor
        do {
            let directoryFD = try OutputFile.openCreatingDirectories(directory, confinedTo: nil)
            do {
                locked = try OwnedDescriptor.open(
                    ".node-locks", at: directoryFD.rawValue, flags: O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode: 0o600)
            } catch {
                throw .io("open", path: path, errno: error.code)
            }
        }
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        lock.l_start = off_t(byte)
        lock.l_len = 1
        try Posix.syscall("lock", path: path) { fcntl(locked.rawValue, Self.ofdSetLockWait, &lock) }
        file = Mutex(locked)
    }

    /// Releases the lock (closes the lock file; the lock also goes with this object).
    func release() { file.withLock { $0 = nil } }
}
