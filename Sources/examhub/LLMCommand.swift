import ArgumentParser
import AsyncHTTPClient
import ExamHubLLM
import Foundation
import Logging

/// `examhub llm try "prompt"`: streams one answer from the configured provider chain to stdout.
struct LLMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "llm", abstract: "Try the LLM gateway configuration.", subcommands: [Try.self])

    /// `examhub llm try`.
    struct Try: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "try",
            abstract: "Stream one answer to stdout (EXAMHUB_LLM_CONFIG, EXAMHUB_LLM_URL/MODEL/API_KEY).")

        @Argument(help: "The user's message.") var prompt: String
        @Option(help: "A system prompt.") var system: String?
        @Option(help: "A YAML configuration file (default: EXAMHUB_LLM_CONFIG).") var config: String?
        @Option(help: "Most tokens to generate.") var maxTokens: Int?
        @Flag(help: "Log attempts, retries and fallbacks to stderr.") var verbose = false

        func run() async throws {
            let configuration: LLMConfiguration
            do {
                configuration = try LLMConfiguration.load(
                    file: config, environment: ProcessInfo.processInfo.environment)
            } catch let error as LLMError {
                throw ValidationError(error.message)
            }
            guard configuration.isEnabled else {
                throw ValidationError(
                    "no LLM provider: set EXAMHUB_LLM_URL and EXAMHUB_LLM_MODEL, or EXAMHUB_LLM_CONFIG")
            }
            var logger = Logger(label: "examhub.llm")
            logger.logLevel = verbose ? .debug : .warning
            let client = HTTPClient(eventLoopGroupProvider: .singleton)
            let gateway = LLMGateway(configuration: configuration, httpClient: client, logger: logger)
            var messages: [LLMMessage] = []
            if let system { messages.append(.system(system)) }
            messages.append(.user(prompt))
            let request = LLMRequest(messages: messages, maxTokens: maxTokens, tenant: "cli", conversationId: "cli")
            do {
                for try await event in gateway.stream(request) {
                    switch event {
                    case .delta(let text):
                        FileHandle.standardOutput.write(Data(text.utf8))
                    case .done(let usage, let provider, let finishReason):
                        let estimated = usage.isEstimated ? " (estimated)" : ""
                        let summary = "\n[\(provider): \(usage.inputTokens) in, \(usage.outputTokens) out\(estimated), "
                            + "finish \(finishReason ?? "-")]\n"
                        FileHandle.standardError.write(Data(summary.utf8))
                    }
                }
            } catch {
                try await client.shutdown()
                throw error
            }
            try await client.shutdown()
        }
    }
}
