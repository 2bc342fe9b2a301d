import ExamHubDomain

/// Persistence for the hub. Two implementations share one contract and one test suite: ``SQLiteStore``
/// (embedded, the default) and, for several nodes, PostgreSQL.
///
/// Every method is `async` and may be called from any task; implementations serialize writes themselves.
/// Errors thrown are ``HubError``s: `unavailable` when the database cannot be reached, protocol codes otherwise.
/// Times are server milliseconds since 1970, passed in so that behaviour is testable.
public protocol Store: OutboxStore {
    /// Applies every schema migration not yet applied. Idempotent.
    func migrate() async throws(HubError)

    /// The migrations already applied, oldest first.
    func appliedMigrations() async throws(HubError) -> [String]

    /// Succeeds when the database answers a trivial query (for `/readyz`).
    func ping() async throws(HubError)

    /// What exists behind a channel that needs a lookup before subscribing (`attempt:` and `chat:`).
    func channelResource(_ channel: ChannelName) async throws(HubError) -> ChannelResource

    /// Records an attempt as it is (for tests of channel permissions and tools; `joinAttempt` is the normal way).
    func insertAttempt(_ attempt: AttemptRecord) async throws(HubError)

    /// Records a chat conversation owned by a user.
    func insertConversation(id: String, tenant: String, owner: String) async throws(HubError)

    // MARK: Exams

    /// Stores a new exam; `conflict` when the tenant already has one with this id.
    func createExam(tenant: String, definition: ExamDefinition, now: Int64) async throws(HubError)

    /// The tenant's exam, or `nil`.
    func exam(tenant: String, id: String) async throws(HubError) -> ExamDefinition?

    // MARK: Attempts

    /// The candidate's attempt at the exam, created (deadline `now + durationSec`) when there is none yet. An
    /// attempt whose deadline has passed is submitted with `time_up` first. Returns the attempt with its answers.
    func joinAttempt(tenant: String, exam: ExamDefinition, candidate: String, now: Int64) async throws(HubError)
        -> AttemptSnapshot

    /// An attempt with its answers, or `nil`.
    func attempt(id: String) async throws(HubError) -> AttemptSnapshot?

    /// Applies a batch of saves in one transaction (group commit). Each save succeeds or fails on its own; the
    /// results are in the order of `saves`, and every success is durable when this returns.
    func applySaves(_ saves: [SaveCommand], now: Int64) async throws(HubError) -> [Result<SaveOutcome, HubError>]

    /// Submits an attempt (idempotent per `opID` for the candidate's own submit). Returns the attempt after.
    func submitAttempt(id: String, reason: SubmitReason, opID: String?, now: Int64) async throws(HubError)
        -> AttemptSnapshot

    /// Submits, with reason `time_up`, every attempt in progress whose deadline is at or before `now`; returns them.
    func submitDueAttempts(now: Int64) async throws(HubError) -> [AttemptSnapshot]

    // MARK: Proctoring

    /// The exam's attempts (without answers), oldest first, at most `limit`.
    func attempts(tenant: String, examID: String, limit: Int) async throws(HubError) -> [AttemptSnapshot]

    /// Stores telemetry batches as evidence (one row per batch) and the flags they raised or grew (upserted by
    /// attempt, code and first occurrence), with a `flag.raised` outbox row for each new flag, in one transaction.
    func recordTelemetry(_ batches: [TelemetryRecord], flags: [FlagRecord], now: Int64) async throws(HubError)

    /// The stored flags of each attempt, oldest first.
    func flags(attemptIDs: [String]) async throws(HubError) -> [String: [FlagRecord]]

    /// Applies a proctor's action to the attempt's clock, with its audit entry and outbox row, in one transaction.
    /// `not_found` when the attempt is not in the action's tenant. Returns the attempt after.
    func applyProctorAction(_ action: ProctorActionCommand, now: Int64) async throws(HubError) -> AttemptSnapshot

    /// The audit log of an exam (optionally one attempt), newest first, at most `limit` entries.
    func auditLog(tenant: String, examID: String, attemptID: String?, limit: Int) async throws(HubError) -> [AuditEntry]

    /// Deletes telemetry evidence received before `before`; returns how many batches went.
    func purgeTelemetry(before: Int64) async throws(HubError) -> Int

    // MARK: Chat

    /// The conversation, created for `owner` in `tenant` (optionally tied to an attempt) when it does not exist.
    /// An existing conversation is returned as it is; the caller checks its owner.
    func openConversation(id: String, tenant: String, owner: String, attemptID: String?, now: Int64) async throws(HubError)
        -> ConversationRecord

    /// Appends a message. A user message repeating a `clientMsgID` of its conversation is not stored again: the
    /// original is returned (so `chat.send` is idempotent). An assistant message also writes a `chat.turn` outbox row.
    func appendChatMessage(_ message: ChatMessageRecord) async throws(HubError) -> ChatMessageRecord

