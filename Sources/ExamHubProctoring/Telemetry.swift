import ExamHubDomain
import ExamHubWire

/// The telemetry kinds of PROTOCOL.md section 4a. Anything else is refused with `bad_request`.
public enum TelemetryKind: String, Sendable, Hashable, CaseIterable {
    case focusLost = "focus.lost"
    case focusGained = "focus.gained"
    case visibilityHidden = "visibility.hidden"
    case visibilityVisible = "visibility.visible"
    case fullscreenExit = "fullscreen.exit"
    case fullscreenEnter = "fullscreen.enter"
    case clipboardCopy = "clipboard.copy"
    case clipboardPaste = "clipboard.paste"
    case devtoolsOpen = "devtools.open"
    case faceCount = "face.count"
    case gazeAway = "gaze.away"
    case voiceDetected = "voice.detected"
    case networkOffline = "network.offline"
    case screenCount = "screen.count"

    /// The one numeric field a kind carries in `data`, with its allowed range; `nil` for kinds with no number.
    public var numericField: (name: String, range: ClosedRange<Double>, integer: Bool)? {
        switch self {
        case .faceCount, .screenCount: ("n", 0...64, true)
        case .gazeAway, .voiceDetected, .networkOffline: ("seconds", 0...86_400, false)
        default: nil
        }
    }
}

/// One telemetry event as the hub keeps it: the kind, the client's claimed time, the time the rules use (the
/// client time corrected for the clock offset and clamped, see ``TelemetryClock``), and the kind's number.
public struct TelemetryEvent: Sendable, Hashable {
    public var kind: TelemetryKind
    /// The `at` the client sent, in its own clock (milliseconds since 1970).
    public var clientMillis: Int64
    /// The time the rules use, in server milliseconds.
    public var atMillis: Int64
    /// `n` or `seconds`, when the kind has one.
    public var value: Double?

    public init(kind: TelemetryKind, clientMillis: Int64, atMillis: Int64, value: Double? = nil) {
        self.kind = kind
        self.clientMillis = clientMillis
        self.atMillis = atMillis
        self.value = value
    }

    /// The event as evidence in a flag or a stored batch: `{kind, at, clientAt, data}`.
    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "kind": .string(kind.rawValue), "at": .string(Timestamp.format(millis: atMillis)),
            "clientAt": .string(Timestamp.format(millis: clientMillis)),
        ]
        if let value, let field = kind.numericField {
            o["data"] = .object([field.name: field.integer ? .int(Int64(value)) : .double(value)])
        } else {
            o["data"] = .object([:])
        }
        return .object(o)
    }
}

extension Array where Element == TelemetryEvent {
    /// The events as compact JSON text, `[[kind, atMillis, clientAtMillis, number|null], ...]`, written without
    /// building JSON values (evidence is stored for every frame).
    public var compactJSON: String {
        var out = "["
        out.reserveCapacity(count * 48)
        for (i, e) in enumerated() {
            if i > 0 { out += "," }
            out += "[\"" + e.kind.rawValue + "\"," + String(e.atMillis) + "," + String(e.clientMillis) + ","
            if let v = e.value {
                out += v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
            } else {
                out += "null"
            }
            out += "]"
        }
        return out + "]"
    }
}

/// A validated `telemetry` batch: events in server time, sorted, with the clock offset measured for it.
public struct TelemetryBatch: Sendable, Hashable {
    public var events: [TelemetryEvent]
    /// Server time minus the client's clock, as estimated from this batch (milliseconds; positive: client behind).
    public var skewMillis: Int64
    public var receivedMillis: Int64

    /// At most this many events per frame (PROTOCOL.md section 3).
    public static let maxEvents = 256

