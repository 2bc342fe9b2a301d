import Histogram

/// The operations a scenario times, each with its own latency histogram. A raw index keeps the per-message path
/// free of dictionary lookups.
enum Op: Int, CaseIterable, Sendable {
    /// TCP connect, WebSocket upgrade and (on `/v1/socket`) authentication, to the first usable frame.
    case connect
    /// A text message on `/v1/echo` and its echo.
    case echo
    /// The `ping` op and its reply.
    case ping
    /// `attempt.join` and its reply.
    case join
    /// `answer.save` and its durable ack.
    case save
    /// `telemetry` and its reply.
    case telemetry
    /// `chat.send` and its reply (the message is taken; the answer follows as events).
    case chat
    /// `chat.send` to the first event of the answer (`chat.reply`, `chat.delta` or `chat.error`).
    case chatAnswer
    /// `attempt.submit` and its reply.
    case submit
    /// `proctor.watch` and its roster.
    case watch
    /// `subscribe` and its reply.
    case subscribe
    /// `proctor.action` (`warn`) and its reply.
    case warn
    /// A flag-raising telemetry frame to the `flag.raised` at the proctor watching the room.
    case flag
    /// A broadcast message from the publisher's send to its arrival at one subscriber.
    case delivery
    /// From a dropped socket's reconnect to every missed event recovered (reconnect, `subscribe since`, replay).
    case recover

    var name: String {
        switch self {
        case .connect: "connect"
        case .echo: "echo"
        case .ping: "ping"
        case .join: "attempt.join"
        case .save: "answer.save"
        case .telemetry: "telemetry"
        case .chat: "chat.send"
        case .chatAnswer: "chat answer (first event)"
        case .submit: "attempt.submit"
        case .watch: "proctor.watch"
        case .subscribe: "subscribe"
        case .warn: "proctor.action warn"
        case .flag: "telemetry->flag.raised"
        case .delivery: "broadcast delivery"
        case .recover: "reconnect+recover"
        }
    }
}

/// Correctness checks a scenario makes while it measures; any non-zero count fails the run.
enum Check: Int, CaseIterable, Sendable {
    /// An `answer.save` ack whose version is not higher than the last ack's for its question.
    case versionNotIncreasing
    /// A broadcast or channel event whose `seq` skipped ahead (events lost in between).
    case seqGap
    /// A broadcast or channel event whose `seq` was not higher than the last one seen (duplicate or reordered).
    case seqOutOfOrder
    /// `subscribe since` answered `recovered: false` while the history should still hold the missed events.
    case notRecovered
    /// An acknowledged save missing from what a reconnecting candidate recovered or re-read.
    case ackLost
    /// A `flag.raised` no telemetry frame of this run accounts for.
    case unmatchedFlag
    /// A reply with an `id` nothing is waiting for, or a reply that does not parse.
    case strayReply
    /// A proctor's acknowledged warning that its candidate never received, live or replayed after a drop.
    case warningLost
    /// Broadcast messages the publisher sent that some subscriber never received (counted at the end).
    case lostDelivery

    var name: String {
        switch self {
        case .versionNotIncreasing: "version_not_increasing"
        case .seqGap: "seq_gap"
        case .seqOutOfOrder: "seq_out_of_order"
        case .notRecovered: "not_recovered"
        case .ackLost: "acked_save_lost"
        case .unmatchedFlag: "unmatched_flag"
        case .strayReply: "stray_reply"
        case .warningLost: "warning_not_received"
        case .lostDelivery: "lost_delivery"
        }
    }
}

/// A latency histogram in nanoseconds, up to a minute, three significant digits.
typealias LatencyHistogram = Histogram<UInt64>

func makeLatencyHistogram() -> LatencyHistogram {
    Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
}

/// What the sockets of one client event loop counted. Touched only on that loop (or by a task the loop runs).
final class ScenarioStats: @unchecked Sendable {
    var latency: [LatencyHistogram] = Op.allCases.map { _ in makeLatencyHistogram() }
    /// Successful completions per op (a reply with `ok: true`, an echo, a delivery).
    var done = [Int](repeating: 0, count: Op.allCases.count)
    var checks = [Int](repeating: 0, count: Check.allCases.count)
    /// Refusals by protocol error code (`rate_limited`, `unavailable`, …), and transport failures (`connect`,
    /// `closed 1006`, …).
    var errors: [String: Int] = [:]
    var open = 0
    var sent = 0
    var received = 0
    /// Acknowledged saves a reconnecting candidate found again after its drop (the recovery check's sample size).
    var verified = 0

    @inline(__always) func record(_ op: Op, since start: UInt64, now: UInt64) {
        done[op.rawValue] += 1
        latency[op.rawValue].record(now &- start)
    }

    func error(_ code: String) { errors[code, default: 0] += 1 }

    /// A copy of the counters; with `histograms`, of the latency histograms too (kept out of the live progress lines,
    /// which run every second).
    func snapshot(histograms: Bool) -> ScenarioSnapshot {
        var s = ScenarioSnapshot(done: done, checks: checks, errors: errors, open: open, sent: sent, received: received,
                                 verified: verified)
        if histograms { s.latency = latency }
        return s
    }

    /// Zeroes the latency histograms and completion counts (after a warm-up); errors, checks and totals stay.
    func resetWindow() {
        for i in latency.indices { latency[i].reset() }
        for i in done.indices { done[i] = 0 }
    }
}

/// The totals of every loop at one moment.
struct ScenarioSnapshot: Sendable {
    var latency: [LatencyHistogram] = []
    var done = [Int](repeating: 0, count: Op.allCases.count)
    var checks = [Int](repeating: 0, count: Check.allCases.count)
    var errors: [String: Int] = [:]
    var open = 0
    var sent = 0
    var received = 0
    var verified = 0

    mutating func add(_ o: ScenarioSnapshot, histograms: Bool) {
        for i in done.indices {
            done[i] += o.done[i]
            if histograms, i < o.latency.count {
                if latency.count < done.count { latency = Op.allCases.map { _ in makeLatencyHistogram() } }
                latency[i].add(o.latency[i])
            }
        }
        for i in checks.indices { checks[i] += o.checks[i] }
        errors.merge(o.errors, uniquingKeysWith: +)
        open += o.open
        sent += o.sent
        received += o.received
        verified += o.verified
    }

    var errorCount: Int { errors.values.reduce(0, +) }
    var checkFailures: Int { checks.reduce(0, +) }
}
