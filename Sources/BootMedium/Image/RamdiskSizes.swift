#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// The uncompressed size of a tree's `bootcd.img`, computed once per file identity.
///
/// The key is the file's device, inode, size, modification and change times (nanoseconds):
/// any rewrite of the file changes it. Sizes live in memory for the process and in
/// `<work dir>/.bootcd-sizes.json` (replaced atomically) across processes; a missing or
/// unreadable cache file only costs one decompression.
enum RamdiskSizes {
    private static let memory = Mutex<[String: Int64]>([:])

    static func identity(of path: String) throws(BootMediumError) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { throw .io("stat", path: path, errno: errno) }
        return "\(info.st_dev):\(info.st_ino):\(info.st_size):\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec):\(info.st_ctim.tv_sec).\(info.st_ctim.tv_nsec)"
    }

    /// The uncompressed size of the compressed file at `path`.
    static func uncompressedSize(of path: String, cacheDirectory: String, cancellation: CancellationFlag)
        throws(BootMediumError) -> Int64
    {
        let key = try identity(of: path)
        if let size = memory.withLock({ $0[key] }) { return size }
        let cachePath = cacheDirectory + "/.bootcd-sizes.json"
        var onDisk: [String: Int64] = [:]
        if let data = FileManager.default.contents(atPath: cachePath),
            let decoded = try? JSONDecoder().decode([String: Int64].self, from: data)
        {
            onDisk = decoded
        }
        if let size = onDisk[key] {
            memory.withLock { $0[key] = size }
            return size
        }
        let size = try Archive.uncompressedSize(ofFileAt: path, cancellation: cancellation)
        memory.withLock { $0[key] = size }
        onDisk[key] = size
        if onDisk.count > 64 { onDisk = [key: size] }
        if let data = try? JSONEncoder().encode(onDisk),
            (try? OutputFile.openCreatingDirectories(cacheDirectory, confinedTo: nil)).map({ close($0) }) != nil
        {
            try? Posix.atomicReplace(cachePath, with: data)
        }
        return size
    }
}
