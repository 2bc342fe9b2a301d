import ExamHubDomain
import ExamHubWire

/// How serious a flag is.
public enum FlagSeverity: String, Sendable, Hashable, CaseIterable, Comparable {
    case info, warning, critical

    private var rank: Int {
        switch self {
        case .info: 0
        case .warning: 1
        case .critical: 2
        }
    }

    public static func < (a: FlagSeverity, b: FlagSeverity) -> Bool { a.rank < b.rank }
}

/// A test on an event's number (`n` or `seconds`): `{"field": "n", "op": ">=", "value": 2}`.
public struct EventCondition: Sendable, Hashable {
    public enum Operator: String, Sendable, Hashable, CaseIterable {
        case eq = "==", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">="
    }

    public var op: Operator
    public var value: Double

    public init(_ op: Operator, _ value: Double) {
        self.op = op
        self.value = value
    }

    public func holds(_ x: Double) -> Bool {
        switch op {
        case .eq: x == value
        case .ne: x != value
        case .lt: x < value
        case .le: x <= value
        case .gt: x > value
        case .ge: x >= value
        }
    }
}

/// One rule of a profile. The four kinds of issue 4:
/// - `match`: every matching event raises the flag;
/// - `count`: `count` matching events within `windowSec`;
/// - `duration`: the condition reported continuously (every event of the kind in between also matching) for
///   `durationSec` or more: raised by the report that reaches the duration, or by the first report that ends a
///   run which lasted that long;
/// - `total`: the events' number (`seconds`) adds up to `total` or more within `windowSec`.
///
/// A flag raised again within `mergeSec` of its previous occurrence is merged into it (its count and evidence
/// grow) instead of being raised anew.
public struct ProctoringRule: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case match, count, duration, total
    }

    public var code: String
    public var severity: FlagSeverity
    public var kind: Kind
    public var event: TelemetryKind
    public var condition: EventCondition?
    public var count: Int
    public var windowMillis: Int64
    public var durationMillis: Int64
    public var total: Double
    public var mergeMillis: Int64

    public init(
        code: String, severity: FlagSeverity, kind: Kind, event: TelemetryKind, condition: EventCondition? = nil,
        count: Int = 1, windowSec: Double = 0, durationSec: Double = 0, total: Double = 0, mergeSec: Double = 60
    ) {
        self.code = code
        self.severity = severity
        self.kind = kind
        self.event = event
        self.condition = condition
        self.count = count
        self.windowMillis = Int64(windowSec * 1000)
        self.durationMillis = Int64(durationSec * 1000)
        self.total = total
        self.mergeMillis = Int64(mergeSec * 1000)
    }

    /// Whether `event` is one this rule looks at and its condition holds.
    public func matches(_ event: TelemetryEvent) -> Bool {
        guard event.kind == self.event else { return false }
        guard let condition else { return true }
        guard let value = event.value else { return false }
        return condition.holds(value)
    }
}

/// How flags turn into the 0-100 risk figure: each flag weighs by severity, a repeated flag a little more, and
/// the weight halves every `halfLifeSec` after the flag's latest occurrence.
public struct RiskModel: Sendable, Hashable {
    public var weights: [FlagSeverity: Double]
    public var repeatBonus: Double
    public var maxRepeats: Int
    public var halfLifeMillis: Int64

    public init(
        weights: [FlagSeverity: Double] = [.info: 5, .warning: 15, .critical: 40], repeatBonus: Double = 0.25,
        maxRepeats: Int = 4, halfLifeSec: Double = 600
    ) {
        self.weights = weights
        self.repeatBonus = repeatBonus
        self.maxRepeats = maxRepeats
        self.halfLifeMillis = Int64(halfLifeSec * 1000)
    }

    /// The risk at `now` of an attempt with these flags.
    public func risk(of flags: some Sequence<Flag>, at now: Int64) -> Int {
        var sum = 0.0
        for flag in flags {
            let base = weights[flag.severity] ?? 0
            let repeats = Double(min(max(flag.count - 1, 0), maxRepeats))
            let age = Double(max(0, now - flag.lastMillis))
            let decay = halfLifeMillis > 0 ? _pow2(-age / Double(halfLifeMillis)) : 1
            sum += base * (1 + repeatBonus * repeats) * decay
        }
        return Int(min(100, max(0, sum.rounded())))
    }
}

/// 2^x without Foundation.
func _pow2(_ x: Double) -> Double {
    if x < -60 { return 0 }
    let whole = x.rounded(.down)
    let frac = x - whole
    // e^(frac ln 2) by its series: frac in [0, 1), eight terms are plenty.
    let y = frac * 0.6931471805599453
    var term = 1.0
    var sum = 1.0
    for k in 1...10 {
        term *= y / Double(k)
        sum += term
    }
    var p = 1.0
    if whole < 0 {
        for _ in 0..<Int(-whole) { p /= 2 }
    } else {
        for _ in 0..<Int(whole) { p *= 2 }
    }
    return sum * p
}

