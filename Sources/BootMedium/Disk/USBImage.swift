/// How a USB image is laid out on the stick.
public enum USBPartitioning: Sendable, Equatable {
    /// The FAT volume alone, no partition table (`usb`).
    case superfloppy
    /// An MBR with `bootCode` (440 bytes, SYSLINUX's `mbr.bin`) and `diskSignature`, one
    /// active FAT partition from sector 32 (one track of the 64-head/32-sector geometry) to
    /// the end (`usb_partition`).
    case mbr(bootCode: [UInt8], diskSignature: UInt32)
}

/// The identity of a USB image.
public struct USBImageOptions: Sendable, Equatable {
    /// Volume label (see ``FATVolumeOptions/label``).
    public var label: String
    /// FAT volume serial number.
    public var volumeID: UInt32
    /// Unix seconds (UTC) for every file's dates.
    public var timestamp: Int64
    public var partitioning: USBPartitioning
    /// Free space left on the volume (4 MiB, as build.sh left).
    public var freeSpace: Int64

    public init(
        label: String, volumeID: UInt32, timestamp: Int64, partitioning: USBPartitioning = .superfloppy,
        freeSpace: Int64 = 4 << 20
    ) {
        self.label = label
        self.volumeID = volumeID
        self.timestamp = timestamp
        self.partitioning = partitioning
        self.freeSpace = freeSpace
    }
}

/// A bootable USB disk image (docs/behaviour.md §5.3 `usb` / `usb_partition`), laid out: a FAT16 or
/// FAT32 volume (``FATParameters`` rules: FAT32 from 512 MiB) holding the files plus SYSLINUX
/// (`ldlinux.sys`, `ldlinux.c32`, installed as `syslinux --install` would), optionally behind an
/// MBR.
///
/// Size: the files (each rounded up to whole clusters) + FAT metadata + at least
/// ``USBImageOptions/freeSpace`` free, with the **whole image rounded up to a whole MiB**, which
/// is also a whole number of 64 × 32 cylinders. A partitioned image is: MBR, 31 zero sectors, then
/// the volume (hidden sectors 32) filling the rest. BPB geometry is 64 heads, 32 sectors/track
/// in both cases. The same inputs give the same bytes.
public struct USBImageLayout {
    /// Sectors in front of the volume (0 or 32).
    public let volumeStart: Int
    /// The whole image size in bytes.
    public let totalBytes: Int64
    let volume: FATVolume
    let mbr: MBR?

    static let heads = 64
    static let sectorsPerTrack = 32

    /// The FAT type chosen.
    public var fatType: FATType { volume.parameters.type }

    /// Lays out an image of `files` (names under the root, e.g. `kernel`, `bootcd.img`,
    /// `overlay.img`, `pl_version`, `syslinux.cfg`) with SYSLINUX from `syslinux`. Throws
    /// `imageBuildFailed` for invalid or duplicate names or files of 4 GiB and more,
    /// `invalidImage` for a bad MBR boot code.
    public init(files: [FATFileSpec], syslinux: SyslinuxPayload, options: USBImageOptions) throws(BootMediumError) {
        let start: Int
        switch options.partitioning {
        case .superfloppy: start = 0
        case .mbr: start = Self.sectorsPerTrack
        }
        let fatOptions = FATVolumeOptions(
            label: options.label, volumeID: options.volumeID, timestamp: options.timestamp,
            hiddenSectors: UInt32(start), heads: UInt16(Self.heads), sectorsPerTrack: UInt16(Self.sectorsPerTrack))
        volume = try FATVolume.sized(
            files: files, bootLoader: syslinux, options: fatOptions, freeBytes: options.freeSpace, leadingSectors: start)
        volumeStart = start
        totalBytes = Int64(start) * 512 + volume.byteCount
        switch options.partitioning {
        case .superfloppy:
            mbr = nil
        case .mbr(let bootCode, let signature):
            let type = MBR.partitionType(
                for: volume.parameters.type, startLBA: start, sectorCount: volume.totalSectors, heads: Self.heads,
                sectorsPerTrack: Self.sectorsPerTrack)
            let entry = MBRPartitionEntry(
                active: true, type: type, startLBA: UInt32(start), sectorCount: UInt32(volume.totalSectors),
                heads: Self.heads, sectorsPerTrack: Self.sectorsPerTrack)
            mbr = try MBR(bootCode: bootCode, diskSignature: signature, partitions: [entry])
        }
    }

    /// Writes the image front to back into `sink` in 1 MiB chunks, checking `cancellation`
    /// before each. File sources are read as the writer gets to them.
    public func write(to sink: any ImageSink, cancellation: CancellationFlag) throws(BootMediumError) {
        try sink.reserve(totalBytes)
        let stream = ImageStream(sink: sink, cancellation: cancellation)
        if let mbr {
            try stream.append(mbr.encode())
            try stream.appendZeros(Int64(volumeStart - 1) * 512)
        }
        try volume.write(to: stream)
        try stream.flush()
    }
}

/// Entry points for the image assembly.
public enum USBImageWriter {
    /// The size in bytes of the image ``write(files:syslinux:options:to:cancellation:)`` writes.
    public static func size(files: [FATFileSpec], syslinux: SyslinuxPayload, options: USBImageOptions)
        throws(BootMediumError) -> Int64
    {
        try USBImageLayout(files: files, syslinux: syslinux, options: options).totalBytes
    }

    /// Writes the complete bootable USB image into `sink`.
    public static func write(
        files: [FATFileSpec], syslinux: SyslinuxPayload, options: USBImageOptions, to sink: any ImageSink,
        cancellation: CancellationFlag
    ) throws(BootMediumError) {
        try USBImageLayout(files: files, syslinux: syslinux, options: options).write(to: sink, cancellation: cancellation)
    }
}
