#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

/// The cache of medium templates (``MediumTemplate``) under `<work dir>/.templates/`: per key an
/// image `<key>.template`, its record `<key>.meta` (sealed with the work dir's cache key, so a
/// record not written by us is not trusted) and a lock file `<key>.lock`.
///
/// A template is built once: the first request takes the key's lock (`flock`, which also
/// serializes requests of one process, each holding its own open file description), the others
/// wait on it and find the template made. The image is written to an anonymous file and linked
/// into place complete, its record after it, so a crash leaves no partial template. The cache is
/// bounded: after a build, the least recently used templates are removed until the images take
/// at most ``maximumBytes`` (the one just built stays).
public final class TemplateCache: Sendable {
    /// The cache's bound on the templates' images, in bytes.
    public let maximumBytes: Int64
    /// The slot capacities of new templates.
    public let capacities: SlotCapacities
    private let counters = Mutex(Counters())

    /// What the cache did since it was made.
    public struct Counters: Sendable, Equatable {
        /// Requests served from a cached template.
        public var hits = 0
        /// Templates built.
        public var builds = 0
        /// Templates evicted by the bound.
        public var evictions = 0

        /// Counts of work done (none by default).
        public init(hits: Int = 0, builds: Int = 0, evictions: Int = 0) {
            self.hits = hits
            self.builds = builds
            self.evictions = evictions
        }
    }

    /// The default bound: 8 GiB of templates.
    public static let defaultMaximumBytes: Int64 = 8 << 30

    public init(maximumBytes: Int64 = TemplateCache.defaultMaximumBytes, capacities: SlotCapacities = .standard) {
        self.maximumBytes = maximumBytes
        self.capacities = capacities
    }

    /// What the cache did so far.
    public var counts: Counters { counters.withLock { $0 } }

    /// An open cached template.
    struct Open {
        let record: MediumTemplate
        let image: InputFile
    }

    static func directory(_ workDir: String) -> String { workDir + "/.templates" }

    /// The template `key` of the work dir `workDir`, built by `build` when missing: `build` writes
    /// the image into the sink it is given and returns the record's fixed files and slots (found
    /// by reading back the image at the path it is given, after the image was written).
    func template(
        key: String, workDir: String,
        build: (_ sink: OutputFile) throws(BootMediumError) -> Void,
        locate: (_ imagePath: String) throws(BootMediumError) -> (slots: [MediumTemplate.Slot], fixedFiles: [Manifest.File])
    ) throws(BootMediumError) -> Open {
        let directory = Self.directory(workDir)
        if let found = Self.open(key, in: directory, workDir: workDir) {
            counters.withLock { $0.hits += 1 }
            return found
        }
        let lockPath = directory + "/" + key + ".lock"
        let lock: OwnedDescriptor
        do {
            let directoryFD = try OutputFile.openCreatingDirectories(directory, confinedTo: nil)
            _ = fchmod(directoryFD.rawValue, 0o700)
            do {
                lock = try OwnedDescriptor.open(
                    key + ".lock", at: directoryFD.rawValue, flags: O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode: 0o600)
            } catch {
                throw .io("open", path: lockPath, errno: error.code)
            }
        }
        defer { withExtendedLifetime(lock) {} }  // held to the end: closing it releases the flock
        try Posix.syscall("lock", path: lockPath) { flock(lock.rawValue, LOCK_EX) }
        if let found = Self.open(key, in: directory, workDir: workDir) {
            counters.withLock { $0.hits += 1 }
            return found
        }
        let imagePath = directory + "/" + key + ".template"
        let sink = try OutputFile(path: imagePath, confinedTo: nil, replaces: true, syncs: false)
        try build(sink)
        try sink.commit()
        let located: (slots: [MediumTemplate.Slot], fixedFiles: [Manifest.File])
        let image: InputFile
        do throws(BootMediumError) {
            located = try locate(imagePath)
            image = try InputFile.open(imagePath, role: .template)
        } catch {
            unlink(imagePath)
            throw error
        }
        let record = MediumTemplate(
            key: key, size: image.size, slots: located.slots, fixedFiles: located.fixedFiles, identity: image.identity.description)
        try Self.save(record, in: directory, workDir: workDir)
        counters.withLock { $0.builds += 1 }
        evict(in: directory, keeping: key)
        return Open(record: record, image: image)
    }

    /// The cached template `key`, when its record is ours and its image unchanged since; its
    /// record's time is set to now (the least recently used go first).
    private static func open(_ key: String, in directory: String, workDir: String) -> Open? {
        let metaPath = directory + "/" + key + ".meta"
        guard let meta = try? InputFile.open(metaPath, role: .treeFacts), let bytes = try? meta.readAll(),
            let text = String(bytes: bytes, encoding: .utf8),
            let json = TreeFileFacts.unseal(text.trimmingCharacters(in: .newlines), entry: "template " + key, cacheDirectory: workDir),
            let record = try? JSONDecoder().decode(MediumTemplate.self, from: Data(json.utf8)),
            record.schema == MediumTemplate.schemaID, record.key == key,
            let image = try? InputFile.open(directory + "/" + key + ".template", role: .template),
            image.identity.description == record.identity, image.size == record.size
        else { return nil }
        _ = futimens(meta.descriptor, nil)
        return Open(record: record, image: image)
    }

    private static func save(_ record: MediumTemplate, in directory: String, workDir: String) throws(BootMediumError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(record), let json = String(data: data, encoding: .utf8),
            let sealed = TreeFileFacts.seal(json, entry: "template " + record.key, cacheDirectory: workDir)
        else { throw BootMediumError(.imageBuildFailed, "Internal error: cannot seal the template record") }
        try Posix.atomicReplace(directory + "/" + record.key + ".meta", with: Data((sealed + "\n").utf8), mode: 0o600, durable: false)
    }

    /// Removes the least recently used templates (by their record's time) until the images
    /// take at most ``maximumBytes``, never `keeping`.
    private func evict(in directory: String, keeping: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        var entries: [(key: String, used: Int64, bytes: Int64)] = []
        var total: Int64 = 0
        for name in names where name.hasSuffix(".template") {
            let key = String(name.dropLast(".template".count))
            var image = stat()
            var meta = stat()
            guard lstat(directory + "/" + name, &image) == 0 else { continue }
            let used = lstat(directory + "/" + key + ".meta", &meta) == 0 ? Int64(meta.st_mtim.tv_sec) * 1_000_000_000 + Int64(meta.st_mtim.tv_nsec) : 0
            total += Int64(image.st_size)
            if key != keeping { entries.append((key, used, Int64(image.st_size))) }
        }
        for entry in entries.sorted(by: { $0.used < $1.used }) where total > maximumBytes {
            for suffix in [".meta", ".template", ".lock"] { unlink(directory + "/" + entry.key + suffix) }
            total -= entry.bytes
            counters.withLock { $0.evictions += 1 }
        }
    }
}
