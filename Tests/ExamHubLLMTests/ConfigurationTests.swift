import Foundation
import XCTest

@testable import ExamHubLLM

final class ConfigurationTests: XCTestCase {
    private let yaml = """
        providers:
          - name: primary
            kind: openai
            baseURL: https://api.example.com/v1/
            model: gpt-4o-mini
            apiKeyEnv: PRIMARY_KEY
            timeouts: {connect: 2, firstToken: 5.5, total: 60}
            maxRetries: 3
          - name: backup
            kind: anthropic
            baseURL: http://127.0.0.1:9000
            model: claude-3-5-haiku-latest
            apiKey: sk-ant-secret
        budget:
          dailyTokensPerTenant: 1000
          tenants: {big: 5000}
        history: {maxMessages: 8, maxCharacters: 4000}
        circuitBreaker: {failureThreshold: 3, cooldown: 15}
        retry: {baseDelay: 0.25, maxDelay: 4, maxRetryAfter: 2}
        defaultMaxTokens: 256
        """

    func testParsesAFullFile() throws {
        let configuration = try LLMConfiguration.parse(yaml: yaml, environment: ["PRIMARY_KEY": "sk-primary"])
        XCTAssertTrue(configuration.isEnabled)
        XCTAssertEqual(configuration.providers.count, 2)
        let primary = configuration.providers[0]
        XCTAssertEqual(primary.kind, .openAI)
        XCTAssertEqual(primary.apiKey, "sk-primary")
        XCTAssertEqual(primary.timeouts, .init(connect: .seconds(2), firstToken: .milliseconds(5500),
                                               total: .seconds(60)))
        XCTAssertEqual(primary.maxRetries, 3)
        XCTAssertEqual(primary.endpointURL, "https://api.example.com/v1/chat/completions")
        let backup = configuration.providers[1]
        XCTAssertEqual(backup.kind, .anthropic)
        XCTAssertEqual(backup.apiKey, "sk-ant-secret")
        XCTAssertEqual(backup.maxRetries, 2)
        XCTAssertEqual(backup.endpointURL, "http://127.0.0.1:9000/v1/messages")
        XCTAssertEqual(configuration.dailyBudget(for: "any"), 1000)
        XCTAssertEqual(configuration.dailyBudget(for: "big"), 5000)
        XCTAssertEqual(configuration.history, LLMHistoryWindow(maxMessages: 8, maxCharacters: 4000))
        XCTAssertEqual(configuration.circuitBreaker, .init(failureThreshold: 3, cooldown: .seconds(15)))
        XCTAssertEqual(configuration.retry, .init(baseDelay: .milliseconds(250), maxDelay: .seconds(4),
                                                  maxRetryAfter: .seconds(2)))
        XCTAssertEqual(configuration.defaultMaxTokens, 256)
        XCTAssertFalse(backup.description.contains("sk-ant-secret"))
    }

    func testLoadFileWithEnvironmentOverridesTheFirstProvider() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("llm-\(UUID()).yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let configuration = try LLMConfiguration.load(environment: [
            "EXAMHUB_LLM_CONFIG": path, "PRIMARY_KEY": "k", "EXAMHUB_LLM_URL": "http://localhost:8000",
            "EXAMHUB_LLM_MODEL": "local", "EXAMHUB_LLM_API_KEY": "env-key",
        ])
        XCTAssertEqual(configuration.providers.map(\.name), ["primary", "backup"])
        XCTAssertEqual(configuration.providers[0].baseURL, "http://localhost:8000")
        XCTAssertEqual(configuration.providers[0].model, "local")
        XCTAssertEqual(configuration.providers[0].apiKey, "env-key")
    }

    func testEnvironmentAloneDeclaresOneOpenAIProvider() throws {
        let configuration = try LLMConfiguration.load(environment: [
            "EXAMHUB_LLM_URL": "http://127.0.0.1:8000", "EXAMHUB_LLM_MODEL": "smollm",
        ])
        XCTAssertEqual(configuration.providers, [
            LLMProviderConfiguration(name: "default", kind: .openAI, baseURL: "http://127.0.0.1:8000", model: "smollm")
        ])
        XCTAssertFalse(try LLMConfiguration.load(environment: [:]).isEnabled)
        XCTAssertFalse(try LLMConfiguration.load(environment: ["EXAMHUB_LLM_URL": ""]).isEnabled)
    }

    func testErrorsNameFileAndLine() {
        func message(_ text: String, environment: [String: String] = [:]) -> String {
            do {
                _ = try LLMConfiguration.parse(yaml: text, path: "llm.yaml", environment: environment)
                return "no error"
            } catch let error as LLMError {
                XCTAssertEqual(error.code, .invalidConfiguration)
                return error.message
            } catch {
                return "\(error)"
            }
        }
        XCTAssertEqual(message("providers:\n  - name: a\n    kind: gemini\n    baseURL: http://x\n    model: m\n"),
                       "llm.yaml:3: kind must be openai or anthropic")
        XCTAssertTrue(message("history:\n  maxMesages: 3\n").hasPrefix("llm.yaml:2: unknown key \"maxMesages\""))
        XCTAssertEqual(message("providers:\n  - name: a\n    kind: openai\n    baseURL: ftp://x\n    model: m\n"),
                       "llm.yaml:4: provider a: baseURL must be an http(s) URL")
        XCTAssertEqual(
            message("providers:\n  - name: a\n    kind: openai\n    baseURL: http://x\n    model: m\n"
                + "    apiKeyEnv: NOPE\n"),
            "llm.yaml:6: environment variable NOPE (apiKeyEnv) is not set")
        XCTAssertEqual(message("providers:\n  - name: a\n    kind: openai\n    model: m\n"),
                       "llm.yaml:2: provider needs \"baseURL\"")
        XCTAssertEqual(message("budget:\n  dailyTokensPerTenant: -1\n"), "llm.yaml:2: expected an integer >= 0")
        XCTAssertTrue(message("providers: [\n").hasPrefix("llm.yaml: "))
        XCTAssertThrowsError(try LLMConfiguration.load(environment: ["EXAMHUB_LLM_URL": "http://x"]))
        XCTAssertThrowsError(try LLMConfiguration.load(file: "/nonexistent/llm.yaml", environment: [:]))
    }

    func testBackoffDoublesCapsAndJitters() {
        let retry = LLMConfiguration.RetrySettings(baseDelay: .seconds(1), maxDelay: .seconds(5))
        XCTAssertEqual(retry.delay(beforeRetry: 0, jitter: 1), .seconds(1))
        XCTAssertEqual(retry.delay(beforeRetry: 0, jitter: 0), .milliseconds(500))
        XCTAssertEqual(retry.delay(beforeRetry: 2, jitter: 1), .seconds(4))
        XCTAssertEqual(retry.delay(beforeRetry: 3, jitter: 1), .seconds(5))
        XCTAssertEqual(retry.delay(beforeRetry: 60, jitter: 0), .milliseconds(2500))
    }
}
