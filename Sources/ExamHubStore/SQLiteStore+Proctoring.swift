import ExamHubDomain
import ExamHubWire
import GRDB

/// Telemetry evidence, flags, proctor actions and their audit log on SQLite.
extension SQLiteStore {
    public func attempts(tenant: String, examID: String, limit: Int) async throws(HubError) -> [AttemptSnapshot] {
        try await read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM attempts WHERE tenant = ? AND exam_id = ? ORDER BY started_ms, id LIMIT ?",
                arguments: [tenant, examID, limit]
            ).map(StoreCoding.attempt(from:))
        }
    }

    public func recordTelemetry(_ batches: [TelemetryRecord], flags: [FlagRecord], now: Int64) async throws(HubError) {
        guard !batches.isEmpty || !flags.isEmpty else { return }
        try await write { db in
            let insertBatch = try db.cachedStatement(
                sql: """
                    INSERT INTO telemetry_batches (attempt_id, tenant, received_ms, skew_ms, event_count, events)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """)
            // No key of their own: rows are appended in arrival order and found by attempt and time.
            for b in batches {
                try insertBatch.execute(arguments: [
                    b.attemptID, b.tenant, b.receivedMillis, b.skewMillis, b.eventCount, b.eventsJSON,
                ])
            }
            let upsertFlag = try db.cachedStatement(
                sql: """
                    INSERT INTO flags (attempt_id, code, first_ms, tenant, exam_id, severity, last_ms, occurrences, evidence)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (attempt_id, code, first_ms) DO UPDATE SET last_ms = excluded.last_ms,
                        occurrences = excluded.occurrences, evidence = excluded.evidence
                    """)
            for f in flags {
                try upsertFlag.execute(arguments: [
                    f.attemptID, f.code, f.firstMillis, f.tenant, f.examID, f.severity, f.lastMillis, f.count,
                    f.evidence.jsonText,
                ])
                if f.isNew {
                    try Self.outbox(db, tenant: f.tenant, type: "flag.raised", now: now, payload: StoreCoding.flagPayload(f))
                }
            }
        }
    }

    public func flags(attemptIDs: [String]) async throws(HubError) -> [String: [FlagRecord]] {
        guard !attemptIDs.isEmpty else { return [:] }
        return try await read { db in
            var out: [String: [FlagRecord]] = [:]
            // In chunks: SQLite limits the number of bound parameters.
            var start = 0
            while start < attemptIDs.count {
                let chunk = Array(attemptIDs[start..<min(start + 500, attemptIDs.count)])
                start += chunk.count
                let marks = Array(repeating: "?", count: chunk.count).joined(separator: ",")
                for row in try Row.fetchAll(
                    db, sql: "SELECT * FROM flags WHERE attempt_id IN (\(marks)) ORDER BY first_ms, code",
                    arguments: StatementArguments(chunk))
                {
                    let f = FlagRecord(
                        attemptID: row["attempt_id"], tenant: row["tenant"], examID: row["exam_id"], code: row["code"],
                        severity: row["severity"], firstMillis: row["first_ms"], lastMillis: row["last_ms"],
                        count: row["occurrences"], evidence: try StoreCoding.json(row["evidence"]), isNew: false)
                    out[f.attemptID, default: []].append(f)
                }
            }
            return out
        }
    }

    public func applyProctorAction(_ action: ProctorActionCommand, now: Int64) async throws(HubError) -> AttemptSnapshot {
        try await write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM attempts WHERE id = ?", arguments: [action.attemptID])
            else { throw HubError.notFound("no such attempt") }
            var snapshot = try StoreCoding.attempt(from: row)
            guard snapshot.tenant == action.tenant else { throw HubError.notFound("no such attempt") }
            try action.action.apply(to: &snapshot.clock, minutes: action.minutes, now: now)
            try Self.updateClock(db, snapshot)
            let entry = StoreCoding.auditEntry(action, snapshot: snapshot, now: now)
            try db.execute(
                sql: """
                    INSERT INTO audit_log (id, tenant, exam_id, attempt_id, actor, actor_role, action, message, reason,
                        minutes, state_after, deadline_after_ms, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    entry.id, entry.tenant, entry.examID, entry.attemptID, entry.actor, entry.actorRole, entry.action,
                    entry.message, entry.reason, entry.minutes, entry.stateAfter, entry.deadlineAfterMillis, entry.atMillis,
                ])
            try Self.outbox(db, tenant: snapshot.tenant, type: "proctor.action", now: now, payload: StoreCoding.auditPayload(entry))
            return snapshot
        }
    }

    public func auditLog(tenant: String, examID: String, attemptID: String?, limit: Int) async throws(HubError)
        -> [AuditEntry]
    {
        try await read { db in
            let rows: [Row]
            if let attemptID {
                rows = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT * FROM audit_log WHERE tenant = ? AND exam_id = ? AND attempt_id = ?
                        ORDER BY at_ms DESC, id DESC LIMIT ?
                        """, arguments: [tenant, examID, attemptID, limit])
            } else {
                rows = try Row.fetchAll(
                    db, sql: "SELECT * FROM audit_log WHERE tenant = ? AND exam_id = ? ORDER BY at_ms DESC, id DESC LIMIT ?",
                    arguments: [tenant, examID, limit])
            }
            return rows.map { row in
                AuditEntry(
                    id: row["id"], tenant: row["tenant"], examID: row["exam_id"], attemptID: row["attempt_id"],
                    actor: row["actor"], actorRole: row["actor_role"], action: row["action"], message: row["message"],
                    reason: row["reason"], minutes: row["minutes"], stateAfter: row["state_after"],
                    deadlineAfterMillis: row["deadline_after_ms"], atMillis: row["at_ms"])
            }
        }
    }

    public func purgeTelemetry(before: Int64) async throws(HubError) -> Int {
        try await write { db in
            try db.execute(sql: "DELETE FROM telemetry_batches WHERE received_ms < ?", arguments: [before])
            return db.changesCount
        }
    }
}
