import struct Foundation.Date

/// What a streamed answer produces: text as it arrives, then exactly one `done`.
///
/// A stream either ends with `done` or throws an ``LLMError``; after the first `delta` a failure is never retried
/// nor sent to another provider, so the deltas a consumer saw are never repeated.
public enum LLMStreamEvent: Sendable, Hashable {
    /// The next piece of the answer (never empty).
    case delta(String)
    /// The answer is complete: the tokens used, the provider that answered, and why it stopped
    /// (`stop`, `length`, `end_turn`, `max_tokens`, … as the provider says it; `nil` when it did not say).
    case done(LLMUsage, provider: String, finishReason: String?)
}

/// Tokens used by one answer.
public struct LLMUsage: Sendable, Hashable {
    /// Prompt tokens.
    public var inputTokens: Int
    /// Generated tokens.
    public var outputTokens: Int
    /// `true` when the provider reported no usage and the numbers are estimated (about 4 characters a token),
    /// as with llama.cpp servers, which ignore `stream_options.include_usage`.
    public var isEstimated: Bool

    /// Usage with the given counts.
    public init(inputTokens: Int, outputTokens: Int, isEstimated: Bool = false) {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.isEstimated = isEstimated
    }

    /// Input plus output tokens: what the tenant's daily budget is charged.
    public var totalTokens: Int { inputTokens + outputTokens }

    /// A rough token count for text: a quarter of its UTF-8 length, rounded up.
    static func estimateTokens(_ text: String) -> Int { (text.utf8.count + 3) / 4 }
}

/// The usage of one answer, as handed to the gateway's usage recorder for the hub to persist.
public struct LLMUsageRecord: Sendable, Hashable {
    /// The tenant charged.
    public var tenant: String
    /// The conversation the answer belongs to.
    public var conversationId: String
    /// The provider's configured `name`.
    public var provider: String
    /// The provider's configured model.
    public var model: String
    /// The tokens used.
    public var usage: LLMUsage
    /// `false` when the answer failed after some text was streamed (usage is then partly estimated).
    public var completed: Bool
    /// When the answer ended, by the gateway's clock.
    public var date: Date

    /// A record with the given fields.
    public init(
        tenant: String, conversationId: String, provider: String, model: String, usage: LLMUsage,
        completed: Bool, date: Date
    ) {
        self.tenant = tenant
        self.conversationId = conversationId
        self.provider = provider
        self.model = model
        self.usage = usage
        self.completed = completed
        self.date = date
    }
}
