import AsyncHTTPClient
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import XCTest

@testable import ExamHubLLM

/// The gateway against real local HTTP servers speaking the providers' wire formats.
final class GatewayIntegrationTests: XCTestCase {
    private var client: HTTPClient!
    private var servers: [FakeProviderServer] = []

    override func setUp() async throws {
        client = HTTPClient(eventLoopGroupProvider: .singleton)
    }

    override func tearDown() async throws {
        for server in servers { try? await server.stop() }
        servers = []
        try await client.shutdown()
    }

    // MARK: helpers

    private func startServer(_ script: FakeProviderServer.Behaviour...) async throws -> (FakeProviderServer, String) {
        let server = FakeProviderServer(script: script)
        servers.append(server)
        return (server, try await server.start())
    }

    private func provider(
        _ name: String, _ kind: LLMProviderConfiguration.Kind, _ url: String, key: String? = "sk-test",
        maxRetries: Int = 2, firstToken: Duration = .seconds(10)
    ) -> LLMProviderConfiguration {
        LLMProviderConfiguration(
            name: name, kind: kind, baseURL: url, model: "\(name)-model", apiKey: key,
            timeouts: .init(connect: .seconds(10), firstToken: firstToken, total: .seconds(30)),
            maxRetries: maxRetries)
    }

    private func gateway(
        _ providers: [LLMProviderConfiguration], budget: Int? = nil, threshold: Int = 100,
        clock: TestClock = TestClock(),
        records: NIOLockedValueBox<[LLMUsageRecord]>? = nil
    ) -> LLMGateway {
        let configuration = LLMConfiguration(
            providers: providers, dailyTokenBudget: budget,
            circuitBreaker: .init(failureThreshold: threshold, cooldown: .seconds(30)),
            retry: .init(baseDelay: .milliseconds(1), maxDelay: .milliseconds(5), maxRetryAfter: .seconds(1)))
        var logger = Logger(label: "examhub.llm.test")
        logger.logLevel = .critical
        return LLMGateway(configuration: configuration, httpClient: client, logger: logger, now: { clock.now },
                          jitter: { 0.5 }, onUsage: { record in records?.withLockedValue { $0.append(record) } })
    }

    private let request = LLMRequest(
        messages: [.system("You are a proctor's assistant."), .user("Hello?")], maxTokens: 64, temperature: 0.2,
        tenant: "t1", conversationId: "c1")

    private struct Collected {
        var text = ""
        var deltas = 0
        var done: (usage: LLMUsage, provider: String, finishReason: String?)?
        var error: LLMError?
    }

    private func collect(_ stream: LLMStream) async -> Collected {
        var collected = Collected()
        do {
            for try await event in stream {
                switch event {
                case .delta(let text):
                    collected.text += text
                    collected.deltas += 1
                case .done(let usage, let provider, let finishReason):
                    collected.done = (usage, provider, finishReason)
                }
            }
        } catch let error as LLMError {
            collected.error = error
        } catch {
            XCTFail("unexpected error type: \(error)")
        }
        return collected
    }

    private var openAIBody: String { (try? Samples.text("openai_chat_stream_usage.txt")) ?? "" }
    private var anthropicBody: String { (try? Samples.text("anthropic_messages_stream_basic.txt")) ?? "" }

    // MARK: tests

    func testOpenAIStreamAndRequestShape() async throws {
        let (server, url) = try await startServer(.sse(openAIBody))
        let records = NIOLockedValueBox<[LLMUsageRecord]>([])
        let gateway = gateway([provider("oa", .openAI, url)], records: records)
        let result = await collect(gateway.stream(request))
        XCTAssertNil(result.error)
        XCTAssertEqual(result.text, "Hi, how are you?")
        XCTAssertEqual(result.done?.usage, LLMUsage(inputTokens: 10, outputTokens: 5))
        XCTAssertEqual(result.done?.provider, "oa")
        XCTAssertEqual(result.done?.finishReason, "stop")

        let recorded = try XCTUnwrap(server.requests.first)
        XCTAssertEqual(server.requests.count, 1)
        XCTAssertEqual(recorded.head.method, .POST)
        XCTAssertEqual(recorded.head.uri, "/v1/chat/completions")
        XCTAssertEqual(recorded.head.headers.first(name: "authorization"), "Bearer sk-test")
        XCTAssertEqual(recorded.head.headers.first(name: "content-type"), "application/json")
        let json = try XCTUnwrap(recorded.json)
        XCTAssertEqual(json["model"] as? String, "oa-model")
        XCTAssertEqual(json["stream"] as? Bool, true)
        XCTAssertEqual((json["stream_options"] as? [String: Any])?["include_usage"] as? Bool, true)
        XCTAssertEqual(json["max_tokens"] as? Int, 64)
        XCTAssertEqual(json["messages"] as? [[String: String]], [
            ["role": "system", "content": "You are a proctor's assistant."], ["role": "user", "content": "Hello?"],
        ])
        XCTAssertEqual(records.withLockedValue { $0.map(\.usage.totalTokens) }, [15])
        XCTAssertEqual(records.withLockedValue { $0.first?.conversationId }, "c1")
        XCTAssertEqual(gateway.budget.used(tenant: "t1"), 15)
    }

