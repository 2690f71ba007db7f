/// Bounds the media being made at once: at most `running` calls run, at most `waiting` more
/// wait their turn (first come, first served), and a call past both is refused at once
/// (``Full``: the server answers 503 with `Retry-After`) instead of piling up memory and
/// threads.
actor WorkQueue {
    /// The queue is full.
    struct Full: Error {}

    let running: Int
    let waiting: Int
    private var active = 0
    private var queue: [CheckedContinuation<Void, Never>] = []

    init(running: Int, waiting: Int) {
        self.running = max(1, running)
        self.waiting = max(0, waiting)
    }

    /// Calls running and waiting now.
    var load: (running: Int, waiting: Int) { (active, queue.count) }

    /// Runs `body` when its turn comes, or throws ``Full``.
    func run<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        if active < running {
            active += 1
        } else if queue.count < waiting {
            // The slot is handed over by the finishing call: `active` stays counted.
            await withCheckedContinuation { queue.append($0) }
        } else {
            throw Full()
        }
        defer {
            if queue.isEmpty {
                active -= 1
            } else {
                queue.removeFirst().resume()
            }
        }
        return try await body()
    }
}
