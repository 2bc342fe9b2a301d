import ExamHubDomain
import ExamHubStore
import ExamHubWire
import Logging
import PostgresNIO

/// Exams, attempts and group-committed saves on PostgreSQL, with the same rules as `SQLiteStore+Attempts.swift`.
/// Every transaction that changes an attempt first locks its row (`FOR UPDATE`), so two nodes never interleave
/// saves, submits or the deadline sweep on one attempt. `applySaves` is set-based: a batch of any size costs five
/// round trips (BEGIN, lock the attempts, read operation ids and answers, write answers, ids and outbox, COMMIT).
extension PostgresStore {
    public func createExam(tenant: String, definition: ExamDefinition, now: Int64) async throws(HubError) {
        try Self.refuseNUL(tenant, definition.id)
        let text = definition.json.jsonText
        let logger = self.logger
        try await connection("createExam", conflict: "exam \(definition.id) already exists") { conn in
            try await conn.query(
                "INSERT INTO exams (tenant, id, definition, created_at) VALUES (\(tenant), \(definition.id), \(text), \(now))",
                logger: logger)
        }
    }

    public func exam(tenant: String, id: String) async throws(HubError) -> ExamDefinition? {
        guard !Self.hasNUL(tenant, id) else { return nil }
        let logger = self.logger
        let text: String? = try await connection("exam") { conn in
            let rows = try await conn.query(
                "SELECT definition FROM exams WHERE tenant = \(tenant) AND id = \(id)", logger: logger
            ).collect()
            return try rows.first?.decode(String.self)
        }
        guard let text else { return nil }
        return try StoreCoding.exam(fromJSONText: text)
    }

    public func joinAttempt(tenant: String, exam: ExamDefinition, candidate: String, now: Int64) async throws(HubError)
        -> AttemptSnapshot
    {
        try Self.refuseNUL(tenant, exam.id, candidate)
        let logger = self.logger
        return try await transaction("joinAttempt") { conn in
            let clock = AttemptClock.start(at: now, durationSec: exam.durationSec, graceSec: exam.graceSec)
            let id = StoreCoding.newID(prefix: "a")
            // Two nodes joining at once: the second insert waits for the first to commit, then does nothing.
            let inserted = try await conn.query(
                """
                INSERT INTO attempts (id, tenant, exam_id, candidate, state, deadline_ms, started_ms, grace_ms)
                VALUES (\(id), \(tenant), \(exam.id), \(candidate), \(clock.state.rawValue), \(clock.deadlineMillis),
                        \(now), \(clock.graceMillis))
                ON CONFLICT (tenant, exam_id, candidate) DO NOTHING
                RETURNING id
                """, logger: logger
            ).collect()
            if !inserted.isEmpty {
                try await Self.outbox(conn, logger: logger, [
                    OutboxRow(tenant: tenant, type: "attempt.joined", now: now, payload: [
                        "attemptId": .string(id), "examId": .string(exam.id), "candidate": .string(candidate),
                    ])
                ])
                return AttemptSnapshot(
                    id: id, tenant: tenant, examID: exam.id, candidate: candidate, clock: clock, startedMillis: now,
                    answers: [:])
            }
            let rows = try await conn.query(
                """
                SELECT \(unescaped: Self.attemptColumns) FROM attempts
                WHERE tenant = \(tenant) AND exam_id = \(exam.id) AND candidate = \(candidate) FOR UPDATE
                """, logger: logger
            ).collect()
            guard let row = rows.first else {
                throw HubError(.unavailable, "the attempt changed while joining; try again")
            }
            var snapshot = try Self.attempt(from: row)
            if snapshot.clock.isTimeUp(at: now) {
                let deadline = snapshot.clock.deadlineMillis
                try snapshot.clock.submit(at: deadline, reason: .timeUp)
                try await Self.updateClock(conn, logger: logger, snapshot)
                try await Self.outbox(conn, logger: logger, [
                    OutboxRow(tenant: tenant, type: "attempt.submitted", now: now, payload: [
                        "attemptId": .string(snapshot.id), "reason": .string("time_up"),
                    ])
                ])
            }
            snapshot.answers = try await Self.answers(conn, logger: logger, attemptID: snapshot.id)
            return snapshot
        }
    }