    /// Validates the `events` field of a `telemetry` op received at `now`. Every problem names the event
    /// (`events[3].data.n`). Unknown kinds, missing or unreadable `at`, and numbers out of range are refused.
    public init(events raw: JSONValue?, now: Int64, clock: inout TelemetryClock) throws(HubError) {
        guard case .array(let items)? = raw else { throw .badRequest("\"events\" must be an array") }
        guard !items.isEmpty else { throw .badRequest("\"events\" must not be empty") }
        guard items.count <= Self.maxEvents else {
            throw HubError(.tooLarge, "at most \(Self.maxEvents) telemetry events per frame")
        }
        var parsed: [(kind: TelemetryKind, client: Int64, value: Double?)] = []
        parsed.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            guard case .object(let o) = item else { throw .badRequest("events[\(i)] must be an object") }
            guard case .string(let kindName)? = o["kind"] else { throw .badRequest("events[\(i)].kind must be a string") }
            guard let kind = TelemetryKind(rawValue: kindName) else {
                throw .badRequest("events[\(i)].kind \"\(kindName.prefix(64))\" is not a telemetry kind")
            }
            guard case .string(let atText)? = o["at"], let client = Timestamp.parse(atText) else {
                throw .badRequest("events[\(i)].at must be an RFC 3339 time")
            }
            for key in o.keys where key != "kind" && key != "at" && key != "data" {
                throw .badRequest("events[\(i)] has an unknown field \"\(key.prefix(64))\"")
            }
            var value: Double?
            let data = o["data"] ?? .object([:])
            guard case .object(let d) = data else { throw .badRequest("events[\(i)].data must be an object") }
            if let field = kind.numericField {
                let number: Double
                switch d[field.name] {
                case .int(let n)?: number = Double(n)
                case .double(let x)? where !field.integer: number = x
                default:
                    throw .badRequest(
                        "events[\(i)].data.\(field.name) must be \(field.integer ? "an integer" : "a number") for \(kindName)")
                }
                guard field.range.contains(number) else {
                    throw .badRequest(
                        "events[\(i)].data.\(field.name) must be in \(Int(field.range.lowerBound))...\(Int(field.range.upperBound))")
                }
                value = number
            }
            guard d.count <= 8 else { throw .badRequest("events[\(i)].data has too many fields") }
            parsed.append((kind, client, value))
        }
        let latestClient = parsed.map(\.client).max() ?? now
        skewMillis = clock.observe(latestClientMillis: latestClient, now: now)
        receivedMillis = now
        // Stable: events claimed at the same time keep the order the client sent them in.
        let ordered = parsed.enumerated().sorted { a, b in
            a.element.client != b.element.client ? a.element.client < b.element.client : a.offset < b.offset
        }.map(\.element)
        let events = ordered.map { p in
            TelemetryEvent(kind: p.kind, clientMillis: p.client, atMillis: clock.serverTime(of: p.client, now: now), value: p.value)
        }
        self.events = events
    }

    public init(events: [TelemetryEvent], skewMillis: Int64, receivedMillis: Int64) {
        self.events = events
        self.skewMillis = skewMillis
        self.receivedMillis = receivedMillis
    }
}

/// Turns client timestamps into server time without trusting them blindly.
///
/// Each batch is assumed to be sent right after its newest event, so `now - newest.at` estimates the client's
/// clock offset (plus the network delay). The offset kept is the smallest seen recently (a delayed batch makes
/// the estimate larger, never smaller), re-learned when the client's clock jumps. An event's server time is its
/// client time plus the offset, clamped to `[now - maxBacklog, now]` and never before the attempt's previous
/// event, so a client can neither post-date events nor stretch them over an arbitrarily long past.
public struct TelemetryClock: Sendable, Hashable {
    /// The current estimate of `server - client`, in milliseconds.
    public private(set) var offsetMillis: Int64?
    /// The latest server time given to an event of this attempt.
    public private(set) var lastEventMillis: Int64 = .min
    /// How far back a batch may reach (default 10 minutes: a browser that was offline flushes its queue).
    public var maxBacklogMillis: Int64
    /// A new estimate this much larger than the kept one replaces it (the client's clock jumped back).
    public var rejumpMillis: Int64

    public init(maxBacklogMillis: Int64 = 600_000, rejumpMillis: Int64 = 5_000) {
        self.maxBacklogMillis = maxBacklogMillis
        self.rejumpMillis = rejumpMillis
    }

    /// Records a batch whose newest event the client stamped `latestClientMillis`; returns the measured skew.
    public mutating func observe(latestClientMillis: Int64, now: Int64) -> Int64 {
        let (measured, overflow) = now.subtractingReportingOverflow(latestClientMillis)
        let skew = overflow ? 0 : measured
        if let current = offsetMillis {
            if skew < current || skew > current + rejumpMillis { offsetMillis = skew }
        } else {
            offsetMillis = skew
        }
        return skew
    }

    /// The server time of an event stamped `clientMillis`.
    public mutating func serverTime(of clientMillis: Int64, now: Int64) -> Int64 {
        let (shifted, overflow) = clientMillis.addingReportingOverflow(offsetMillis ?? 0)
        var t = overflow ? now : shifted
        t = min(now, max(now - maxBacklogMillis, t))
        t = max(t, min(lastEventMillis, now))
        lastEventMillis = max(lastEventMillis, t)
        return t
    }
}