    func testAnthropicStreamAndRequestShape() async throws {
        let (server, url) = try await startServer(.sse(anthropicBody, chunkSize: 3))
        let result = await collect(gateway([provider("an", .anthropic, url, key: "sk-ant")]).stream(request))
        XCTAssertNil(result.error)
        XCTAssertEqual(result.text, "Hello there!")
        XCTAssertEqual(result.done?.usage, LLMUsage(inputTokens: 11, outputTokens: 6))
        XCTAssertEqual(result.done?.finishReason, "end_turn")

        let recorded = try XCTUnwrap(server.requests.first)
        XCTAssertEqual(recorded.head.uri, "/v1/messages")
        XCTAssertEqual(recorded.head.headers.first(name: "x-api-key"), "sk-ant")
        XCTAssertEqual(recorded.head.headers.first(name: "anthropic-version"), "2023-06-01")
        XCTAssertNil(recorded.head.headers.first(name: "authorization"))
        let json = try XCTUnwrap(recorded.json)
        XCTAssertEqual(json["model"] as? String, "an-model")
        XCTAssertEqual(json["system"] as? String, "You are a proctor's assistant.")
        XCTAssertEqual(json["stream"] as? Bool, true)
        XCTAssertEqual(json["max_tokens"] as? Int, 64)
        XCTAssertEqual(json["messages"] as? [[String: String]], [["role": "user", "content": "Hello?"]])
    }

    func testHistoryWindowTrimsWhatIsSent() async throws {
        let (server, url) = try await startServer(.sse(openAIBody))
        var configuration = gateway([provider("oa", .openAI, url)]).configuration
        configuration.history = LLMHistoryWindow(maxMessages: 3, maxCharacters: 10_000)
        let gateway = LLMGateway(configuration: configuration, httpClient: client, logger: Logger(label: "test"))
        let long = LLMRequest(
            messages: [.system("rules"), .user("q1"), .assistant("a1"), .user("q2"), .assistant("a2"), .user("q3")],
            tenant: "t1", conversationId: "c1")
        let result = await collect(gateway.stream(long))
        XCTAssertNil(result.error)
        let json = try XCTUnwrap(server.requests.first?.json)
        XCTAssertEqual(json["messages"] as? [[String: String]], [
            ["role": "system", "content": "rules"], ["role": "assistant", "content": "a2"],
            ["role": "user", "content": "q3"],
        ])
        XCTAssertEqual(json["max_tokens"] as? Int, 1024, "the default when the request gives none")
        let systemOnly = LLMRequest(messages: [.system("s")], tenant: "t", conversationId: "c")
        let empty = await collect(gateway.stream(systemOnly))
        XCTAssertEqual(empty.error?.code, .badRequest)
        XCTAssertEqual(server.requests.count, 1)
    }

    func testMultiByteTextSplitAcrossChunksArrivesIntact() async throws {
        let body = "data: {\"choices\":[{\"delta\":{\"content\":\"Grüße 🎓 中文\"}}]}\n\n"
            + "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"
        let (_, url) = try await startServer(.sse(body, chunkSize: 1))
        let result = await collect(gateway([provider("oa", .openAI, url)]).stream(request))
        XCTAssertEqual(result.text, "Grüße 🎓 中文")
        XCTAssertEqual(result.done?.usage.isEstimated, true)
    }

