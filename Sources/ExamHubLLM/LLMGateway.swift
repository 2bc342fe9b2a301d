import AsyncHTTPClient
import Foundation
import Logging
import NIOConcurrencyHelpers

/// Streams chat completions from a chain of providers, with the policies of an ``LLMConfiguration``.
///
/// ```swift
/// let gateway = LLMGateway(configuration: try .load(environment: ProcessInfo.processInfo.environment),
///                          httpClient: .shared, logger: logger) { record in store.save(record) }
/// let answer = gateway.stream(LLMRequest(messages: history, tenant: "t1", conversationId: "c1"))
/// for try await event in answer {
///     switch event {
///     case .delta(let text): send(text)
///     case .done(let usage, let provider, _): finish(usage, provider)
///     }
/// }
/// ```
///
/// For each request: the tenant's budget is checked (`budgetExceeded` before any provider is called), the
/// history window trims the messages, then providers are tried in order. A provider whose circuit is open is
/// skipped. An attempt that fails before its first token (429, 5xx, connection error, timeout, an error event)
/// is retried with exponential backoff and jitter (a small `Retry-After` is honoured) up to the provider's
/// `maxRetries`, then the next provider is tried. Once text has been emitted a failure ends the stream with
/// the error: never a retry, never a fallback, so an answer is never duplicated.
///
/// The gateway does not own `httpClient`; ``shutdown()`` cancels streams in flight, the caller shuts the client.
public final class LLMGateway: Sendable {
    /// The configuration in use.
    public let configuration: LLMConfiguration
    /// The per-tenant daily budgets (in memory).
    public let budget: TokenBudget

    let httpClient: HTTPClient
    let logger: Logger
    let now: @Sendable () -> Date
    let jitter: @Sendable () -> Double
    let onUsage: (@Sendable (LLMUsageRecord) -> Void)?
    let breakers: CircuitBreakerRegistry
    private let inFlight = NIOLockedValueBox(InFlight())

    private struct InFlight {
        var nextId = 0
        var tasks: [Int: Task<Void, Never>] = [:]
        var isShutdown = false
    }

    /// A gateway.
    /// - Parameters:
    ///   - configuration: providers and policies.
    ///   - httpClient: the client to use (not shut down by the gateway).
    ///   - logger: never given API keys; message contents only at `.trace`.
    ///   - budget: the tenants' budgets; by default one built from `configuration` with the clock `now`.
    ///   - now: the clock of budgets (UTC days) and circuit breaker cooldowns.
    ///   - jitter: a value in `0..<1` per retry (random by default; fixed in tests).
    ///   - onUsage: called once per answer that used tokens (completed or failed after text), for persisting.
    public init(
        configuration: LLMConfiguration,
        httpClient: HTTPClient,
        logger: Logger,
        budget: TokenBudget? = nil,
        now: @escaping @Sendable () -> Date = { Date() },
        jitter: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
        onUsage: (@Sendable (LLMUsageRecord) -> Void)? = nil
    ) {
        self.configuration = configuration
        self.httpClient = httpClient
        self.logger = logger
        self.budget = budget ?? TokenBudget(configuration: configuration, now: now)
        self.now = now
        self.jitter = jitter
        self.onUsage = onUsage
        self.breakers = CircuitBreakerRegistry(settings: configuration.circuitBreaker)
    }

    /// Whether any provider is configured.
    public var isEnabled: Bool { configuration.isEnabled }

    /// The circuit breaker state of a provider (by its configured name).
    public func circuitState(provider: String) -> CircuitBreaker.State {
        breakers.state(provider)
    }

    /// Starts streaming an answer to `request`; the work runs until the stream ends or is cancelled.
    public func stream(_ request: LLMRequest) -> LLMStream {
        let (events, continuation) = AsyncThrowingStream.makeStream(of: LLMStreamEvent.self)
        let id: Int? = inFlight.withLockedValue { state in
            guard !state.isShutdown else { return nil }
            defer { state.nextId += 1 }
            return state.nextId
        }
        guard let id else {
            continuation.finish(throwing: LLMError(.unavailable, message: "the LLM gateway is shut down"))
            return LLMStream(events: events, canceller: {})
        }
        let task = Task {
            await self.run(request, continuation: continuation)
            self.inFlight.withLockedValue { _ = $0.tasks.removeValue(forKey: id) }
        }
        let registered = inFlight.withLockedValue { state in
            guard !state.isShutdown else { return false }
            state.tasks[id] = task
            return true
        }
        if !registered { task.cancel() }
        continuation.onTermination = { _ in task.cancel() }
        return LLMStream(events: events, canceller: { task.cancel() })
    }

    /// Cancels every stream in flight and refuses new ones (they fail with `unavailable`).
    public func shutdown() {
        let tasks = inFlight.withLockedValue { state in
            state.isShutdown = true
            defer { state.tasks.removeAll() }
            return Array(state.tasks.values)
        }
        for task in tasks { task.cancel() }
    }

    private func run(_ request: LLMRequest, continuation: AsyncThrowingStream<LLMStreamEvent, any Error>.Continuation)
        async
    {
        var logger = self.logger
        logger[metadataKey: "examhub.llm.conversation"] = "\(request.conversationId)"
        logger[metadataKey: "examhub.tenant"] = "\(request.tenant)"
        do {
            let done = try await answer(request, continuation: continuation, logger: logger)
            continuation.yield(done)
            continuation.finish()
        } catch let error as LLMError {
            logger.log(level: error.code == .cancelled ? .debug : .info, "llm answer failed",
                       metadata: ["examhub.llm.error": "\(error)"])
            continuation.finish(throwing: error)
        } catch {
            continuation.finish(throwing: LLMError(.unavailable, message: "unexpected failure", detail: "\(error)"))
        }
    }
}
