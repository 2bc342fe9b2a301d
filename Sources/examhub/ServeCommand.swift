import ArgumentParser
import ExamHubAuth
import ExamHubCluster
import ExamHubDomain
import ExamHubPostgres
import ExamHubServer
import ExamHubStore
import Foundation
import Logging
import ServiceLifecycle

/// `examhub serve`: runs a node. With no configuration: 127.0.0.1:8080, SQLite under `./.examhub/`, dev mode
/// with a token printed per role.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Run a hub node (configuration from flags and EXAMHUB_* variables).")

    @Option(help: "Listen host (EXAMHUB_HOST, default 127.0.0.1).") var host: String?
    @Option(help: "Listen port, 0 for any free port (EXAMHUB_PORT, default 8080).") var port: Int?
    @Option(help: "Database URL (EXAMHUB_DATABASE_URL, default sqlite://./.examhub/examhub.db).") var databaseURL: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error (EXAMHUB_LOG_LEVEL, default info).")
    var logLevel: String?
    @Flag(help: "Write logs as JSON lines (EXAMHUB_LOG_JSON=1).") var logJSON = false
    @Option(help: "A YAML configuration file mirroring the EXAMHUB_* variables (EXAMHUB_CONFIG).") var config: String?

    func run() async throws {
        let env = try Environment.resolved(configFile: self.config)
        var config = try env.hubConfiguration()
        if let host { config.host = host }
        if let port { config.port = port }
        do { try config.validate() } catch { throw ValidationError(error.message) }
        var tls: TLSCertificateStore?
        if let cert = config.tlsCertificatePath, let key = config.tlsKeyPath {
            do { tls = try TLSCertificateStore(certificatePath: cert, keyPath: key) } catch {
                throw ValidationError(error.message)
            }
        }

        let level = Logger.Level(rawValue: logLevel ?? env["EXAMHUB_LOG_LEVEL"] ?? "info") ?? .info
        let jsonFromEnv = try env.bool("EXAMHUB_LOG_JSON") ?? false
        let json = logJSON || jsonFromEnv
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler =
                json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "examhub")

        let secret: String?
        if let configured = env["EXAMHUB_JWT_SECRET"] {
            secret = configured
        } else if config.devMode {
            secret = Self.randomSecret()
        } else {
            secret = nil
        }
        var jwks: String?
        if let source = env["EXAMHUB_JWKS"] {
            jwks = try JWKSSource.load(source)
        }
        guard secret != nil || jwks != nil else {
            throw ValidationError("set EXAMHUB_JWT_SECRET or EXAMHUB_JWKS (or EXAMHUB_DEV=1 for development)")
        }
        let verifier = try await TokenVerifier(
            configuration: .init(
                hmacSecret: secret, jwksJSON: jwks, issuer: env["EXAMHUB_JWT_ISSUER"],
                audience: env["EXAMHUB_JWT_AUDIENCE"]))

        let profiles = try env.profileLibrary()
        let tracing = try TracingSetup.bootstrap(env, serviceName: "examhub")
        config.tracingEnabled = tracing != nil
        let workers = try WorkerSetup.inProcessWorkers(env)
        let workerSetup = try WorkerSetup.load(env)
        let url = try DatabaseURL(parsing: databaseURL ?? env["EXAMHUB_DATABASE_URL"] ?? DatabaseURL.defaultURL)
        let store = try StoreFactory.open(url, logger: logger)
        try await store.migrate()
        logger.info("store ready", metadata: ["examhub.database": "\(url)"])
        let metrics = HubMetrics()
        let cluster = try env.cluster(store: store, hub: config, metrics: metrics, logger: logger)

        let assistant = try await AssistantSetupLoader.load(env, store: store, logger: logger)

        if config.devMode, let secret {
            try await Self.printDevTokens(secret: secret, config: config)
        }
        // Dev mode only: `GET /demo/token` mints tokens for the demo pages with the node's own secret.
        var devMinter: TokenMinter?
        if config.devMode, let secret { devMinter = try await TokenMinter(secret: secret) }
        let listenHost = config.host
        let server = HubServer(
            configuration: config, store: store, verifier: verifier, metrics: metrics, logger: logger,
            profiles: profiles, assistant: assistant, devTokenMinter: devMinter, cluster: cluster, tls: tls,
            onServerRunning: { address in
                let port = address.port ?? 0
                FileHandle.standardOutput.write(Data("examhub listening on \(listenHost):\(port)\n".utf8))
            })
        // Started in this order, stopped in reverse: the socket server drains first, the store closes last.
        let (runners, deliveryClient) = workerSetup.services(
            workers, store: store, registry: metrics.registry, logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let tracing { services.append(.init(service: tracing)) }  // stopped last: flushes every span
        services.append(.init(service: StoreService(store: store)))
        if let cluster {
            // After the store, before everything that publishes: it stops after the sockets have drained.
            cluster.attach(server.clusterSink)
            services.append(.init(service: cluster))
            logger.info("sharing channels with the other nodes on this database", metadata: ["examhub.node": "\(cluster.nodeID)"])
        }
        if let deliveryClient { services.append(.init(service: HTTPClientService(client: deliveryClient))) }
        services += runners.map { .init(service: $0) }
        services += [
            .init(service: server.saveBatcher), .init(service: server.clockService),
            .init(service: server.proctoringService),
        ]
        if let tls { services.append(.init(service: await CertificateReloadService(store: tls, logger: logger))) }
        if config.mallocTrimSeconds > 0 {
            services.append(.init(service: MemoryTrimService(intervalSeconds: config.mallocTrimSeconds, logger: logger)))
        }
        services.append(.init(service: server))
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }

    static func randomSecret() -> String {
        (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }

    static func printDevTokens(secret: String, config: HubConfiguration) async throws {
        let minter = try await TokenMinter(secret: secret)
        var lines = ["examhub dev mode: tokens for tenant \"demo\", valid 12 hours (do not use in production)"]
        for role in Role.allCases {
            let token = try await minter.mint(sub: "dev-\(role.rawValue)", tenant: "demo", role: role, ttlSeconds: 43_200)
            lines.append("  \(role.rawValue): \(token)")
        }
        FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n").utf8))
    }
}

