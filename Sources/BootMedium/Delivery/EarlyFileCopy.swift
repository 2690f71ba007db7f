import Dispatch

/// Copies the files on disk of an image into a file sink where a predicted layout puts them
/// (``Isofs/predictCopyPlan(_:)``), on a thread of its own, while the image's other contents are
/// prepared: the copy, which takes most of a request's time, starts before the layout is final.
///
/// The image writer then either ``finish()``es it (the final layout agrees: its files are in
/// place) or ``abandon()``s it and writes everything in order over what it wrote. Either must be
/// called before the sink is committed or discarded; ``abandon()`` may be called more than once.
final class EarlyFileCopy: @unchecked Sendable {
    /// Where the files are being copied.
    let plan: ISOCopyPlan
    private let done = DispatchSemaphore(value: 0)
    private let stopped = CancellationFlag()
    /// Written by the copying thread before `done` is signalled; read after waiting on it.
    private var failure: BootMediumError?

    /// Starts copying `plan`'s files into `sink` (only its positioned calls are used, and only
    /// until ``finish()`` or ``abandon()`` returns: the copying thread lets go of `sink` before it
    /// signals the end, so dropping the sink after that removes its temp file at once), checking
    /// `cancellation` and ``abandon()`` between pieces.
    init(_ plan: ISOCopyPlan, into sink: any RandomAccessSink, cancellation: CancellationFlag) {
        self.plan = plan
        target = sink
        DispatchQueue.global().async { [self] in
            run(cancellation: cancellation)
            done.signal()
        }
    }

    /// The sink, until the copy ends.
    private var target: (any RandomAccessSink)?

    private func run(cancellation: CancellationFlag) {
        guard let sink = target else { return }
        defer { target = nil }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        do throws(BootMediumError) {
            for extent in plan.extents {
                try FileCopy.place(
                    path: extent.path, size: extent.size, at: extent.offset, into: sink, buffer: buffer
                ) { () throws(BootMediumError) in
                    try cancellation.check()
                    try stopped.check()
                }
            }
        } catch {
            failure = error
        }
    }

    /// Waits for the copy; throws what stopped it.
    func finish() throws(BootMediumError) {
        join()
        if let failure { throw failure }
    }

    /// Stops the copy (between pieces) and waits for it; what it wrote stays. Throws what failed
    /// it before it was stopped (a source that changed, a full disk), if anything.
    func stop() throws(BootMediumError) {
        abandon()
        if let failure, failure.code != .cancelled { throw failure }
    }

    /// Stops the copy (between pieces) and waits for it; what it wrote stays.
    func abandon() {
        stopped.cancel()
        join()
    }

    private func join() {
        done.wait()
        done.signal()  // for the next call
    }
}
