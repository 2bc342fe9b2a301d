import ExamHubDomain
import ExamHubStore
import Logging
import PostgresNIO

/// The outbox workers' side of the PostgreSQL store (see ``OutboxStore``). A claim is one statement that picks
/// due rows with `FOR UPDATE SKIP LOCKED` and leases them to the worker, so any number of worker processes on any
/// number of nodes share the work without handing the same event to two of them while a lease holds.
extension PostgresStore {
    public func claimOutbox(_ worker: OutboxWorker, owner: String, limit: Int, leaseMillis: Int64, now: Int64)
        async throws(HubError) -> [OutboxEvent]
    {
        try Self.refuseNUL(owner)
        let c = worker.columnPrefix
        let logger = self.logger
        let leaseUntil = now + leaseMillis
        return try await connection("claimOutbox") { conn in
            let rows = try await conn.query(
                """
                UPDATE outbox SET \(unescaped: c)_state = 'claimed', \(unescaped: c)_owner = \(owner),
                    \(unescaped: c)_next_ms = \(leaseUntil), \(unescaped: c)_attempts = \(unescaped: c)_attempts + 1
                WHERE id IN (
                    SELECT id FROM outbox
                    WHERE \(unescaped: c)_state IN ('pending', 'claimed') AND \(unescaped: c)_next_ms <= \(now)
                    ORDER BY \(unescaped: c)_next_ms LIMIT \(limit) FOR UPDATE SKIP LOCKED)
                RETURNING id, tenant, type, at_ms, payload, \(unescaped: c)_attempts, \(unescaped: c)_error
                """, logger: logger
            ).collect()
            return try rows.map(Self.outboxEvent(_:)).sorted { ($0.atMillis, $0.id) < ($1.atMillis, $1.id) }
        }
    }

    @discardableResult
    public func completeOutbox(_ worker: OutboxWorker, owner: String, ids: [String], now: Int64) async throws(HubError)
        -> Int
    {
        guard !ids.isEmpty, !Self.hasNUL(owner) else { return 0 }
        let logger = self.logger
        return try await connection("completeOutbox") { conn in
            try await Self.markDone(conn, logger: logger, worker: worker, owner: owner, ids: ids, now: now).count
        }
    }

    public func failOutbox(_ worker: OutboxWorker, owner: String, failures: [OutboxFailure], now: Int64)
        async throws(HubError)
    {
        guard !failures.isEmpty, !Self.hasNUL(owner) else { return }
        let c = worker.columnPrefix
        let logger = self.logger
        let ids = failures.map(\.id)
        let states = failures.map { $0.retryAtMillis == nil ? "dead" : "pending" }
        let next = failures.map { $0.retryAtMillis ?? now }
        let errors = failures.map { String($0.error.replacingOccurrences(of: "\u{0}", with: "").prefix(2000)) }
        try await connection("failOutbox") { conn in
            try await conn.query(
                """
                UPDATE outbox o SET \(unescaped: c)_state = f.state, \(unescaped: c)_next_ms = f.next_ms,
                    \(unescaped: c)_error = f.error, \(unescaped: c)_owner = NULL
                FROM unnest(\(ids)::text[], \(states)::text[], \(next)::bigint[], \(errors)::text[])
                    AS f(id, state, next_ms, error)
                WHERE o.id = f.id AND o.\(unescaped: c)_state = 'claimed' AND o.\(unescaped: c)_owner = \(owner)
                """, logger: logger)
        }
    }

    @discardableResult
    public func applyAnalytics(owner: String, events: [OutboxEvent], now: Int64) async throws(HubError) -> AnalyticsBatch {
        guard !events.isEmpty, !Self.hasNUL(owner) else { return AnalyticsBatch() }
        let logger = self.logger
        return try await transaction("applyAnalytics") { conn in
            let held = Set(try await Self.markDone(
                conn, logger: logger, worker: .analytics, owner: owner, ids: events.map(\.id), now: now))
            let mine = events.filter { held.contains($0.id) }
            guard !mine.isEmpty else { return AnalyticsBatch() }
            var attempts: [String: RollupAttempt] = [:]
            let attemptIDs = Array(Set(mine.compactMap(ExamRollup.attemptID(of:))))
            if !attemptIDs.isEmpty {
                for try await (id, exam, started, submitted) in try await conn.query(
                    "SELECT id, exam_id, started_ms, submitted_ms FROM attempts WHERE id = ANY(\(attemptIDs)::text[])",
                    logger: logger
                ).decode((String, String, Int64, Int64?).self) {
                    attempts[id] = RollupAttempt(examID: exam, startedMillis: started, submittedMillis: submitted)
                }
            }
            var conversations: [String: String] = [:]
            let conversationIDs = Array(Set(mine.compactMap(ExamRollup.conversationID(of:))))
            if !conversationIDs.isEmpty {
                for try await (id, exam) in try await conn.query(
                    """
                    SELECT c.id, a.exam_id FROM conversations c JOIN attempts a ON a.id = c.attempt_id
                    WHERE c.id = ANY(\(conversationIDs)::text[])
                    """, logger: logger
                ).decode((String, String).self) {
                    conversations[id] = exam
                }
            }
            // Merged and sorted, so one statement touches each counter once and concurrent workers lock in one order.
            let stats = ExamRollup.merged(mine.flatMap {
                ExamRollup.increments(for: $0, attempts: attempts, conversations: conversations)
            }).filter { !Self.hasNUL($0.tenant, $0.examID, $0.metric, $0.key) }
            if !stats.isEmpty {
                try await conn.query(
                    """
                    INSERT INTO exam_stats (tenant, exam_id, metric, key, value)
                    SELECT * FROM unnest(\(stats.map(\.tenant))::text[], \(stats.map(\.examID))::text[],
                                         \(stats.map(\.metric))::text[], \(stats.map(\.key))::text[],
                                         \(stats.map(\.value))::bigint[])
                    ON CONFLICT (tenant, exam_id, metric, key) DO UPDATE SET value = exam_stats.value + excluded.value
                    """, logger: logger)
            }
            return AnalyticsBatch(applied: mine.map(\.id), stats: stats)
        }
    }

