import ExamHubDomain

/// A consumer of the outbox. Each worker keeps its own progress on every event (state, tries, next time, owner),
/// so the notification and analytics workers read the same rows without waiting for each other.
///
/// An event's progress for one worker: `pending` (new, or waiting for a retry at `next`), `claimed` (a worker
/// holds it until `next`, its lease; an expired lease makes it claimable again, which is how a killed worker's
/// batch is taken over), `done`, or `dead` (parked after too many failures until `examhub worker … --replay`).
public enum OutboxWorker: String, Sendable, Hashable, CaseIterable {
    case notifications
    case analytics

    /// The prefix of this worker's progress columns in the `outbox` table.
    public var columnPrefix: String {
        switch self {
        case .notifications: "notify"
        case .analytics: "analytics"
        }
    }
}

/// One outbox event as a worker receives it.
public struct OutboxEvent: Sendable, Hashable {
    /// Unique id: receivers use it to drop duplicates (delivery is at least once).
    public var id: String
    public var tenant: String
    /// `attempt.joined`, `answers.saved`, `attempt.submitted`, `flag.raised`, `proctor.action`, `chat.turn`,
    /// `llm.usage` (schemas in `Protocols/schemas/outbox/`).
    public var type: String
    public var atMillis: Int64
    /// The event's data (an object).
    public var payload: JSONValue
    /// Tries so far for this worker, this one included.
    public var attempts: Int
    /// The last failure this worker recorded, if any.
    public var lastError: String?

    public init(
        id: String, tenant: String, type: String, atMillis: Int64, payload: JSONValue, attempts: Int = 0,
        lastError: String? = nil
    ) {
        self.id = id
        self.tenant = tenant
        self.type = type
        self.atMillis = atMillis
        self.payload = payload
        self.attempts = attempts
        self.lastError = lastError
    }
}

/// A failed try: retried at `retryAtMillis`, or parked as dead when that is `nil`.
public struct OutboxFailure: Sendable, Hashable {
    public var id: String
    public var error: String
    public var retryAtMillis: Int64?

    public init(id: String, error: String, retryAtMillis: Int64?) {
        self.id = id
        self.error = error
        self.retryAtMillis = retryAtMillis
    }
}

/// What a worker still has to do.
public struct OutboxBacklog: Sendable, Hashable {
    /// Events pending or claimed.
    public var pending: Int
    /// The time of the oldest of them (the lag is `now - oldestMillis`).
    public var oldestMillis: Int64?
    /// Events parked as dead.
    public var dead: Int

    public init(pending: Int, oldestMillis: Int64?, dead: Int) {
        self.pending = pending
        self.oldestMillis = oldestMillis
        self.dead = dead
    }
}

/// The outbox side of a store: claiming, completing and failing events per worker, dead letters, the analytics
/// roll-ups and the exam report. Both stores implement it with the same rules (one contract test suite).
public protocol OutboxStore: Sendable {
    /// Claims up to `limit` events this worker can work on now (pending and due, or claimed with an expired
    /// lease), oldest first, for `owner` until `now + leaseMillis`. Concurrent workers never get the same event
    /// while its lease holds. Each claim counts as a try.
    func claimOutbox(_ worker: OutboxWorker, owner: String, limit: Int, leaseMillis: Int64, now: Int64)
        async throws(HubError) -> [OutboxEvent]

    /// Marks events done: only those `owner` still holds (a lease taken over by another worker is left alone).
    /// Returns how many were marked.
    @discardableResult
    func completeOutbox(_ worker: OutboxWorker, owner: String, ids: [String], now: Int64) async throws(HubError) -> Int

    /// Records failed tries: retried later or parked as dead. Only events `owner` still holds.
    func failOutbox(_ worker: OutboxWorker, owner: String, failures: [OutboxFailure], now: Int64) async throws(HubError)

    /// Folds claimed events into the per-exam roll-ups and marks them done, in one transaction, so each event
    /// counts exactly once even when a lease was taken over. Events `owner` no longer holds are left out.
    @discardableResult
    func applyAnalytics(owner: String, events: [OutboxEvent], now: Int64) async throws(HubError) -> AnalyticsBatch

    /// Dead events of this worker, oldest first.
    func deadLetters(_ worker: OutboxWorker, limit: Int) async throws(HubError) -> [OutboxEvent]

    /// Makes dead events pending again (all when `ids` is nil), with their tries reset. Returns how many.
    func replayDeadLetters(_ worker: OutboxWorker, ids: [String]?, now: Int64) async throws(HubError) -> Int

    /// Pending and dead counts, and the oldest pending event's time.
    func outboxBacklog(_ worker: OutboxWorker) async throws(HubError) -> OutboxBacklog

    /// Deletes events every worker has done with, recorded before `before`. Returns how many.
    func purgeOutbox(before: Int64) async throws(HubError) -> Int

    /// The exam's roll-up counters (`metric`, `key`, `value`), for ``ExamReport``.
    func examStats(tenant: String, examID: String) async throws(HubError) -> [ExamStat]
}

/// What one analytics transaction counted.
public struct AnalyticsBatch: Sendable, Hashable {
    /// The events applied (and marked done).
    public var applied: [String]
    /// The counters they added to, merged.
    public var stats: [ExamStat]

    public init(applied: [String] = [], stats: [ExamStat] = []) {
        self.applied = applied
        self.stats = stats
    }
}
