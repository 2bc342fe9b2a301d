/// A token bucket: `burst` tokens at most, refilled at `ratePerSecond`. Time is passed in, in nanoseconds.
public struct TokenBucket: Sendable {
    public let ratePerSecond: Double
    public let burst: Double
    private var tokens: Double
    private var lastNanos: UInt64

    public init(ratePerSecond: Double, burst: Double, nowNanos: UInt64) {
        self.ratePerSecond = ratePerSecond
        self.burst = burst
        self.tokens = burst
        self.lastNanos = nowNanos
    }

    /// Takes one token; `false` when the bucket is empty.
    public mutating func take(nowNanos: UInt64) -> Bool {
        if nowNanos > lastNanos {
            tokens = min(burst, tokens + Double(nowNanos - lastNanos) * ratePerSecond / 1_000_000_000)
            lastNanos = nowNanos
        }
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

/// The per-connection rate limit of PROTOCOL.md: each refused message is answered with `rate_limited`, and counts
/// as a strike; each allowed message takes a quarter strike away. A connection with more than `closeAfter` strikes
/// is closed with 4008. So a flood is closed even when refills let a message through now and then (at twice the
/// rate, strikes still grow by 0.75 per pair), while a client that overshoots once and then behaves is forgiven.
public struct RateLimiter: Sendable {
    /// What to do with a message.
    public enum Decision: Equatable, Sendable {
        case allow
        case refuse
        case close
    }

    private var bucket: TokenBucket
    private var strikes = 0.0
    public let closeAfter: Int
    /// Strikes an allowed message takes away.
    public static let forgiveness = 0.25

    public init(ratePerSecond: Double, burst: Double, closeAfter: Int, nowNanos: UInt64) {
        self.bucket = TokenBucket(ratePerSecond: ratePerSecond, burst: burst, nowNanos: nowNanos)
        self.closeAfter = closeAfter
    }

    public mutating func admit(nowNanos: UInt64) -> Decision {
        if bucket.take(nowNanos: nowNanos) {
            strikes = max(0, strikes - Self.forgiveness)
            return .allow
        }
        strikes += 1
        return strikes > Double(closeAfter) ? .close : .refuse
    }
}
