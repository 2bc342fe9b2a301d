/// The schema, versioned in code. Each migration runs once, in order, in its own transaction; both backends use
/// the same SQL (kept to the common subset of SQLite and PostgreSQL).
public enum Migrations {
    /// One named migration.
    public struct Migration: Sendable {
        public var name: String
        public var statements: [String]
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
    ]
}