    func testRateLimitedThenSuccessRetries() async throws {
        let (server, url) = try await startServer(.status(429, headers: [("retry-after", "0")]), .sse(openAIBody))
        let result = await collect(gateway([provider("oa", .openAI, url)]).stream(request))
        XCTAssertNil(result.error)
        XCTAssertEqual(result.text, "Hi, how are you?")
        XCTAssertEqual(server.requests.count, 2)
    }

    func testLongRetryAfterGoesToTheNextProviderAtOnce() async throws {
        let (first, firstURL) = try await startServer(.status(429, headers: [("retry-after", "120")]))
        let (_, secondURL) = try await startServer(.sse(anthropicBody))
        let result = await collect(gateway([provider("a", .openAI, firstURL), provider("b", .anthropic, secondURL)])
            .stream(request))
        XCTAssertEqual(result.done?.provider, "b")
        XCTAssertEqual(first.requests.count, 1)
    }

    func testServerErrorsExhaustRetriesThenFallBack() async throws {
        let (first, firstURL) = try await startServer(.status(500))
        let (second, secondURL) = try await startServer(.sse(anthropicBody))
        let gateway = gateway([provider("a", .openAI, firstURL, maxRetries: 2), provider("b", .anthropic, secondURL)])
        let result = await collect(gateway.stream(request))
        XCTAssertNil(result.error)
        XCTAssertEqual(result.text, "Hello there!")
        XCTAssertEqual(result.done?.provider, "b")
        XCTAssertEqual(first.requests.count, 3)
        XCTAssertEqual(second.requests.count, 1)
    }

    func testAllProvidersFailingEndsWithTheLastError() async throws {
        let (_, firstURL) = try await startServer(.status(503))
        let (_, secondURL) = try await startServer(.status(401))
        let result = await collect(gateway([provider("a", .openAI, firstURL, maxRetries: 1),
                                            provider("b", .openAI, secondURL)]).stream(request))
        XCTAssertEqual(result.error?.code, .badRequest)
        XCTAssertEqual(result.error?.provider, "b")
        XCTAssertEqual(result.deltas, 0)
    }

    func testConnectionRefusedIsRetriedThenFallsBack() async throws {
        let (gone, goneURL) = try await startServer(.sse(openAIBody))
        try await gone.stop()
        let (second, secondURL) = try await startServer(.sse(anthropicBody))
        // async-http-client keeps retrying a refused connection until the request's deadline: the connect
        // timeout is what bounds it.
        var refused = provider("gone", .openAI, goneURL, maxRetries: 1)
        refused.timeouts.connect = .milliseconds(300)
        let result = await collect(gateway([refused, provider("b", .anthropic, secondURL)]).stream(request))
        XCTAssertEqual(result.done?.provider, "b")
        XCTAssertEqual(result.text, "Hello there!")
        XCTAssertEqual(gone.requests.count, 0)
        XCTAssertEqual(second.requests.count, 1)
    }

    func testSlowFirstTokenTimesOutAndFallsBack() async throws {
        let (first, firstURL) = try await startServer(.sse(openAIBody, firstDelay: .seconds(5)))
        let (_, secondURL) = try await startServer(.sse(anthropicBody))
        let gateway = gateway([
            provider("slow", .openAI, firstURL, maxRetries: 0, firstToken: .milliseconds(300)),
            provider("b", .anthropic, secondURL),
        ])
        let result = await collect(gateway.stream(request))
        XCTAssertNil(result.error)
        XCTAssertEqual(result.text, "Hello there!", "nothing of the slow provider reaches the consumer")
        XCTAssertEqual(result.done?.provider, "b")
        XCTAssertEqual(first.requests.count, 1)
        let connection = try XCTUnwrap(first.requests.first?.connection)
        let closed = await FakeProviderServer.eventually { first.isClosed(connection) }
        XCTAssertTrue(closed, "the timed-out request is torn down")
    }

    func testMidStreamDisconnectEndsWithErrorAndNoRetry() async throws {
        let text = openAIBody
        let cut = String(text[..<(text.range(of: "\"content\":\", how")?.lowerBound ?? text.endIndex)])
        let (first, firstURL) = try await startServer(.sse(cut, ending: .close))
        let (second, secondURL) = try await startServer(.sse(anthropicBody))
        let result = await collect(gateway([provider("a", .openAI, firstURL, maxRetries: 3),
                                            provider("b", .anthropic, secondURL)]).stream(request))
        XCTAssertEqual(result.text, "Hi")
        XCTAssertNil(result.done)
        XCTAssertEqual(result.error?.code, .unavailable)
        XCTAssertEqual(result.error?.provider, "a")
        XCTAssertEqual(first.requests.count, 1)
        XCTAssertEqual(second.requests.count, 0)
    }

