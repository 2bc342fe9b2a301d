import ExamHubDomain
import ExamHubWire

/// A flag raised on an attempt: what (`code`, `severity`), when (first and latest occurrence, server time), how
/// often (occurrences merged into it) and the events that raised it.
public struct Flag: Sendable, Hashable {
    public var code: String
    public var severity: FlagSeverity
    public var firstMillis: Int64
    public var lastMillis: Int64
    public var count: Int
    /// The events that raised it, oldest first, at most ``AttemptMonitor/maxEvidence``.
    public var evidence: [TelemetryEvent]

    public init(
        code: String, severity: FlagSeverity, firstMillis: Int64, lastMillis: Int64, count: Int = 1,
        evidence: [TelemetryEvent] = []
    ) {
        self.code = code
        self.severity = severity
        self.firstMillis = firstMillis
        self.lastMillis = lastMillis
        self.count = count
        self.evidence = evidence
    }

    /// The flag in a roster or an attempt read: `{code, severity, at, lastAt, count}`.
    public var summaryJSON: JSONValue {
        .object([
            "code": .string(code), "severity": .string(severity.rawValue),
            "at": .string(Timestamp.format(millis: firstMillis)), "lastAt": .string(Timestamp.format(millis: lastMillis)),
            "count": .int(Int64(count)),
        ])
    }
}

/// What one batch did to an attempt's flags.
public struct MonitorOutcome: Sendable {
    /// Flags raised for the first time (or again after their merge window): each is a `flag.raised` event.
    public var raised: [Flag] = []
    /// Flags whose new occurrence was merged into an open one (stored, not announced again).
    public var merged: [Flag] = []
    /// The latest state of every flag the batch raised or grew, once each: what to store.
    public var changed: [Flag] = []

    public var isEmpty: Bool { raised.isEmpty && merged.isEmpty }
}

/// The rules engine for one attempt: feeds telemetry through its profile's rules, merges duplicate flags and
/// keeps the flags for the risk figure. A value type with no I/O: the server keeps one per live attempt.
public struct AttemptMonitor: Sendable {
    public let profile: ProctoringProfile
    public var clock: TelemetryClock
    /// Every flag of the attempt, oldest first (at most ``maxFlags``; the oldest are dropped beyond).
    public private(set) var flags: [Flag] = []
    private var states: [RuleState]

    public static let maxEvidence = 20
    public static let maxFlags = 200

    private struct FlagKey: Hashable {
        var code: String
        var firstMillis: Int64
    }

    private struct RuleState: Sendable {
        var window: [TelemetryEvent] = []
        var windowTotal: Double = 0
        var runStart: Int64?
        var runEvidence: [TelemetryEvent] = []
        var runRaised = false
    }

    public init(profile: ProctoringProfile, clock: TelemetryClock = TelemetryClock(), flags: [Flag] = []) {
        self.profile = profile
        self.clock = clock
        self.flags = flags
        self.states = Array(repeating: RuleState(), count: profile.rules.count)
    }

    /// The risk at `now`, 0-100.
    public func risk(at now: Int64) -> Int {
        profile.risk.risk(of: flags, at: now)
    }

    /// Runs a batch (sorted by server time) through every rule.
    public mutating func ingest(_ events: [TelemetryEvent]) -> MonitorOutcome {
        var outcome = MonitorOutcome()
        for event in events {
            for index in profile.rules.indices where profile.rules[index].event == event.kind {
                if let evidence = evaluate(index, event) {
                    record(profile.rules[index], at: event.atMillis, evidence: evidence, into: &outcome)
                }
            }
        }
        if !outcome.isEmpty {
            var seen = Set<FlagKey>()
            for flag in (outcome.merged + outcome.raised).reversed() {
                let key = FlagKey(code: flag.code, firstMillis: flag.firstMillis)
                guard seen.insert(key).inserted else { continue }
                if let current = flags.last(where: { $0.code == key.code && $0.firstMillis == key.firstMillis }) {
                    outcome.changed.append(current)
                }
            }
        }
        return outcome
    }

    /// Feeds one event of the rule's kind to rule `index`; returns the evidence when the rule fires.
    private mutating func evaluate(_ index: Int, _ event: TelemetryEvent) -> [TelemetryEvent]? {
        let rule = profile.rules[index]
        let matches = rule.matches(event)
        switch rule.kind {
        case .match:
            return matches ? [event] : nil
        case .count, .total:
            guard matches else { return nil }
            var state = states[index]
            let from = event.atMillis - rule.windowMillis
            while let first = state.window.first, first.atMillis < from {
                state.windowTotal -= first.value ?? 0
                state.window.removeFirst()
            }
            state.window.append(event)
            state.windowTotal += event.value ?? 0
            let fires = rule.kind == .count ? state.window.count >= rule.count : state.windowTotal >= rule.total - 1e-9
            var evidence: [TelemetryEvent]?
            if fires {
                evidence = state.window
                state.window.removeAll(keepingCapacity: true)
                state.windowTotal = 0
            }
            states[index] = state
            return evidence
        case .duration:
            var state = states[index]
            defer { states[index] = state }
            if matches {
                if let start = state.runStart {
                    if state.runEvidence.count < Self.maxEvidence { state.runEvidence.append(event) }
                    if !state.runRaised, event.atMillis - start >= rule.durationMillis {
                        state.runRaised = true
                        return state.runEvidence
                    }
                } else {
                    state.runStart = event.atMillis
                    state.runEvidence = [event]
                    state.runRaised = false
                }
                return nil
            }
            // A report that ends the run: a run that lasted the duration without a report crossing it fires now.
            defer {
                state.runStart = nil
                state.runEvidence.removeAll()
                state.runRaised = false
            }
            if let start = state.runStart, !state.runRaised, event.atMillis - start >= rule.durationMillis {
                return state.runEvidence + [event]
            }
            return nil
        }
    }

    private mutating func record(
        _ rule: ProctoringRule, at t: Int64, evidence: [TelemetryEvent], into outcome: inout MonitorOutcome
    ) {
        if let last = flags.lastIndex(where: { $0.code == rule.code }), t - flags[last].lastMillis <= rule.mergeMillis {
            flags[last].count += 1
            flags[last].lastMillis = max(flags[last].lastMillis, t)
            flags[last].evidence.append(contentsOf: evidence)
            if flags[last].evidence.count > Self.maxEvidence {
                flags[last].evidence.removeFirst(flags[last].evidence.count - Self.maxEvidence)
            }
            outcome.merged.append(flags[last])
            return
        }
        let flag = Flag(
            code: rule.code, severity: rule.severity, firstMillis: t, lastMillis: t,
            evidence: Array(evidence.suffix(Self.maxEvidence)))
        flags.append(flag)
        if flags.count > Self.maxFlags { flags.removeFirst(flags.count - Self.maxFlags) }
        outcome.raised.append(flag)
    }
}
