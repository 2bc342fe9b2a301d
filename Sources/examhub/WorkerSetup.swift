import ArgumentParser
import AsyncHTTPClient
import ExamHubStore
import ExamHubWorkers
import Foundation
import Logging
import Prometheus
import ServiceLifecycle

/// Builds the outbox workers from `EXAMHUB_*` variables, for `examhub serve` (in-process) and `examhub worker`.
struct WorkerSetup {
    var configuration: WorkerConfiguration
    var rules: NotificationRules
    var mail: MailSettings?

    /// Reads and checks the worker settings; a bad notifications file stops the start with every problem.
    static func load(_ env: Environment) throws -> WorkerSetup {
        var c = WorkerConfiguration()
        if let v = try env.int("EXAMHUB_OUTBOX_BATCH") {
            guard (1...10_000).contains(v) else { throw ValidationError("EXAMHUB_OUTBOX_BATCH must be 1-10000") }
            c.batchSize = v
        }
        if let v = try env.int("EXAMHUB_OUTBOX_POLL_MS") {
            guard (10...60_000).contains(v) else { throw ValidationError("EXAMHUB_OUTBOX_POLL_MS must be 10-60000") }
            c.pollMillis = Int64(v)
        }
        if let v = try env.double("EXAMHUB_OUTBOX_LEASE_SEC") {
            guard v >= 1 else { throw ValidationError("EXAMHUB_OUTBOX_LEASE_SEC must be at least 1") }
            c.leaseMillis = Int64(v * 1000)
        }
        if let v = try env.int("EXAMHUB_OUTBOX_MAX_ATTEMPTS") {
            guard v >= 1 else { throw ValidationError("EXAMHUB_OUTBOX_MAX_ATTEMPTS must be at least 1") }
            c.retry.maxAttempts = v
        }
        if let v = try env.int("EXAMHUB_OUTBOX_RETRY_BASE_MS") {
            guard v >= 1 else { throw ValidationError("EXAMHUB_OUTBOX_RETRY_BASE_MS must be at least 1") }
            c.retry.baseMillis = Int64(v)
        }
        if let v = try env.int("EXAMHUB_OUTBOX_RETENTION_DAYS") {
            guard v >= 1 else { throw ValidationError("EXAMHUB_OUTBOX_RETENTION_DAYS must be at least 1") }
            c.retentionDays = v
        }
        if let v = try env.int("EXAMHUB_NOTIFY_CONCURRENCY") {
            guard (1...1000).contains(v) else { throw ValidationError("EXAMHUB_NOTIFY_CONCURRENCY must be 1-1000") }
            c.deliveryConcurrency = v
        }
        if let v = try env.int("EXAMHUB_WEBHOOK_TIMEOUT_SEC") {
            guard (1...300).contains(v) else { throw ValidationError("EXAMHUB_WEBHOOK_TIMEOUT_SEC must be 1-300") }
            c.requestTimeoutSeconds = Int64(v)
        }
        c.leaseMillis = max(c.leaseMillis, c.requestTimeoutSeconds * 1000 * 2)

        var rules = NotificationRules()
        if let path = env["EXAMHUB_NOTIFICATIONS"] {
            do {
                rules = try NotificationRules.load(path: path, environment: env.values)
            } catch {
                throw ValidationError("EXAMHUB_NOTIFICATIONS:\n\(error.description)")
            }
        }
        var mail: MailSettings?
        if let url = env["EXAMHUB_MAIL_URL"] {
            guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
                throw ValidationError("EXAMHUB_MAIL_URL must be an http:// or https:// address")
            }
            guard let key = env["EXAMHUB_MAIL_API_KEY"] else {
                throw ValidationError("EXAMHUB_MAIL_URL is set but EXAMHUB_MAIL_API_KEY is not")
            }
            mail = MailSettings(baseURL: url, apiKey: key, from: env["EXAMHUB_MAIL_FROM"] ?? "no-reply@examhub.invalid")
        }
        if rules.sendsEmail && mail == nil {
            throw ValidationError("EXAMHUB_NOTIFICATIONS has email rules: set EXAMHUB_MAIL_URL and EXAMHUB_MAIL_API_KEY")
        }
        return WorkerSetup(configuration: c, rules: rules, mail: mail)
    }

    /// Which workers `examhub serve` runs in-process (`EXAMHUB_WORKERS`: `all`, the default, `none`, or a list).
    static func inProcessWorkers(_ env: Environment) throws -> [OutboxWorker] {
        let raw = env["EXAMHUB_WORKERS"]?.lowercased() ?? "all"
        switch raw {
        case "all": return OutboxWorker.allCases
        case "none", "off", "0": return []
        default:
            var out: [OutboxWorker] = []
            for name in raw.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
                guard let w = OutboxWorker(rawValue: name) else {
                    throw ValidationError("EXAMHUB_WORKERS: unknown worker \"\(name)\" (all, none, notifications, analytics)")
                }
                out.append(w)
            }
            return out
        }
    }

    /// The services running `workers` against `store`, and the HTTP client to shut down after them (if any).
    func services(
        _ workers: [OutboxWorker], store: any Store, registry: PrometheusCollectorRegistry, logger: Logger
    ) -> (runners: [OutboxRunner], client: HTTPClient?) {
        let metrics = WorkerMetrics(registry: registry)
        var runners: [OutboxRunner] = []
        var client: HTTPClient?
        for worker in workers {
            let processor: any OutboxProcessor
            switch worker {
            case .analytics:
                processor = AnalyticsProcessor(store: store, metrics: metrics)
            case .notifications:
                let http = client ?? NotificationProcessor.makeClient(configuration: configuration)
                client = http
                processor = NotificationProcessor(
                    rules: rules, mail: mail, store: store, client: http, configuration: configuration, logger: logger)
            }
            runners.append(
                OutboxRunner(store: store, processor: processor, configuration: configuration, metrics: metrics, logger: logger))
        }
        return (runners, client)
    }
}

/// Shuts the delivery HTTP client down on graceful shutdown. It is placed before the workers in the service group,
/// so the group stops the workers (in reverse order) before it.
struct HTTPClientService: Service {
    let client: HTTPClient

    func run() async throws {
        try? await gracefulShutdown()
        try await client.shutdown()
    }
}