    func testConnectTimeoutWhenNoResponseHead() async throws {
        var slowHead = FakeProviderServer.Behaviour.sse(openAIBody)
        slowHead.headDelay = .seconds(5)
        let (server, url) = try await startServer(slowHead)
        var slow = provider("a", .openAI, url, maxRetries: 0)
        slow.timeouts.connect = .milliseconds(200)
        let result = await collect(gateway([slow]).stream(request))
        XCTAssertEqual(result.error?.code, .timeout)
        XCTAssertEqual(result.error?.message, "no response head within the connect timeout")
        XCTAssertEqual(server.requests.count, 1)
    }

    func testTotalTimeoutAfterTextEndsTheStreamWithoutRetryAndRecordsPartialUsage() async throws {
        let text = openAIBody
        // Cut before the data line of the second content chunk (", how are you?").
        let secondChunk = try XCTUnwrap(text.range(of: "\"content\":\", how"))
        let split = text[..<secondChunk.lowerBound].range(of: "data: ", options: .backwards)
        let cut = try XCTUnwrap(split?.lowerBound)
        let behaviour = FakeProviderServer.Behaviour(pieces: [
            .init(delay: .zero, bytes: Array(text[..<cut].utf8)),
            .init(delay: .seconds(5), bytes: Array(text[cut...].utf8)),
        ])
        let (first, firstURL) = try await startServer(behaviour)
        let (second, secondURL) = try await startServer(.sse(anthropicBody))
        let records = NIOLockedValueBox<[LLMUsageRecord]>([])
        var slow = provider("a", .openAI, firstURL, maxRetries: 3)
        slow.timeouts.total = .milliseconds(500)
        let gateway = gateway([slow, provider("b", .anthropic, secondURL)], records: records)
        let result = await collect(gateway.stream(request))
        XCTAssertEqual(result.text, "Hi")
        XCTAssertEqual(result.error?.code, .timeout)
        XCTAssertEqual(result.error?.message, "the answer did not finish within the total timeout")
        XCTAssertEqual(first.requests.count, 1)
        XCTAssertEqual(second.requests.count, 0)
        let record = try XCTUnwrap(records.withLockedValue { $0.first })
        XCTAssertFalse(record.completed)
        XCTAssertTrue(record.usage.isEstimated)
        XCTAssertEqual(record.usage.outputTokens, 1)
        XCTAssertEqual(gateway.budget.used(tenant: "t1"), record.usage.totalTokens)
        let connection = try XCTUnwrap(first.requests.first?.connection)
        let closed = await FakeProviderServer.eventually { first.isClosed(connection) }
        XCTAssertTrue(closed)
    }

    func testBreakingOutOfTheLoopTearsDownTheRequest() async throws {
        let (server, url) = try await startServer(.sse("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n",
                                                       chunkSize: 1000, ending: .hang))
        let gateway = gateway([provider("a", .openAI, url)])
        for try await event in gateway.stream(request) {
            XCTAssertEqual(event, .delta("x"))
            break
        }
        let connection = try XCTUnwrap(server.requests.first?.connection)
        let closed = await FakeProviderServer.eventually { server.isClosed(connection) }
        XCTAssertTrue(closed, "dropping the stream cancels the request")
    }

    func testMalformedChunkIsBadResponse() async throws {
        let body = "data: {\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}\n\ndata: {\"choices\": [oops\n\n"
        let (server, url) = try await startServer(.sse(body, ending: .hang))
        let result = await collect(gateway([provider("a", .openAI, url)]).stream(request))
        XCTAssertEqual(result.text, "ok")
        XCTAssertEqual(result.error?.code, .badResponse)
        XCTAssertEqual(server.requests.count, 1)
    }

    func testAnthropicErrorEventBeforeTextIsRetried() async throws {
        let (server, url) = try await startServer(
            .sse(try Samples.text("anthropic_messages_stream_error.txt")), .sse(anthropicBody))
        let result = await collect(gateway([provider("an", .anthropic, url)]).stream(request))
        XCTAssertEqual(result.text, "Hello there!")
        XCTAssertEqual(server.requests.count, 2)
    }

