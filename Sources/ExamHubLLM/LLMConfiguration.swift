/// Everything the gateway needs: the provider chain and the gateway-wide policies.
///
/// Build it once at the edge, with ``load(file:environment:)`` (a YAML file plus `EXAMHUB_LLM_*` variables) or
/// in code, and pass it to ``LLMGateway``. With no provider ``isEnabled`` is `false` and the hub answers from
/// intents only.
public struct LLMConfiguration: Sendable {
    /// The providers, tried in order: the next one is used when one fails before its first token.
    public var providers: [LLMProviderConfiguration]
    /// Tokens (input + output) each tenant may use per UTC day; `nil` (the default) is unlimited.
    public var dailyTokenBudget: Int?
    /// Per-tenant overrides of ``dailyTokenBudget``.
    public var tenantDailyTokenBudgets: [String: Int]
    /// How much of a conversation is sent (default: 20 messages, 24,000 characters).
    public var history: LLMHistoryWindow
    /// When a provider is skipped after failing (default: 5 consecutive failures, 30 seconds cooldown).
    public var circuitBreaker: CircuitBreakerSettings
    /// Backoff between retries of one provider (default: 0.5 s doubling up to 8 s, `Retry-After` up to 10 s).
    public var retry: RetrySettings
    /// `max_tokens` sent when a request does not say (Anthropic requires one); default 1024.
    public var defaultMaxTokens: Int

    /// A configuration; every policy has a documented default.
    public init(
        providers: [LLMProviderConfiguration] = [],
        dailyTokenBudget: Int? = nil,
        tenantDailyTokenBudgets: [String: Int] = [:],
        history: LLMHistoryWindow = LLMHistoryWindow(),
        circuitBreaker: CircuitBreakerSettings = CircuitBreakerSettings(),
        retry: RetrySettings = RetrySettings(),
        defaultMaxTokens: Int = 1024
    ) {
        self.providers = providers
        self.dailyTokenBudget = dailyTokenBudget
        self.tenantDailyTokenBudgets = tenantDailyTokenBudgets
        self.history = history
        self.circuitBreaker = circuitBreaker
        self.retry = retry
        self.defaultMaxTokens = defaultMaxTokens
    }

    /// Whether any provider is configured.
    public var isEnabled: Bool { !providers.isEmpty }

    /// The daily budget of `tenant`, `nil` when unlimited.
    public func dailyBudget(for tenant: String) -> Int? {
        tenantDailyTokenBudgets[tenant] ?? dailyTokenBudget
    }

    /// Circuit breaker policy, one breaker per provider.
    public struct CircuitBreakerSettings: Sendable, Hashable {
        /// Consecutive failed attempts that open the circuit (default 5).
        public var failureThreshold: Int
        /// How long an open circuit skips the provider before one probe request is let through (default 30 s).
        public var cooldown: Duration

        /// Settings with the given threshold and cooldown.
        public init(failureThreshold: Int = 5, cooldown: Duration = .seconds(30)) {
            self.failureThreshold = failureThreshold
            self.cooldown = cooldown
        }
    }

    /// Exponential backoff with jitter between attempts at one provider.
    public struct RetrySettings: Sendable, Hashable {
        /// The delay before the first retry, doubled on each further retry (default 0.5 s).
        public var baseDelay: Duration
        /// The longest computed delay (default 8 s).
        public var maxDelay: Duration
        /// The longest `Retry-After` honoured; a provider asking for more is left for the next one (default 10 s).
        public var maxRetryAfter: Duration

        /// Settings with the given delays.
        public init(baseDelay: Duration = .milliseconds(500), maxDelay: Duration = .seconds(8),
                    maxRetryAfter: Duration = .seconds(10)) {
            self.baseDelay = baseDelay
            self.maxDelay = maxDelay
            self.maxRetryAfter = maxRetryAfter
        }

        /// The delay before retry number `retry` (0 for the first): `base * 2^retry`, capped at `maxDelay`, then
        /// scaled by `0.5 + jitter / 2` ("equal jitter"), with `jitter` in `0..<1`.
        public func delay(beforeRetry retry: Int, jitter: Double) -> Duration {
            let exponential = baseDelay * (1 << min(max(retry, 0), 20))
            let capped = min(exponential, maxDelay)
            let factor = 0.5 + min(max(jitter, 0), 1) / 2
            let (seconds, attoseconds) = capped.components
            let nanoseconds = (Double(seconds) * 1e9 + Double(attoseconds) / 1e9) * factor
            return .nanoseconds(Int64(nanoseconds.rounded()))
        }
    }
}

/// One provider of the chain.
///
/// `description` never shows the API key.
public struct LLMProviderConfiguration: Sendable, Hashable, CustomStringConvertible {
    /// The wire protocol a provider speaks.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// `POST {base}/v1/chat/completions` with a Bearer key: OpenAI, Azure-style gateways, vLLM,
        /// llama.cpp's server, Ollama.
        case openAI = "openai"
        /// `POST {base}/v1/messages` with `x-api-key` and `anthropic-version: 2023-06-01`.
        case anthropic
    }

    /// Per-attempt time limits.
    public struct Timeouts: Sendable, Hashable {
        /// From sending the request to the response head: connecting, TLS and the provider's queue (default 10 s).
        /// async-http-client keeps retrying a refused connection until a deadline, so this also bounds how long
        /// a provider that is down holds up the fallback.
        public var connect: Duration
        /// From sending the request to the first piece of text (default 30 s).
        public var firstToken: Duration
        /// From sending the request to the end of the answer (default 120 s).
        public var total: Duration

        /// Timeouts with the given limits.
        public init(connect: Duration = .seconds(10), firstToken: Duration = .seconds(30),
                    total: Duration = .seconds(120)) {
            self.connect = connect
            self.firstToken = firstToken
            self.total = total
        }
    }

    /// A name for logs, usage records and errors; unique in a chain.
    public var name: String
    /// The wire protocol.
    public var kind: Kind
    /// `http(s)://host[:port][/prefix]`; `/v1/...` is appended (once: a base already ending in `/v1` is fine).
    public var baseURL: String
    /// The model name sent with each request.
    public var model: String
    /// The API key; `nil` sends none (local servers).
    public var apiKey: String?
    /// Time limits of one attempt.
    public var timeouts: Timeouts
    /// Retries after the first attempt, before the first token only (default 2).
    public var maxRetries: Int

    /// A provider with the given fields.
    public init(
        name: String, kind: Kind, baseURL: String, model: String, apiKey: String? = nil,
        timeouts: Timeouts = Timeouts(), maxRetries: Int = 2
    ) {
        self.name = name
        self.kind = kind
        self.baseURL = baseURL
        self.model = model
        self.apiKey = apiKey
        self.timeouts = timeouts
        self.maxRetries = maxRetries
    }

    public var description: String {
        "\(name) (\(kind.rawValue) \(baseURL) model \(model)\(apiKey == nil ? "" : ", key set"))"
    }

    /// The full URL of the streaming endpoint.
    var endpointURL: String {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        if !base.hasSuffix("/v1") { base += "/v1" }
        switch kind {
        case .openAI: return base + "/chat/completions"
        case .anthropic: return base + "/messages"
        }
    }
}
