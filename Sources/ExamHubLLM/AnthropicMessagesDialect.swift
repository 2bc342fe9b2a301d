import Foundation

/// The Anthropic `/v1/messages` streaming dialect: request body and stream decoder.
enum AnthropicMessagesDialect {
    static let version = "2023-06-01"

    struct Body: Encodable {
        struct Message: Encodable {
            var role: String
            var content: String
        }
        var model: String
        var system: String?
        var messages: [Message]
        var max_tokens: Int
        var stream: Bool
        var temperature: Double?
    }

    /// System messages become the top-level `system` (joined by blank lines); the conversation starts at its
    /// first user turn, as the Messages API requires.
    static func body(model: String, messages: [LLMMessage], maxTokens: Int, temperature: Double?) throws -> Data {
        let system = messages.filter { $0.role == .system }.map(\.content)
        var turns = messages.filter { $0.role != .system }
        while let first = turns.first, first.role != .user { turns.removeFirst() }
        let body = Body(
            model: model,
            system: system.isEmpty ? nil : system.joined(separator: "\n\n"),
            messages: turns.map { Body.Message(role: $0.role.rawValue, content: $0.content) },
            max_tokens: maxTokens,
            stream: true,
            temperature: temperature
        )
        return try JSONEncoder().encode(body)
    }

    /// Decodes Anthropic's stream events by their `type`: `message_start` (input usage), `content_block_delta`
    /// with `text_delta`, `message_delta` (stop reason, output usage), `message_stop`, `ping`, `error`. Other
    /// events and delta types (tool input, thinking) are ignored, as Anthropic asks clients to.
    struct Decoder: Sendable {
        private struct Event: Decodable {
            struct Usage: Decodable {
                var input_tokens: Int?
                var output_tokens: Int?
                var cache_creation_input_tokens: Int?
                var cache_read_input_tokens: Int?
            }
            struct Message: Decodable {
                var usage: Usage?
            }
            struct Delta: Decodable {
                var type: String?
                var text: String?
                var stop_reason: String?
            }
            struct ErrorBody: Decodable {
                var type: String?
                var message: String?
            }
            var type: String?
            var message: Message?
            var delta: Delta?
            var usage: Usage?
            var error: ErrorBody?
        }

        private(set) var inputTokens: Int?
        private(set) var outputTokens: Int?
        private(set) var finishReason: String?
        private(set) var isComplete = false

        /// Consumes one event; returns its text, if it carries any.
        mutating func consume(_ event: ServerSentEvent) throws(LLMError) -> String? {
            let decoded: Event
            do {
                decoded = try JSONDecoder().decode(Event.self, from: Data(event.data.utf8))
            } catch {
                throw LLMError(.badResponse, message: "malformed JSON in a messages stream event",
                               detail: String(event.data.prefix(200)))
            }
            switch decoded.type ?? event.event ?? "" {
            case "message_start":
                if let usage = decoded.message?.usage { record(usage) }
            case "content_block_delta":
                guard decoded.delta?.type == "text_delta", let text = decoded.delta?.text, !text.isEmpty else {
                    return nil
                }
                return text
            case "message_delta":
                if let reason = decoded.delta?.stop_reason { finishReason = reason }
                if let usage = decoded.usage { record(usage) }
            case "message_stop":
                isComplete = true
            case "error":
                let type = decoded.error?.type ?? "error"
                let code: LLMError.Code
                switch type {
                case "rate_limit_error": code = .rateLimited
                case "overloaded_error", "api_error", "timeout_error": code = .unavailable
                case "invalid_request_error", "authentication_error", "permission_error", "not_found_error",
                    "request_too_large":
                    code = .badRequest
                default: code = .unavailable
                }
                throw LLMError(code, message: "the provider reported \(type) in the stream",
                               detail: decoded.error?.message)
            default:
                break  // ping, content_block_start/stop, future events
            }
            return nil
        }

        private mutating func record(_ usage: Event.Usage) {
            if let input = usage.input_tokens {
                inputTokens = input + (usage.cache_creation_input_tokens ?? 0) + (usage.cache_read_input_tokens ?? 0)
            }
            if let output = usage.output_tokens { outputTokens = output }
        }

        /// The body ended: fine after `message_stop` or a stop reason, otherwise the answer was cut off.
        func endOfStream() throws(LLMError) {
            if !isComplete && finishReason == nil {
                throw LLMError(.badResponse, message: "the stream ended before message_stop")
            }
        }
    }
}