    public func deadLetters(_ worker: OutboxWorker, limit: Int) async throws(HubError) -> [OutboxEvent] {
        let c = worker.columnPrefix
        let logger = self.logger
        return try await connection("deadLetters") { conn in
            try await conn.query(
                """
                SELECT id, tenant, type, at_ms, payload, \(unescaped: c)_attempts, \(unescaped: c)_error FROM outbox
                WHERE \(unescaped: c)_state = 'dead' ORDER BY at_ms, id LIMIT \(limit)
                """, logger: logger
            ).collect().map(Self.outboxEvent(_:))
        }
    }

    public func replayDeadLetters(_ worker: OutboxWorker, ids: [String]?, now: Int64) async throws(HubError) -> Int {
        let c = worker.columnPrefix
        let logger = self.logger
        let only = ids?.filter { !Self.hasNUL($0) }
        return try await connection("replayDeadLetters") { conn in
            let rows = try await conn.query(
                """
                UPDATE outbox SET \(unescaped: c)_state = 'pending', \(unescaped: c)_attempts = 0,
                    \(unescaped: c)_next_ms = \(now), \(unescaped: c)_error = NULL, \(unescaped: c)_owner = NULL
                WHERE \(unescaped: c)_state = 'dead' AND (\(only == nil) OR id = ANY(\(only ?? [])::text[]))
                RETURNING id
                """, logger: logger
            ).collect()
            return rows.count
        }
    }

    public func outboxBacklog(_ worker: OutboxWorker) async throws(HubError) -> OutboxBacklog {
        let c = worker.columnPrefix
        let logger = self.logger
        return try await connection("outboxBacklog") { conn in
            let rows = try await conn.query(
                """
                SELECT
                  (SELECT COUNT(*) FROM outbox WHERE \(unescaped: c)_state IN ('pending', 'claimed')),
                  (SELECT MIN(at_ms) FROM outbox WHERE \(unescaped: c)_state IN ('pending', 'claimed')),
                  (SELECT COUNT(*) FROM outbox WHERE \(unescaped: c)_state = 'dead')
                """, logger: logger
            ).collect()
            guard let row = rows.first else { return OutboxBacklog(pending: 0, oldestMillis: nil, dead: 0) }
            let (pending, oldest, dead) = try row.decode((Int64, Int64?, Int64).self)
            return OutboxBacklog(pending: Int(pending), oldestMillis: oldest, dead: Int(dead))
        }
    }

    public func purgeOutbox(before: Int64) async throws(HubError) -> Int {
        let logger = self.logger
        return try await connection("purgeOutbox") { conn in
            try await conn.query(
                """
                DELETE FROM outbox WHERE at_ms < \(before) AND notify_state = 'done' AND analytics_state = 'done'
                RETURNING id
                """, logger: logger
            ).collect().count
        }
    }

    public func examStats(tenant: String, examID: String) async throws(HubError) -> [ExamStat] {
        guard !Self.hasNUL(tenant, examID) else { return [] }
        let logger = self.logger
        return try await connection("examStats") { conn in
            var out: [ExamStat] = []
            for try await (metric, key, value) in try await conn.query(
                """
                SELECT metric, key, value FROM exam_stats WHERE tenant = \(tenant) AND exam_id = \(examID)
                ORDER BY metric, key
                """, logger: logger
            ).decode((String, String, Int64).self) {
                out.append(ExamStat(tenant: tenant, examID: examID, metric: metric, key: key, value: value))
            }
            return out
        }
    }

    // MARK: Helpers

    /// Marks the events `owner` still holds as done; returns their ids.
    static func markDone(
        _ conn: PostgresConnection, logger: Logger, worker: OutboxWorker, owner: String, ids: [String], now: Int64
    ) async throws -> [String] {
        let c = worker.columnPrefix
        let ids = ids.filter { !hasNUL($0) }
        var done: [String] = []
        for try await id in try await conn.query(
            """
            UPDATE outbox SET \(unescaped: c)_state = 'done', \(unescaped: c)_next_ms = \(now), \(unescaped: c)_error = NULL
            WHERE id = ANY(\(ids)::text[]) AND \(unescaped: c)_state = 'claimed' AND \(unescaped: c)_owner = \(owner)
            RETURNING id
            """, logger: logger
        ).decode(String.self) {
            done.append(id)
        }
        return done
    }

    static func outboxEvent(_ row: PostgresRow) throws -> OutboxEvent {
        let (id, tenant, type, at, payload, tries, error) = try row.decode(
            (String, String, String, Int64, String, Int32, String?).self)
        return OutboxEvent(
            id: id, tenant: tenant, type: type, atMillis: at, payload: try StoreCoding.json(payload),
            attempts: Int(tries), lastError: error)
    }
}