    public func attempt(id: String) async throws(HubError) -> AttemptSnapshot? {
        guard !Self.hasNUL(id) else { return nil }
        let logger = self.logger
        // One statement, so the attempt and its answers are one consistent snapshot.
        return try await connection("attempt") { conn in
            let rows = try await conn.query(
                """
                SELECT a.id, a.tenant, a.exam_id, a.candidate, a.state, a.reason, a.deadline_ms, a.started_ms,
                       a.submitted_ms, a.paused_ms, a.grace_ms, w.qid, w.value, w.version, w.saved_ms
                FROM attempts a LEFT JOIN answers w ON w.attempt_id = a.id
                WHERE a.id = \(id)
                """, logger: logger
            ).collect()
            guard let first = rows.first else { return nil }
            var snapshot = try Self.attempt(from: first)
            for row in rows {
                let (_, _, _, _, _, _, _, _, _, _, _, qid, value, version, saved) = try row.decode(
                    (String, String, String, String, String, String?, Int64, Int64, Int64?, Int64?, Int64,
                     String?, String?, Int64?, Int64?).self)
                guard let qid, let value, let version, let saved else { continue }
                snapshot.answers[qid] = StoredAnswer(
                    value: try StoreCoding.json(value), version: version, savedAtMillis: saved)
            }
            return snapshot
        }
    }

    public func applySaves(_ saves: [SaveCommand], now: Int64) async throws(HubError) -> [Result<SaveOutcome, HubError>] {
        // PostgreSQL text cannot hold U+0000: such a save fails on its own instead of failing the whole batch.
        let storable = saves.map { s in !Self.hasNUL(s.attemptID, s.tenant, s.candidate, s.qid, s.opID) }
        let batch = zip(saves, storable).filter { $0.1 }.map(\.0)
        let logger = self.logger
        let applied: [Result<SaveOutcome, HubError>] =
            batch.isEmpty ? [] : try await transaction("applySaves") { conn in
                try await Self.applySaves(batch, now: now, on: conn, logger: logger)
            }
        var results: [Result<SaveOutcome, HubError>] = []
        results.reserveCapacity(saves.count)
        var next = applied.makeIterator()
        for ok in storable {
            if ok, let result = next.next() {
                results.append(result)
            } else {
                results.append(.failure(.badRequest("identifiers may not contain NUL characters")))
            }
        }
        return results
    }

    public func submitAttempt(id: String, reason: SubmitReason, opID: String?, now: Int64) async throws(HubError)
        -> AttemptSnapshot
    {
        guard !Self.hasNUL(id) else { throw HubError.notFound("no such attempt") }
        if let opID { try Self.refuseNUL(opID) }
        let logger = self.logger
        return try await transaction("submitAttempt") { conn in
            let rows = try await conn.query(
                "SELECT \(unescaped: Self.attemptColumns) FROM attempts WHERE id = \(id) FOR UPDATE", logger: logger
            ).collect()
            guard let row = rows.first else { throw HubError.notFound("no such attempt") }
            var snapshot = try Self.attempt(from: row)
            let opKey = opID.map { "submit:" + $0 }
            if let opKey {
                let seen = try await conn.query(
                    "SELECT 1 FROM save_ops WHERE attempt_id = \(id) AND op_id = \(opKey)", logger: logger
                ).collect()
                if !seen.isEmpty { return snapshot }
            }
            try snapshot.clock.submit(at: now, reason: reason)
            try await Self.updateClock(conn, logger: logger, snapshot)
            if let opKey {
                try await conn.query(
                    """
                    INSERT INTO save_ops (attempt_id, op_id, reply, created_ms)
                    VALUES (\(id), \(opKey), \("submitted"), \(now))
                    """, logger: logger)
            }
            try await Self.outbox(conn, logger: logger, [
                OutboxRow(tenant: snapshot.tenant, type: "attempt.submitted", now: now, payload: [
                    "attemptId": .string(id), "reason": .string(reason.rawValue),
                ])
            ])
            return snapshot
        }
    }

    public func submitDueAttempts(now: Int64) async throws(HubError) -> [AttemptSnapshot] {
        let logger = self.logger
        return try await transaction("submitDueAttempts") { conn in
            // Rows another node is submitting right now are skipped, not waited for: that node reports them.
            let rows = try await conn.query(
                """
                SELECT \(unescaped: Self.attemptColumns) FROM attempts
                WHERE state = 'in_progress' AND deadline_ms <= \(now)
                ORDER BY id FOR UPDATE SKIP LOCKED
                """, logger: logger
            ).collect()
            var done: [AttemptSnapshot] = []
            var events: [OutboxRow] = []
            for row in rows {
                var snapshot = try Self.attempt(from: row)
                try snapshot.clock.submit(at: snapshot.clock.deadlineMillis, reason: .timeUp)
                try await Self.updateClock(conn, logger: logger, snapshot)
                events.append(OutboxRow(tenant: snapshot.tenant, type: "attempt.submitted", now: now, payload: [
                    "attemptId": .string(snapshot.id), "reason": .string("time_up"),
                ]))
                done.append(snapshot)
            }
            try await Self.outbox(conn, logger: logger, events)
            return done
        }
    }

    // MARK: The group commit

