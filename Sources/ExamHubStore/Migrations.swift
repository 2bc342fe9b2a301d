/// The schema, versioned in code. Each migration runs once, in order, in its own transaction; both backends use
/// the same SQL (kept to the common subset of SQLite and PostgreSQL).
public enum Migrations {
    /// One named migration.
    public struct Migration: Sendable {
        public var name: String
        public var statements: [String]
        /// What PostgreSQL runs instead of `statements`, for a part of the schema only PostgreSQL has (several nodes
        /// sharing channels); `nil`: the shared `statements`.
        public var postgresStatements: [String]? = nil
    }

    public static let all: [Migration] = [
        Migration(
            name: "0001_core",
            statements: [
                """
                CREATE TABLE exams (
                    tenant TEXT NOT NULL,
                    id TEXT NOT NULL,
                    definition TEXT NOT NULL,
                    created_at BIGINT NOT NULL,
                    PRIMARY KEY (tenant, id)
                )
                """,
                """
                CREATE TABLE attempts (
                    id TEXT PRIMARY KEY,
                    tenant TEXT NOT NULL,
                    exam_id TEXT NOT NULL,
                    candidate TEXT NOT NULL,
                    state TEXT NOT NULL,
                    reason TEXT,
                    deadline_ms BIGINT NOT NULL,
                    started_ms BIGINT NOT NULL,
                    submitted_ms BIGINT,
                    paused_ms BIGINT,
                    UNIQUE (tenant, exam_id, candidate)
                )
                """,
                """
                CREATE TABLE answers (
                    attempt_id TEXT NOT NULL,
                    qid TEXT NOT NULL,
                    value TEXT NOT NULL,
                    version BIGINT NOT NULL,
                    saved_ms BIGINT NOT NULL,
                    PRIMARY KEY (attempt_id, qid)
                )
                """,
                """
                CREATE TABLE save_ops (
                    attempt_id TEXT NOT NULL,
                    op_id TEXT NOT NULL,
                    reply TEXT NOT NULL,
                    PRIMARY KEY (attempt_id, op_id)
                )
                """,
                """
                CREATE TABLE conversations (
                    id TEXT PRIMARY KEY,
                    tenant TEXT NOT NULL,
                    owner TEXT NOT NULL,
                    created_ms BIGINT NOT NULL
                )
                """,
                """
                CREATE TABLE outbox (
                    id TEXT PRIMARY KEY,
                    tenant TEXT NOT NULL,
                    type TEXT NOT NULL,
                    at_ms BIGINT NOT NULL,
                    payload TEXT NOT NULL,
                    state TEXT NOT NULL DEFAULT 'pending',
                    attempts INTEGER NOT NULL DEFAULT 0
                )
                """,
                "CREATE INDEX attempts_deadline ON attempts (state, deadline_ms)",
                "CREATE INDEX outbox_pending ON outbox (state, at_ms)",
            ]),
        Migration(
            name: "0002_attempt_clock",
            statements: [
                "ALTER TABLE attempts ADD COLUMN grace_ms BIGINT NOT NULL DEFAULT 0",
                "ALTER TABLE save_ops ADD COLUMN created_ms BIGINT NOT NULL DEFAULT 0",
            ]),
        Migration(
            name: "0003_proctoring",
            statements: [
                """
                CREATE TABLE telemetry_batches (
                    attempt_id TEXT NOT NULL,
                    tenant TEXT NOT NULL,
                    received_ms BIGINT NOT NULL,
                    skew_ms BIGINT NOT NULL,
                    event_count INTEGER NOT NULL,
                    events TEXT NOT NULL
                )
                """,
                "CREATE INDEX telemetry_attempt ON telemetry_batches (attempt_id, received_ms)",
                "CREATE INDEX telemetry_received ON telemetry_batches (received_ms)",
                """
                CREATE TABLE flags (
                    attempt_id TEXT NOT NULL,
                    code TEXT NOT NULL,
                    first_ms BIGINT NOT NULL,
                    tenant TEXT NOT NULL,
                    exam_id TEXT NOT NULL,
                    severity TEXT NOT NULL,
                    last_ms BIGINT NOT NULL,
                    occurrences INTEGER NOT NULL,
                    evidence TEXT NOT NULL,
                    PRIMARY KEY (attempt_id, code, first_ms)
                )
                """,
                """
                CREATE TABLE audit_log (
                    id TEXT PRIMARY KEY,
                    tenant TEXT NOT NULL,
                    exam_id TEXT NOT NULL,
                    attempt_id TEXT NOT NULL,
                    actor TEXT NOT NULL,
                    actor_role TEXT NOT NULL,
                    action TEXT NOT NULL,
                    message TEXT,
                    reason TEXT,
                    minutes INTEGER,
                    state_after TEXT NOT NULL,
                    deadline_after_ms BIGINT NOT NULL,
                    at_ms BIGINT NOT NULL
                )
                """,
                "CREATE INDEX audit_exam ON audit_log (tenant, exam_id, at_ms)",
                "CREATE INDEX attempts_exam ON attempts (tenant, exam_id, started_ms)",
            ]),
        Migration(
            name: "0004_chat",
            statements: [
                "ALTER TABLE conversations ADD COLUMN attempt_id TEXT",
                """
                CREATE TABLE chat_messages (
                    id TEXT PRIMARY KEY,
                    conversation_id TEXT NOT NULL,
                    tenant TEXT NOT NULL,
                    role TEXT NOT NULL,
                    text TEXT NOT NULL,
                    client_msg_id TEXT,
                    reply_id TEXT,
                    intent TEXT,
                    source TEXT,
                    created_ms BIGINT NOT NULL
                )
                """,
                "CREATE UNIQUE INDEX chat_client_msg ON chat_messages (conversation_id, client_msg_id)",
                "CREATE INDEX chat_conversation ON chat_messages (conversation_id, created_ms)",
                """
                CREATE TABLE llm_usage (
                    id TEXT PRIMARY KEY,
                    tenant TEXT NOT NULL,
                    conversation_id TEXT NOT NULL,
                    provider TEXT NOT NULL,
                    model TEXT NOT NULL,
                    input_tokens BIGINT NOT NULL,
                    output_tokens BIGINT NOT NULL,
                    completed INTEGER NOT NULL,
                    at_ms BIGINT NOT NULL
                )
                """,
                "CREATE INDEX llm_usage_tenant ON llm_usage (tenant, at_ms)",
            ]),
        Migration(
            name: "0005_outbox_workers",
            statements: [
                // Each worker's progress on each event: state (pending, claimed, done, dead), tries, the time it
                // may next be worked on (a retry's time, or a claim's lease expiry), who holds it, the last error.
                "ALTER TABLE outbox ADD COLUMN notify_state TEXT NOT NULL DEFAULT 'pending'",
                "ALTER TABLE outbox ADD COLUMN notify_attempts INTEGER NOT NULL DEFAULT 0",
                "ALTER TABLE outbox ADD COLUMN notify_next_ms BIGINT NOT NULL DEFAULT 0",
                "ALTER TABLE outbox ADD COLUMN notify_owner TEXT",
                "ALTER TABLE outbox ADD COLUMN notify_error TEXT",
                "ALTER TABLE outbox ADD COLUMN analytics_state TEXT NOT NULL DEFAULT 'pending'",
                "ALTER TABLE outbox ADD COLUMN analytics_attempts INTEGER NOT NULL DEFAULT 0",
                "ALTER TABLE outbox ADD COLUMN analytics_next_ms BIGINT NOT NULL DEFAULT 0",
                "ALTER TABLE outbox ADD COLUMN analytics_owner TEXT",
                "ALTER TABLE outbox ADD COLUMN analytics_error TEXT",
                "DROP INDEX outbox_pending",
                "CREATE INDEX outbox_notify ON outbox (notify_state, notify_next_ms)",
                "CREATE INDEX outbox_analytics ON outbox (analytics_state, analytics_next_ms)",
                "CREATE INDEX outbox_time ON outbox (at_ms)",
                """
                CREATE TABLE exam_stats (
                    tenant TEXT NOT NULL,
                    exam_id TEXT NOT NULL,
                    metric TEXT NOT NULL,
                    key TEXT NOT NULL,
                    value BIGINT NOT NULL,
                    PRIMARY KEY (tenant, exam_id, metric, key)
                )
                """,
            ]),
        // Several nodes on one PostgreSQL share channels (see ExamHubCluster): a channel log numbered by the
        // database, node heartbeats and presence. Nothing on SQLite, which serves one node.
        Migration(name: "0006_cross_node", statements: [], postgresStatements: CrossNodeSchema.postgres),
    ]
}
