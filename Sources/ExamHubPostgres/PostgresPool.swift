import Logging
import NIOConcurrencyHelpers
import PostgresNIO

/// Owns the store's `PostgresClient` and the task that runs it, and replaces the client when the database has
/// been unreachable for a while.
///
/// Why replace it: postgres-nio's pool retries a failed connection with a growing back-off (up to a minute), so
/// after a long outage it could wait that long before noticing the database is back. When no operation has
/// succeeded for `recycleAfter` and a call could not even get a connection, the holder starts a fresh client
/// (whose first connection attempt is immediate) and cancels the old one; at most once per `recycleAfter`. A pool
/// that is merely busy is never replaced: other calls keep succeeding there.
final class PostgresPool: Sendable {
    private struct State {
        var client: PostgresClient
        var task: Task<Void, Never>
        var generation = 0
        var closed = false
        var lastSuccess: ContinuousClock.Instant
        var lastRecycle: ContinuousClock.Instant
        var closeWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let configuration: PostgresClient.Configuration
    private let logger: Logger
    private let recycleAfter: Duration
    private let state: NIOLockedValueBox<State>

    init(configuration: PostgresClient.Configuration, recycleAfter: Duration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.recycleAfter = recycleAfter
        let (client, task) = Self.start(configuration, logger: logger)
        let now = ContinuousClock.now
        self.state = NIOLockedValueBox(State(client: client, task: task, lastSuccess: now, lastRecycle: now))
    }

    /// A new client, run in a detached task: the pool must not inherit a caller's graceful-shutdown context (a
    /// socket server draining on SIGTERM still needs the database); it stops when cancelled.
    private static func start(_ configuration: PostgresClient.Configuration, logger: Logger)
        -> (PostgresClient, Task<Void, Never>)
    {
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        return (client, Task.detached { await client.run() })
    }

    /// The client to use now and its generation, or nil once closed.
    func current() -> (client: PostgresClient, generation: Int)? {
        state.withLockedValue { s in s.closed ? nil : (s.client, s.generation) }
    }

    /// Records that an operation got its answer.
    func noteSuccess() {
        let now = ContinuousClock.now
        state.withLockedValue { $0.lastSuccess = now }
    }

    /// Records that an operation on `generation` could not get a connection; replaces the client when nothing
    /// has succeeded for a while.
    func noteNoConnection(generation: Int) {
        let now = ContinuousClock.now
        let old: Task<Void, Never>? = state.withLockedValue { s in
            guard !s.closed, s.generation == generation, now - s.lastSuccess >= recycleAfter,
                now - s.lastRecycle >= recycleAfter
            else { return nil }
            let (client, task) = Self.start(configuration, logger: logger)
            let old = s.task
            s.client = client
            s.task = task
            s.generation += 1
            s.lastRecycle = now
            return old
        }
        if let old {
            logger.notice("postgres: the database has been unreachable for a while; starting a fresh connection pool")
            old.cancel()
        }
    }

    /// Returns once ``close()`` has been called.
    func waitUntilClosed() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let already = state.withLockedValue { s -> Bool in
                if s.closed { return true }
                s.closeWaiters.append(continuation)
                return false
            }
            if already { continuation.resume() }
        }
    }

    /// Stops the client and waits for its connections to close (a replaced client was cancelled when replaced).
    func close() async {
        let (task, waiters) = state.withLockedValue { s -> (Task<Void, Never>, [CheckedContinuation<Void, Never>]) in
            s.closed = true
            let waiters = s.closeWaiters
            s.closeWaiters = []
            return (s.task, waiters)
        }
        task.cancel()
        await task.value
        for waiter in waiters { waiter.resume() }
    }
}
