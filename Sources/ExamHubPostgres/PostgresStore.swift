import ExamHubDomain
import ExamHubStore
import Foundation
import Logging
import NIOConcurrencyHelpers
import PostgresNIO

/// The production store: PostgreSQL through postgres-nio's `PostgresClient` (a connection pool), shared by several
/// hub nodes. Same tables, migrations, errors and behaviour as ``SQLiteStore``; what differs is how concurrent
/// nodes are kept apart: an attempt's row is locked (`FOR UPDATE`) by every transaction that changes it, joins use
/// `INSERT ... ON CONFLICT DO NOTHING`, and the deadline sweep skips rows another node holds (`SKIP LOCKED`).
///
/// The pool starts with the store (so that `migrate()` works before any service runs) and stops with ``close()``;
/// ``run()`` lets a `ServiceGroup` hold it. Every operation has a deadline: when the database cannot be reached,
/// calls throw `unavailable` within ``Options/operationTimeout`` (``ping()`` within ``Options/pingTimeout``) instead
/// of waiting on the pool, and the pool keeps reconnecting, so the same store serves again once the database is back.
public final class PostgresStore: Store, Sendable {
    /// Pool and time-out settings.
    public struct Options: Sendable {
        /// The most connections the pool opens.
        public var maximumConnections = 20
        /// How long opening one TCP connection may take (the URL's `connect_timeout` overrides it).
        public var connectTimeout: Duration = .seconds(3)
        /// How long any store call may take, waiting for a connection included, before it throws `unavailable`.
        public var operationTimeout: Duration = .seconds(5)
        /// How long ``PostgresStore/ping()`` may take (for `/readyz`).
        public var pingTimeout: Duration = .seconds(2)
        /// The server-side `statement_timeout` of every connection, so that work abandoned by a time-out ends.
        public var statementTimeout: Duration = .seconds(30)
        /// When nothing has succeeded for this long and a call cannot get a connection, a fresh pool replaces the
        /// old one (whose reconnect back-off may have grown to a minute); at most once per this interval.
        public var reconnectAfter: Duration = .seconds(5)
        /// How long one migration may take (`statement_timeout` is lifted inside it).
        public var migrationTimeout: Duration = .seconds(600)

        public init() {}
    }

    /// Where the store connects (password masked in its description).
    public let settings: PostgresSettings
    let options: Options
    let logger: Logger
    let pool: PostgresPool

    /// Opens a store for a `postgres://` URL. Starts the connection pool; nothing is connected until first use.
    public convenience init(url: DatabaseURL, options: Options = Options(), logger: Logger) throws(HubError) {
        guard case .postgres(let raw) = url else {
            throw HubError(.internal, "PostgresStore needs a postgres:// URL, not \(url)")
        }
        self.init(settings: try PostgresSettings(parsing: raw), options: options, logger: logger)
    }

    /// Opens a store for parsed settings. Starts the connection pool; nothing is connected until first use.
    public init(settings: PostgresSettings, options: Options = Options(), logger: Logger) {
        self.settings = settings
        self.options = options
        self.logger = logger
        var config = PostgresClient.Configuration(
            host: settings.host, port: settings.port, username: settings.username, password: settings.password,
            database: settings.database, tls: settings.tls)
        config.options.maximumConnections = max(1, options.maximumConnections)
        config.options.connectTimeout = settings.connectTimeoutSeconds.map { .seconds($0) } ?? options.connectTimeout
        let statementMillis = options.statementTimeout.components.seconds * 1000
            + options.statementTimeout.components.attoseconds / 1_000_000_000_000_000
        config.options.additionalStartupParameters = [
            ("statement_timeout", String(max(0, statementMillis))),
            ("application_name", "examhub"),
        ]
        var background = logger
        background[metadataKey: "examhub.component"] = "postgres-pool"
        self.pool = PostgresPool(configuration: config, recycleAfter: options.reconnectAfter, logger: background)
    }

    /// Holds the store's connection pool for a `ServiceGroup`: returns once the store is closed, and closes it if
    /// the calling task is cancelled. The pool itself runs from `init` on, so calls made before (migrations) work.
    public func run() async {
        await withTaskCancellationHandler {
            await pool.waitUntilClosed()
        } onCancel: {
            Task { await self.close() }
        }
    }

    /// Stops the pool and closes every connection. Calls made afterwards throw `unavailable`.
    public func close() async {
        await pool.close()
    }

    // MARK: Schema

    /// An arbitrary key for the advisory lock that serializes migrations across nodes.
    private static let migrationLockKey: Int64 = 0x4558_414D_4855_42  // "EXAMHUB"

