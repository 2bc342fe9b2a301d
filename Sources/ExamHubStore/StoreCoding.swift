import ExamHubDomain
import ExamHubWire

/// Row and JSON conversions shared by the stores.
public enum StoreCoding {
    /// A random identifier: `prefix-` and 20 hex digits.
    public static func newID(prefix: String) -> String {
        let a = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let b = String(UInt16.random(in: 0...UInt16.max), radix: 16)
        return prefix + "-" + String(repeating: "0", count: 16 - a.count) + a + String(repeating: "0", count: 4 - b.count) + b
    }

    public static func json(_ text: String) throws(HubError) -> JSONValue {
        do {
            return try JSONParser.parse(text, limits: .init(maxDepth: 64, maxContainerCount: 1_000_000))
        } catch {
            throw HubError(.internal, "stored JSON is unreadable", debugDetail: error.description)
        }
    }

    public static func exam(fromJSONText text: String) throws(HubError) -> ExamDefinition {
        try ExamDefinition(json: try json(text))
    }

    /// The stored reply of a save, replayed for a repeated `opId`.
    public static func saveReply(qid: String, version: Int64, savedAt: Int64) -> String {
        JSONValue.object(["qid": .string(qid), "version": .int(version), "savedAt": .int(savedAt)]).jsonText
    }

    public static func replayedSave(_ text: String) -> Result<SaveOutcome, HubError> {
        guard let v = try? json(text), let qid = v["qid"]?.stringValue, let version = v["version"]?.intValue,
            let savedAt = v["savedAt"]?.intValue
        else { return .failure(HubError(.internal, "stored save reply is unreadable")) }
        return .success(SaveOutcome(qid: qid, version: version, savedAtMillis: savedAt, value: .null, replayed: true))
    }

    /// The attempt checks every store makes on a save: it exists in the saver's tenant, it is theirs, and its clock
    /// accepts a save at `now`. `nil` when the save may go on.
    public static func refusal(of save: SaveCommand, attempt: AttemptSnapshot?, now: Int64) -> HubError? {
        guard let attempt, attempt.tenant == save.tenant else { return .notFound("no such attempt") }
        guard attempt.candidate == save.candidate else { return .forbidden("not your attempt") }
        do throws(HubError) {
            try attempt.clock.checkSave(at: now)
        } catch {
            return error
        }
        return nil
    }

    /// The version a save writes, or `conflict` with `details {version, value}` of the current answer when its
    /// `baseVersion` is stale. `currentValueText` is the stored JSON of the current answer, read only on conflict.
    public static func versionToWrite(
        _ save: SaveCommand, currentVersion: Int64, currentValueText: () -> String?
    ) -> Result<Int64, HubError> {
        switch AnswerRules.decide(currentVersion: currentVersion, baseVersion: save.baseVersion) {
        case .write(let version):
            return .success(version)
        case .conflict(let version):
            let value = currentValueText().flatMap { try? json($0) } ?? .null
            return .failure(HubError(
                .conflict, "question \(save.qid) is at version \(version), not \(save.baseVersion ?? 0)",
                details: .object(["version": .int(version), "value": value])))
        }
    }

    /// The outbox payload of a new flag.
    public static func flagPayload(_ f: FlagRecord) -> [String: JSONValue] {
        [
            "attemptId": .string(f.attemptID), "examId": .string(f.examID), "code": .string(f.code),
            "severity": .string(f.severity), "at": .string(Timestamp.format(millis: f.firstMillis)),
        ]
    }

    /// The audit entry of a proctor action applied at `now`, with the attempt as it is after.
    public static func auditEntry(_ a: ProctorActionCommand, snapshot: AttemptSnapshot, now: Int64) -> AuditEntry {
        AuditEntry(
            id: newID(prefix: "au"), tenant: snapshot.tenant, examID: snapshot.examID, attemptID: snapshot.id,
            actor: a.actor, actorRole: a.actorRole, action: a.action.rawValue, message: a.message, reason: a.reason,
            minutes: a.minutes, stateAfter: snapshot.clock.state.rawValue, deadlineAfterMillis: snapshot.clock.deadlineMillis,
            atMillis: now)
    }

    /// An audit entry as JSON (the outbox payload and the HTTP audit log's items).
    public static func auditPayload(_ e: AuditEntry) -> [String: JSONValue] {
        var o: [String: JSONValue] = [
            "id": .string(e.id), "examId": .string(e.examID), "attemptId": .string(e.attemptID),
            "actor": .string(e.actor), "actorRole": .string(e.actorRole), "action": .string(e.action),
            "stateAfter": .string(e.stateAfter), "deadlineAfter": .string(Timestamp.format(millis: e.deadlineAfterMillis)),
            "at": .string(Timestamp.format(millis: e.atMillis)),
        ]
        if let m = e.message { o["message"] = .string(m) }
        if let r = e.reason { o["reason"] = .string(r) }
        if let n = e.minutes { o["minutes"] = .int(Int64(n)) }
        return o
    }

    /// The outbox payload of a chat turn (the answer's metadata, never the text).
    public static func chatTurnPayload(_ m: ChatMessageRecord) -> [String: JSONValue] {
        var o: [String: JSONValue] = [
            "conversationId": .string(m.conversationID), "messageId": .string(m.id),
            "source": .string(m.source ?? "intent"),
        ]
        if let intent = m.intent { o["intent"] = .string(intent) }
        return o
    }

    /// The outbox payload of an LLM usage record.
    public static func usagePayload(_ u: LLMUsageRecordRow) -> [String: JSONValue] {
        [
            "conversationId": .string(u.conversationID), "provider": .string(u.provider), "model": .string(u.model),
            "inputTokens": .int(u.inputTokens), "outputTokens": .int(u.outputTokens), "completed": .bool(u.completed),
        ]
    }

    /// Builds a snapshot (without answers) from an attempt row's columns.
    public static func attempt(
        id: String, tenant: String, examID: String, candidate: String, state: String, reason: String?,
        deadline: Int64, started: Int64, submitted: Int64?, paused: Int64?, grace: Int64
    ) throws(HubError) -> AttemptSnapshot {
        guard let st = AttemptState(rawValue: state) else { throw HubError(.internal, "unknown attempt state \(state)") }
        let clock = AttemptClock(
            state: st, deadlineMillis: deadline, graceMillis: grace, pausedAtMillis: paused,
            reason: reason.flatMap(SubmitReason.init(rawValue:)), closedAtMillis: submitted)
        return AttemptSnapshot(
            id: id, tenant: tenant, examID: examID, candidate: candidate, clock: clock, startedMillis: started, answers: [:])
    }
}

import GRDB

extension StoreCoding {
    static func attempt(from row: Row) throws -> AttemptSnapshot {
        try attempt(
            id: row["id"], tenant: row["tenant"], examID: row["exam_id"], candidate: row["candidate"], state: row["state"],
            reason: row["reason"], deadline: row["deadline_ms"], started: row["started_ms"], submitted: row["submitted_ms"],
            paused: row["paused_ms"], grace: row["grace_ms"])
    }
}
