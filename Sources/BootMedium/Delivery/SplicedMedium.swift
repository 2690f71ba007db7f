#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A node medium as a cached template (``MediumTemplate``) with its slots' bytes written over
/// it: the only per-request bytes, whatever the template's size. Into a file it is the
/// template cloned (`FICLONE`, XFS and btrfs: one call, whatever its size) or else copied in the
/// kernel (`copy_file_range`), and the slots written at their offsets; into anything else (a pipe, memory, an HTTP
/// response) its ranges are spliced in order; ``read(at:count:)`` serves any byte range. The
/// image is never held in memory.
struct SplicedMedium {
    /// The template image, open.
    let template: InputFile
    /// The medium's size (the template's).
    let size: Int64
    /// The slots' bytes at their offsets, in order, not overlapping.
    let regions: [(offset: Int64, bytes: [UInt8])]

    /// The template `open` with slot `name` holding `bytes[name]` (each exactly its capacity).
    init(_ open: TemplateCache.Open, slots bytes: [String: [UInt8]]) throws(BootMediumError) {
        var regions: [(offset: Int64, bytes: [UInt8])] = []
        for slot in open.record.slots {
            guard let filled = bytes[slot.name], filled.count == slot.capacity, slot.offset >= 0,
                slot.offset + Int64(slot.capacity) <= open.record.size
            else { throw BootMediumError(.internal, "Internal error: slot \(slot.name) does not match its template") }
            regions.append((slot.offset, filled))
        }
        regions.sort { $0.offset < $1.offset }
        for (a, b) in zip(regions, regions.dropFirst()) where a.offset + Int64(a.bytes.count) > b.offset {
            throw BootMediumError(.internal, "Internal error: a template's slots overlap")
        }
        template = open.image
        size = open.record.size
        self.regions = regions
    }

    /// Writes the medium into `sink`, checking `cancellation` between pieces.
    func write(to sink: any ImageSink, cancellation: CancellationFlag) throws(BootMediumError) {
        if let file = sink as? any RandomAccessSink, try file.clone(from: template.descriptor) {
            // One call whatever the size, no blocks to reserve (they are shared).
            for region in regions { try file.write(region.bytes, at: region.offset) }
            return
        }
        try sink.reserve(size)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        if let file = sink as? any RandomAccessSink {
            try FileCopy.place(
                template, size: size, at: 0, into: file, buffer: buffer,
                check: { () throws(BootMediumError) in try cancellation.check() })
            for region in regions { try file.write(region.bytes, at: region.offset) }
            return
        }
        var position: Int64 = 0
        for region in regions {
            try copyTemplate(position..<region.offset, to: sink, buffer: buffer, cancellation: cancellation)
            try FileCopy.appendBytes(region.bytes, to: sink, buffer: buffer)
            position = region.offset + Int64(region.bytes.count)
        }
        try copyTemplate(position..<size, to: sink, buffer: buffer, cancellation: cancellation)
    }

    /// The medium's bytes `offset..<offset+count` (clamped to its size).
    func read(at offset: Int64, count: Int) throws(BootMediumError) -> [UInt8] {
        let end = min(size, offset + Int64(max(count, 0)))
        guard offset >= 0, offset < end else { return [] }
        var bytes = try template.bytes(at: offset, count: Int(end - offset))
        for region in regions where region.offset < end && region.offset + Int64(region.bytes.count) > offset {
            let from = max(region.offset, offset)
            let to = min(region.offset + Int64(region.bytes.count), end)
            bytes.replaceSubrange(
                Int(from - offset)..<Int(to - offset), with: region.bytes[Int(from - region.offset)..<Int(to - region.offset)])
        }
        return bytes
    }

    /// Appends the template's bytes `range` to `sink`.
    private func copyTemplate(
        _ range: Range<Int64>, to sink: any ImageSink, buffer: UnsafeMutableRawBufferPointer, cancellation: CancellationFlag
    ) throws(BootMediumError) {
        let path = template.path
        try FileCopy.append(range, of: template, to: sink, buffer: buffer, cancellation: cancellation) {
            BootMediumError(.imageBuildFailed, "The medium template \(path) ended early")
        }
    }
}
