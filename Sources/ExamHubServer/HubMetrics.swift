import CoreMetrics
import Prometheus

/// The hub's metrics, created through swift-metrics on a Prometheus registry that `/metrics` renders.
///
/// The registry is owned here and passed down: nothing is bootstrapped globally, so tests can run many hubs in
/// one process.
public final class HubMetrics: Sendable {
    /// The registry `/metrics` renders.
    public let registry: PrometheusCollectorRegistry
    let connectionsOpen: CoreMetrics.Gauge
    let connectionsTotal: CoreMetrics.Counter
    let connectionsRefused: CoreMetrics.Counter
    let authFailures: CoreMetrics.Counter
    let messagesIn: CoreMetrics.Counter
    let messagesOut: CoreMetrics.Counter
    let eventsPublished: CoreMetrics.Counter
    let slowConsumerCloses: CoreMetrics.Counter
    let rateLimited: CoreMetrics.Counter
    let telemetryEvents: CoreMetrics.Counter
    let telemetryDropped: CoreMetrics.Counter
    let flagsRaised: CoreMetrics.Counter
    let proctorActions: CoreMetrics.Counter
    let chatAbusive: CoreMetrics.Counter
    let chatRefused: CoreMetrics.Counter
    let chatLLMErrors: CoreMetrics.Counter
    /// Seconds from a save reaching the group commit to its reply (after its commit): `examhub_save_ack_seconds`.
    let saveAck: CoreMetrics.Timer
    /// Seconds one group-commit transaction takes: `examhub_save_commit_seconds`.
    let saveCommit: CoreMetrics.Timer
    /// Seconds from an LLM request to its first token (`examhub_llm_first_token_seconds`) and to its end
    /// (`examhub_llm_seconds`, answers that completed).
    let llmFirstToken: CoreMetrics.Timer
    let llmDuration: CoreMetrics.Timer
    /// Tokens of completed LLM answers, `examhub_llm_tokens_total{kind="prompt"|"completion"}`.
    let llmPromptTokens: CoreMetrics.Counter
    let llmCompletionTokens: CoreMetrics.Counter
    /// permessage-deflate byte counts (see `CompressionMetrics`).
    let compression: CompressionMetrics
    private let chatBySource: [String: CoreMetrics.Counter]
    private let errorCounters: [String: CoreMetrics.Counter]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        let ms: (Int64) -> Duration = { .milliseconds($0) }
        factory.durationHistogramBuckets = [
            "examhub_save_ack_seconds": [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000].map(ms),
            "examhub_save_commit_seconds": [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000].map(ms),
            "examhub_llm_first_token_seconds": [100, 250, 500, 1000, 2000, 5000, 10000, 30000].map(ms),
            "examhub_llm_seconds": [250, 500, 1000, 2500, 5000, 10000, 20000, 30000, 60000, 120_000].map(ms),
        ]
        connectionsOpen = CoreMetrics.Gauge(label: "examhub_connections_open", factory: factory)
        connectionsTotal = CoreMetrics.Counter(label: "examhub_connections_total", factory: factory)
        connectionsRefused = CoreMetrics.Counter(label: "examhub_connections_refused_total", factory: factory)
        authFailures = CoreMetrics.Counter(label: "examhub_auth_failures_total", factory: factory)
        messagesIn = CoreMetrics.Counter(label: "examhub_messages_in_total", factory: factory)
        messagesOut = CoreMetrics.Counter(label: "examhub_messages_out_total", factory: factory)
        eventsPublished = CoreMetrics.Counter(label: "examhub_events_published_total", factory: factory)
        slowConsumerCloses = CoreMetrics.Counter(label: "examhub_slow_consumer_closes_total", factory: factory)
        rateLimited = CoreMetrics.Counter(label: "examhub_rate_limited_total", factory: factory)
        telemetryEvents = CoreMetrics.Counter(label: "examhub_telemetry_events_total", factory: factory)
        telemetryDropped = CoreMetrics.Counter(label: "examhub_telemetry_batches_dropped_total", factory: factory)
        flagsRaised = CoreMetrics.Counter(label: "examhub_flags_raised_total", factory: factory)
        proctorActions = CoreMetrics.Counter(label: "examhub_proctor_actions_total", factory: factory)
        chatAbusive = CoreMetrics.Counter(label: "examhub_chat_abusive_total", factory: factory)
        chatRefused = CoreMetrics.Counter(label: "examhub_chat_policy_refusals_total", factory: factory)
        chatLLMErrors = CoreMetrics.Counter(label: "examhub_chat_llm_errors_total", factory: factory)
        saveAck = CoreMetrics.Timer(label: "examhub_save_ack_seconds", factory: factory)
        saveCommit = CoreMetrics.Timer(label: "examhub_save_commit_seconds", factory: factory)
        llmFirstToken = CoreMetrics.Timer(label: "examhub_llm_first_token_seconds", factory: factory)
        llmDuration = CoreMetrics.Timer(label: "examhub_llm_seconds", factory: factory)
        llmPromptTokens = CoreMetrics.Counter(
            label: "examhub_llm_tokens_total", dimensions: [("kind", "prompt")], factory: factory)
        llmCompletionTokens = CoreMetrics.Counter(
            label: "examhub_llm_tokens_total", dimensions: [("kind", "completion")], factory: factory)
        compression = CompressionMetrics(factory: factory)
        var bySource: [String: CoreMetrics.Counter] = [:]
        for source in ["intent", "llm", "policy"] {
            bySource[source] = CoreMetrics.Counter(
                label: "examhub_chat_answers_total", dimensions: [("source", source)], factory: factory)
        }
        chatBySource = bySource
        var errors: [String: CoreMetrics.Counter] = [:]
        for code in ["bad_request", "unauthorized", "forbidden", "not_found", "conflict", "attempt_closed",
            "attempt_paused", "rate_limited", "too_large", "unavailable", "internal"]
        {
            errors[code] = CoreMetrics.Counter(label: "examhub_errors_total", dimensions: [("code", code)], factory: factory)
        }
        errorCounters = errors
    }

    /// Answers by source (`intent`, `llm`, `policy`).
    func chatAnswers(_ source: String) -> CoreMetrics.Counter {
        chatBySource[source] ?? chatRefused
    }

    func countError(_ code: String) {
        errorCounters[code]?.increment()
    }

    /// The Prometheus text exposition of every metric.
    public func render() -> String {
        registry.emitToString()
    }
}

/// Bytes through permessage-deflate, before and after, each way: `examhub_compression_bytes_total` with
/// `direction` (`out`: compressed by the hub, `in`: inflated by the hub) and `form` (`raw`, `wire`).
final class CompressionMetrics: Sendable {
    let outRaw: CoreMetrics.Counter
    let outWire: CoreMetrics.Counter
    let inRaw: CoreMetrics.Counter
    let inWire: CoreMetrics.Counter

    init(factory: PrometheusMetricsFactory) {
        func counter(_ direction: String, _ form: String) -> CoreMetrics.Counter {
            CoreMetrics.Counter(
                label: "examhub_compression_bytes_total", dimensions: [("direction", direction), ("form", form)],
                factory: factory)
        }
        outRaw = counter("out", "raw")
        outWire = counter("out", "wire")
        inRaw = counter("in", "raw")
        inWire = counter("in", "wire")
    }

    func sent(raw: Int, wire: Int) {
        outRaw.increment(by: Int64(raw))
        outWire.increment(by: Int64(wire))
    }

    func received(raw: Int, wire: Int) {
        inRaw.increment(by: Int64(raw))
        inWire.increment(by: Int64(wire))
    }
}