    /// One batch of saves, inside a transaction, with the rules of `SQLiteStore.applySaves` applied in order.
    static func applySaves(_ saves: [SaveCommand], now: Int64, on conn: PostgresConnection, logger: Logger)
        async throws -> [Result<SaveOutcome, HubError>]
    {
        // 1. Lock every attempt of the batch, in id order so that two batches never deadlock.
        let attemptIDs = Array(Set(saves.map(\.attemptID))).sorted()
        var attempts: [String: AttemptSnapshot] = [:]
        for row in try await conn.query(
            """
            SELECT \(unescaped: attemptColumns) FROM attempts WHERE id = ANY(\(attemptIDs)) ORDER BY id FOR UPDATE
            """, logger: logger
        ).collect() {
            let snapshot = try attempt(from: row)
            attempts[snapshot.id] = snapshot
        }

        // 2. In one statement, after the lock: the replies of operation ids already applied ('o' rows) and the
        // current answers the batch touches ('a' rows).
        struct Key: Hashable {
            var attempt: String
            var name: String
        }
        var replies: [Key: String] = [:]
        var answers: [Key: (value: String, version: Int64)] = [:]
        let known = saves.filter { attempts[$0.attemptID] != nil }
        if !known.isEmpty {
            let ids = known.map(\.attemptID)
            let rows = try await conn.query(
                """
                SELECT 'o', o.attempt_id, o.op_id, o.reply, 0::bigint FROM save_ops o
                JOIN (SELECT DISTINCT * FROM unnest(\(ids)::text[], \(known.map(\.opID))::text[])) AS k(attempt_id, op_id)
                  ON o.attempt_id = k.attempt_id AND o.op_id = k.op_id
                UNION ALL
                SELECT 'a', w.attempt_id, w.qid, w.value, w.version FROM answers w
                JOIN (SELECT DISTINCT * FROM unnest(\(ids)::text[], \(known.map(\.qid))::text[])) AS k(attempt_id, qid)
                  ON w.attempt_id = k.attempt_id AND w.qid = k.qid
                """, logger: logger
            ).collect()
            for row in rows {
                let (kind, attempt, name, text, version) = try row.decode((String, String, String, String, Int64).self)
                if kind == "o" {
                    replies[Key(attempt: attempt, name: name)] = text
                } else {
                    answers[Key(attempt: attempt, name: name)] = (text, version)
                }
            }
        }

        // 3. Decide each save in order, as the SQLite store does one statement at a time.
        var results: [Result<SaveOutcome, HubError>] = []
        results.reserveCapacity(saves.count)
        var newOps: [(attempt: String, op: String, reply: String)] = []
        var written: [Key: (value: String, version: Int64)] = [:]
        var writeOrder: [Key] = []
        var savedPerAttempt: [String: (tenant: String, count: Int)] = [:]
        var attemptOrder: [String] = []
        for save in saves {
            let opKey = Key(attempt: save.attemptID, name: save.opID)
            if let reply = replies[opKey] {
                results.append(StoreCoding.replayedSave(reply))
                continue
            }
            if let refusal = StoreCoding.refusal(of: save, attempt: attempts[save.attemptID], now: now) {
                results.append(.failure(refusal))
                continue
            }
            guard let attempt = attempts[save.attemptID] else { continue }
            let answerKey = Key(attempt: save.attemptID, name: save.qid)
            let current = answers[answerKey]
            switch StoreCoding.versionToWrite(save, currentVersion: current?.version ?? 0, currentValueText: { current?.value }) {
            case .failure(let conflict):
                results.append(.failure(conflict))
            case .success(let version):
                let text = save.value.jsonText
                answers[answerKey] = (text, version)
                if written.updateValue((text, version), forKey: answerKey) == nil { writeOrder.append(answerKey) }
                let reply = StoreCoding.saveReply(qid: save.qid, version: version, savedAt: now)
                replies[opKey] = reply
                newOps.append((save.attemptID, save.opID, reply))
                if savedPerAttempt[save.attemptID] == nil { attemptOrder.append(save.attemptID) }
                savedPerAttempt[save.attemptID, default: (attempt.tenant, 0)].count += 1
                results.append(.success(SaveOutcome(
                    qid: save.qid, version: version, savedAtMillis: now, value: save.value, replayed: false)))
            }
        }

        // 4. Write what was decided in one statement: answers, operation ids, and one outbox row per attempt.
        // Every write counts in `savedPerAttempt`, so no outbox row means nothing to write.
        if !writeOrder.isEmpty {
            let rows = writeOrder.compactMap { key in written[key].map { (key, $0) } }
            let events = attemptOrder.compactMap { attemptID in
                savedPerAttempt[attemptID].map { entry in
                    OutboxRow(tenant: entry.tenant, type: "answers.saved", now: now, payload: [
                        "attemptId": .string(attemptID), "count": .int(Int64(entry.count)),
                    ])
                }
            }
            let ev = OutboxColumns(events)
            try await conn.query(
                """
                WITH saved AS (
                    INSERT INTO answers (attempt_id, qid, value, version, saved_ms)
                    SELECT attempt_id, qid, value, version, \(now)::bigint
                    FROM unnest(\(rows.map(\.0.attempt))::text[], \(rows.map(\.0.name))::text[],
                                \(rows.map(\.1.value))::text[], \(rows.map(\.1.version))::bigint[])
                      AS u(attempt_id, qid, value, version)
                    ON CONFLICT (attempt_id, qid) DO UPDATE SET value = excluded.value,
                        version = excluded.version, saved_ms = excluded.saved_ms
                ), ops AS (
                    INSERT INTO save_ops (attempt_id, op_id, reply, created_ms)
                    SELECT attempt_id, op_id, reply, \(now)::bigint
                    FROM unnest(\(newOps.map(\.attempt))::text[], \(newOps.map(\.op))::text[],
                                \(newOps.map(\.reply))::text[]) AS u(attempt_id, op_id, reply)
                )
                INSERT INTO outbox (id, tenant, type, at_ms, payload)
                SELECT * FROM unnest(\(ev.ids)::text[], \(ev.tenants)::text[], \(ev.types)::text[], \(ev.times)::bigint[],
                                     \(ev.payloads)::text[])
                """, logger: logger)
        }
        return results
    }

