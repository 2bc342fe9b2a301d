import Foundation
import Yams

extension LLMConfiguration {
    /// The environment variables read by ``load(file:environment:)``.
    public enum EnvironmentKey {
        /// Path of a YAML configuration file.
        public static let configFile = "EXAMHUB_LLM_CONFIG"
        /// Base URL of the first (OpenAI-compatible, when no file declares it) provider.
        public static let url = "EXAMHUB_LLM_URL"
        /// Model of the first provider.
        public static let model = "EXAMHUB_LLM_MODEL"
        /// API key of the first provider.
        public static let apiKey = "EXAMHUB_LLM_API_KEY"
    }

    /// Loads the configuration from a YAML file and the environment.
    ///
    /// - `file` (or, when `nil`, `EXAMHUB_LLM_CONFIG`) names a YAML file:
    ///   ```yaml
    ///   providers:                      # tried in order
    ///     - name: primary
    ///       kind: openai                # openai | anthropic
    ///       baseURL: https://api.openai.com
    ///       model: gpt-4o-mini
    ///       apiKeyEnv: OPENAI_API_KEY   # or apiKey: sk-...
    ///       timeouts: {connect: 10, firstToken: 30, total: 120}   # seconds
    ///       maxRetries: 2
    ///   budget: {dailyTokensPerTenant: 200000, tenants: {big-tenant: 1000000}}
    ///   history: {maxMessages: 20, maxCharacters: 24000}
    ///   circuitBreaker: {failureThreshold: 5, cooldown: 30}
    ///   retry: {baseDelay: 0.5, maxDelay: 8, maxRetryAfter: 10}
    ///   defaultMaxTokens: 1024
    ///   ```
    /// - `EXAMHUB_LLM_URL`, `EXAMHUB_LLM_MODEL`, `EXAMHUB_LLM_API_KEY` override the first provider's `baseURL`,
    ///   `model` and `apiKey`; with no file they declare a single OpenAI-compatible provider named `default`.
    ///
    /// With neither, the result has no provider (``isEnabled`` is `false`).
    /// - Throws: ``LLMError`` with code `invalidConfiguration` and a message naming `file:line` where it can.
    public static func load(file: String? = nil, environment: [String: String]) throws -> LLMConfiguration {
        let env = environment.filter { !$0.value.isEmpty }
        var configuration = LLMConfiguration()
        if let path = file ?? env[EnvironmentKey.configFile] {
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw LLMError(.invalidConfiguration, message: "\(path): cannot read the LLM configuration file")
            }
            configuration = try parse(yaml: text, path: path, environment: env)
        }
        let url = env[EnvironmentKey.url]
        let model = env[EnvironmentKey.model]
        let key = env[EnvironmentKey.apiKey]
        if configuration.providers.isEmpty {
            guard let url else {
                if model != nil || key != nil {
                    throw LLMError(.invalidConfiguration,
                                   message: "\(EnvironmentKey.model) or \(EnvironmentKey.apiKey) is set "
                                       + "without \(EnvironmentKey.url)")
                }
                return configuration
            }
            guard let model else {
                throw LLMError(.invalidConfiguration,
                               message: "\(EnvironmentKey.url) is set without \(EnvironmentKey.model)")
            }
            configuration.providers = [
                LLMProviderConfiguration(name: "default", kind: .openAI, baseURL: url, model: model, apiKey: key)
            ]
        } else {
            if let url { configuration.providers[0].baseURL = url }
            if let model { configuration.providers[0].model = model }
            if let key { configuration.providers[0].apiKey = key }
        }
        try validateURL(configuration.providers[0].baseURL, at: "\(EnvironmentKey.url) or the first provider")
        return configuration
    }

    /// Parses the YAML text of a configuration file; `path` only labels errors.
    public static func parse(yaml: String, path: String = "<yaml>", environment: [String: String] = [:]) throws
        -> LLMConfiguration
    {
        let reader = ConfigReader(path: path)
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            let problem = error.description.trimmingCharacters(in: .whitespacesAndNewlines)
            throw LLMError(.invalidConfiguration, message: "\(path): \(problem)")
        } catch {
            throw LLMError(.invalidConfiguration, message: "\(path): not valid YAML")
        }
        guard let root else { return LLMConfiguration() }
        let top = try reader.mapping(root, allowed: [
            "providers", "budget", "history", "circuitBreaker", "retry", "defaultMaxTokens",
        ])
        var configuration = LLMConfiguration()
        if let list = top["providers"] {
            guard let sequence = list.sequence else { throw reader.fail(list, "providers must be a list") }
            for item in sequence {
                let provider = try reader.provider(item, environment: environment)
                if configuration.providers.contains(where: { $0.name == provider.name }) {
                    throw reader.fail(item, "provider name \"\(provider.name)\" is used twice")
                }
                configuration.providers.append(provider)
            }
        }
        if let node = top["budget"] {
            let budget = try reader.mapping(node, allowed: ["dailyTokensPerTenant", "tenants"])
            configuration.dailyTokenBudget = try budget["dailyTokensPerTenant"].map { try reader.int($0, min: 0) }
            if let tenants = budget["tenants"] {
                guard let map = tenants.mapping else { throw reader.fail(tenants, "tenants must be a mapping") }
                for (key, value) in map {
                    guard let tenant = key.string else { throw reader.fail(key, "a tenant id must be a string") }
                    configuration.tenantDailyTokenBudgets[tenant] = try reader.int(value, min: 0)
                }
            }
        }
        if let node = top["history"] {
            let history = try reader.mapping(node, allowed: ["maxMessages", "maxCharacters"])
            if let value = history["maxMessages"] { configuration.history.maxMessages = try reader.int(value, min: 1) }
            if let value = history["maxCharacters"] {
                configuration.history.maxCharacters = try reader.int(value, min: 1)
            }
        }
        if let node = top["circuitBreaker"] {
            let breaker = try reader.mapping(node, allowed: ["failureThreshold", "cooldown"])
            if let value = breaker["failureThreshold"] {
                configuration.circuitBreaker.failureThreshold = try reader.int(value, min: 1)
            }
            if let value = breaker["cooldown"] { configuration.circuitBreaker.cooldown = try reader.seconds(value) }
        }
        if let node = top["retry"] {
            let retry = try reader.mapping(node, allowed: ["baseDelay", "maxDelay", "maxRetryAfter"])
            if let value = retry["baseDelay"] { configuration.retry.baseDelay = try reader.seconds(value) }
            if let value = retry["maxDelay"] { configuration.retry.maxDelay = try reader.seconds(value) }
            if let value = retry["maxRetryAfter"] { configuration.retry.maxRetryAfter = try reader.seconds(value) }
        }
        if let value = top["defaultMaxTokens"] { configuration.defaultMaxTokens = try reader.int(value, min: 1) }
        return configuration
    }

    static func validateURL(_ url: String, at place: String) throws {
        let lower = url.lowercased()
        guard lower.hasPrefix("http://") || lower.hasPrefix("https://"), URL(string: url)?.host != nil else {
            throw LLMError(.invalidConfiguration, message: "\(place): baseURL must be an http(s) URL")
        }
    }
}

