import ExamHubDomain
import GRDB

/// The outbox workers' side of the embedded store (see ``OutboxStore``). SQLite has one writer, so a claim is a
/// plain read-and-update in one write (its own savepoint of the group transaction); leases still matter when
/// several worker processes share the file.
extension SQLiteStore {
    public func claimOutbox(_ worker: OutboxWorker, owner: String, limit: Int, leaseMillis: Int64, now: Int64)
        async throws(HubError) -> [OutboxEvent]
    {
        let c = worker.columnPrefix
        return try await write { db in
            let sql = """
                SELECT id, tenant, type, at_ms, payload, \(c)_attempts AS tries, \(c)_error AS error FROM outbox
                WHERE \(c)_state = ? AND \(c)_next_ms <= ? ORDER BY \(c)_next_ms LIMIT ?
                """
            var rows = try Row.fetchAll(db, sql: sql, arguments: ["pending", now, limit])
            if rows.count < limit {
                rows += try Row.fetchAll(db, sql: sql, arguments: ["claimed", now, limit - rows.count])
            }
            var events: [OutboxEvent] = []
            let claim = try db.cachedStatement(
                sql: """
                    UPDATE outbox SET \(c)_state = 'claimed', \(c)_owner = ?, \(c)_next_ms = ?,
                        \(c)_attempts = \(c)_attempts + 1 WHERE id = ?
                    """)
            for row in rows {
                let id: String = row["id"]
                try claim.execute(arguments: [owner, now + leaseMillis, id])
                events.append(try Self.outboxEvent(row, attempts: (row["tries"] as Int) + 1))
            }
            return events.sorted { ($0.atMillis, $0.id) < ($1.atMillis, $1.id) }
        }
    }

    @discardableResult
    public func completeOutbox(_ worker: OutboxWorker, owner: String, ids: [String], now: Int64) async throws(HubError)
        -> Int
    {
        guard !ids.isEmpty else { return 0 }
        return try await write { db in
            try Self.markDone(db, worker: worker, owner: owner, ids: ids, now: now).count
        }
    }

    public func failOutbox(_ worker: OutboxWorker, owner: String, failures: [OutboxFailure], now: Int64)
        async throws(HubError)
    {
        guard !failures.isEmpty else { return }
        let c = worker.columnPrefix
        try await write { db in
            let update = try db.cachedStatement(
                sql: """
                    UPDATE outbox SET \(c)_state = ?, \(c)_next_ms = ?, \(c)_error = ?, \(c)_owner = NULL
                    WHERE id = ? AND \(c)_state = 'claimed' AND \(c)_owner = ?
                    """)
            for f in failures {
                let state = f.retryAtMillis == nil ? "dead" : "pending"
                try update.execute(arguments: [state, f.retryAtMillis ?? now, String(f.error.prefix(2000)), f.id, owner])
            }
        }
    }

    @discardableResult
    public func applyAnalytics(owner: String, events: [OutboxEvent], now: Int64) async throws(HubError) -> AnalyticsBatch {
        guard !events.isEmpty else { return AnalyticsBatch() }
        return try await write { db in
            let held = Set(try Self.markDone(db, worker: .analytics, owner: owner, ids: events.map(\.id), now: now))
            let mine = events.filter { held.contains($0.id) }
            guard !mine.isEmpty else { return AnalyticsBatch() }
            var attempts: [String: RollupAttempt] = [:]
            for id in Set(mine.compactMap(ExamRollup.attemptID(of:))) {
                if let row = try Row.fetchOne(
                    db, sql: "SELECT exam_id, started_ms, submitted_ms FROM attempts WHERE id = ?", arguments: [id])
                {
                    attempts[id] = RollupAttempt(
                        examID: row["exam_id"], startedMillis: row["started_ms"], submittedMillis: row["submitted_ms"])
                }
            }
            var conversations: [String: String] = [:]
            for id in Set(mine.compactMap(ExamRollup.conversationID(of:))) {
                if let exam = try String.fetchOne(
                    db,
                    sql: """
                        SELECT a.exam_id FROM conversations c JOIN attempts a ON a.id = c.attempt_id WHERE c.id = ?
                        """, arguments: [id])
                {
                    conversations[id] = exam
                }
            }
            let stats = ExamRollup.merged(mine.flatMap {
                ExamRollup.increments(for: $0, attempts: attempts, conversations: conversations)
            })
            let upsert = try db.cachedStatement(
                sql: """
                    INSERT INTO exam_stats (tenant, exam_id, metric, key, value) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (tenant, exam_id, metric, key) DO UPDATE SET value = exam_stats.value + excluded.value
                    """)
            for s in stats {
                try upsert.execute(arguments: [s.tenant, s.examID, s.metric, s.key, s.value])
            }
            return AnalyticsBatch(applied: mine.map(\.id), stats: stats)
        }
    }