/// Holds the store for the service group: for PostgreSQL it runs the store's connection pool alongside, and on
/// graceful shutdown it closes the store after every service started after it (the socket server, the save
/// batcher) has drained, so in-flight commits finish first.
struct StoreService: Service {
    let store: any Store

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            if let postgres = store as? PostgresStore {
                // Returns once the store is closed below (or closes it if the group is cancelled).
                group.addTask { await postgres.run() }
            }
            try? await gracefulShutdown()
            await store.close()
            await group.waitForAll()
        }
    }
}

/// Opens the store an URL names: SQLite for `sqlite://`, PostgreSQL for `postgres://` (its connection pool starts
/// at once, so `migrate()` works before the service group runs).
enum StoreFactory {
    static func open(_ url: DatabaseURL, logger: Logger) throws -> any Store {
        switch url {
        case .sqlite, .sqliteInMemory:
            return try SQLiteStore(url: url, logger: logger)
        case .postgres:
            let store: PostgresStore
            do {
                store = try PostgresStore(url: url, logger: logger)
            } catch {
                if error.code == .badRequest { throw ValidationError("EXAMHUB_DATABASE_URL: \(error.message)") }
                throw error
            }
            return store
        }
    }
}

/// Reads a JWKS from a file path (URLs are fetched by a later version).
enum JWKSSource {
    static func load(_ source: String) throws -> String {
        if source.hasPrefix("http://") || source.hasPrefix("https://") {
            throw ValidationError("EXAMHUB_JWKS as a URL is not supported yet; give a file path")
        }
        guard let data = FileManager.default.contents(atPath: source), let text = String(data: data, encoding: .utf8)
        else { throw ValidationError("EXAMHUB_JWKS: cannot read \(source)") }
        return text
    }
}

extension HubError {
    var messageText: String { message }
}