/// Reads configuration values from Yams nodes, failing with `file:line: message`.
private struct ConfigReader {
    let path: String

    func fail(_ node: Node, _ message: String) -> LLMError {
        if let mark = node.mark {
            return LLMError(.invalidConfiguration, message: "\(path):\(mark.line): \(message)")
        }
        return LLMError(.invalidConfiguration, message: "\(path): \(message)")
    }

    func mapping(_ node: Node, allowed: Set<String>) throws -> Node.Mapping {
        guard let mapping = node.mapping else { throw fail(node, "expected a mapping") }
        for key in mapping.keys {
            guard let name = key.string, allowed.contains(name) else {
                let known = allowed.sorted().joined(separator: ", ")
                throw fail(key, "unknown key \"\(key.string ?? "?")\" (known: \(known))")
            }
        }
        return mapping
    }

    func string(_ node: Node, _ key: String) throws -> String {
        guard let scalar = node.scalar, !scalar.string.isEmpty else { throw fail(node, "\(key) must be a string") }
        return scalar.string
    }

    func int(_ node: Node, min: Int) throws -> Int {
        guard let value = node.int, value >= min else { throw fail(node, "expected an integer >= \(min)") }
        return value
    }

    func seconds(_ node: Node) throws -> Duration {
        guard let value = node.float, value.isFinite, value > 0 else {
            throw fail(node, "expected a number of seconds > 0")
        }
        return .milliseconds(Int64((value * 1000).rounded()))
    }

    func provider(_ node: Node, environment: [String: String]) throws -> LLMProviderConfiguration {
        let map = try mapping(node, allowed: [
            "name", "kind", "baseURL", "model", "apiKey", "apiKeyEnv", "timeouts", "maxRetries",
        ])
        func required(_ key: String) throws -> Node {
            guard let value = map[key] else { throw fail(node, "provider needs \"\(key)\"") }
            return value
        }
        let name = try string(required("name"), "name")
        let kindNode = try required("kind")
        guard let kind = LLMProviderConfiguration.Kind(rawValue: try string(kindNode, "kind")) else {
            throw fail(kindNode, "kind must be openai or anthropic")
        }
        let urlNode = try required("baseURL")
        let baseURL = try string(urlNode, "baseURL")
        do {
            try LLMConfiguration.validateURL(baseURL, at: "provider \(name)")
        } catch let error as LLMError {
            throw fail(urlNode, error.message)
        }
        let model = try string(required("model"), "model")
        var apiKey: String?
        if let keyNode = map["apiKey"] {
            if map["apiKeyEnv"] != nil { throw fail(keyNode, "give apiKey or apiKeyEnv, not both") }
            apiKey = try string(keyNode, "apiKey")
        } else if let envNode = map["apiKeyEnv"] {
            let variable = try string(envNode, "apiKeyEnv")
            guard let value = environment[variable], !value.isEmpty else {
                throw fail(envNode, "environment variable \(variable) (apiKeyEnv) is not set")
            }
            apiKey = value
        }
        var provider = LLMProviderConfiguration(name: name, kind: kind, baseURL: baseURL, model: model, apiKey: apiKey)
        if let timeoutsNode = map["timeouts"] {
            let timeouts = try mapping(timeoutsNode, allowed: ["connect", "firstToken", "total"])
            if let value = timeouts["connect"] { provider.timeouts.connect = try seconds(value) }
            if let value = timeouts["firstToken"] { provider.timeouts.firstToken = try seconds(value) }
            if let value = timeouts["total"] { provider.timeouts.total = try seconds(value) }
        }
        if let value = map["maxRetries"] { provider.maxRetries = try int(value, min: 0) }
        return provider
    }
}
