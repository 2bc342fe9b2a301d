import ExamHubDomain
import GRDB
import Logging

import Foundation

/// The embedded store: one SQLite file in WAL mode through GRDB's `DatabasePool` (one writer, many readers).
/// Every write goes through `SQLiteWriteBatcher`: writes queued together share one transaction and one fsync.
public final class SQLiteStore: Store {
    private let writer: any DatabaseWriter
    private let batcher: SQLiteWriteBatcher
    /// Checkpoints the WAL off the writer's path (file databases only).
    private let checkpointer: SQLiteCheckpointer?
    private let logger: Logger

    /// Opens (and creates, with its folder) the database at `url`.
    public init(url: DatabaseURL, logger: Logger) throws(HubError) {
        self.logger = logger
        var config = Configuration()
        config.busyMode = .timeout(5)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(SQLiteCheckpointer.writerFallbackPages)")
        }
        do {
            switch url {
            case .sqliteInMemory:
                self.writer = try DatabaseQueue(configuration: config)
                self.checkpointer = nil
            case .sqlite(let path):
                let dir = path.contains("/") ? String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)]) : ""
                if !dir.isEmpty {
                    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                }
                self.writer = try DatabasePool(path: path, configuration: config)
                self.checkpointer = try SQLiteCheckpointer(path: path, logger: logger)
            case .postgres:
                throw HubError(.internal, "SQLiteStore cannot open a PostgreSQL URL")
            }
            self.batcher = SQLiteWriteBatcher(writer: writer)
        } catch let error as HubError {
            throw error
        } catch {
            throw HubError(.unavailable, "cannot open the SQLite database", debugDetail: "\(error)")
        }
    }

    private func mapError(_ error: any Error) -> HubError {
        if let hub = error as? HubError { return hub }
        if let db = error as? DatabaseError, db.resultCode == .SQLITE_FULL {
            // No space left for the database or its WAL: the transaction was rolled back, nothing was stored.
            return HubError(.unavailable, "the database is out of disk space; nothing was saved", debugDetail: "\(error)")
        }
        return HubError(.unavailable, "the database is unavailable", debugDetail: "\(error)")
    }

    public func migrate() async throws(HubError) {
        do {
            try await writer.write { db in
                try db.execute(
                    sql: "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)"
                )
                let applied = Set(try String.fetchAll(db, sql: "SELECT name FROM schema_migrations"))
                for migration in Migrations.all where !applied.contains(migration.name) {
                    for statement in migration.statements { try db.execute(sql: statement) }
                    try db.execute(
                        sql: "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                        arguments: [migration.name, Int64(Date().timeIntervalSince1970 * 1000)])
                }
            }
        } catch {
            throw mapError(error)
        }
    }

    public func appliedMigrations() async throws(HubError) -> [String] {
        do {
            return try await writer.read { db in
                guard try db.tableExists("schema_migrations") else { return [] }
                return try String.fetchAll(db, sql: "SELECT name FROM schema_migrations ORDER BY name")
            }
        } catch {
            throw mapError(error)
        }
    }

    public func ping() async throws(HubError) {
        do {
            _ = try await writer.read { db in try Int.fetchOne(db, sql: "SELECT 1") }
        } catch {
            throw mapError(error)
        }
    }

    public func channelResource(_ channel: ChannelName) async throws(HubError) -> ChannelResource {
        do {
            return try await writer.read { db -> ChannelResource in
                switch channel {
                case .attempt(let id):
                    guard
                        let row = try Row.fetchOne(
                            db, sql: "SELECT tenant, exam_id, candidate FROM attempts WHERE id = ?", arguments: [id])
                    else { return .missing }
                    return .attempt(tenant: row["tenant"], examID: row["exam_id"], candidate: row["candidate"])
                case .chat(let id):
                    guard
                        let row = try Row.fetchOne(
                            db, sql: "SELECT tenant, owner FROM conversations WHERE id = ?", arguments: [id])
                    else { return .missing }
                    return .conversation(tenant: row["tenant"], owner: row["owner"])
                case .examProctor:
                    return .missing
                }
            }
        } catch {
            throw mapError(error)
        }
    }

    public func insertAttempt(_ a: AttemptRecord) async throws(HubError) {
        do {
            try await batcher.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO attempts (id, tenant, exam_id, candidate, state, deadline_ms, started_ms)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [a.id, a.tenant, a.examID, a.candidate, a.state, a.deadlineMillis, a.startedMillis])
            }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw HubError(.conflict, "attempt already exists")
        } catch {
            throw mapError(error)
        }
    }

    public func insertConversation(id: String, tenant: String, owner: String) async throws(HubError) {
        do {
            try await batcher.write { db in
                try db.execute(
                    sql: "INSERT INTO conversations (id, tenant, owner, created_ms) VALUES (?, ?, ?, ?)",
                    arguments: [id, tenant, owner, Int64(Date().timeIntervalSince1970 * 1000)])
            }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw HubError(.conflict, "conversation already exists")
        } catch {
            throw mapError(error)
        }
    }

    /// Writes committed so far and the transactions that held them (group commit of every write).
    public var writeStats: (transactions: Int, writes: Int) { batcher.stats }

    /// Runs `body` in the next group transaction (in its own savepoint), mapping errors to `HubError`s. It returns
    /// once that transaction has committed.
    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws(HubError) -> T {
        do {
            return try await batcher.write(body)
        } catch {
            throw mapError(error)
        }
    }

    /// Runs `body` in a read transaction, mapping errors to `HubError`s.
    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws(HubError) -> T {
        do {
            return try await writer.read(body)
        } catch {
            throw mapError(error)
        }
    }

    public func close() async {
        await checkpointer?.close()
        do {
            if let pool = writer as? DatabasePool { try pool.close() }
            if let queue = writer as? DatabaseQueue { try queue.close() }
        } catch {
            logger.warning("closing the SQLite store failed", metadata: ["examhub.error": "\(error)"])
        }
    }
}