/// A proctoring profile: rules and a risk model, read from JSON (PROTOCOL.md section 4a; issue 4).
///
/// ```json
/// {"name": "default", "risk": {"halfLifeSec": 600, "weights": {"info": 5, "warning": 15, "critical": 40}},
///  "rules": [{"code": "no_face", "severity": "warning", "type": "duration", "event": "face.count",
///             "where": {"field": "n", "op": "==", "value": 0}, "durationSec": 10}]}
/// ```
public struct ProctoringProfile: Sendable, Hashable {
    public var name: String
    public var rules: [ProctoringRule]
    public var risk: RiskModel

    public init(name: String, rules: [ProctoringRule], risk: RiskModel = RiskModel()) {
        self.name = name
        self.rules = rules
        self.risk = risk
    }

    /// Parses a profile document; every error names its place (`rules[2].windowSec`).
    public init(json: JSONValue) throws(HubError) {
        guard case .object(let o) = json else { throw .badRequest("a profile must be a JSON object") }
        try Self.refuseUnknown(o, allowed: ["name", "rules", "risk", "description"], path: "")
        guard case .string(let name)? = o["name"], ChannelName.isValidID(name) else {
            throw .badRequest("name must be 1-128 of [A-Za-z0-9_.-]")
        }
        self.name = name
        guard case .array(let rawRules)? = o["rules"] else { throw .badRequest("rules must be an array") }
        guard rawRules.count <= 100 else { throw .badRequest("rules: at most 100") }
        var rules: [ProctoringRule] = []
        var codes = Set<String>()
        for (i, raw) in rawRules.enumerated() {
            let rule = try Self.rule(raw, path: "rules[\(i)].")
            guard codes.insert(rule.code).inserted else {
                throw .badRequest("rules[\(i)].code \"\(rule.code)\" is used twice")
            }
            rules.append(rule)
        }
        self.rules = rules
        self.risk = try Self.riskModel(o["risk"])
    }

    /// Parses profile JSON text.
    public init(jsonText: String) throws(HubError) {
        let json: JSONValue
        do {
            json = try JSONParser.parse(jsonText, limits: .init(maxDepth: 16, maxContainerCount: 10_000))
        } catch {
            throw .badRequest("invalid JSON: \(error.description)")
        }
        try self.init(json: json)
    }

    /// This profile with an exam's overrides applied: `{"rules": [...]}` replaces rules of the same code or adds
    /// them, `{"disable": ["paste"]}` removes rules, `{"risk": {...}}` replaces the risk model.
    public func applying(overrides: JSONValue?) throws(HubError) -> ProctoringProfile {
        guard let overrides, overrides != .null else { return self }
        guard case .object(let o) = overrides else { throw .badRequest("proctoring.overrides must be an object") }
        try Self.refuseUnknown(o, allowed: ["rules", "disable", "risk"], path: "proctoring.overrides.")
        var out = self
        if let disable = o["disable"] {
            guard case .array(let codes) = disable else {
                throw .badRequest("proctoring.overrides.disable must be an array of flag codes")
            }
            for (i, c) in codes.enumerated() {
                guard case .string(let code) = c else {
                    throw .badRequest("proctoring.overrides.disable[\(i)] must be a string")
                }
                guard out.rules.contains(where: { $0.code == code }) else {
                    throw .badRequest("proctoring.overrides.disable[\(i)]: profile \(name) has no rule \"\(code.prefix(64))\"")
                }
                out.rules.removeAll { $0.code == code }
            }
        }
        if let rules = o["rules"] {
            guard case .array(let raw) = rules, raw.count <= 100 else {
                throw .badRequest("proctoring.overrides.rules must be an array of at most 100 rules")
            }
            for (i, r) in raw.enumerated() {
                let rule = try Self.rule(r, path: "proctoring.overrides.rules[\(i)].")
                if let at = out.rules.firstIndex(where: { $0.code == rule.code }) {
                    out.rules[at] = rule
                } else {
                    out.rules.append(rule)
                }
            }
        }
        if let risk = o["risk"] { out.risk = try Self.riskModel(risk) }
        return out
    }

    // MARK: Parsing

