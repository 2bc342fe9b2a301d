import ExamHubDomain

/// Persistence for the hub. Two implementations share one contract and one test suite: ``SQLiteStore``
/// (embedded, the default) and, for several nodes, PostgreSQL.
///
/// Every method is `async` and may be called from any task; implementations serialize writes themselves.
/// Errors thrown are ``HubError``s with code `unavailable` when the database cannot be reached.
public protocol Store: Sendable {
    /// Applies every schema migration not yet applied. Idempotent.
    func migrate() async throws(HubError)

    /// The migrations already applied, oldest first.
    func appliedMigrations() async throws(HubError) -> [String]

    /// Succeeds when the database answers a trivial query (for `/readyz`).
    func ping() async throws(HubError)

    /// What exists behind a channel that needs a lookup before subscribing (`attempt:` and `chat:`).
    func channelResource(_ channel: ChannelName) async throws(HubError) -> ChannelResource

    /// Records an attempt (used by the assessment layer and by tests of channel permissions).
    func insertAttempt(_ attempt: AttemptRecord) async throws(HubError)

    /// Records a chat conversation owned by a user.
    func insertConversation(id: String, tenant: String, owner: String) async throws(HubError)

    /// Releases connections. The store is unusable afterwards.
    func close() async
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
