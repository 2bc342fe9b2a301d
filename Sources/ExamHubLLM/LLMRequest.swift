/// One chat completion to stream: the conversation so far plus who it is for.
///
/// The gateway trims `messages` to the configured history window before sending (oldest turns first, system
/// prompts always kept), charges the tenant's daily budget and tags usage with `tenant` and `conversationId`.
public struct LLMRequest: Sendable, Hashable {
    /// The conversation, oldest first; system prompts anywhere in it are sent as the provider expects them.
    public var messages: [LLMMessage]
    /// The most tokens to generate; `nil` uses the configuration's `defaultMaxTokens`.
    public var maxTokens: Int?
    /// Sampling temperature; `nil` leaves the provider's default.
    public var temperature: Double?
    /// The tenant charged for the tokens (daily budget).
    public var tenant: String
    /// The conversation the usage is recorded against.
    public var conversationId: String

    /// A request with the given messages for a tenant's conversation.
    public init(
        messages: [LLMMessage],
        maxTokens: Int? = nil,
        temperature: Double? = nil,
        tenant: String,
        conversationId: String
    ) {
        self.messages = messages
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.tenant = tenant
        self.conversationId = conversationId
    }
}
