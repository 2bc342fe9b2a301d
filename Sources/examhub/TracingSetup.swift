import ArgumentParser
import OTel
import ServiceLifecycle
import Tracing

/// Distributed tracing, off by default: when `EXAMHUB_OTLP_ENDPOINT` is set, spans are exported with swift-otel's
/// OTLP/HTTP exporter (protobuf, or JSON with `EXAMHUB_OTLP_PROTOCOL=http/json`), W3C trace context is propagated to
/// webhooks and LLM requests, and the standard `OTEL_*` variables refine the exporter (sampler, headers, batch).
///
/// Spans: `examhub.op <op>` (a socket op's work off the event loop), `examhub.store.commit` (a group commit of
/// saves), `examhub.llm.request` (one try at one provider), `examhub.outbox.deliver` (one event's deliveries) and
/// `examhub.outbox.analytics` (one roll-up transaction).
enum TracingSetup {
    /// Bootstraps the process's tracer when tracing is configured; returns the exporter's service (to run first in
    /// the service group, so it is stopped last and flushes what the others recorded), or nil when tracing is off.
    static func bootstrap(_ env: Environment, serviceName: String) throws -> (any Service)? {
        guard let endpoint = env["EXAMHUB_OTLP_ENDPOINT"] else { return nil }
        guard endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://") else {
            throw ValidationError("EXAMHUB_OTLP_ENDPOINT must be an http:// or https:// URL, got \"\(endpoint)\"")
        }
        var config = OTel.Configuration.default
        config.serviceName = env["EXAMHUB_OTLP_SERVICE_NAME"] ?? serviceName
        config.logs.enabled = false
        config.metrics.enabled = false
        config.traces.enabled = true
        config.propagators = [.traceContext]
        let base = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
        config.traces.otlpExporter.endpoint = base.hasSuffix("/v1/traces") ? base : base + "/v1/traces"
        switch env["EXAMHUB_OTLP_PROTOCOL"] ?? "http/protobuf" {
        case "http/protobuf": config.traces.otlpExporter.protocol = .httpProtobuf
        case "http/json": config.traces.otlpExporter.protocol = .httpJSON
        case let other:
            throw ValidationError("EXAMHUB_OTLP_PROTOCOL must be http/protobuf or http/json, got \"\(other)\"")
        }
        if let delay = try env.int("EXAMHUB_OTLP_EXPORT_MS") {
            config.traces.batchSpanProcessor.scheduleDelay = .milliseconds(max(10, delay))
        }
        let (tracer, service) = try OTel.makeTracingBackend(configuration: config)
        InstrumentationSystem.bootstrap(tracer)
        return service
    }
}
