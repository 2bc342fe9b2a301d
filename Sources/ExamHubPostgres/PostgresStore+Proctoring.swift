import ExamHubDomain
import ExamHubStore
import ExamHubWire
import Logging
import PostgresNIO

/// Telemetry evidence, flags, proctor actions and their audit log on PostgreSQL, with the same rules as
/// `SQLiteStore+Proctoring.swift`. Batches and flags go in with one `unnest` statement each, whatever their number.
extension PostgresStore {
    public func attempts(tenant: String, examID: String, limit: Int) async throws(HubError) -> [AttemptSnapshot] {
        guard !Self.hasNUL(tenant, examID) else { return [] }
        let logger = self.logger
        return try await connection("attempts") { conn in
            try await conn.query(
                """
                SELECT \(unescaped: Self.attemptColumns) FROM attempts WHERE tenant = \(tenant) AND exam_id = \(examID)
                ORDER BY started_ms, id LIMIT \(limit)
                """, logger: logger
            ).collect().map(Self.attempt(from:))
        }
    }

    public func recordTelemetry(_ batches: [TelemetryRecord], flags: [FlagRecord], now: Int64) async throws(HubError) {
        let batches = batches.filter { !Self.hasNUL($0.attemptID, $0.tenant) }
        let flags = flags.filter { !Self.hasNUL($0.attemptID, $0.tenant, $0.examID, $0.code) }
        guard !batches.isEmpty || !flags.isEmpty else { return }
        let logger = self.logger
        try await transaction("recordTelemetry") { conn in
            if !batches.isEmpty {
                let attempts = batches.map(\.attemptID)
                let tenants = batches.map(\.tenant)
                let received = batches.map(\.receivedMillis)
                let skews = batches.map(\.skewMillis)
                let counts = batches.map { Int64($0.eventCount) }
                let events = batches.map(\.eventsJSON)
                try await conn.query(
                    """
                    INSERT INTO telemetry_batches (attempt_id, tenant, received_ms, skew_ms, event_count, events)
                    SELECT * FROM unnest(\(attempts)::text[], \(tenants)::text[], \(received)::bigint[],
                                         \(skews)::bigint[], \(counts)::bigint[], \(events)::text[])
                    """, logger: logger)
            }
            if !flags.isEmpty {
                // One row per key: a batch that raised and then grew a flag stores its latest state.
                var latest: [String: FlagRecord] = [:]
                var order: [String] = []
                for f in flags {
                    let key = "\(f.attemptID)\u{1}\(f.code)\u{1}\(f.firstMillis)"
                    if latest[key] == nil { order.append(key) }
                    var merged = f
                    if let previous = latest[key], previous.isNew { merged.isNew = true }
                    latest[key] = merged
                }
                let rows = order.compactMap { latest[$0] }
                try await conn.query(
                    """
                    INSERT INTO flags (attempt_id, code, first_ms, tenant, exam_id, severity, last_ms, occurrences, evidence)
                    SELECT * FROM unnest(\(rows.map(\.attemptID))::text[], \(rows.map(\.code))::text[],
                                         \(rows.map(\.firstMillis))::bigint[], \(rows.map(\.tenant))::text[],
                                         \(rows.map(\.examID))::text[], \(rows.map(\.severity))::text[],
                                         \(rows.map(\.lastMillis))::bigint[], \(rows.map { Int64($0.count) })::bigint[],
                                         \(rows.map(\.evidence.jsonText))::text[])
                    ON CONFLICT (attempt_id, code, first_ms) DO UPDATE SET last_ms = excluded.last_ms,
                        occurrences = excluded.occurrences, evidence = excluded.evidence
                    """, logger: logger)
                try await Self.outbox(
                    conn, logger: logger,
                    rows.filter(\.isNew).map { f in
                        OutboxRow(tenant: f.tenant, type: "flag.raised", now: now, payload: StoreCoding.flagPayload(f))
                    })
            }
        }
    }

    public func flags(attemptIDs: [String]) async throws(HubError) -> [String: [FlagRecord]] {
        let ids = attemptIDs.filter { !Self.hasNUL($0) }
        guard !ids.isEmpty else { return [:] }
        let logger = self.logger
        return try await connection("flags") { conn in
            var out: [String: [FlagRecord]] = [:]
            for row in try await conn.query(
                """
                SELECT attempt_id, tenant, exam_id, code, severity, first_ms, last_ms, occurrences, evidence FROM flags
                WHERE attempt_id = ANY(\(ids)::text[]) ORDER BY first_ms, code
                """, logger: logger
            ).collect() {
                let (attempt, tenant, exam, code, severity, first, last, count, evidence) = try row.decode(
                    (String, String, String, String, String, Int64, Int64, Int64, String).self)
                out[attempt, default: []].append(FlagRecord(
                    attemptID: attempt, tenant: tenant, examID: exam, code: code, severity: severity, firstMillis: first,
                    lastMillis: last, count: Int(count), evidence: try StoreCoding.json(evidence), isNew: false))
            }
            return out
        }
    }