    func testCancellationTearsDownTheRequest() async throws {
        let first = "data: {\"choices\":[{\"delta\":{\"content\":\"first\"}}]}\n\n"
        let (server, url) = try await startServer(.sse(first, chunkSize: 1000, ending: .hang))
        let stream = gateway([provider("a", .openAI, url)]).stream(request)
        var iterator = stream.makeAsyncIterator()
        let event = try await iterator.next()
        XCTAssertEqual(event, .delta("first"))
        stream.cancel()
        do {
            let next = try await iterator.next()
            XCTFail("expected the stream to end with cancelled, got \(String(describing: next))")
        } catch let error as LLMError {
            XCTAssertEqual(error.code, .cancelled)
        }
        let connection = try XCTUnwrap(server.requests.first?.connection)
        let closed = await FakeProviderServer.eventually { server.isClosed(connection) }
        XCTAssertTrue(closed, "the server saw the connection close")
        XCTAssertEqual(server.requests.count, 1)
    }

    func testCancellingTheConsumingTaskTearsDownTheRequest() async throws {
        let (server, url) = try await startServer(.sse("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n",
                                                  chunkSize: 1000, ending: .hang))
        let gateway = gateway([provider("a", .openAI, url)])
        let request = self.request
        let consumer = Task {
            for try await _ in gateway.stream(request) {}
        }
        let started = await FakeProviderServer.eventually { server.requests.count == 1 }
        XCTAssertTrue(started)
        consumer.cancel()
        _ = await consumer.result
        let connection = try XCTUnwrap(server.requests.first?.connection)
        let closed = await FakeProviderServer.eventually { server.isClosed(connection) }
        XCTAssertTrue(closed)
    }

    func testCircuitBreakerOpensSkipsAndProbesAfterCooldown() async throws {
        let (first, firstURL) = try await startServer(.status(500), .status(500), .sse(openAIBody))
        let (second, secondURL) = try await startServer(.sse(anthropicBody))
        let clock = TestClock()
        let gateway = gateway([provider("a", .openAI, firstURL, maxRetries: 0), provider("b", .anthropic, secondURL)],
                              threshold: 2, clock: clock)
        for _ in 0..<2 {
            let result = await collect(gateway.stream(request))
            XCTAssertEqual(result.done?.provider, "b")
        }
        XCTAssertEqual(first.requests.count, 2)
        XCTAssertEqual(gateway.circuitState(provider: "a"), .open(until: clock.now.addingTimeInterval(30)))
        let skipped = await collect(gateway.stream(request))
        XCTAssertEqual(skipped.done?.provider, "b")
        XCTAssertEqual(first.requests.count, 2, "an open circuit sends nothing")
        clock.advance(31)
        let probe = await collect(gateway.stream(request))
        XCTAssertEqual(probe.done?.provider, "a")
        XCTAssertEqual(first.requests.count, 3)
        XCTAssertEqual(second.requests.count, 3)
        XCTAssertEqual(gateway.circuitState(provider: "a"), .closed(failures: 0))
    }

    func testBudgetExceededRefusesWithoutAnyRequest() async throws {
        let (server, url) = try await startServer(.sse(openAIBody))
        let gateway = gateway([provider("a", .openAI, url)], budget: 20)
        let first = await collect(gateway.stream(request))
        XCTAssertEqual(first.done?.usage.totalTokens, 15)
        gateway.budget.record(tenant: "t1", tokens: 5)
        let refused = await collect(gateway.stream(request))
        XCTAssertEqual(refused.error?.code, .budgetExceeded)
        XCTAssertEqual(server.requests.count, 1)
        let otherTenant = await collect(gateway.stream(LLMRequest(messages: [.user("hi")], tenant: "t2",
                                                                  conversationId: "c2")))
        XCTAssertNil(otherTenant.error)
        XCTAssertEqual(server.requests.count, 2)
    }

    func testNotConfiguredAndShutdown() async throws {
        let disabled = gateway([])
        XCTAssertFalse(disabled.isEnabled)
        let result = await collect(disabled.stream(request))
        XCTAssertEqual(result.error?.code, .notConfigured)
        let (_, url) = try await startServer(.sse(openAIBody))
        let gateway = gateway([provider("a", .openAI, url)])
        gateway.shutdown()
        let refused = await collect(gateway.stream(request))
        XCTAssertEqual(refused.error?.code, .unavailable)
    }
}
