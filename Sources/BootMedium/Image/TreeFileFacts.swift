#if canImport(Glibc)
import Glibc
#endif
import Crypto
import Foundation
import Synchronization

/// Facts about a tree file (its uncompressed size, its SHA-256), computed once per file
/// identity.
///
/// The key is the file's device, inode, size, modification and change times (nanoseconds):
/// any rewrite of the file changes it. Facts live in memory for the process and in
/// `<work dir>/.tree-facts.json` (replaced atomically) across processes; a missing or
/// unreadable cache file only costs one more computation.
///
/// The cache and its key are written without flushing (a crash may lose or tear them: a torn
/// entry fails its MAC, a torn key makes a new one).
///
/// A fact read from the cache file is used only with a valid MAC (HMAC-SHA256 over its key and
/// value, keyed by `<work dir>/.tree-facts.key`, 32 random bytes, mode 0600, made once): an
/// edited, truncated or copied entry (a wrong size would become a wrong `ramdisk_size`, a
/// wrong digest a medium whose manifest contradicts it) fails the check and is computed anew.
enum TreeFileFacts {
    private struct Memory {
        var facts: [String: String] = [:]
        /// Cache directories whose file has been merged into `facts` (read once per process).
        var loadedDirectories: Set<String> = []
        /// MAC keys by cache directory.
        var keys: [String: [UInt8]] = [:]
    }
    private static let memory = Mutex(Memory())
    static let cacheName = ".tree-facts.json"
    static let keyName = ".tree-facts.key"

    /// The entries of `cacheDirectory`'s cache file as stored (`value mac`; empty when missing,
    /// unreadable or not a regular file within 1 MiB).
    private static func onDisk(_ cacheDirectory: String) -> [String: String] {
        guard let data = try? InputFile.open(cachePath(cacheDirectory), role: .treeFacts).readAll() else { return [:] }
        return stored(data)
    }

    /// A cache file's entries as stored (`value mac`); empty when `bytes` are not a JSON object
    /// of strings.
    static func stored(_ bytes: [UInt8]) -> [String: String] {
        (try? JSONDecoder().decode([String: String].self, from: Data(bytes))) ?? [:]
    }

    /// The facts among a cache file's `bytes` whose MACs `key` confirms; every other entry is
    /// dropped (the one reader of the cache file's contents, also fuzzed).
    static func verifiedFacts(_ bytes: [UInt8], key: [UInt8]) -> [String: String] {
        verified(stored(bytes), key: SymmetricKey(data: key))
    }

    private static func verified(_ entries: [String: String], key: SymmetricKey) -> [String: String] {
        var facts: [String: String] = [:]
        for (name, stored) in entries {
            if let value = verified(stored, entry: name, key: key) { facts[name] = value }
        }
        return facts
    }

    /// `value mac` for `value` under `entry`, as the cache file stores it.
    static func sealed(_ value: String, entry: String, key: [UInt8]) -> String {
        value + " " + mac(SymmetricKey(data: key), entry, value)
    }

    private static func cachePath(_ cacheDirectory: String) -> String { cacheDirectory + "/" + cacheName }

    /// `value` sealed under `entry` with `cacheDirectory`'s key (``sealed(_:entry:key:)``),
    /// for other caches of the work dir (medium templates); nil without a key.
    static func seal(_ value: String, entry: String, cacheDirectory: String) -> String? {
        guard let key = key(cacheDirectory) else { return nil }
        return value + " " + mac(key, entry, value)
    }

    /// The value of `stored` (from ``seal(_:entry:cacheDirectory:)``) when its MAC is right.
    static func unseal(_ stored: String, entry: String, cacheDirectory: String) -> String? {
        guard let key = key(cacheDirectory) else { return nil }
        return verified(stored, entry: entry, key: key)
    }

