/// Why a streamed answer (or loading the configuration) failed.
///
/// `code` is open for additions (a struct around a private enum, as postgres-nio's `PSQLError.Code`).
/// `description` is safe to show or log: it names the code and the provider, never an API key or message text.
/// `debugDescription` adds the detail (status code, the provider's error text) for `.debug` logs.
///
/// The hub maps codes to PROTOCOL.md's: `budgetExceeded` and `rateLimited` -> `rate_limited`,
/// `unavailable`, `timeout`, `badResponse`, `notConfigured` -> `unavailable`, `badRequest` -> `bad_request`,
/// `cancelled` -> no error event (the user asked for it).
public struct LLMError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The kind of failure.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        enum Base: String, Sendable {
            case unavailable, rateLimited, budgetExceeded, timeout, badResponse, badRequest, cancelled
            case notConfigured, invalidConfiguration
        }

        let base: Base

        /// A provider could not be reached, closed the connection, answered 5xx or reported an overload;
        /// also the final error when every provider in the chain failed or was skipped by its circuit breaker.
        public static let unavailable = Code(base: .unavailable)
        /// The provider answered 429 (or a `rate_limit_error` event).
        public static let rateLimited = Code(base: .rateLimited)
        /// The tenant has used its daily token budget; no provider was called.
        public static let budgetExceeded = Code(base: .budgetExceeded)
        /// A connect, first-token or total timeout passed.
        public static let timeout = Code(base: .timeout)
        /// The provider's stream could not be understood (malformed JSON, unexpected end, oversized event).
        public static let badResponse = Code(base: .badResponse)
        /// The provider refused the request itself (4xx other than 429: bad key, unknown model, too long).
        public static let badRequest = Code(base: .badRequest)
        /// The consumer cancelled the stream (chat.cancel, disconnect).
        public static let cancelled = Code(base: .cancelled)
        /// No provider is configured.
        public static let notConfigured = Code(base: .notConfigured)
        /// The configuration file or environment is invalid.
        public static let invalidConfiguration = Code(base: .invalidConfiguration)

        /// The code's name, e.g. `rateLimited`.
        public var description: String { base.rawValue }
    }

    /// The kind of failure.
    public var code: Code
    /// The provider's configured name, when one provider is to blame.
    public var provider: String?
    /// A short message that is safe to log.
    public var message: String
    /// Detail for debugging (HTTP status, the provider's error body); may quote provider text, never an API key.
    public var detail: String?
    /// How long the provider asked us to wait (`Retry-After`), when it did.
    public var retryAfter: Duration?

    /// An error with the given fields.
    public init(
        _ code: Code, provider: String? = nil, message: String, detail: String? = nil, retryAfter: Duration? = nil
    ) {
        self.code = code
        self.provider = provider
        self.message = message
        self.detail = detail
        self.retryAfter = retryAfter
    }

    public var description: String {
        if let provider { return "LLMError.\(code) (\(provider)): \(message)" }
        return "LLMError.\(code): \(message)"
    }

    public var debugDescription: String {
        guard let detail else { return description }
        return "\(description) [\(detail)]"
    }

    /// Whether another attempt at the same provider may succeed: 429, 5xx, connection errors and timeouts.
    var isRetryable: Bool {
        switch code.base {
        case .unavailable, .rateLimited, .timeout: return true
        default: return false
        }
    }
}
