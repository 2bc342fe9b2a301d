import Foundation

/// The OpenAI-compatible `/v1/chat/completions` streaming dialect: request body and stream decoder.
enum OpenAIChatDialect {
    struct Body: Encodable {
        struct Message: Encodable {
            var role: String
            var content: String
        }
        struct StreamOptions: Encodable {
            var include_usage: Bool
        }
        var model: String
        var messages: [Message]
        var stream: Bool
        var stream_options: StreamOptions
        var max_tokens: Int?
        var temperature: Double?
    }

    static func body(model: String, messages: [LLMMessage], maxTokens: Int, temperature: Double?) throws -> Data {
        let body = Body(
            model: model,
            messages: messages.map { Body.Message(role: $0.role.rawValue, content: $0.content) },
            stream: true,
            stream_options: Body.StreamOptions(include_usage: true),
            max_tokens: maxTokens,
            temperature: temperature
        )
        return try JSONEncoder().encode(body)
    }

    /// Decodes the `data:` payloads of a chat completion stream: role-only first chunks (llama.cpp), content
    /// deltas, `finish_reason`, the usage chunk with empty `choices`, in-stream `error` objects and `[DONE]`.
    struct Decoder: Sendable {
        private struct Chunk: Decodable {
            struct Choice: Decodable {
                struct Delta: Decodable {
                    var content: String?
                }
                var delta: Delta?
                var finish_reason: String?
            }
            struct Usage: Decodable {
                var prompt_tokens: Int?
                var completion_tokens: Int?
            }
            struct ErrorBody: Decodable {
                var message: String?
                var type: String?
            }
            var choices: [Choice]?
            var usage: Usage?
            var error: ErrorBody?
        }

        private(set) var inputTokens: Int?
        private(set) var outputTokens: Int?
        private(set) var finishReason: String?
        private(set) var isComplete = false

        /// Consumes one event; returns its text, if it carries any.
        mutating func consume(_ event: ServerSentEvent) throws(LLMError) -> String? {
            let data = event.data.trimmingCharacters(in: .whitespaces)
            if data == "[DONE]" {
                isComplete = true
                return nil
            }
            let chunk: Chunk
            do {
                chunk = try JSONDecoder().decode(Chunk.self, from: Data(data.utf8))
            } catch {
                throw LLMError(.badResponse, message: "malformed JSON in a chat completion chunk",
                               detail: String(data.prefix(200)))
            }
            if let error = chunk.error {
                let code: LLMError.Code = error.type?.contains("rate") == true ? .rateLimited : .unavailable
                throw LLMError(code, message: "the provider reported an error in the stream",
                               detail: [error.type, error.message].compactMap { $0 }.joined(separator: ": "))
            }
            if let usage = chunk.usage {
                inputTokens = usage.prompt_tokens ?? inputTokens
                outputTokens = usage.completion_tokens ?? outputTokens
            }
            guard let choice = chunk.choices?.first else { return nil }
            if let reason = choice.finish_reason { finishReason = reason }
            guard let text = choice.delta?.content, !text.isEmpty else { return nil }
            return text
        }

        /// The body ended: fine after `[DONE]` or a `finish_reason`, otherwise the answer was cut off.
        func endOfStream() throws(LLMError) {
            if !isComplete && finishReason == nil {
                throw LLMError(.badResponse, message: "the stream ended before [DONE]")
            }
        }
    }
}
