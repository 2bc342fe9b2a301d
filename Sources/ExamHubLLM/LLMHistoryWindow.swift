/// How much of a conversation is sent to the model: the newest turns that fit both limits, plus every
/// system prompt.
///
/// Oldest non-system messages are dropped first; the newest message is always kept, even when it alone is
/// over `maxCharacters` (the provider then decides), so a question is never sent without itself.
public struct LLMHistoryWindow: Sendable, Hashable {
    /// The most messages sent, system prompts included (default 20).
    public var maxMessages: Int
    /// The most characters of content sent, system prompts included (default 24,000).
    public var maxCharacters: Int

    /// A window with the given limits.
    public init(maxMessages: Int = 20, maxCharacters: Int = 24_000) {
        self.maxMessages = maxMessages
        self.maxCharacters = maxCharacters
    }

    /// The messages to send, in their original order.
    public func apply(to messages: [LLMMessage]) -> [LLMMessage] {
        var keep = [Bool](repeating: false, count: messages.count)
        var count = 0
        var characters = 0
        for (index, message) in messages.enumerated() where message.role == .system {
            keep[index] = true
            count += 1
            characters += message.content.count
        }
        var isNewest = true
        for index in messages.indices.reversed() where messages[index].role != .system {
            let size = messages[index].content.count
            if !isNewest && (count + 1 > maxMessages || characters + size > maxCharacters) { break }
            isNewest = false
            keep[index] = true
            count += 1
            characters += size
        }
        return messages.indices.filter { keep[$0] }.map { messages[$0] }
    }
}