    public func deadLetters(_ worker: OutboxWorker, limit: Int) async throws(HubError) -> [OutboxEvent] {
        let c = worker.columnPrefix
        return try await read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT id, tenant, type, at_ms, payload, \(c)_attempts AS tries, \(c)_error AS error FROM outbox
                    WHERE \(c)_state = 'dead' ORDER BY at_ms, id LIMIT ?
                    """, arguments: [limit]
            ).map { row in try Self.outboxEvent(row, attempts: row["tries"]) }
        }
    }

    public func replayDeadLetters(_ worker: OutboxWorker, ids: [String]?, now: Int64) async throws(HubError) -> Int {
        let c = worker.columnPrefix
        return try await write { db in
            let reset = "\(c)_state = 'pending', \(c)_attempts = 0, \(c)_next_ms = ?, \(c)_error = NULL, \(c)_owner = NULL"
            guard let ids else {
                try db.execute(sql: "UPDATE outbox SET \(reset) WHERE \(c)_state = 'dead'", arguments: [now])
                return db.changesCount
            }
            var count = 0
            for id in ids {
                try db.execute(
                    sql: "UPDATE outbox SET \(reset) WHERE id = ? AND \(c)_state = 'dead'", arguments: [now, id])
                count += db.changesCount
            }
            return count
        }
    }

    public func outboxBacklog(_ worker: OutboxWorker) async throws(HubError) -> OutboxBacklog {
        let c = worker.columnPrefix
        return try await read { db in
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT
                      (SELECT COUNT(*) FROM outbox WHERE \(c)_state IN ('pending', 'claimed')) AS pending,
                      (SELECT MIN(at_ms) FROM outbox WHERE \(c)_state IN ('pending', 'claimed')) AS oldest,
                      (SELECT COUNT(*) FROM outbox WHERE \(c)_state = 'dead') AS dead
                    """)
            return OutboxBacklog(
                pending: row?["pending"] ?? 0, oldestMillis: row?["oldest"], dead: row?["dead"] ?? 0)
        }
    }

    public func purgeOutbox(before: Int64) async throws(HubError) -> Int {
        try await write { db in
            try db.execute(
                sql: """
                    DELETE FROM outbox WHERE at_ms < ? AND notify_state = 'done' AND analytics_state = 'done'
                    """, arguments: [before])
            return db.changesCount
        }
    }

    public func examStats(tenant: String, examID: String) async throws(HubError) -> [ExamStat] {
        try await read { db in
            try Row.fetchAll(
                db, sql: "SELECT metric, key, value FROM exam_stats WHERE tenant = ? AND exam_id = ? ORDER BY metric, key",
                arguments: [tenant, examID]
            ).map { row in
                ExamStat(tenant: tenant, examID: examID, metric: row["metric"], key: row["key"], value: row["value"])
            }
        }
    }

    // MARK: Helpers

    /// Marks the events `owner` still holds as done; returns their ids.
    static func markDone(_ db: Database, worker: OutboxWorker, owner: String, ids: [String], now: Int64) throws
        -> [String]
    {
        let c = worker.columnPrefix
        let update = try db.cachedStatement(
            sql: """
                UPDATE outbox SET \(c)_state = 'done', \(c)_next_ms = ?, \(c)_error = NULL
                WHERE id = ? AND \(c)_state = 'claimed' AND \(c)_owner = ?
                """)
        var done: [String] = []
        for id in ids {
            try update.execute(arguments: [now, id, owner])
            if db.changesCount > 0 { done.append(id) }
        }
        return done
    }

    static func outboxEvent(_ row: Row, attempts: Int) throws -> OutboxEvent {
        OutboxEvent(
            id: row["id"], tenant: row["tenant"], type: row["type"], atMillis: row["at_ms"],
            payload: try StoreCoding.json(row["payload"]), attempts: attempts, lastError: row["error"])
    }
}