    private static func refuseUnknown(_ o: [String: JSONValue], allowed: Set<String>, path: String) throws(HubError) {
        for key in o.keys.sorted() where !allowed.contains(key) {
            throw .badRequest("\(path)\(key.prefix(64)) is not a known field (expected one of \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    private static func number(_ o: [String: JSONValue], _ key: String, path: String, range: ClosedRange<Double>)
        throws(HubError) -> Double?
    {
        guard let v = o[key] else { return nil }
        let x: Double
        switch v {
        case .int(let n): x = Double(n)
        case .double(let d): x = d
        default: throw .badRequest("\(path)\(key) must be a number")
        }
        guard range.contains(x) else {
            throw .badRequest("\(path)\(key) must be in \(range.lowerBound)...\(range.upperBound)")
        }
        return x
    }

    static func rule(_ raw: JSONValue, path: String) throws(HubError) -> ProctoringRule {
        guard case .object(let o) = raw else { throw .badRequest("\(path.dropLast()) must be an object") }
        try refuseUnknown(
            o, allowed: ["code", "severity", "type", "event", "where", "count", "windowSec", "durationSec", "total",
                         "mergeSec", "description"], path: path)
        guard case .string(let code)? = o["code"], !code.isEmpty, code.utf8.count <= 64,
            code.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F })
        else { throw .badRequest("\(path)code must be 1-64 of [a-z0-9_]") }
        guard case .string(let sev)? = o["severity"], let severity = FlagSeverity(rawValue: sev) else {
            throw .badRequest("\(path)severity must be info, warning or critical")
        }
        guard case .string(let type)? = o["type"], let kind = ProctoringRule.Kind(rawValue: type) else {
            throw .badRequest("\(path)type must be match, count, duration or total")
        }
        guard case .string(let eventName)? = o["event"], let event = TelemetryKind(rawValue: eventName) else {
            throw .badRequest("\(path)event must be a telemetry kind (\(TelemetryKind.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        var condition: EventCondition?
        if let w = o["where"] {
            guard case .object(let wo) = w else { throw .badRequest("\(path)where must be an object") }
            try refuseUnknown(wo, allowed: ["field", "op", "value"], path: path + "where.")
            guard let field = event.numericField else {
                throw .badRequest("\(path)where: \(eventName) events carry no number to test")
            }
            guard case .string(let f)? = wo["field"], f == field.name else {
                throw .badRequest("\(path)where.field must be \"\(field.name)\" for \(eventName)")
            }
            guard case .string(let opName)? = wo["op"], let op = EventCondition.Operator(rawValue: opName) else {
                throw .badRequest("\(path)where.op must be one of ==, !=, <, <=, >, >=")
            }
            guard let value = try number(wo, "value", path: path + "where.", range: -1e9...1e9) else {
                throw .badRequest("\(path)where.value is required")
            }
            condition = EventCondition(op, value)
        }
        let window = try number(o, "windowSec", path: path, range: 1...86_400)
        let mergeSec = try number(o, "mergeSec", path: path, range: 0...86_400)
        var rule = ProctoringRule(code: code, severity: severity, kind: kind, event: event, condition: condition)
        switch kind {
        case .match:
            rule.mergeMillis = Int64((mergeSec ?? 60) * 1000)
        case .count:
            guard let count = try number(o, "count", path: path, range: 1...10_000), count == count.rounded() else {
                throw .badRequest("\(path)count must be an integer in 1...10000 for a count rule")
            }
            guard let window else { throw .badRequest("\(path)windowSec is required for a count rule") }
            rule.count = Int(count)
            rule.windowMillis = Int64(window * 1000)
            rule.mergeMillis = Int64((mergeSec ?? window) * 1000)
        case .duration:
            guard let d = try number(o, "durationSec", path: path, range: 0.001...86_400) else {
                throw .badRequest("\(path)durationSec is required for a duration rule")
            }
            rule.durationMillis = Int64(d * 1000)
            rule.mergeMillis = Int64((mergeSec ?? 60) * 1000)
        case .total:
            guard event.numericField?.name == "seconds" else {
                throw .badRequest("\(path)event: a total rule adds up seconds (gaze.away, voice.detected, network.offline)")
            }
            guard let total = try number(o, "total", path: path, range: 0.001...86_400) else {
                throw .badRequest("\(path)total is required for a total rule")
            }
            guard let window else { throw .badRequest("\(path)windowSec is required for a total rule") }
            rule.total = total
            rule.windowMillis = Int64(window * 1000)
            rule.mergeMillis = Int64((mergeSec ?? window) * 1000)
        }
        return rule
    }

    static func riskModel(_ raw: JSONValue?) throws(HubError) -> RiskModel {
        guard let raw, raw != .null else { return RiskModel() }
        guard case .object(let o) = raw else { throw .badRequest("risk must be an object") }
        try refuseUnknown(o, allowed: ["weights", "halfLifeSec", "repeatBonus", "maxRepeats"], path: "risk.")
        var model = RiskModel()
        if let w = o["weights"] {
            guard case .object(let wo) = w else { throw .badRequest("risk.weights must be an object") }
            try refuseUnknown(wo, allowed: ["info", "warning", "critical"], path: "risk.weights.")
            for severity in FlagSeverity.allCases {
                if let x = try number(wo, severity.rawValue, path: "risk.weights.", range: 0...100) {
                    model.weights[severity] = x
                }
            }
        }
        if let h = try number(o, "halfLifeSec", path: "risk.", range: 0...604_800) { model.halfLifeMillis = Int64(h * 1000) }
        if let b = try number(o, "repeatBonus", path: "risk.", range: 0...10) { model.repeatBonus = b }
        if let m = try number(o, "maxRepeats", path: "risk.", range: 0...100) { model.maxRepeats = Int(m) }
        return model
    }
}