    // MARK: Helpers

    static let attemptColumns =
        "id, tenant, exam_id, candidate, state, reason, deadline_ms, started_ms, submitted_ms, paused_ms, grace_ms"

    /// A snapshot (without answers) from the first eleven columns of a row, in ``attemptColumns`` order.
    static func attempt(from row: PostgresRow) throws -> AttemptSnapshot {
        let (id, tenant, examID, candidate, state, reason, deadline, started, submitted, paused, grace) = try row.decode(
            (String, String, String, String, String, String?, Int64, Int64, Int64?, Int64?, Int64).self)
        return try StoreCoding.attempt(
            id: id, tenant: tenant, examID: examID, candidate: candidate, state: state, reason: reason,
            deadline: deadline, started: started, submitted: submitted, paused: paused, grace: grace)
    }

    static func updateClock(_ conn: PostgresConnection, logger: Logger, _ s: AttemptSnapshot) async throws {
        try await conn.query(
            """
            UPDATE attempts SET state = \(s.clock.state.rawValue), reason = \(s.clock.reason?.rawValue),
                deadline_ms = \(s.clock.deadlineMillis), submitted_ms = \(s.clock.closedAtMillis),
                paused_ms = \(s.clock.pausedAtMillis)
            WHERE id = \(s.id)
            """, logger: logger)
    }

    static func answers(_ conn: PostgresConnection, logger: Logger, attemptID: String) async throws
        -> [String: StoredAnswer]
    {
        var out: [String: StoredAnswer] = [:]
        for row in try await conn.query(
            "SELECT qid, value, version, saved_ms FROM answers WHERE attempt_id = \(attemptID)", logger: logger
        ).collect() {
            let (qid, value, version, saved) = try row.decode((String, String, Int64, Int64).self)
            out[qid] = StoredAnswer(value: try StoreCoding.json(value), version: version, savedAtMillis: saved)
        }
        return out
    }

    /// One outbox event.
    struct OutboxRow {
        var tenant: String
        var type: String
        var now: Int64
        var payload: [String: JSONValue]
    }

    /// Outbox rows as the columns `unnest` takes, each with a new id.
    struct OutboxColumns {
        var ids: [String] = []
        var tenants: [String] = []
        var types: [String] = []
        var times: [Int64] = []
        var payloads: [String] = []

        init(_ rows: [OutboxRow]) {
            for row in rows {
                ids.append(StoreCoding.newID(prefix: "ev"))
                tenants.append(row.tenant)
                types.append(row.type)
                times.append(row.now)
                payloads.append(JSONValue.object(row.payload).jsonText)
            }
        }
    }

    /// Inserts outbox rows (any number, one statement).
    static func outbox(_ conn: PostgresConnection, logger: Logger, _ rows: [OutboxRow]) async throws {
        guard !rows.isEmpty else { return }
        let ev = OutboxColumns(rows)
        try await conn.query(
            """
            INSERT INTO outbox (id, tenant, type, at_ms, payload)
            SELECT * FROM unnest(\(ev.ids)::text[], \(ev.tenants)::text[], \(ev.types)::text[], \(ev.times)::bigint[],
                                 \(ev.payloads)::text[])
            """, logger: logger)
    }
}
