import ExamHubDomain
import ExamHubWire
import GRDB

/// Exams, attempts and group-committed saves on SQLite. Every write method runs in the store's group transaction
/// (`SQLiteWriteBatcher`); `applySaves` brings a whole batch of saves to it as one write.
extension SQLiteStore {
    public func createExam(tenant: String, definition: ExamDefinition, now: Int64) async throws(HubError) {
        let text = definition.json.jsonText
        try await write { db in
            do {
                try db.execute(
                    sql: "INSERT INTO exams (tenant, id, definition, created_at) VALUES (?, ?, ?, ?)",
                    arguments: [tenant, definition.id, text, now])
            } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
                throw HubError(.conflict, "exam \(definition.id) already exists")
            }
        }
    }

    public func exam(tenant: String, id: String) async throws(HubError) -> ExamDefinition? {
        let text: String? = try await read { db in
            try String.fetchOne(db, sql: "SELECT definition FROM exams WHERE tenant = ? AND id = ?", arguments: [tenant, id])
        }
        guard let text else { return nil }
        return try StoreCoding.exam(fromJSONText: text)
    }

    public func joinAttempt(tenant: String, exam: ExamDefinition, candidate: String, now: Int64) async throws(HubError)
        -> AttemptSnapshot
    {
        try await write { db in
            if let row = try Row.fetchOne(
                db, sql: "SELECT * FROM attempts WHERE tenant = ? AND exam_id = ? AND candidate = ?",
                arguments: [tenant, exam.id, candidate])
            {
                var snapshot = try StoreCoding.attempt(from: row)
                if snapshot.clock.isTimeUp(at: now) {
                    let deadline = snapshot.clock.deadlineMillis
                    try snapshot.clock.submit(at: deadline, reason: .timeUp)
                    try Self.updateClock(db, snapshot)
                    try Self.outbox(db, tenant: tenant, type: "attempt.submitted", now: now, payload: [
                        "attemptId": .string(snapshot.id), "reason": .string("time_up"),
                    ])
                }
                snapshot.answers = try Self.answers(db, attemptID: snapshot.id)
                return snapshot
            }
            let clock = AttemptClock.start(at: now, durationSec: exam.durationSec, graceSec: exam.graceSec)
            let id = StoreCoding.newID(prefix: "a")
            try db.execute(
                sql: """
                    INSERT INTO attempts (id, tenant, exam_id, candidate, state, deadline_ms, started_ms, grace_ms)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [id, tenant, exam.id, candidate, clock.state.rawValue, clock.deadlineMillis, now, clock.graceMillis])
            try Self.outbox(db, tenant: tenant, type: "attempt.joined", now: now, payload: [
                "attemptId": .string(id), "examId": .string(exam.id), "candidate": .string(candidate),
            ])
            return AttemptSnapshot(
                id: id, tenant: tenant, examID: exam.id, candidate: candidate, clock: clock, startedMillis: now,
                answers: [:])
        }
    }

    public func attempt(id: String) async throws(HubError) -> AttemptSnapshot? {
        try await read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM attempts WHERE id = ?", arguments: [id]) else {
                return nil
            }
            var snapshot = try StoreCoding.attempt(from: row)
            snapshot.answers = try Self.answers(db, attemptID: id)
            return snapshot
        }
    }

    public func applySaves(_ saves: [SaveCommand], now: Int64) async throws(HubError) -> [Result<SaveOutcome, HubError>] {
        try await write { db in
            var attempts: [String: AttemptSnapshot?] = [:]
            var savedPerAttempt: [String: (tenant: String, count: Int)] = [:]
            var results: [Result<SaveOutcome, HubError>] = []
            results.reserveCapacity(saves.count)
            for save in saves {
                if let reply = try String.fetchOne(
                    try db.cachedStatement(sql: "SELECT reply FROM save_ops WHERE attempt_id = ? AND op_id = ?"),
                    arguments: [save.attemptID, save.opID])
                {
                    results.append(StoreCoding.replayedSave(reply))
                    continue
                }
                let loaded: AttemptSnapshot?
                if let cached = attempts[save.attemptID] {
                    loaded = cached
                } else {
                    loaded = try Row.fetchOne(
                        try db.cachedStatement(sql: "SELECT * FROM attempts WHERE id = ?"), arguments: [save.attemptID]
                    ).map(StoreCoding.attempt(from:))
                    attempts[save.attemptID] = loaded
                }
                if let refusal = StoreCoding.refusal(of: save, attempt: loaded, now: now) {
                    results.append(.failure(refusal))
                    continue
                }
                guard let attempt = loaded else { continue }
                let current = try Row.fetchOne(
                    try db.cachedStatement(sql: "SELECT value, version FROM answers WHERE attempt_id = ? AND qid = ?"),
                    arguments: [save.attemptID, save.qid])
                let decision = StoreCoding.versionToWrite(save, currentVersion: current?["version"] ?? 0) {
                    current?["value"]
                }
                switch decision {
                case .failure(let conflict):
                    results.append(.failure(conflict))
                case .success(let version):
                    try db.cachedStatement(
                        sql: """
                            INSERT INTO answers (attempt_id, qid, value, version, saved_ms) VALUES (?, ?, ?, ?, ?)
                            ON CONFLICT (attempt_id, qid) DO UPDATE SET value = excluded.value,
                                version = excluded.version, saved_ms = excluded.saved_ms
                            """
                    ).execute(arguments: [save.attemptID, save.qid, save.value.jsonText, version, now])
                    try db.cachedStatement(
                        sql: "INSERT INTO save_ops (attempt_id, op_id, reply, created_ms) VALUES (?, ?, ?, ?)"
                    ).execute(arguments: [
                        save.attemptID, save.opID, StoreCoding.saveReply(qid: save.qid, version: version, savedAt: now), now,
                    ])
                    savedPerAttempt[save.attemptID, default: (attempt.tenant, 0)].count += 1
                    results.append(.success(SaveOutcome(
                        qid: save.qid, version: version, savedAtMillis: now, value: save.value, replayed: false)))
                }
            }
            for (attemptID, entry) in savedPerAttempt {
                try Self.outbox(db, tenant: entry.tenant, type: "answers.saved", now: now, payload: [
                    "attemptId": .string(attemptID), "count": .int(Int64(entry.count)),
                ])
            }
            return results
        }
    }

    public func submitAttempt(id: String, reason: SubmitReason, opID: String?, now: Int64) async throws(HubError)
        -> AttemptSnapshot
    {
        try await write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM attempts WHERE id = ?", arguments: [id]) else {
                throw HubError.notFound("no such attempt")
            }
            var snapshot = try StoreCoding.attempt(from: row)
            let opKey = opID.map { "submit:" + $0 }
            if let opKey, try String.fetchOne(
                db, sql: "SELECT reply FROM save_ops WHERE attempt_id = ? AND op_id = ?", arguments: [id, opKey]) != nil
            {
                return snapshot
            }
            try snapshot.clock.submit(at: now, reason: reason)
            try Self.updateClock(db, snapshot)
            if let opKey {
                try db.execute(
                    sql: "INSERT INTO save_ops (attempt_id, op_id, reply, created_ms) VALUES (?, ?, ?, ?)",
                    arguments: [id, opKey, "submitted", now])
            }
            try Self.outbox(db, tenant: snapshot.tenant, type: "attempt.submitted", now: now, payload: [
                "attemptId": .string(id), "reason": .string(reason.rawValue),
            ])
            return snapshot
        }
    }

    public func submitDueAttempts(now: Int64) async throws(HubError) -> [AttemptSnapshot] {
        try await write { db in
            let rows = try Row.fetchAll(
                db, sql: "SELECT * FROM attempts WHERE state = 'in_progress' AND deadline_ms <= ?", arguments: [now])
            var done: [AttemptSnapshot] = []
            for row in rows {
                var snapshot = try StoreCoding.attempt(from: row)
                try snapshot.clock.submit(at: snapshot.clock.deadlineMillis, reason: .timeUp)
                try Self.updateClock(db, snapshot)
                try Self.outbox(db, tenant: snapshot.tenant, type: "attempt.submitted", now: now, payload: [
                    "attemptId": .string(snapshot.id), "reason": .string("time_up"),
                ])
                done.append(snapshot)
            }
            return done
        }
    }

    // MARK: Helpers

    static func updateClock(_ db: Database, _ s: AttemptSnapshot) throws {
        try db.execute(
            sql: """
                UPDATE attempts SET state = ?, reason = ?, deadline_ms = ?, submitted_ms = ?, paused_ms = ?
                WHERE id = ?
                """,
            arguments: [s.clock.state.rawValue, s.clock.reason?.rawValue, s.clock.deadlineMillis, s.clock.closedAtMillis,
                        s.clock.pausedAtMillis, s.id])
    }

    static func answers(_ db: Database, attemptID: String) throws -> [String: StoredAnswer] {
        var out: [String: StoredAnswer] = [:]
        for row in try Row.fetchAll(
            db, sql: "SELECT qid, value, version, saved_ms FROM answers WHERE attempt_id = ?", arguments: [attemptID])
        {
            out[row["qid"]] = StoredAnswer(
                value: try StoreCoding.json(row["value"]), version: row["version"], savedAtMillis: row["saved_ms"])
        }
        return out
    }

    static func outbox(_ db: Database, tenant: String, type: String, now: Int64, payload: [String: JSONValue]) throws {
        try db.cachedStatement(sql: "INSERT INTO outbox (id, tenant, type, at_ms, payload) VALUES (?, ?, ?, ?, ?)")
            .execute(arguments: [StoreCoding.newID(prefix: "ev"), tenant, type, now, JSONValue.object(payload).jsonText])
    }
}