    /// The MAC key of `cacheDirectory`, made there on first use; nil when it cannot be read or
    /// made (the cache file is then neither trusted nor written).
    private static func key(_ cacheDirectory: String) -> SymmetricKey? {
        if let known = memory.withLock({ $0.keys[cacheDirectory] }) { return SymmetricKey(data: known) }
        let path = cacheDirectory + "/" + keyName
        var bytes = readKey(path)
        if bytes == nil {
            guard (try? OutputFile.openCreatingDirectories(cacheDirectory, confinedTo: nil)) != nil else { return nil }
            var generator = SystemRandomNumberGenerator()
            let fresh = Data((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
            // Linked into place only when absent, so concurrent first runs agree on one key; a
            // key file that is not ours alone is replaced (its entries then fail their MACs).
            try? Posix.atomicReplace(path, with: fresh, mode: 0o600, replacing: false, durable: false)
            bytes = readKey(path)
            if bytes == nil {
                try? Posix.atomicReplace(path, with: fresh, mode: 0o600, durable: false)
                bytes = readKey(path)
            }
        }
        guard let bytes else { return nil }
        memory.withLock { $0.keys[cacheDirectory] = bytes }
        return SymmetricKey(data: bytes)
    }

    /// The key file's 32 bytes, when it is a regular file of ours that nobody else can read.
    private static func readKey(_ path: String) -> [UInt8]? {
        guard let file = try? InputFile.open(path, role: .treeFacts), file.size == 32,
            file.identity.owner == geteuid(), file.identity.permissions & 0o077 == 0,
            let bytes = try? file.readAll()
        else { return nil }
        return bytes
    }

    private static func mac(_ key: SymmetricKey, _ entry: String, _ value: String) -> String {
        Digest.hex(HMAC<SHA256>.authenticationCode(for: Array("\(entry)\0\(value)".utf8), using: key))
    }

    /// The value of a stored `value mac` entry whose MAC is right, else nil.
    private static func verified(_ stored: String, entry: String, key: SymmetricKey) -> String? {
        guard let space = stored.lastIndex(of: " ") else { return nil }
        let value = String(stored[..<space])
        return mac(key, entry, value) == stored[stored.index(after: space)...] ? value : nil
    }

    /// The fact `kind` of `file`, computed by `compute` when not cached.
    static func fact(
        _ kind: String, of file: InputFile, cacheDirectory: String,
        compute: () throws(BootMediumError) -> String
    ) throws(BootMediumError) -> String {
        let entry = "\(kind)|" + file.identity.description
        let key = key(cacheDirectory)
        if memory.withLock({ !$0.loadedDirectories.contains(cacheDirectory) }) {
            let facts = key.map { verified(onDisk(cacheDirectory), key: $0) } ?? [:]
            memory.withLock {
                $0.loadedDirectories.insert(cacheDirectory)
                $0.facts.merge(facts) { mine, _ in mine }
            }
        }
        if let value = memory.withLock({ $0.facts[entry] }) { return value }
        let value = try compute()
        memory.withLock { $0.facts[entry] = value }
        guard let key else { return value }
        // Re-read before replacing: another process may have added facts since.
        var stored = onDisk(cacheDirectory)
        stored[entry] = value + " " + mac(key, entry, value)
        if stored.count > 256 { stored = [entry: stored[entry]!] }
        if let data = try? JSONEncoder().encode(stored),
            (try? OutputFile.openCreatingDirectories(cacheDirectory, confinedTo: nil)) != nil
        {
            try? Posix.atomicReplace(cachePath(cacheDirectory), with: data, durable: false)
        }
        return value
    }

    /// The uncompressed size of the compressed bootcd.img `file`.
    static func uncompressedSize(of file: InputFile, cacheDirectory: String, cancellation: CancellationFlag)
        throws(BootMediumError) -> Int64
    {
        let text = try fact("uncompressed-size", of: file, cacheDirectory: cacheDirectory) {
            () throws(BootMediumError) in
            String(try Archive.uncompressedSize(of: file, cancellation: cancellation))
        }
        guard let size = Int64(text), size >= 0 else {
            throw BootMediumError(.imageBuildFailed, "Bad cached size for \(file.path)")
        }
        return size
    }

    /// The SHA-256 (hex) of `file`.
    static func sha256(of file: InputFile, cacheDirectory: String, cancellation: CancellationFlag)
        throws(BootMediumError) -> String
    {
        try fact("sha256", of: file, cacheDirectory: cacheDirectory) { () throws(BootMediumError) in
            try Digest.sha256(of: file, cancellation: cancellation)
        }
    }
}