    /// The conversation's latest `limit` messages, oldest first.
    func chatHistory(conversationID: String, limit: Int) async throws(HubError) -> [ChatMessageRecord]

    /// Records the tokens one LLM answer used, with an `llm.usage` outbox row.
    func recordLLMUsage(_ usage: LLMUsageRecordRow) async throws(HubError)

    /// Tokens each tenant used since `since` (to restore daily budgets after a restart).
    func llmTokensByTenant(since: Int64) async throws(HubError) -> [String: Int64]

    /// Releases connections. The store is unusable afterwards.
    func close() async
}

/// A chat conversation.
public struct ConversationRecord: Sendable, Hashable {
    public var id: String
    public var tenant: String
    public var owner: String
    public var attemptID: String?
    public var createdMillis: Int64

    public init(id: String, tenant: String, owner: String, attemptID: String?, createdMillis: Int64) {
        self.id = id
        self.tenant = tenant
        self.owner = owner
        self.attemptID = attemptID
        self.createdMillis = createdMillis
    }
}

/// One chat message: the user's (with the client's id and the id of the answer it gets) or the assistant's (with
/// the intent and source of the answer).
public struct ChatMessageRecord: Sendable, Hashable {
    public var id: String
    public var conversationID: String
    public var tenant: String
    /// `user` or `assistant`.
    public var role: String
    public var text: String
    public var clientMsgID: String?
    public var replyID: String?
    public var intent: String?
    /// `intent`, `llm` or `policy` (assistant messages).
    public var source: String?
    public var createdMillis: Int64

    public init(
        id: String, conversationID: String, tenant: String, role: String, text: String, clientMsgID: String? = nil,
        replyID: String? = nil, intent: String? = nil, source: String? = nil, createdMillis: Int64
    ) {
        self.id = id
        self.conversationID = conversationID
        self.tenant = tenant
        self.role = role
        self.text = text
        self.clientMsgID = clientMsgID
        self.replyID = replyID
        self.intent = intent
        self.source = source
        self.createdMillis = createdMillis
    }
}

/// The tokens of one LLM answer.
public struct LLMUsageRecordRow: Sendable, Hashable {
    public var tenant: String
    public var conversationID: String
    public var provider: String
    public var model: String
    public var inputTokens: Int64
    public var outputTokens: Int64
    public var completed: Bool
    public var atMillis: Int64

    public init(
        tenant: String, conversationID: String, provider: String, model: String, inputTokens: Int64,
        outputTokens: Int64, completed: Bool, atMillis: Int64
    ) {
        self.tenant = tenant
        self.conversationID = conversationID
        self.provider = provider
        self.model = model
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.completed = completed
        self.atMillis = atMillis
    }
}

/// One stored `telemetry` batch: the events as received (corrected times included), for evidence.
public struct TelemetryRecord: Sendable, Hashable {
    public var attemptID: String
    public var tenant: String
    public var receivedMillis: Int64
    public var skewMillis: Int64
    public var eventCount: Int
    /// The events as JSON text: `[[kind, atMillis, clientAtMillis, number|null], ...]` (compact: evidence is written
    /// for every frame; flags keep their evidence as objects).
    public var eventsJSON: String

    public init(attemptID: String, tenant: String, receivedMillis: Int64, skewMillis: Int64, eventCount: Int, eventsJSON: String) {
        self.attemptID = attemptID
        self.tenant = tenant
        self.receivedMillis = receivedMillis
        self.skewMillis = skewMillis
        self.eventCount = eventCount
        self.eventsJSON = eventsJSON
    }
}

/// A flag as stored: identified by attempt, code and first occurrence.
public struct FlagRecord: Sendable, Hashable {
    public var attemptID: String
    public var tenant: String
    public var examID: String
    public var code: String
    public var severity: String
    public var firstMillis: Int64
    public var lastMillis: Int64
    public var count: Int
    /// A JSON array of the evidence events.
    public var evidence: JSONValue
    /// Raised by this batch (not grown): gets a `flag.raised` outbox row.
    public var isNew: Bool

    public init(
        attemptID: String, tenant: String, examID: String, code: String, severity: String, firstMillis: Int64,
        lastMillis: Int64, count: Int, evidence: JSONValue, isNew: Bool
    ) {
        self.attemptID = attemptID
        self.tenant = tenant
        self.examID = examID
        self.code = code
        self.severity = severity
        self.firstMillis = firstMillis
        self.lastMillis = lastMillis
        self.count = count
        self.evidence = evidence
        self.isNew = isNew
    }
}

