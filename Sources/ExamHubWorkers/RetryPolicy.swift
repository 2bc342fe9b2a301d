/// When a failed outbox event is tried again: exponential backoff with jitter, and a limit after which the event
/// is parked as dead (until `examhub worker <name> --replay`).
///
/// After the n-th failed try the wait is drawn from `[cap/2, cap]`, where `cap = min(maxDelay, base * 2^(n-1))`:
/// half of it fixed (so a failing receiver is not hammered), half random (so retries of many events spread out).
public struct RetryPolicy: Sendable, Hashable {
    /// The first wait's upper bound, in milliseconds (`EXAMHUB_OUTBOX_RETRY_BASE_MS`, 1000).
    public var baseMillis: Int64
    /// The longest wait, in milliseconds (10 minutes).
    public var maxDelayMillis: Int64
    /// Tries before an event is parked as dead (`EXAMHUB_OUTBOX_MAX_ATTEMPTS`, 8).
    public var maxAttempts: Int

    public init(baseMillis: Int64 = 1000, maxDelayMillis: Int64 = 600_000, maxAttempts: Int = 8) {
        self.baseMillis = baseMillis
        self.maxDelayMillis = maxDelayMillis
        self.maxAttempts = maxAttempts
    }

    /// The longest wait after `attempts` failed tries.
    public func cap(afterAttempts attempts: Int) -> Int64 {
        let shift = min(max(attempts - 1, 0), 40)
        let (scaled, overflow) = baseMillis.multipliedReportingOverflow(by: Int64(1) << Int64(shift))
        return overflow ? maxDelayMillis : min(maxDelayMillis, max(scaled, 1))
    }

    /// The time of the next try after `attempts` failed tries at `now`, or `nil` when the event is to be parked.
    public func nextTry<G: RandomNumberGenerator>(afterAttempts attempts: Int, now: Int64, using rng: inout G) -> Int64? {
        guard attempts < maxAttempts else { return nil }
        let cap = cap(afterAttempts: attempts)
        let half = cap / 2
        return now + half + Int64.random(in: 0...(cap - half), using: &rng)
    }

    public func nextTry(afterAttempts attempts: Int, now: Int64) -> Int64? {
        var rng = SystemRandomNumberGenerator()
        return nextTry(afterAttempts: attempts, now: now, using: &rng)
    }
}