    public func migrate() async throws(HubError) {
        let logger = self.logger
        for migration in Migrations.all {
            let statements = PostgresSchema.statements(for: migration)
            let name = migration.name
            try await transaction("migrate \(name)", timeout: options.migrationTimeout) { conn in
                try await conn.query("SET LOCAL statement_timeout = 0", logger: logger)
                try await conn.query("SELECT pg_advisory_xact_lock(\(Self.migrationLockKey))", logger: logger)
                try await conn.query(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)",
                    logger: logger)
                let applied = try await conn.query(
                    "SELECT name FROM schema_migrations WHERE name = \(name)", logger: logger
                ).collect()
                guard applied.isEmpty else { return }
                for statement in statements {
                    try await conn.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                let at = Int64(Date().timeIntervalSince1970 * 1000)
                try await conn.query(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES (\(name), \(at))", logger: logger)
            }
        }
    }

    public func appliedMigrations() async throws(HubError) -> [String] {
        let logger = self.logger
        return try await connection("appliedMigrations") { conn in
            let exists = try await conn.query(
                "SELECT to_regclass('schema_migrations') IS NOT NULL", logger: logger
            ).collect()
            guard try exists.first?.decode(Bool.self) == true else { return [] }
            var names: [String] = []
            for try await name in try await conn.query(
                "SELECT name FROM schema_migrations ORDER BY name", logger: logger
            ).decode(String.self) {
                names.append(name)
            }
            return names
        }
    }

    public func ping() async throws(HubError) {
        let logger = self.logger
        try await connection("ping", timeout: options.pingTimeout) { conn in
            try await conn.query("SELECT 1", logger: logger)
        }
    }

    // MARK: Lookups and inserts

    public func channelResource(_ channel: ChannelName) async throws(HubError) -> ChannelResource {
        let logger = self.logger
        switch channel {
        case .attempt(let id):
            guard !Self.hasNUL(id) else { return .missing }
            return try await connection("channelResource") { conn in
                let rows = try await conn.query(
                    "SELECT tenant, exam_id, candidate FROM attempts WHERE id = \(id)", logger: logger
                ).collect()
                guard let row = rows.first else { return .missing }
                let (tenant, examID, candidate) = try row.decode((String, String, String).self)
                return .attempt(tenant: tenant, examID: examID, candidate: candidate)
            }
        case .chat(let id):
            guard !Self.hasNUL(id) else { return .missing }
            return try await connection("channelResource") { conn in
                let rows = try await conn.query(
                    "SELECT tenant, owner FROM conversations WHERE id = \(id)", logger: logger
                ).collect()
                guard let row = rows.first else { return .missing }
                let (tenant, owner) = try row.decode((String, String).self)
                return .conversation(tenant: tenant, owner: owner)
            }
        case .examProctor:
            return .missing
        }
    }

    public func insertAttempt(_ a: AttemptRecord) async throws(HubError) {
        try Self.refuseNUL(a.id, a.tenant, a.examID, a.candidate, a.state)
        let logger = self.logger
        try await connection("insertAttempt", conflict: "attempt already exists") { conn in
            try await conn.query(
                """
                INSERT INTO attempts (id, tenant, exam_id, candidate, state, deadline_ms, started_ms)
                VALUES (\(a.id), \(a.tenant), \(a.examID), \(a.candidate), \(a.state), \(a.deadlineMillis), \(a.startedMillis))
                """, logger: logger)
        }
    }

    public func insertConversation(id: String, tenant: String, owner: String) async throws(HubError) {
        try Self.refuseNUL(id, tenant, owner)
        let logger = self.logger
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try await connection("insertConversation", conflict: "conversation already exists") { conn in
            try await conn.query(
                "INSERT INTO conversations (id, tenant, owner, created_ms) VALUES (\(id), \(tenant), \(owner), \(now))",
                logger: logger)
        }
    }

    // MARK: Running work

    /// Runs `body` on a pooled connection (autocommit), within the deadline, mapping errors to `HubError`s;
    /// a unique violation becomes `conflict` with `conflict` as its message when given.
    @discardableResult
    func connection<T: Sendable>(
        _ what: String, timeout: Duration? = nil, conflict: String? = nil,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws(HubError) -> T {
        guard let (client, generation) = pool.current() else {
            throw HubError(.unavailable, "the database store is closed")
        }
        // Waiting for a connection never takes longer than the operation timeout (or `timeout` when shorter);
        // once connected, the work itself may take `timeout` in all.
        let wait = min(timeout ?? options.operationTimeout, options.operationTimeout)
        let limit = max(timeout ?? options.operationTimeout, wait)
        let leased = NIOLockedValueBox(false)
        do {
            let value = try await withDeadline(wait, extendedTo: limit, started: { leased.withLockedValue { $0 } }) {
                try await client.withConnection { conn in
                    leased.withLockedValue { $0 = true }
                    return try await body(conn)
                }
            }
            pool.noteSuccess()
            return value
        } catch {
            var mapped = Self.hubError(error, what: what, conflict: conflict)
            if mapped.code == .unavailable, !leased.withLockedValue({ $0 }) {
                if error is DeadlineExceeded {
                    mapped = HubError(
                        .unavailable, "cannot connect to the database",
                        debugDetail: "\(what): no connection within \(wait) (the postgres-pool log lines say why)")
                }
                pool.noteNoConnection(generation: generation)
            } else if mapped.code != .unavailable {
                pool.noteSuccess()  // the database answered
            }
            if mapped.code == .unavailable || mapped.code == .internal {
                logger.warning(
                    "postgres: \(what) failed",
                    metadata: ["examhub.error": "\(mapped.debugDetail ?? mapped.message)"])
            }
            throw mapped
        }
    }

    /// Runs `body` in one transaction (READ COMMITTED) on a pooled connection, within the deadline. Any error rolls
    /// back; when even the rollback fails the connection is closed, so the pool never hands out a connection left
    /// inside a transaction.
    @discardableResult
    func transaction<T: Sendable>(
        _ what: String, timeout: Duration? = nil, conflict: String? = nil,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws(HubError) -> T {
        let logger = self.logger
        return try await connection(what, timeout: timeout, conflict: conflict) { conn in
            try await conn.query("BEGIN", logger: logger)
            do {
                let value = try await body(conn)
                try await conn.query("COMMIT", logger: logger)
                return value
            } catch {
                do {
                    try await conn.query("ROLLBACK", logger: logger)
                } catch {
                    try? await conn.close()
                }
                throw error
            }
        }
    }

    /// Maps anything postgres-nio, the pool or the deadline throw to a `HubError`.
    static func hubError(_ error: any Error, what: String, conflict: String?) -> HubError {
        if let hub = error as? HubError { return hub }
        if let deadline = error as? DeadlineExceeded {
            return HubError(
                .unavailable, "the database did not answer in time",
                debugDetail: "\(what): no answer within \(deadline.timeout)")
        }
        if let psql = error as? PSQLError {
            if psql.code == .server, let state = psql.serverInfo?[.sqlState] {
                let message = psql.serverInfo?[.message] ?? ""
                let detail = "\(what): SQLSTATE \(state): \(message)"
                if state == "23505" {
                    return HubError(.conflict, conflict ?? "already exists", debugDetail: detail)
                }
                // Connection trouble (08), too many connections or out of resources (53), shutting down or
                // restarting (57), system errors (58), deadlock or serialization failure (40): retry later.
                if ["08", "53", "57", "58", "40"].contains(String(state.prefix(2))) {
                    return HubError(.unavailable, "the database is unavailable", debugDetail: detail)
                }
                return HubError(.internal, "the database refused a statement", debugDetail: detail)
            }
            return HubError(
                .unavailable, "the database is unavailable", debugDetail: "\(what): \(String(reflecting: psql))")
        }
        if error is PostgresDecodingError {
            return HubError(.internal, "a stored row is unreadable", debugDetail: "\(what): \(String(reflecting: error))")
        }
        return HubError(.unavailable, "the database is unavailable", debugDetail: "\(what): \(String(reflecting: error))")
    }

    /// PostgreSQL text cannot hold U+0000.
    static func hasNUL(_ strings: String...) -> Bool {
        strings.contains { $0.utf8.contains(0) }
    }

    static func refuseNUL(_ strings: String...) throws(HubError) {
        if strings.contains(where: { $0.utf8.contains(0) }) {
            throw .badRequest("identifiers may not contain NUL characters")
        }
    }
}

/// The shared migrations as PostgreSQL runs them. Every statement of ``Migrations`` runs unchanged on PostgreSQL
/// today; a statement that ever needs another spelling there gets an override here, keyed by migration and index.
enum PostgresSchema {
    static let overrides: [String: [Int: String]] = [:]

    static func statements(for migration: Migrations.Migration) -> [String] {
        if let own = migration.postgresStatements { return own }
        return migration.statements.enumerated().map { index, statement in
            overrides[migration.name]?[index] ?? statement
        }
    }
}
