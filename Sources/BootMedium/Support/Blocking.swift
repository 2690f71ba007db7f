import Dispatch
import Synchronization

/// Runs blocking work (file I/O, image assembly, lock waits) on Dispatch's threads, never on
/// Swift's cooperative pool, and forwards task cancellation as a ``CancellationFlag``.
enum Blocking {
    static func run<T: Sendable>(
        _ body: @escaping @Sendable () throws(BootMediumError) -> T
    ) async throws(BootMediumError) -> T {
        try await run { (_: CancellationFlag) throws(BootMediumError) in try body() }
    }

    static func run<T: Sendable>(
        _ body: @escaping @Sendable (CancellationFlag) throws(BootMediumError) -> T
    ) async throws(BootMediumError) -> T {
        let flag = CancellationFlag()
        let result: Result<T, BootMediumError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                DispatchQueue.global().async {
                    do throws(BootMediumError) {
                        continuation.resume(returning: .success(try body(flag)))
                    } catch {
                        continuation.resume(returning: .failure(error))
                    }
                }
            }
        } onCancel: {
            flag.cancel()
        }
        return try result.get()
    }
}

/// Set when the task that started some blocking work is cancelled; long loops check it.
public final class CancellationFlag: Sendable {
    private let state = Atomic<Bool>(false)

    /// A flag that is not set.
    public init() {}

    /// Sets the flag.
    public func cancel() { state.store(true, ordering: .relaxed) }

    /// Whether the flag is set.
    public var isCancelled: Bool { state.load(ordering: .relaxed) }

    /// Throws `cancelled` when set.
    public func check() throws(BootMediumError) {
        if isCancelled { throw BootMediumError(.cancelled, "The request was cancelled") }
    }
}
