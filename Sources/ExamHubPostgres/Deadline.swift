import NIOConcurrencyHelpers

/// Thrown by ``withDeadline(_:_:)`` when the operation did not finish in time.
struct DeadlineExceeded: Error {
    let timeout: Duration
}

/// Runs `operation` in a task of its own and returns its result, or throws ``DeadlineExceeded`` once `timeout` has
/// passed, whichever comes first. On time-out the operation is cancelled and left to finish on its own: the caller
/// gets its answer on time even when the operation is stuck on a socket that ignores cancellation. Cancelling the
/// caller cancels the operation.
///
/// With `extendedTo`, the limit is `timeout` while `started()` is false (waiting for a connection, say) and
/// `extendedTo` in all once it is true: a long migration may run long, but waiting for the database may not.
///
/// An operation abandoned this way may still commit afterwards; callers report `unavailable`, and the protocol's
/// idempotent operation ids make a retry safe.
func withDeadline<T: Sendable>(
    _ timeout: Duration, extendedTo total: Duration? = nil, started: @escaping @Sendable () -> Bool = { false },
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let worker = NIOLockedValueBox<Task<Void, Never>?>(nil)
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let pending = NIOLockedValueBox<CheckedContinuation<T, any Error>?>(continuation)
            let finish: @Sendable (Result<T, any Error>) -> Void = { result in
                let waiting = pending.withLockedValue { value -> CheckedContinuation<T, any Error>? in
                    defer { value = nil }
                    return value
                }
                waiting?.resume(with: result)
            }
            let timer = Task {
                var limit = timeout
                do {
                    try await Task.sleep(for: timeout)
                    if let total, total > timeout, started() {
                        limit = total
                        try await Task.sleep(for: total - timeout)
                    }
                } catch {
                    return  // the operation finished first
                }
                finish(.failure(DeadlineExceeded(timeout: limit)))
                worker.withLockedValue { $0 }?.cancel()
            }
            let task = Task {
                let result: Result<T, any Error>
                do {
                    result = .success(try await operation())
                } catch {
                    result = .failure(error)
                }
                timer.cancel()
                finish(result)
            }
            worker.withLockedValue { $0 = task }
            if Task.isCancelled { task.cancel() }
        }
    } onCancel: {
        worker.withLockedValue { $0 }?.cancel()
    }
}
