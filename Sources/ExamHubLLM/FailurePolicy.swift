/// What the gateway does after a failed attempt: a pure decision, tested with plain value assertions.
enum FailurePolicy {
    /// The next step after a failed attempt at a provider.
    enum Action: Sendable, Hashable {
        /// Try the same provider again after the delay.
        case retry(after: Duration)
        /// Give up on this provider and try the next one in the chain (or fail when it was the last).
        case nextProvider
        /// End the stream with the error: text was already emitted, or the consumer cancelled.
        case fail
    }

    /// The step after `error`, given how many characters reached the consumer and how many retries this
    /// provider already had. `jitter` is in `0..<1`.
    static func action(
        after error: LLMError, emittedCharacters: Int, retries: Int, maxRetries: Int,
        settings: LLMConfiguration.RetrySettings, jitter: Double
    ) -> Action {
        if emittedCharacters > 0 || error.code == .cancelled { return .fail }
        guard error.isRetryable, retries < maxRetries else { return .nextProvider }
        if let retryAfter = error.retryAfter {
            return retryAfter <= settings.maxRetryAfter ? .retry(after: retryAfter) : .nextProvider
        }
        return .retry(after: settings.delay(beforeRetry: retries, jitter: jitter))
    }

    /// Whether a failure counts against the provider's circuit breaker: a refused request (4xx other than 429)
    /// says nothing about the provider's health, and a cancellation nothing at all.
    static func countsAgainstProvider(_ error: LLMError) -> Bool {
        error.code != .cancelled && error.code != .badRequest
    }
}