/// A proctor's `proctor.action`, authorized by the caller except for the tenant, which the store checks.
public struct ProctorActionCommand: Sendable, Hashable {
    public var attemptID: String
    public var tenant: String
    public var actor: String
    public var actorRole: String
    public var action: ProctorActionKind
    public var message: String?
    public var reason: String?
    public var minutes: Int?

    public init(
        attemptID: String, tenant: String, actor: String, actorRole: String, action: ProctorActionKind,
        message: String? = nil, reason: String? = nil, minutes: Int? = nil
    ) {
        self.attemptID = attemptID
        self.tenant = tenant
        self.actor = actor
        self.actorRole = actorRole
        self.action = action
        self.message = message
        self.reason = reason
        self.minutes = minutes
    }
}

/// One audit log entry: who did what to which attempt, when and why, and the attempt's state after.
public struct AuditEntry: Sendable, Hashable {
    public var id: String
    public var tenant: String
    public var examID: String
    public var attemptID: String
    public var actor: String
    public var actorRole: String
    public var action: String
    public var message: String?
    public var reason: String?
    public var minutes: Int?
    public var stateAfter: String
    public var deadlineAfterMillis: Int64
    public var atMillis: Int64

    public init(
        id: String, tenant: String, examID: String, attemptID: String, actor: String, actorRole: String, action: String,
        message: String?, reason: String?, minutes: Int?, stateAfter: String, deadlineAfterMillis: Int64, atMillis: Int64
    ) {
        self.id = id
        self.tenant = tenant
        self.examID = examID
        self.attemptID = attemptID
        self.actor = actor
        self.actorRole = actorRole
        self.action = action
        self.message = message
        self.reason = reason
        self.minutes = minutes
        self.stateAfter = stateAfter
        self.deadlineAfterMillis = deadlineAfterMillis
        self.atMillis = atMillis
    }
}

/// The stored identity of an attempt: enough to decide who may see it.
public struct AttemptRecord: Sendable, Hashable {
    public var id: String
    public var tenant: String
    public var examID: String
    public var candidate: String
    public var state: String
    public var deadlineMillis: Int64
    public var startedMillis: Int64

    public init(
        id: String, tenant: String, examID: String, candidate: String, state: String = "in_progress",
        deadlineMillis: Int64, startedMillis: Int64
    ) {
        self.id = id
        self.tenant = tenant
        self.examID = examID
        self.candidate = candidate
        self.state = state
        self.deadlineMillis = deadlineMillis
        self.startedMillis = startedMillis
    }
}

/// One stored answer.
public struct StoredAnswer: Sendable, Hashable {
    public var value: JSONValue
    public var version: Int64
    public var savedAtMillis: Int64

    public init(value: JSONValue, version: Int64, savedAtMillis: Int64) {
        self.value = value
        self.version = version
        self.savedAtMillis = savedAtMillis
    }
}

/// An attempt as stored: identity, clock and answers.
public struct AttemptSnapshot: Sendable, Hashable {
    public var id: String
    public var tenant: String
    public var examID: String
    public var candidate: String
    public var clock: AttemptClock
    public var startedMillis: Int64
    public var answers: [String: StoredAnswer]

    public init(
        id: String, tenant: String, examID: String, candidate: String, clock: AttemptClock, startedMillis: Int64,
        answers: [String: StoredAnswer]
    ) {
        self.id = id
        self.tenant = tenant
        self.examID = examID
        self.candidate = candidate
        self.clock = clock
        self.startedMillis = startedMillis
        self.answers = answers
    }
}

/// One `answer.save`, already validated against the question (type and size).
public struct SaveCommand: Sendable, Hashable {
    public var attemptID: String
    /// The saving candidate: the attempt must be theirs and in their tenant.
    public var tenant: String
    public var candidate: String
    public var qid: String
    public var value: JSONValue
    public var opID: String
    public var baseVersion: Int64?

    public init(
        attemptID: String, tenant: String, candidate: String, qid: String, value: JSONValue, opID: String,
        baseVersion: Int64?
    ) {
        self.attemptID = attemptID
        self.tenant = tenant
        self.candidate = candidate
        self.qid = qid
        self.value = value
        self.opID = opID
        self.baseVersion = baseVersion
    }
}

/// A save's result: the reply data of `answer.save`.
public struct SaveOutcome: Sendable, Hashable {
    public var qid: String
    public var version: Int64
    public var savedAtMillis: Int64
    public var value: JSONValue
    /// True when `opID` was seen before and this is the original reply, replayed (no new version, no event).
    public var replayed: Bool

    public init(qid: String, version: Int64, savedAtMillis: Int64, value: JSONValue, replayed: Bool) {
        self.qid = qid
        self.version = version
        self.savedAtMillis = savedAtMillis
        self.value = value
        self.replayed = replayed
    }
}
