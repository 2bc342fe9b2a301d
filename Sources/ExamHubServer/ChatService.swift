import ExamHubAssistant
import ExamHubDomain
import ExamHubIntents
import ExamHubLLM
import ExamHubStore
import ExamHubWire
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The assistant on this node (issue 5): answers `chat.send` on `chat:<conversationId>` with `chat.reply` (intents
/// and policy), or `chat.delta`… `chat.reply` `chat.done` from the LLM gateway, or `chat.error`. Runs off the event
/// loops (one task per answer); fills built-in actions from live state (the attempt's clock and answers, the exam);
/// keeps each conversation's dialog context for follow-ups; tears down an LLM answer on `chat.cancel` or when the
/// socket that asked goes away; stores every turn and the tokens used.
final class ChatService: Sendable {
    /// One answer to give.
    struct Turn: Sendable {
        var conversation: ConversationRecord
        var principal: Principal
        var userMessageID: String
        var messageID: String
        var text: String
        var attempt: AttemptSnapshot?
        var exam: ExamDefinition?
        /// The socket that asked: its disconnect cancels the answer.
        var connID: String
    }

    private let catalog: IntentCatalog
    private let trained: NIOLockedValueBox<Assistant?>
    private let training: Task<Assistant, Never>
    let gateway: LLMGateway?
    private let store: any Store
    private let hub: ChannelHub
    private let metrics: HubMetrics
    private let logger: Logger
    private let contexts = NIOLockedValueBox<[String: DialogContext]>([:])
    private let streams = NIOLockedValueBox<[String: StreamHandle]>([:])

    /// An LLM answer in flight and the socket that asked for it.
    private final class StreamHandle: Sendable {
        let connID: String
        let stream: LLMStream
        init(connID: String, stream: LLMStream) {
            self.connID = connID
            self.stream = stream
        }
    }

    /// Starts training the matcher on `catalog` in the background (a `chat.send` before it is ready waits for it).
    init(catalog: IntentCatalog, gateway: LLMGateway?, store: any Store, hub: ChannelHub, metrics: HubMetrics, logger: Logger) {
        self.catalog = catalog
        self.gateway = gateway
        self.store = store
        self.hub = hub
        self.metrics = metrics
        self.logger = logger
        let llmEnabled = gateway?.isEnabled ?? false
        let box = NIOLockedValueBox<Assistant?>(nil)
        self.trained = box
        self.training = Task.detached(priority: .utility) {
            let assistant = Assistant(catalog: catalog, llmEnabled: llmEnabled)
            box.withLockedValue { $0 = assistant }
            return assistant
        }
    }

    private func assistant() async -> Assistant {
        if let ready = trained.withLockedValue({ $0 }) { return ready }
        return await training.value
    }

    /// Whether an LLM provider is configured.
    var llmEnabled: Bool { gateway?.isEnabled ?? false }

    // MARK: Answering

    func answer(_ turn: Turn) async {
        let assistant = await assistant()
        let cid = turn.conversation.id
        let inAttempt = turn.attempt.map { $0.clock.state == .inProgress || $0.clock.state == .paused } ?? false
        var context = contexts.withLockedValue { $0[cid] } ?? DialogContext()
        context.inAttempt = inAttempt
        let (decision, match) = assistant.decide(turn.text, context: &context)
        contexts.withLockedValue { all in
            if all.count >= 100_000 { all.removeAll(keepingCapacity: true) }
            all[cid] = context
        }
        switch decision {
        case .reply(let text, let intent, let confidence, let source):
            if source == .policy {
                if intent == "abuse" { metrics.chatAbusive.increment() } else { metrics.chatRefused.increment() }
            }
            await reply(turn, text: text, intent: intent, confidence: confidence, source: source)
        case .action(let action, let match):
            let slots = await fill(action, turn: turn)
            let text = assistant.render(match, slots: slots, variantSeed: UInt64.random(in: 0...UInt64.max))
            await reply(turn, text: text, intent: match.intent, confidence: match.confidence, source: .intent)
        case .llm:
            await streamLLM(turn, inAttempt: inAttempt, confidence: match?.confidence)
        }
    }

    private func reply(_ turn: Turn, text: String, intent: String?, confidence: Double?, source: AnswerSource) async {
        metrics.chatAnswers(source.rawValue).increment()
        publish(turn, "chat.reply", [
            "messageId": .string(turn.messageID), "text": .string(text), "intent": intent.map(JSONValue.string) ?? .null,
            "confidence": confidence.map { .double(Self.rounded($0)) } ?? .null, "source": .string(source.rawValue),
        ])
        await persist(turn, text: text, intent: intent, source: source)
    }

    private func streamLLM(_ turn: Turn, inAttempt: Bool, confidence: Double?) async {
        guard let gateway else { return }
        let cid = turn.conversation.id
        var history: [(role: String, text: String)] = []
        do {
            history = try await store.chatHistory(conversationID: cid, limit: 21)
                .filter { $0.id != turn.userMessageID }
                .map { ($0.role, $0.text) }
        } catch {
            logger.warning("chat history unreadable; answering without it", metadata: ["examhub.error": "\(error)"])
        }
        let messages = Assistant.llmMessages(
            systemPrompt: Assistant.systemPrompt(inAttempt: inAttempt), history: history, message: turn.text)
        let stream = gateway.stream(
            LLMRequest(messages: messages, tenant: turn.principal.tenant, conversationId: cid))
        let handle = StreamHandle(connID: turn.connID, stream: stream)
        let previous = streams.withLockedValue { all -> LLMStream? in
            let old = all[cid]?.stream
            all[cid] = handle
            return old
        }
        previous?.cancel()  // one answer at a time per conversation: a new question stops the old answer
        var text = ""
        let asked = NIODeadline.now()
        var firstToken = true
        do {
            for try await event in stream {
                switch event {
                case .delta(let piece):
                    if firstToken {
                        firstToken = false
                        metrics.llmFirstToken.recordNanoseconds((NIODeadline.now() - asked).nanoseconds)
                    }
                    text += piece
                    publish(turn, "chat.delta", ["messageId": .string(turn.messageID), "text": .string(piece)])
                case .done(let usage, let provider, _):
                    metrics.chatAnswers("llm").increment()
                    metrics.llmDuration.recordNanoseconds((NIODeadline.now() - asked).nanoseconds)
                    metrics.llmPromptTokens.increment(by: max(0, usage.inputTokens))
                    metrics.llmCompletionTokens.increment(by: max(0, usage.outputTokens))
                    publish(turn, "chat.reply", [
                        "messageId": .string(turn.messageID), "text": .string(text), "intent": .null,
                        "confidence": confidence.map { .double(Self.rounded($0)) } ?? .null, "source": .string("llm"),
                    ])
                    publish(turn, "chat.done", [
                        "messageId": .string(turn.messageID), "usage": Self.usageJSON(usage), "provider": .string(provider),
                    ])
                }
            }
        } catch let error as LLMError where error.code == .cancelled {
            publish(turn, "chat.done", [
                "messageId": .string(turn.messageID), "usage": .null, "cancelled": .bool(true),
            ])
        } catch {
            let (code, message) = Self.protocolError(error)
            metrics.chatLLMErrors.increment()
            logger.info("assistant LLM answer failed", metadata: ["examhub.error": "\(error)"])
            publish(turn, "chat.error", [
                "messageId": .string(turn.messageID), "code": .string(code), "message": .string(message),
            ])
        }
        streams.withLockedValue { all in
            if let current = all[cid], current === handle { all[cid] = nil }
        }
        if !text.isEmpty { await persist(turn, text: text, intent: nil, source: .llm) }
    }

    /// Stops the conversation's LLM answer (only one asked by `connID`, when given). Returns whether one was running.
    @discardableResult
    func cancel(conversationID: String, connID: String? = nil) -> Bool {
        let stream = streams.withLockedValue { all -> LLMStream? in
            guard let entry = all[conversationID], connID == nil || entry.connID == connID else { return nil }
            all[conversationID] = nil
            return entry.stream
        }
        stream?.cancel()
        return stream != nil
    }

    // MARK: Built-in actions

    private func fill(_ action: BuiltInAction, turn: Turn) async -> [String: String] {
        let now = WallClock.nowMillis()
        switch action {
        case .timeLeft:
            guard let attempt = turn.attempt else { return [:] }
            let current = (try? await store.attempt(id: attempt.id)) ?? attempt
            let clock = current.clock
            if clock.state == .paused {
                let left = clock.deadlineMillis - (clock.pausedAtMillis ?? now)
                return ["time_left": Self.duration(left) + " (the clock is paused)", "ends_at": "when the proctor resumes it"]
            }
            if clock.state.isClosed { return ["time_left": "no time", "ends_at": Timestamp.format(millis: clock.closedAtMillis ?? now)] }
            return ["time_left": Self.duration(clock.deadlineMillis - now), "ends_at": Self.clockTime(clock.deadlineMillis)]
        case .saveStatus:
            guard let attempt = turn.attempt, let current = try? await store.attempt(id: attempt.id) else {
                return ["save_status": "I can't check your answers right now, but every answer marked saved is stored"]
            }
            let count = current.answers.count
            let total = turn.exam?.questions.count
            let of = total.map { " (of \($0) questions)" } ?? ""
            guard let last = current.answers.values.map(\.savedAtMillis).max() else {
                return ["save_status": "No answers are saved yet: the first is saved as soon as you type it"]
            }
            let status = count == 1 ? "Your 1 answer is saved\(of)" : "All \(count) of your answers are saved\(of)"
            return ["save_status": status, "last_saved": Self.duration(now - last) + " ago"]
        case .examRules:
            guard let exam = turn.exam else { return ["exam_rules": "Join your exam to see its rules."] }
            var rules = "\(exam.title): \(Self.duration(Int64(exam.durationSec) * 1000)), \(exam.questions.count) questions. "
            rules += "Answers save automatically as you type"
            rules += exam.graceSec > 0 ? "; saves are accepted for \(exam.graceSec) seconds after the deadline. " : ". "
            rules += "The attempt is submitted automatically when time is up. Proctoring profile: \(exam.proctoringProfile)."
            return ["exam_rules": rules]
        case .reportProblem:
            let id = StoreCoding.newID(prefix: "rp")
            notifyProctors(turn, kind: "problem", reportID: id)
            return ["report_id": id]
        case .humanHelp:
            guard turn.attempt != nil else { return ["proctor_status": "support has been told you asked for help"] }
            notifyProctors(turn, kind: "help", reportID: StoreCoding.newID(prefix: "rp"))
            return ["proctor_status": "a proctor of your exam has been notified"]
        }
    }

    /// `candidate.help` on the exam's proctor channel (an addition to PROTOCOL.md section 4).
    private func notifyProctors(_ turn: Turn, kind: String, reportID: String) {
        guard let attempt = turn.attempt else { return }
        hub.publish(
            ChannelKey(tenant: attempt.tenant, name: .examProctor(attempt.examID)), type: "candidate.help",
            data: .object([
                "attemptId": .string(attempt.id), "candidate": .string(attempt.candidate), "kind": .string(kind),
                "reportId": .string(reportID), "text": .string(String(turn.text.prefix(500))),
            ]), now: WallClock.nowMillis())
    }

    // MARK: Helpers

    private func publish(_ turn: Turn, _ type: String, _ data: [String: JSONValue]) {
        hub.publish(
            ChannelKey(tenant: turn.conversation.tenant, name: .chat(turn.conversation.id)), type: type,
            data: .object(data), now: WallClock.nowMillis())
    }

    private func persist(_ turn: Turn, text: String, intent: String?, source: AnswerSource) async {
        let message = ChatMessageRecord(
            id: turn.messageID, conversationID: turn.conversation.id, tenant: turn.conversation.tenant,
            role: "assistant", text: text, intent: intent, source: source.rawValue, createdMillis: WallClock.nowMillis())
        do {
            _ = try await store.appendChatMessage(message)
        } catch {
            logger.warning("assistant answer not stored", metadata: ["examhub.error": "\(error)"])
        }
    }

    static func usageJSON(_ u: LLMUsage) -> JSONValue {
        .object([
            "promptTokens": .int(Int64(u.inputTokens)), "completionTokens": .int(Int64(u.outputTokens)),
            "totalTokens": .int(Int64(u.totalTokens)),
        ])
    }

    static func protocolError(_ error: any Error) -> (String, String) {
        guard let e = error as? LLMError else { return ("internal", "the assistant failed") }
        switch e.code {
        case .rateLimited: return ("rate_limited", "the assistant is busy; try again in a moment")
        case .budgetExceeded: return ("rate_limited", "the assistant's daily budget for your organisation is used up")
        case .badRequest: return ("bad_request", "the assistant could not take this question")
        default: return ("unavailable", "the assistant can't answer right now; try again")
        }
    }

    static func rounded(_ x: Double) -> Double { (min(1, max(0, x)) * 1000).rounded() / 1000 }

    /// "1 hour 5 minutes", "12 minutes", "45 seconds".
    static func duration(_ millis: Int64) -> String {
        let s = max(0, millis / 1000)
        if s < 60 { return "\(s) second\(s == 1 ? "" : "s")" }
        let m = (s + 30) / 60
        if m < 60 { return "\(m) minute\(m == 1 ? "" : "s")" }
        let h = m / 60
        let rest = m % 60
        return "\(h) hour\(h == 1 ? "" : "s")" + (rest > 0 ? " \(rest) minute\(rest == 1 ? "" : "s")" : "")
    }

    /// "14:30 UTC".
    static func clockTime(_ millis: Int64) -> String {
        let text = Timestamp.format(millis: millis)  // 2026-11-23T14:30:00.000Z
        let start = text.index(text.startIndex, offsetBy: 11)
        let end = text.index(start, offsetBy: 5)
        return String(text[start..<end]) + " UTC"
    }
}
