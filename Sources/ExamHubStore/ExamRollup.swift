import ExamHubDomain
import ExamHubWire

/// One roll-up counter of an exam: `metric` and `key` name it (for example `flags` / `gaze_away|warning`).
public struct ExamStat: Sendable, Hashable {
    public var tenant: String
    public var examID: String
    public var metric: String
    public var key: String
    public var value: Int64

    public init(tenant: String, examID: String, metric: String, key: String, value: Int64) {
        self.tenant = tenant
        self.examID = examID
        self.metric = metric
        self.key = key
        self.value = value
    }
}

/// What the analytics worker needs to know about an attempt an event names (read in the same transaction).
public struct RollupAttempt: Sendable, Hashable {
    public var examID: String
    public var startedMillis: Int64
    public var submittedMillis: Int64?

    public init(examID: String, startedMillis: Int64, submittedMillis: Int64?) {
        self.examID = examID
        self.startedMillis = startedMillis
        self.submittedMillis = submittedMillis
    }
}

/// How outbox events become per-exam counters. Pure: the stores read the attempts and conversations the events
/// name, call ``increments(for:attempts:conversations:)`` and add the result to their `exam_stats` table.
///
/// | event | counters (`metric` / `key`) |
/// |---|---|
/// | `attempt.joined` | `attempts` / `started` |
/// | `attempt.submitted` | `attempts` / `submitted` (candidate), `timed_out` (time_up); `submit_seconds` / bucket |
/// | `proctor.action` | `interventions` / action; `attempts` / `terminated` for `terminate` |
/// | `answers.saved` | `saves` / `` += count |
/// | `flag.raised` | `flags` / `code|severity` |
/// | `chat.turn` | `assistant_turns` / `intent|source` (only for chats tied to an attempt) |
/// | `llm.usage` | `llm_calls`, `llm_input_tokens`, `llm_output_tokens` / provider (idem) |
public enum ExamRollup {
    /// Upper bounds, in seconds, of the time-to-submit histogram buckets (the last bucket is unbounded: `inf`).
    public static let submitBuckets: [Int64] = [60, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800, 14400]

    /// The attempt ids an event needs looked up.
    public static func attemptID(of event: OutboxEvent) -> String? {
        switch event.type {
        case "attempt.submitted", "answers.saved": event.payload["attemptId"]?.stringValue
        default: nil
        }
    }

    /// The conversation id an event needs resolved to an exam.
    public static func conversationID(of event: OutboxEvent) -> String? {
        switch event.type {
        case "chat.turn", "llm.usage": event.payload["conversationId"]?.stringValue
        default: nil
        }
    }

    /// The counters one event adds to. `attempts` maps attempt ids to what is stored about them; `conversations`
    /// maps conversation ids to the exam of the attempt they belong to. Unknown types and events whose exam
    /// cannot be found add nothing.
    public static func increments(
        for event: OutboxEvent, attempts: [String: RollupAttempt], conversations: [String: String]
    ) -> [ExamStat] {
        let p = event.payload
        func stat(_ exam: String, _ metric: String, _ key: String, _ value: Int64 = 1) -> ExamStat {
            ExamStat(tenant: event.tenant, examID: exam, metric: metric, key: key, value: value)
        }
        switch event.type {
        case "attempt.joined":
            guard let exam = p["examId"]?.stringValue else { return [] }
            return [stat(exam, "attempts", "started")]
        case "attempt.submitted":
            guard let id = p["attemptId"]?.stringValue, let attempt = attempts[id] else { return [] }
            switch p["reason"]?.stringValue {
            case "candidate":
                var out = [stat(attempt.examID, "attempts", "submitted")]
                let end = attempt.submittedMillis ?? event.atMillis
                let seconds = max(0, (end - attempt.startedMillis) / 1000)
                out.append(stat(attempt.examID, "submit_seconds", bucketKey(seconds: seconds)))
                return out
            case "time_up":
                return [stat(attempt.examID, "attempts", "timed_out")]
            default:
                return []
            }
        case "proctor.action":
            guard let exam = p["examId"]?.stringValue, let action = p["action"]?.stringValue else { return [] }
            var out = [stat(exam, "interventions", action)]
            if action == "terminate" { out.append(stat(exam, "attempts", "terminated")) }
            return out
        case "answers.saved":
            guard let id = p["attemptId"]?.stringValue, let attempt = attempts[id] else { return [] }
            return [stat(attempt.examID, "saves", "", max(0, p["count"]?.intValue ?? 0))]
        case "flag.raised":
            guard let exam = p["examId"]?.stringValue, let code = p["code"]?.stringValue else { return [] }
            return [stat(exam, "flags", code + "|" + (p["severity"]?.stringValue ?? "info"))]
        case "chat.turn":
            guard let conv = p["conversationId"]?.stringValue, let exam = conversations[conv] else { return [] }
            let intent = p["intent"]?.stringValue ?? "-"
            return [stat(exam, "assistant_turns", intent + "|" + (p["source"]?.stringValue ?? "intent"))]
        case "llm.usage":
            guard let conv = p["conversationId"]?.stringValue, let exam = conversations[conv] else { return [] }
            let provider = p["provider"]?.stringValue ?? "unknown"
            return [
                stat(exam, "llm_calls", provider),
                stat(exam, "llm_input_tokens", provider, max(0, p["inputTokens"]?.intValue ?? 0)),
                stat(exam, "llm_output_tokens", provider, max(0, p["outputTokens"]?.intValue ?? 0)),
            ]
        default:
            return []
        }
    }

