import ArgumentParser
import ExamHubDomain
import ExamHubServer
import ExamHubStore
import ExamHubWire
import ExamHubWorkers
import Foundation
import Logging
import ServiceLifecycle

/// `examhub worker notifications|analytics`: runs one outbox worker alone (several may run at once, on any number
/// of machines, against the shared PostgreSQL), or lists and replays its dead letters.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run an outbox worker (notifications or analytics), or list and replay its dead letters.",
        discussion: """
            With no option the worker runs until SIGTERM or SIGINT, finishing the batch in hand. `examhub serve` runs
            both workers in-process unless EXAMHUB_WORKERS says otherwise.
            """)

    @Argument(help: "notifications or analytics") var worker: String
    @Flag(help: "List the events parked as dead, then exit.") var deadLetters = false
    @Option(help: "Make a dead event pending again (repeatable), then exit.") var replay: [String] = []
    @Flag(help: "Make every dead event pending again, then exit.") var replayAll = false
    @Flag(help: "Work until no event is due, then exit.") var once = false
    @Flag(help: "Print dead letters as JSON lines.") var json = false
    @Option(help: "Serve /metrics and /healthz on this port (EXAMHUB_WORKER_METRICS_PORT; 0 or unset: none).")
    var metricsPort: Int?
    @Option(help: "Database URL (EXAMHUB_DATABASE_URL, default sqlite://./.examhub/examhub.db).") var databaseURL: String?
    @Option(help: "A YAML configuration file mirroring the EXAMHUB_* variables (EXAMHUB_CONFIG).") var config: String?

    func run() async throws {
        guard let kind = OutboxWorker(rawValue: worker) else {
            throw ValidationError("unknown worker \"\(worker)\": notifications or analytics")
        }
        let env = try Environment.resolved(configFile: config)
        let level = Logger.Level(rawValue: env["EXAMHUB_LOG_LEVEL"] ?? "info") ?? .info
        let json = try env.bool("EXAMHUB_LOG_JSON") ?? false
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler =
                json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "examhub.worker")
        let setup = try WorkerSetup.load(env)
        let url = try DatabaseURL(parsing: databaseURL ?? env["EXAMHUB_DATABASE_URL"] ?? DatabaseURL.defaultURL)
        let store = try StoreFactory.open(url, logger: logger)
        do {
            try await store.migrate()
            if deadLetters || !replay.isEmpty || replayAll {
                try await manageDeadLetters(kind, store: store)
                await store.close()
                return
            }
        } catch {
            await store.close()
            FileHandle.standardError.write(Data("examhub worker: \(error)\n".utf8))
            throw ExitCode.failure
        }

        let tracing = once ? nil : try TracingSetup.bootstrap(env, serviceName: "examhub-worker")
        let metrics = HubMetrics()
        let (runners, client) = setup.services([kind], store: store, registry: metrics.registry, logger: logger)
        if once {
            do {
                for runner in runners {
                    while try await runner.runOnce(now: Int64(Date().timeIntervalSince1970 * 1000)) > 0 {}
                }
            } catch {
                FileHandle.standardError.write(Data("examhub worker: \(error)\n".utf8))
            }
            try await client?.shutdown()
            await store.close()
            return
        }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let tracing { services.append(.init(service: tracing)) }
        services.append(.init(service: StoreService(store: store)))
        if let client { services.append(.init(service: HTTPClientService(client: client))) }
        services += runners.map { .init(service: $0) }
        if let port = try metricsPort ?? env.int("EXAMHUB_WORKER_METRICS_PORT"), port > 0 {
            services.append(.init(service: MetricsEndpoint(
                host: env["EXAMHUB_HOST"] ?? "127.0.0.1", port: port, registry: metrics.registry, logger: logger)))
        }
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    func manageDeadLetters(_ kind: OutboxWorker, store: any Store) async throws(HubError) {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        if replayAll || !replay.isEmpty {
            let count = try await store.replayDeadLetters(kind, ids: replayAll ? nil : replay, now: now)
            print("\(count) event(s) pending again for \(kind.rawValue)")
            return
        }
        let dead = try await store.deadLetters(kind, limit: 10_000)
        if json {
            for e in dead {
                let line: JSONValue = .object([
                    "id": .string(e.id), "type": .string(e.type), "tenant": .string(e.tenant),
                    "at": .string(Timestamp.format(millis: e.atMillis)), "attempts": .int(Int64(e.attempts)),
                    "error": e.lastError.map(JSONValue.string) ?? .null,
                ])
                print(line.jsonText)
            }
            return
        }
        print("\(dead.count) dead event(s) for \(kind.rawValue)")
        for e in dead {
            print("\(e.id)  \(e.type)  tenant=\(e.tenant)  at=\(Timestamp.format(millis: e.atMillis))  tries=\(e.attempts)  \(e.lastError ?? "")")
        }
    }
}
