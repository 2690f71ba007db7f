/// Where the bytes of a file an image writer lays out come from: the medium's files
/// (``MediumFile``), the ISO writer's (``ISOFile``) and the FAT writer's (``FATFileSpec``).
public enum FileBytes: Sendable {
    /// Bytes in memory.
    case bytes([UInt8])
    /// A file on disk, read through its descriptor while the image is written.
    case file(InputFile)
}
