import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// The stream decoder of either dialect, so the gateway handles both without existentials.
enum ProviderStreamDecoder: Sendable {
    case openAI(OpenAIChatDialect.Decoder)
    case anthropic(AnthropicMessagesDialect.Decoder)

    init(kind: LLMProviderConfiguration.Kind) {
        switch kind {
        case .openAI: self = .openAI(OpenAIChatDialect.Decoder())
        case .anthropic: self = .anthropic(AnthropicMessagesDialect.Decoder())
        }
    }

    mutating func consume(_ event: ServerSentEvent) throws(LLMError) -> String? {
        switch self {
        case .openAI(var decoder):
            defer { self = .openAI(decoder) }
            return try decoder.consume(event)
        case .anthropic(var decoder):
            defer { self = .anthropic(decoder) }
            return try decoder.consume(event)
        }
    }

    var isComplete: Bool {
        switch self {
        case .openAI(let decoder): decoder.isComplete
        case .anthropic(let decoder): decoder.isComplete
        }
    }

    var finishReason: String? {
        switch self {
        case .openAI(let decoder): decoder.finishReason
        case .anthropic(let decoder): decoder.finishReason
        }
    }

    var reportedUsage: (input: Int?, output: Int?) {
        switch self {
        case .openAI(let decoder): (decoder.inputTokens, decoder.outputTokens)
        case .anthropic(let decoder): (decoder.inputTokens, decoder.outputTokens)
        }
    }

    func endOfStream() throws(LLMError) {
        switch self {
        case .openAI(let decoder): try decoder.endOfStream()
        case .anthropic(let decoder): try decoder.endOfStream()
        }
    }
}

extension LLMProviderConfiguration {
    /// The HTTP request of one attempt: endpoint, headers (key included) and JSON body.
    func makeHTTPRequest(messages: [LLMMessage], maxTokens: Int, temperature: Double?) throws -> HTTPClientRequest {
        var request = HTTPClientRequest(url: endpointURL)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.headers.add(name: "accept", value: "text/event-stream")
        request.headers.add(name: "user-agent", value: "examhub-llm")
        let body: [UInt8]
        switch kind {
        case .openAI:
            if let apiKey { request.headers.add(name: "authorization", value: "Bearer \(apiKey)") }
            body = Array(try OpenAIChatDialect.body(model: model, messages: messages, maxTokens: maxTokens,
                                                    temperature: temperature))
        case .anthropic:
            if let apiKey { request.headers.add(name: "x-api-key", value: apiKey) }
            request.headers.add(name: "anthropic-version", value: AnthropicMessagesDialect.version)
            body = Array(try AnthropicMessagesDialect.body(model: model, messages: messages, maxTokens: maxTokens,
                                                           temperature: temperature))
        }
        request.body = .bytes(ByteBuffer(bytes: body))
        return request
    }
}

extension LLMError {
    /// The error for a non-2xx response head; `body` is the start of the response body, for the detail.
    static func forStatus(_ status: HTTPResponseStatus, headers: HTTPHeaders, body: String, provider: String)
        -> LLMError
    {
        let detail = "HTTP \(status.code): \(body.prefix(300))"
        switch status.code {
        case 429:
            return LLMError(.rateLimited, provider: provider, message: "rate limited (HTTP 429)", detail: detail,
                            retryAfter: retryAfter(headers))
        case 408, 500..<600:
            return LLMError(.unavailable, provider: provider, message: "HTTP \(status.code)", detail: detail,
                            retryAfter: retryAfter(headers))
        case 400..<500:
            return LLMError(.badRequest, provider: provider, message: "request refused (HTTP \(status.code))",
                            detail: detail)
        default:
            return LLMError(.badResponse, provider: provider, message: "unexpected HTTP \(status.code)",
                            detail: detail)
        }
    }

    /// `Retry-After` in seconds (HTTP dates are ignored: backoff applies).
    static func retryAfter(_ headers: HTTPHeaders) -> Duration? {
        guard let value = headers.first(name: "retry-after")?.trimmingCharacters(in: .whitespaces),
            let seconds = Double(value), seconds.isFinite, seconds >= 0
        else { return nil }
        return .milliseconds(Int64(min(seconds, 86_400) * 1000))
    }
}