    /// Sums increments that name the same counter, sorted by key (so concurrent writers lock rows in one order).
    public static func merged(_ stats: [ExamStat]) -> [ExamStat] {
        var sums: [String: ExamStat] = [:]
        for s in stats {
            let k = [s.tenant, s.examID, s.metric, s.key].joined(separator: "\u{1}")
            if var existing = sums[k] {
                existing.value += s.value
                sums[k] = existing
            } else {
                sums[k] = s
            }
        }
        return sums.sorted { $0.key < $1.key }.map(\.value)
    }

    /// The bucket key of a time to submit: the smallest bound at or above it, or `inf`.
    public static func bucketKey(seconds: Int64) -> String {
        for bound in submitBuckets where seconds <= bound { return String(bound) }
        return "inf"
    }
}

/// The report `GET /v1/exams/{id}/report` serves, built from the exam's roll-up counters.
public struct ExamReport: Sendable, Hashable {
    public var examID: String
    public var stats: [ExamStat]

    public init(examID: String, stats: [ExamStat]) {
        self.examID = examID
        self.stats = stats
    }

    private func values(_ metric: String) -> [String: Int64] {
        var out: [String: Int64] = [:]
        for s in stats where s.metric == metric { out[s.key, default: 0] += s.value }
        return out
    }

    /// The report as JSON (schema `Protocols/schemas/http/report.json`).
    public func json(generatedAtMillis: Int64, backlog: OutboxBacklog?) -> JSONValue {
        let attempts = values("attempts")
        let started = attempts["started"] ?? 0
        let submitted = attempts["submitted"] ?? 0
        let timedOut = attempts["timed_out"] ?? 0
        let terminated = attempts["terminated"] ?? 0

        // Time to submit: cumulative buckets and quantiles read off them (the bucket bound that reaches the rank).
        let buckets = values("submit_seconds")
        var bucketRows: [JSONValue] = []
        var ordered: [(bound: String, count: Int64)] = ExamRollup.submitBuckets.map { (String($0), buckets[String($0)] ?? 0) }
        ordered.append(("inf", buckets["inf"] ?? 0))
        let total = ordered.reduce(0) { $0 + $1.count }
        for (bound, count) in ordered {
            bucketRows.append(.object(["leSec": bound == "inf" ? .string("inf") : .int(Int64(bound) ?? 0), "count": .int(count)]))
        }
        func quantile(_ q: Double) -> JSONValue {
            guard total > 0 else { return .null }
            let rank = Int64((Double(total) * q).rounded(.up))
            var seen: Int64 = 0
            for (bound, count) in ordered {
                seen += count
                if seen >= rank { return bound == "inf" ? .string("inf") : .int(Int64(bound) ?? 0) }
            }
            return .null
        }

        var flagsByCode: [String: Int64] = [:]
        var bySeverity: [String: JSONValue] = [:]
        for s in stats where s.metric == "flags" {
            let parts = s.key.split(separator: "|", maxSplits: 1).map(String.init)
            flagsByCode[parts.first ?? s.key, default: 0] += s.value
            let severity = parts.count > 1 ? parts[1] : "info"
            bySeverity[severity] = .int((bySeverity[severity]?.intValue ?? 0) + s.value)
        }
        let turns = values("assistant_turns").sorted { $0.key < $1.key }.map { key, count -> JSONValue in
            let parts = key.split(separator: "|", maxSplits: 1).map(String.init)
            return .object([
                "intent": parts.first == "-" ? .null : .string(parts.first ?? key),
                "source": .string(parts.count > 1 ? parts[1] : "intent"), "count": .int(count),
            ])
        }
        var bySource: [String: JSONValue] = [:]
        for s in stats where s.metric == "assistant_turns" {
            let source = s.key.split(separator: "|", maxSplits: 1).dropFirst().first.map(String.init) ?? "intent"
            bySource[source] = .int((bySource[source]?.intValue ?? 0) + s.value)
        }
        let calls = values("llm_calls")
        let input = values("llm_input_tokens")
        let output = values("llm_output_tokens")
        let providers = Set(calls.keys).union(input.keys).union(output.keys).sorted().map { p -> JSONValue in
            .object([
                "provider": .string(p), "calls": .int(calls[p] ?? 0), "inputTokens": .int(input[p] ?? 0),
                "outputTokens": .int(output[p] ?? 0),
            ])
        }
        var out: [String: JSONValue] = [
            "examId": .string(examID),
            "generatedAt": .string(Timestamp.format(millis: generatedAtMillis)),
            // By state (as in `GET /v1/attempts/{id}`), plus how submitted attempts ended.
            "attempts": .object([
                "total": .int(started), "in_progress": .int(max(0, started - submitted - timedOut - terminated)),
                "submitted": .int(submitted + timedOut), "terminated": .int(terminated),
                "submitted_by_candidate": .int(submitted), "timed_out": .int(timedOut),
            ]),
            "timeToSubmit": .object([
                "count": .int(total), "buckets": .array(bucketRows), "p50Sec": quantile(0.5), "p90Sec": quantile(0.9),
            ]),
            "saves": .int(values("saves")[""] ?? 0),
            "flags": .object(flagsByCode.mapValues { .int($0) }),
            "flagsBySeverity": .object(bySeverity),
            "interventions": .object(values("interventions").mapValues { .int($0) }),
            "assistant": .object(["turns": .int(values("assistant_turns").values.reduce(0, +)),
                                  "bySource": .object(bySource), "byIntent": .array(turns)]),
            "llm": .object(["providers": .array(providers)]),
        ]
        if let backlog {
            // How far behind the roll-ups are: events not yet counted, and the age of the oldest.
            var lag: [String: JSONValue] = ["pendingEvents": .int(Int64(backlog.pending))]
            if let oldest = backlog.oldestMillis {
                lag["oldestPendingSec"] = .double(Double(max(0, generatedAtMillis - oldest)) / 1000)
            }
            out["analyticsLag"] = .object(lag)
        }
        return .object(out)
    }
}
