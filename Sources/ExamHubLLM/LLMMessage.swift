/// One message of a conversation sent to a language model.
///
/// `content` is the user's or the assistant's text and is never logged above `.debug`.
public struct LLMMessage: Sendable, Hashable {
    /// Who wrote a message.
    public enum Role: String, Sendable, Hashable, Codable {
        /// Instructions for the model; kept by the history window whatever its size.
        case system
        /// The person chatting.
        case user
        /// The model's earlier answers.
        case assistant
    }

    /// Who wrote the message.
    public var role: Role
    /// The text of the message.
    public var content: String

    /// A message from `role` with `content`.
    public init(role: Role, content: String) {
        self.role = role
        self.content = content
    }

    /// A system prompt.
    public static func system(_ content: String) -> LLMMessage { LLMMessage(role: .system, content: content) }
    /// A user turn.
    public static func user(_ content: String) -> LLMMessage { LLMMessage(role: .user, content: content) }
    /// An assistant turn.
    public static func assistant(_ content: String) -> LLMMessage { LLMMessage(role: .assistant, content: content) }
}