    public func applyProctorAction(_ action: ProctorActionCommand, now: Int64) async throws(HubError) -> AttemptSnapshot {
        guard !Self.hasNUL(action.attemptID, action.tenant, action.actor, action.message ?? "", action.reason ?? "") else {
            throw .badRequest("text may not contain NUL characters")
        }
        let logger = self.logger
        return try await transaction("applyProctorAction") { conn in
            let rows = try await conn.query(
                "SELECT \(unescaped: Self.attemptColumns) FROM attempts WHERE id = \(action.attemptID) FOR UPDATE",
                logger: logger
            ).collect()
            guard let row = rows.first else { throw HubError.notFound("no such attempt") }
            var snapshot = try Self.attempt(from: row)
            guard snapshot.tenant == action.tenant else { throw HubError.notFound("no such attempt") }
            try action.action.apply(to: &snapshot.clock, minutes: action.minutes, now: now)
            try await Self.updateClock(conn, logger: logger, snapshot)
            let e = StoreCoding.auditEntry(action, snapshot: snapshot, now: now)
            let minutes = e.minutes.map(Int64.init)
            try await conn.query(
                """
                INSERT INTO audit_log (id, tenant, exam_id, attempt_id, actor, actor_role, action, message, reason,
                    minutes, state_after, deadline_after_ms, at_ms)
                VALUES (\(e.id), \(e.tenant), \(e.examID), \(e.attemptID), \(e.actor), \(e.actorRole), \(e.action),
                    \(e.message), \(e.reason), \(minutes), \(e.stateAfter), \(e.deadlineAfterMillis), \(e.atMillis))
                """, logger: logger)
            try await Self.outbox(conn, logger: logger, [
                OutboxRow(tenant: snapshot.tenant, type: "proctor.action", now: now, payload: StoreCoding.auditPayload(e))
            ])
            return snapshot
        }
    }

    public func auditLog(tenant: String, examID: String, attemptID: String?, limit: Int) async throws(HubError)
        -> [AuditEntry]
    {
        guard !Self.hasNUL(tenant, examID, attemptID ?? "") else { return [] }
        let logger = self.logger
        return try await connection("auditLog") { conn in
            let rows: [PostgresRow]
            if let attemptID {
                rows = try await conn.query(
                    """
                    SELECT id, tenant, exam_id, attempt_id, actor, actor_role, action, message, reason, minutes,
                           state_after, deadline_after_ms, at_ms
                    FROM audit_log WHERE tenant = \(tenant) AND exam_id = \(examID) AND attempt_id = \(attemptID)
                    ORDER BY at_ms DESC, id DESC LIMIT \(limit)
                    """, logger: logger
                ).collect()
            } else {
                rows = try await conn.query(
                    """
                    SELECT id, tenant, exam_id, attempt_id, actor, actor_role, action, message, reason, minutes,
                           state_after, deadline_after_ms, at_ms
                    FROM audit_log WHERE tenant = \(tenant) AND exam_id = \(examID)
                    ORDER BY at_ms DESC, id DESC LIMIT \(limit)
                    """, logger: logger
                ).collect()
            }
            return try rows.map { row in
                let (id, tenant, exam, attempt, actor, role, action, message, reason, minutes, state, deadline, at) =
                    try row.decode(
                        (String, String, String, String, String, String, String, String?, String?, Int64?, String, Int64,
                         Int64).self)
                return AuditEntry(
                    id: id, tenant: tenant, examID: exam, attemptID: attempt, actor: actor, actorRole: role,
                    action: action, message: message, reason: reason, minutes: minutes.map(Int.init), stateAfter: state,
                    deadlineAfterMillis: deadline, atMillis: at)
            }
        }
    }

    public func purgeTelemetry(before: Int64) async throws(HubError) -> Int {
        let logger = self.logger
        return try await connection("purgeTelemetry") { conn in
            let rows = try await conn.query(
                "WITH gone AS (DELETE FROM telemetry_batches WHERE received_ms < \(before) RETURNING 1) SELECT count(*) FROM gone",
                logger: logger
            ).collect()
            return Int(try rows.first?.decode(Int64.self) ?? 0)
        }
    }
}
