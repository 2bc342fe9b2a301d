import ArgumentParser
import AsyncHTTPClient
import ExamHubIntents
import ExamHubLLM
import ExamHubServer
import ExamHubStore
import Foundation
import Logging

/// Loads what the assistant needs at start: the intent files (validated, every problem with its file and line) and
/// the LLM provider chain (`EXAMHUB_LLM_CONFIG`, `EXAMHUB_LLM_URL`/`_MODEL`/`_API_KEY`).
enum AssistantSetupLoader {
    /// Where the intent files are: `EXAMHUB_INTENTS_DIR`, else `./Intents`, else the `Intents` folder of the
    /// checkout the binary was built in (the nearest folder above it with a `Package.swift`), else next to the binary.
    static func intentsDirectory(_ env: Environment) throws -> URL {
        if let configured = env["EXAMHUB_INTENTS_DIR"] {
            let url = URL(fileURLWithPath: configured)
            guard isDirectory(url) else { throw ValidationError("EXAMHUB_INTENTS_DIR \(configured) is not a folder") }
            return url
        }
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? "examhub").resolvingSymlinksInPath()
            .deletingLastPathComponent()
        // The checkout the binary was built in: `.build/<triple>/<config>/examhub` or `.build/<config>/examhub`.
        var checkout: [URL] = []
        var dir = executable
        for _ in 0..<4 {
            dir = dir.deletingLastPathComponent()
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
                checkout.append(dir.appendingPathComponent("Intents"))
                break
            }
        }
        let candidates = [URL(fileURLWithPath: "Intents")] + checkout + [executable.appendingPathComponent("Intents")]
        guard let found = candidates.first(where: isDirectory) else {
            throw ValidationError(
                "no Intents folder found (looked in \(candidates.map(\.path).joined(separator: ", "))); set EXAMHUB_INTENTS_DIR")
        }
        return found
    }

    static func isDirectory(_ url: URL) -> Bool {
        var dir: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &dir) && dir.boolValue
    }

    static func load(_ env: Environment, store: any Store, logger: Logger) async throws -> AssistantSetup {
        let directory = try intentsDirectory(env)
        let catalog: IntentCatalog
        do {
            catalog = try IntentCatalog.load(directory: directory)
        } catch let error as IntentCatalogError {
            throw ValidationError("the intent files have problems:\n\(error.description)")
        }
        let configuration: LLMConfiguration
        do {
            configuration = try LLMConfiguration.load(file: env["EXAMHUB_LLM_CONFIG"], environment: env.values)
        } catch let error as LLMError {
            throw ValidationError(error.message)
        }
        logger.info(
            "assistant ready",
            metadata: [
                "examhub.intents": "\(catalog.intents.count)", "examhub.intents_dir": "\(directory.path)",
                "examhub.llm_providers": "\(configuration.providers.map(\.name).joined(separator: ","))",
            ])
        guard configuration.isEnabled else { return AssistantSetup(catalog: catalog, gateway: nil) }
        let gateway = LLMGateway(
            configuration: configuration, httpClient: HTTPClient.shared, logger: logger,
            onUsage: { record in
                let row = LLMUsageRecordRow(
                    tenant: record.tenant, conversationID: record.conversationId, provider: record.provider,
                    model: record.model, inputTokens: Int64(record.usage.inputTokens),
                    outputTokens: Int64(record.usage.outputTokens), completed: record.completed,
                    atMillis: Int64(record.date.timeIntervalSince1970 * 1000))
                Task {
                    do { try await store.recordLLMUsage(row) } catch {
                        logger.warning("LLM usage not stored", metadata: ["examhub.error": "\(error)"])
                    }
                }
            })
        // Today's usage counts against the daily budgets after a restart too.
        let midnight = Int64(Date().timeIntervalSince1970 / 86_400) * 86_400_000
        for (tenant, tokens) in (try? await store.llmTokensByTenant(since: midnight)) ?? [:] {
            gateway.budget.record(tenant: tenant, tokens: Int(tokens))
        }
        return AssistantSetup(catalog: catalog, gateway: gateway)
    }
}
