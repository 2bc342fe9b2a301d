import Foundation
import NIOConcurrencyHelpers

/// A circuit breaker for one provider, as a plain state machine (no clock, no locks; time is passed in).
///
/// Closed, it counts consecutive failed attempts; at `failureThreshold` it opens and refuses attempts for
/// `cooldown`; then it lets exactly one probe through (half-open): success closes it, failure opens it again.
public struct CircuitBreaker: Sendable, Hashable {
    /// Where the breaker stands.
    public enum State: Sendable, Hashable {
        /// Attempts go through; `failures` consecutive failures so far.
        case closed(failures: Int)
        /// Attempts are refused until `until`.
        case open(until: Date)
        /// The cooldown passed; one probe is let through (`probing` while it runs).
        case halfOpen(probing: Bool)
    }

    /// The policy.
    public let settings: LLMConfiguration.CircuitBreakerSettings
    /// The current state.
    public private(set) var state: State = .closed(failures: 0)

    /// A closed breaker.
    public init(settings: LLMConfiguration.CircuitBreakerSettings) {
        self.settings = settings
    }

    /// Whether an attempt may start now; a `true` while half-open makes this attempt the probe.
    public mutating func allowAttempt(now: Date) -> Bool {
        switch state {
        case .closed:
            return true
        case .open(let until):
            guard now >= until else { return false }
            state = .halfOpen(probing: true)
            return true
        case .halfOpen(let probing):
            if probing { return false }
            state = .halfOpen(probing: true)
            return true
        }
    }

    /// An attempt succeeded (reached its first token or completed).
    public mutating func recordSuccess() {
        state = .closed(failures: 0)
    }

    /// An attempt failed.
    public mutating func recordFailure(now: Date) {
        switch state {
        case .closed(let failures):
            if failures + 1 >= settings.failureThreshold {
                state = .open(until: now.addingTimeInterval(settings.cooldown.timeInterval))
            } else {
                state = .closed(failures: failures + 1)
            }
        case .open, .halfOpen:
            state = .open(until: now.addingTimeInterval(settings.cooldown.timeInterval))
        }
    }

    /// An attempt ended without telling anything about the provider (cancelled, or refused as a bad request):
    /// a probe slot is given back.
    public mutating func recordNeutral() {
        if case .halfOpen(probing: true) = state { state = .halfOpen(probing: false) }
    }
}

/// The breakers of all providers of a gateway, shared by its concurrent streams.
final class CircuitBreakerRegistry: Sendable {
    private let breakers: NIOLockedValueBox<[String: CircuitBreaker]>
    private let settings: LLMConfiguration.CircuitBreakerSettings

    init(settings: LLMConfiguration.CircuitBreakerSettings) {
        self.settings = settings
        self.breakers = NIOLockedValueBox([:])
    }

    private func update<T>(_ provider: String, _ body: (inout CircuitBreaker) -> T) -> T {
        breakers.withLockedValue { all in
            var breaker = all[provider] ?? CircuitBreaker(settings: settings)
            defer { all[provider] = breaker }
            return body(&breaker)
        }
    }

    func allowAttempt(_ provider: String, now: Date) -> Bool { update(provider) { $0.allowAttempt(now: now) } }
    func recordSuccess(_ provider: String) { update(provider) { $0.recordSuccess() } }
    func recordFailure(_ provider: String, now: Date) { update(provider) { $0.recordFailure(now: now) } }
    func recordNeutral(_ provider: String) { update(provider) { $0.recordNeutral() } }
    func state(_ provider: String) -> CircuitBreaker.State { update(provider) { $0.state } }
}

extension Duration {
    /// The duration in seconds, as a `TimeInterval`.
    var timeInterval: TimeInterval {
        let (seconds, attoseconds) = components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }
}
