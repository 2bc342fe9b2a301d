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
