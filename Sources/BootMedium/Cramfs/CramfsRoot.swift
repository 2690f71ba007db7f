#if canImport(Glibc)
import Glibc
#endif
import Crypto
import Foundation

/// The `cramfs.img` of `iso_cramfs` and `usb_cramfs` (docs/behaviour.md §5.4): bootcd.img and the
/// overlay merged in memory, the read-only-root transform applied, written by CCramfs with file
/// contents streamed from bootcd.img once (gunzipped by libarchive) into an anonymous file.
enum CramfsRoot {
    /// A built image.
    struct Image {
        let file: ScratchFile
        let size: Int64
        let sha256: String
        let summary: ReadOnlyRoot.Summary
    }

    /// Builds the cramfs root of `plan` with the overlay `overlay`.
    static func build(_ plan: ImagePlan, overlay: [CpioEntry], cancellation: CancellationFlag) throws(BootMediumError) -> Image {
        let bootcd = try MediumContents.bootcd(plan.tree)
        let root = try RootTree.merged(
            bootcd: bootcd, overlay: overlay, keep: ReadOnlyRoot.editedFiles, cancellation: cancellation)
        let summary = try ReadOnlyRoot.apply(to: root, console: plan.console)
        try cancellation.check()
        // The work dir is part of the PLC root layout; an inline request may come before any
        // output was ever written there.
        try? FileManager.default.createDirectory(atPath: plan.root.workDir, withIntermediateDirectories: true)
        let file = try ScratchFile(directory: plan.root.workDir)
        let reader = BootcdContents(file: bootcd, root: root)
        let result = try Cramfs.write(
            root, volumeName: MediumContents.label(plan, length: 16),
            threads: max(1, ProcessInfo.processInfo.activeProcessorCount), to: file.fd, path: "cramfs.img",
            cancellation: cancellation
        ) { (data, offset, buffer) throws(BootMediumError) in
            try reader.read(data, offset: offset, into: buffer)
        }
        let digest = try file.sha256(size: result.imageSize, cancellation: cancellation)
        return Image(file: file, size: result.imageSize, sha256: digest, summary: summary)
    }
}

/// Serves file contents to the cramfs writer from bootcd.img, read forward with libarchive.
/// The writer asks in the tree's depth-first order, the archive has its own order: an entry
/// passed on the way to a later one is kept in memory (up to a budget) when it is still
/// needed, else the archive is read again from the start when its turn comes.
final class BootcdContents {
    private let file: InputFile
    private var path: String { file.path }
    private var stream: ArchiveStream?
    /// Entry index -> size, for bootcd entries some file still needs.
    private var needed: [Int: Int64] = [:]
    private var stash: [Int: [UInt8]] = [:]
    private var stashBytes = 0
    static let stashBudget = 16 << 20
    /// How often the archive was opened (1 when the orders agree).
    private(set) var passes = 0

    init(file: InputFile, root: RootTree) {
        self.file = file
        try? root.walk { _, node in
            if case .file(let data) = node.kind, case .bootcd(let index) = data.source, data.size > 0 {
                needed[index] = data.size
            }
        }
    }

    func read(_ data: RootTree.FileData, offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(BootMediumError) {
        switch data.source {
        case .bytes(let bytes):
            guard offset >= 0, offset + Int64(buffer.count) <= Int64(bytes.count) else {
                throw BootMediumError(.imageBuildFailed, "cramfs asked for bytes past the end of a generated file")
            }
            bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[Int(offset)..<Int(offset) + buffer.count])) }
        case .bootcd(let index):
            try readEntry(index, size: data.size, offset: offset, into: buffer)
        }
    }

    private func readEntry(_ index: Int, size: Int64, offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(BootMediumError) {
        let end = offset + Int64(buffer.count)
        defer { if end == size { needed[index] = nil } }
        if let kept = stash[index] {
            guard end <= Int64(kept.count) else { throw changed() }
            kept.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[Int(offset)..<Int(end)])) }
            if end == size {
                stash[index] = nil
                stashBytes -= kept.count
            }
            return
        }
        if stream == nil || stream!.index > index || (stream!.index == index && stream!.offsetInEntry > offset) {
            stream = try ArchiveStream(file: file)
            passes += 1
        }
        let stream = stream!
        while stream.index < index {
            guard try stream.next() != nil else { throw changed() }
            let current = stream.index
            if current != index, let wanted = needed[current], stash[current] == nil,
                stashBytes + Int(wanted) <= Self.stashBudget
            {
                let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(wanted), alignment: 16)
                defer { raw.deallocate() }
                try stream.readFully(into: raw)
                stash[current] = Array(raw)
                stashBytes += raw.count
            }
        }
        if stream.offsetInEntry < offset {
            let skip = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
            defer { skip.deallocate() }
            while stream.offsetInEntry < offset {
                let want = Int(min(Int64(skip.count), offset - stream.offsetInEntry))
                try stream.readFully(into: UnsafeMutableRawBufferPointer(rebasing: skip[..<want]))
            }
        }
        try stream.readFully(into: buffer)
    }

    private func changed() -> BootMediumError {
        BootMediumError(.imageBuildFailed, "\(path) changed while the cramfs was written", context: ["path": path])
    }
}
