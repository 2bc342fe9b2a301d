import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket

/// What a simulated candidate does once joined. Intervals of `nil` switch an activity off.
struct CandidatePlan: Sendable {
    var examID: String
    var questions = 10
    /// Seconds between autosaves (each adds a few words to a growing answer, restarting after about 2 KB).
    var saveEvery: TimeAmount?
    /// Seconds between telemetry frames (one event each).
    var telemetryEvery: TimeAmount?
    /// Telemetry events per frame: the shipped client (`examhub.js`) batches what happened since its last frame
    /// every 2 s, so an event a second is a frame of two every two seconds.
    var telemetryPerFrame = 1
    /// Share of telemetry frames that are a `clipboard.paste` (a flag at the proctor when the exam's profile says so).
    var flagRatio = 0.0
    /// Mean seconds between a candidate's chat messages.
    var chatEvery: Double?
    /// When the candidate submits (the wave at the deadline); `nil`: never.
    var submitAt: NIODeadline?
    /// Subscribe to the own attempt channel and track its `seq` (for recovery after a drop).
    var trackChannel = false
}

/// A candidate that outlives its sockets: the attempt, the channel position it has seen, the saves acknowledged since
/// then (each must come back when it recovers), the last version per question and its answer text.
final class Candidate: @unchecked Sendable {
    let index: Int
    let token: String
    let loop: any EventLoop
    var attemptID: String?
    var epoch: String?
    var lastSeq: Int64 = -1
    /// `(question, version)` of every save acknowledged since the last check.
    var acked: [(Int, Int64)] = []
    /// `(question << 40 | version)` of the `answer.saved` events seen on the attempt channel since the last check,
    /// live or replayed.
    var seenSaves: Set<Int64> = []
    var lastVersion: [Int64]
    var text = ""
    var submitted = false
    /// Warnings a proctor sent to this attempt (acknowledged), and `attempt.warned` events the candidate saw.
    var warningsSent = 0
    var warningsSeen = 0
    var socket: CandidateSocket?

    init(index: Int, token: String, loop: any EventLoop, questions: Int) {
        self.index = index
        self.token = token
        self.loop = loop
        self.lastVersion = Array(repeating: 0, count: max(1, questions))
        // A random point of the typing cycle, so that answers do not all grow in step.
        let start = Int.random(in: 0..<2000)
        while text.utf8.count < start { text += "word\(text.utf8.count % 97) " }
    }
}

/// One socket of a candidate: joins (or, after a drop, recovers with `subscribe since` and rejoins), then saves,
/// sends telemetry, chats and submits as its plan says, checking every ack and every recovered event.
final class CandidateSocket: ScenarioSocket, @unchecked Sendable {
    let candidate: Candidate
    let plan: CandidatePlan
    let flags: FlagClock?
    /// Set when this socket replaces a dropped one: when the reconnect started.
    let recoveringSince: UInt64?
    private var tracking = false
    private var recoverTarget: Int64?
    private var joinedAgain = false
    private var answersAfterJoin: [String: Int64] = [:]
    private var chatSentAt: UInt64?
    private var focused = true
    private var submitTimer: Scheduled<Void>?
    static let chatTexts = [
        "how much time do I have left", "can I use a calculator", "how do I flag a question", "is my answer saved",
        "what happens if my connection drops", "can I go back to a previous question",
    ]

    init(candidate: Candidate, plan: CandidatePlan, flags: FlagClock?, recoveringSince: UInt64?, stats: ScenarioStats,
         running: NIOLockedValueBox<Bool>, readyPromise: EventLoopPromise<Void>, openedAt: UInt64) {
        self.candidate = candidate
        self.plan = plan
        self.flags = flags
        self.recoveringSince = recoveringSince
        super.init(stats: stats, running: running, readyPromise: readyPromise, openedAt: openedAt)
    }

    private var channel: String { "attempt:\(candidate.attemptID ?? "")" }

