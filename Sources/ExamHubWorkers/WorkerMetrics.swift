import CoreMetrics
import ExamHubStore
import Prometheus

/// The workers' metrics, on the Prometheus registry `/metrics` renders (the hub's own when the workers run in
/// `examhub serve`, the worker's when it runs alone).
///
/// - `examhub_outbox_pending{worker}`: events not yet done (pending or claimed).
/// - `examhub_outbox_lag_seconds{worker}`: age of the oldest of them (0 when none).
/// - `examhub_outbox_dead{worker}`: events parked as dead.
/// - `examhub_outbox_delivered_total{worker,result}`: `ok`, `retry` or `dead` per event and try.
/// - `examhub_analytics_total{metric,key}`: what the analytics worker has counted (the report's roll-ups summed
///   over exams; keys are flag codes, actions, intents and providers, so their number stays small).
public final class WorkerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let pending: [OutboxWorker: CoreMetrics.Gauge]
    private let lag: [OutboxWorker: CoreMetrics.Gauge]
    private let dead: [OutboxWorker: CoreMetrics.Gauge]
    private let results: [String: CoreMetrics.Counter]

    public init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        let factory = PrometheusMetricsFactory(registry: registry)
        self.factory = factory
        var pending: [OutboxWorker: CoreMetrics.Gauge] = [:]
        var lag: [OutboxWorker: CoreMetrics.Gauge] = [:]
        var dead: [OutboxWorker: CoreMetrics.Gauge] = [:]
        var results: [String: CoreMetrics.Counter] = [:]
        for worker in OutboxWorker.allCases {
            let w = [("worker", worker.rawValue)]
            pending[worker] = CoreMetrics.Gauge(label: "examhub_outbox_pending", dimensions: w, factory: factory)
            lag[worker] = CoreMetrics.Gauge(label: "examhub_outbox_lag_seconds", dimensions: w, factory: factory)
            dead[worker] = CoreMetrics.Gauge(label: "examhub_outbox_dead", dimensions: w, factory: factory)
            for result in ["ok", "retry", "dead"] {
                results["\(worker.rawValue)/\(result)"] = CoreMetrics.Counter(
                    label: "examhub_outbox_delivered_total", dimensions: w + [("result", result)], factory: factory)
            }
        }
        self.pending = pending
        self.lag = lag
        self.dead = dead
        self.results = results
    }

    func delivered(_ worker: OutboxWorker, result: String, count: Int) {
        guard count > 0 else { return }
        results["\(worker.rawValue)/\(result)"]?.increment(by: count)
    }

    func backlog(_ worker: OutboxWorker, _ backlog: OutboxBacklog, now: Int64) {
        pending[worker]?.record(backlog.pending)
        dead[worker]?.record(backlog.dead)
        let age = backlog.oldestMillis.map { Double(max(0, now - $0)) / 1000 } ?? 0
        lag[worker]?.record(age)
    }

    func counted(_ stats: [ExamStat]) {
        for s in stats where s.value > 0 {
            CoreMetrics.Counter(
                label: "examhub_analytics_total", dimensions: [("metric", s.metric), ("key", s.key)], factory: factory
            ).increment(by: Int(clamping: s.value))
        }
    }
}
