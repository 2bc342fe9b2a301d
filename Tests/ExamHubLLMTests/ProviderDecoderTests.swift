import NIOCore
import XCTest

@testable import ExamHubLLM

final class ProviderDecoderTests: XCTestCase {
    private struct Decoded {
        var text = ""
        var decoder: ProviderStreamDecoder
        var error: LLMError?
    }

    /// Feeds a body through the SSE parser and the provider decoder, in chunks of `chunkSize` bytes.
    private func decode(_ body: String, kind: LLMProviderConfiguration.Kind, chunkSize: Int = 5) throws -> Decoded {
        var parser = ServerSentEventParser()
        var result = Decoded(decoder: ProviderStreamDecoder(kind: kind))
        let bytes = Array(body.utf8)
        var index = 0
        do {
            while index < bytes.count {
                let chunk = bytes[index..<min(index + chunkSize, bytes.count)]
                index += chunkSize
                for event in try parser.feed(chunk) {
                    if let text = try result.decoder.consume(event) { result.text += text }
                }
            }
            try result.decoder.endOfStream()
        } catch let error as LLMError {
            result.error = error
        }
        return result
    }

    func testOpenAISampleWithUsage() throws {
        for size in [1, 3, 64, 100_000] {
            let result = try decode(try Samples.text("openai_chat_stream_usage.txt"), kind: .openAI, chunkSize: size)
            XCTAssertNil(result.error)
            XCTAssertEqual(result.text, "Hi, how are you?")
            XCTAssertEqual(result.decoder.reportedUsage.input, 10)
            XCTAssertEqual(result.decoder.reportedUsage.output, 5)
            XCTAssertEqual(result.decoder.finishReason, "stop")
            XCTAssertTrue(result.decoder.isComplete)
        }
    }

    func testLlamaCppSampleRoleChunkAndNoUsage() throws {
        let result = try decode(try Samples.text("llama_cpp_python_0.3.36_stream.txt"), kind: .openAI)
        XCTAssertNil(result.error)
        XCTAssertEqual(result.text, "Karma: A simple yet powerful word in the universe.")
        XCTAssertNil(result.decoder.reportedUsage.input)
        XCTAssertNil(result.decoder.reportedUsage.output)
        XCTAssertEqual(result.decoder.finishReason, "length")
        XCTAssertTrue(result.decoder.isComplete)
    }

    func testAnthropicSample() throws {
        for size in [1, 7, 100_000] {
            let result = try decode(try Samples.text("anthropic_messages_stream_basic.txt"), kind: .anthropic,
                                    chunkSize: size)
            XCTAssertNil(result.error)
            XCTAssertEqual(result.text, "Hello there!")
            XCTAssertEqual(result.decoder.reportedUsage.input, 11)
            XCTAssertEqual(result.decoder.reportedUsage.output, 6)
            XCTAssertEqual(result.decoder.finishReason, "end_turn")
            XCTAssertTrue(result.decoder.isComplete)
        }
    }

    func testAnthropicErrorEvent() throws {
        let result = try decode(try Samples.text("anthropic_messages_stream_error.txt"), kind: .anthropic)
        XCTAssertEqual(result.error?.code, .unavailable)
        XCTAssertEqual(result.error?.detail, "Overloaded")
        XCTAssertEqual(result.text, "")
        XCTAssertEqual(result.decoder.reportedUsage.input, 11)
    }

    func testMalformedJSONIsBadResponse() throws {
        let openAI = try decode("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {nope\n\n",
                                kind: .openAI)
        XCTAssertEqual(openAI.text, "a")
        XCTAssertEqual(openAI.error?.code, .badResponse)
        let anthropic = try decode("event: content_block_delta\ndata: [1,\n\n", kind: .anthropic)
        XCTAssertEqual(anthropic.error?.code, .badResponse)
    }

    func testTruncatedStreamsAreBadResponse() throws {
        let openAI = try decode("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n", kind: .openAI)
        XCTAssertEqual(openAI.error?.code, .badResponse)
        let text = try Samples.text("anthropic_messages_stream_basic.txt")
        let cut = String(text[..<(text.range(of: "event: message_delta")?.lowerBound ?? text.endIndex)])
        XCTAssertEqual(try decode(cut, kind: .anthropic).error?.code, .badResponse)
    }

    func testOpenAIErrorObjectInStream() throws {
        let result = try decode(
            "data: {\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit_exceeded\"}}\n\n", kind: .openAI)
        XCTAssertEqual(result.error?.code, .rateLimited)
    }

    func testOpenAIRequestBody() throws {
        let data = try OpenAIChatDialect.body(
            model: "m", messages: [.system("be brief"), .user("hi")], maxTokens: 42, temperature: 0.5)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(json["model"] as? String, "m")
        XCTAssertEqual(json["stream"] as? Bool, true)
        XCTAssertEqual((json["stream_options"] as? [String: Any])?["include_usage"] as? Bool, true)
        XCTAssertEqual(json["max_tokens"] as? Int, 42)
        XCTAssertEqual(json["temperature"] as? Double, 0.5)
        let messages = try XCTUnwrap(json["messages"] as? [[String: String]])
        XCTAssertEqual(messages, [["role": "system", "content": "be brief"], ["role": "user", "content": "hi"]])
    }

    func testAnthropicRequestBodyHoistsSystemAndStartsWithUser() throws {
        let data = try AnthropicMessagesDialect.body(
            model: "c", messages: [.system("a"), .assistant("earlier"), .system("b"), .user("q")], maxTokens: 9,
            temperature: nil)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(json["system"] as? String, "a\n\nb")
        XCTAssertEqual(json["max_tokens"] as? Int, 9)
        XCTAssertEqual(json["stream"] as? Bool, true)
        XCTAssertNil(json["temperature"])
        XCTAssertEqual(json["messages"] as? [[String: String]], [["role": "user", "content": "q"]])
    }
}