    override func opened() {
        candidate.socket = self
        if recoveringSince != nil, let epoch = candidate.epoch, candidate.attemptID != nil {
            request(.subscribe, "subscribe", #""ch":"\#(channel)","since":{"epoch":"\#(epoch)","seq":\#(candidate.lastSeq)}"#)
        }
        request(.join, "attempt.join", #""examId":"\#(plan.examID)""#)
    }

    override func closed() {
        if candidate.socket === self { candidate.socket = nil }
        submitTimer?.cancel()
    }

    override func replied(_ op: Op, ok: Bool, sent: UInt64, now: UInt64, text: String) {
        switch op {
        case .join:
            guard ok, let id = FrameText.string(text, "attemptId") else {
                readyPromise.fail(LoadError.helloRefused(text))
                return
            }
            candidate.attemptID = id
            if recoveringSince != nil {
                joinedAgain = true
                if let answers = (Self.json(text)?["data"] as? [String: Any])?["answers"] as? [String: Any] {
                    for (qid, a) in answers {
                        if let v = (a as? [String: Any])?["version"] as? Int { answersAfterJoin[qid] = Int64(v) }
                    }
                }
                finishRecoveryIfDone(now: now)
            } else if plan.trackChannel {
                request(.subscribe, "subscribe", #""ch":"\#(channel)""#)
            } else {
                becameReady(now: now)
            }
        case .subscribe:
            guard ok, let seq = FrameText.int(text, "seq") else {
                readyPromise.fail(LoadError.helloRefused(text))
                return
            }
            candidate.epoch = FrameText.string(text, "epoch")
            if recoveringSince != nil {
                if !text.contains(#""recovered":true"#) {
                    // The history no longer holds what was missed: a real client re-reads state (the rejoin).
                    stats.checks[Check.notRecovered.rawValue] += 1
                    candidate.lastSeq = seq
                }
                recoverTarget = seq
                tracking = true
                finishRecoveryIfDone(now: now)
            } else {
                candidate.lastSeq = seq
                tracking = true
                becameReady(now: now)
            }
        case .save:
            guard ok else { return }
            let before = stats.checks[Check.versionNotIncreasing.rawValue]
            checkVersion(text, lastVersion: &candidate.lastVersion, stats: stats)
            if plan.trackChannel, stats.checks[Check.versionNotIncreasing.rawValue] == before,
                let q = FrameText.string(text, "qid"), let qi = Int(q.dropFirst()), let v = FrameText.int(text, "version")
            {
                candidate.acked.append((qi, v))
            }
        case .submit:
            if ok {
                candidate.submitted = true
                if !text.contains(#""state":"submitted""#) { stats.error("submit_state") }
            }
        case .chat:
            if !ok { chatSentAt = nil }
        default:
            break
        }
    }

    override func event(_ text: String, now: UInt64) {
        if text.hasPrefix(#"{"op":"event","ch":"chat:"#) {
            if let sent = chatSentAt, text.contains(#""type":"chat.reply""#) || text.contains(#""type":"chat.delta""#)
                || text.contains(#""type":"chat.error""#)
            {
                chatSentAt = nil
                stats.record(.chatAnswer, since: sent, now: now)
                if text.contains(#""type":"chat.error""#) { stats.error("chat.error") }
            }
            return
        }
        guard tracking, text.hasPrefix(#"{"op":"event","ch":"attempt:"#), let seq = FrameText.int(text, "seq") else { return }
        if seq > candidate.lastSeq + 1 { stats.checks[Check.seqGap.rawValue] += 1 }
        if seq <= candidate.lastSeq {
            stats.checks[Check.seqOutOfOrder.rawValue] += 1
            return
        }
        candidate.lastSeq = seq
        if text.contains(#""type":"attempt.warned""#) { candidate.warningsSeen += 1 }
        if text.contains(#""type":"answer.saved""#), let q = FrameText.string(text, "qid"), let qi = Int(q.dropFirst()),
            let v = FrameText.int(text, "version")
        {
            candidate.seenSaves.insert(Int64(qi) << 40 | v)
        }
        if recoverTarget != nil { finishRecoveryIfDone(now: now) }
    }

    /// After a drop: done when the replay reached the subscribe reply's `seq` and the join answered. Every save
    /// acknowledged before the drop must be among the events seen since the last check (live or replayed), and the
    /// join's answers must hold at least its version.
    private func finishRecoveryIfDone(now: UInt64) {
        guard let since = recoveringSince, let target = recoverTarget, joinedAgain, candidate.lastSeq >= target else { return }
        recoverTarget = nil
        for (q, v) in candidate.acked {
            if !candidate.seenSaves.contains(Int64(q) << 40 | v) || (answersAfterJoin["q\(q)"] ?? 0) < v {
                stats.checks[Check.ackLost.rawValue] += 1
            } else {
                stats.verified += 1
            }
        }
        candidate.acked.removeAll()
        candidate.seenSaves.removeAll()
        stats.record(.recover, since: since, now: now)
        becameReady(now: now)
    }

    private func becameReady(now: UInt64) {
        ready(now: now)
        startActivities()
    }

    private func startActivities() {
        guard !candidate.submitted else { return }
        if let e = plan.saveEvery { every(e) { ($0 as? CandidateSocket)?.save() } }
        if let e = plan.telemetryEvery { every(e) { ($0 as? CandidateSocket)?.telemetry() } }
        if let mean = plan.chatEvery, mean > 0 {
            every(.seconds(1)) { socket in
                if Double.random(in: 0..<1) < 1 / mean { (socket as? CandidateSocket)?.chat() }
            }
        }
        if let at = plan.submitAt, let loop = context?.eventLoop {
            let bound = NIOLoopBound(self, eventLoop: loop)
            submitTimer = loop.scheduleTask(deadline: at) {
                bound.value.submit()
                bound.value.flush()
            }
        }
    }

    private func save() {
        guard let attemptID = candidate.attemptID else { return }
        if candidate.text.utf8.count > 2000 { candidate.text = "" }
        candidate.text += "word\(candidate.text.utf8.count % 97) "
        let q = Int.random(in: 0..<max(1, plan.questions))
        let opID = "\(candidate.index)-\(UInt64.random(in: 0...UInt64.max))"
        request(.save, "answer.save",
                #""attemptId":"\#(attemptID)","qid":"q\#(q)","value":"\#(candidate.text)","opId":"\#(opID)""#)
    }

    private func telemetry() {
        guard let attemptID = candidate.attemptID else { return }
        let now = NIODeadline.now().uptimeNanoseconds
        let at = ProctoringHandler.timestamp()
        var events: [String] = []
        for _ in 0..<max(1, plan.telemetryPerFrame) {
            if plan.flagRatio > 0, Double.random(in: 0..<1) < plan.flagRatio {
                events.append(#"{"kind":"clipboard.paste","at":"\#(at)"}"#)
                flags?.record(attemptID, at: now)
            } else if Bool.random() {
                events.append(#"{"kind":"face.count","at":"\#(at)","data":{"n":1}}"#)
            } else {
                focused.toggle()
                events.append(#"{"kind":"\#(focused ? "focus.gained" : "focus.lost")","at":"\#(at)"}"#)
            }
        }
        request(.telemetry, "telemetry", #""attemptId":"\#(attemptID)","events":[\#(events.joined(separator: ","))]"#, now: now)
    }

    private func chat() {
        guard chatSentAt == nil, let attemptID = candidate.attemptID else { return }
        let now = NIODeadline.now().uptimeNanoseconds
        chatSentAt = now
        let text = Self.chatTexts[Int.random(in: 0..<Self.chatTexts.count)]
        request(.chat, "chat.send",
                #""text":"\#(text)","clientMsgId":"m\#(now)","attemptId":"\#(attemptID)""#, now: now)
    }

    private func submit() {
        guard let attemptID = candidate.attemptID, !candidate.submitted else { return }
        stopTimers()
        request(.submit, "attempt.submit", #""attemptId":"\#(attemptID)","opId":"submit-\#(candidate.index)""#)
    }
}

/// A proctor watching one exam (a room): times every `flag.raised` from the telemetry frame that caused it, and
/// warns candidates when told to (`onWarned` gets the tag of each acknowledged warning).
final class ProctorSocket: ScenarioSocket, @unchecked Sendable {
    let examID: String
    let flags: FlagClock
    var onWarned: ((Int) -> Void)?

    /// Sends `proctor.action warn` to an attempt; `tag` comes back through `onWarned` once acknowledged.
    func warn(attemptID: String, tag: Int) {
        request(.warn, "proctor.action",
                #""attemptId":"\#(attemptID)","action":"warn","message":"Please keep your eyes on the screen","reason":"load test""#,
                tag: tag)
    }

    override func replied(_ op: Op, ok: Bool, tag: Int, text: String) {
        if op == .warn, ok { onWarned?(tag) }
    }

    init(examID: String, flags: FlagClock, stats: ScenarioStats, running: NIOLockedValueBox<Bool>,
         readyPromise: EventLoopPromise<Void>, openedAt: UInt64) {
        self.examID = examID
        self.flags = flags
        super.init(stats: stats, running: running, readyPromise: readyPromise, openedAt: openedAt)
    }

    override func opened() {
        request(.watch, "proctor.watch", #""examId":"\#(examID)""#)
    }

    override func replied(_ op: Op, ok: Bool, sent: UInt64, now: UInt64, text: String) {
        if op == .watch {
            if ok { ready(now: now) } else { readyPromise.fail(LoadError.helloRefused(text)) }
        }
    }

    override func event(_ text: String, now: UInt64) {
        guard text.contains(#""type":"flag.raised""#) else { return }
        stats.received += 1
        if let attempt = FrameText.string(text, "attemptId"), let sent = flags.take(attempt) {
            stats.record(.flag, since: sent, now: now)
        } else {
            stats.checks[Check.unmatchedFlag.rawValue] += 1
        }
    }
}
