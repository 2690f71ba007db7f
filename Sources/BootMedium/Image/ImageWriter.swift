/// Where an image writer sends its bytes, in order.
public protocol ImageSink: AnyObject {
    /// Appends bytes.
    func write(_ bytes: UnsafeRawBufferPointer) throws(BootMediumError)

    /// Appends up to `count` bytes of the open regular file `fd`, read from `offset`, without
    /// passing them through user memory (`copy_file_range`), when this sink can. Returns the bytes
    /// appended (0: the file ends at `offset`), or nil when it cannot copy from `fd` (the default),
    /// and the caller reads and writes instead (``FileCopy``).
    func copy(from fd: Int32, offset: Int64, count: Int) throws(BootMediumError) -> Int?

    /// Told, before the first byte, how many bytes the image will have: a file sink reserves
    /// them (``Posix/reserve(_:count:path:)``), so a full disk fails before any writing. Does
    /// nothing by default.
    func reserve(_ byteCount: Int64) throws(BootMediumError)
}

/// A sink that is a regular file: bytes can land anywhere in it, from several threads at once
/// (positioned calls only; the sequential ``ImageSink`` calls stay on one thread).
protocol RandomAccessSink: ImageSink {
    /// Like ``ImageSink/copy(from:offset:count:)``, to the sink's offset `at`.
    func copy(from fd: Int32, offset: Int64, count: Int, at: Int64) throws(BootMediumError) -> Int?
    /// Writes `bytes` at the sink's offset `at`.
    func write(_ bytes: UnsafeRawBufferPointer, at: Int64) throws(BootMediumError)
    /// Sets the sink's length (bytes past it are dropped, a gap up to it reads as zeros).
    func setLength(_ length: Int64) throws(BootMediumError)
}

extension RandomAccessSink {
    /// Writes `bytes` at `at`.
    func write(_ bytes: [UInt8], at: Int64) throws(BootMediumError) {
        let result: Result<Void, BootMediumError> = bytes.withUnsafeBytes { buffer in
            do throws(BootMediumError) {
                try write(buffer, at: at)
                return .success(())
            } catch { return .failure(error) }
        }
        try result.get()
    }
}

/// What an image writer is given: the plan and the rendered node config.
public struct ImageInputs: Sendable {
    /// The validated plan.
    public let plan: BootPlan
    /// plnode.txt, for node actions.
    public let nodeConfigText: String?
}

/// Writes one image type.
protocol ImageWriter: Sendable {
    /// Writes the whole image into `sink`, checking `cancellation` as it goes.
    func write(_ inputs: ImageInputs, to sink: any ImageSink, cancellation: CancellationFlag)
        throws(BootMediumError)
}

/// The writers of each image type; a type without one is reported as not yet supported.
enum ImageWriters {
    static func writer(for type: ImageType) -> (any ImageWriter)? {
        switch type {
        case .iso, .isoCramfs: ISOImageWriter()
        case .usb, .usbCramfs: USBImageMediumWriter(partitioned: false)
        case .usbPartition: USBImageMediumWriter(partitioned: true)
        }
    }
}
