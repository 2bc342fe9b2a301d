import ExamHubDomain
import Foundation
import GRDB
import Testing

@testable import ExamHubStore

/// The group commit under every SQLite write: what shares a transaction, and what a failed write leaves behind.
@Suite struct SQLiteWriteBatcherTests {
    /// Writes queued while a transaction runs share the next one; a write that changed rows and then failed has
    /// those changes rolled back (its savepoint), while the writes before and after it in the same transaction commit.
    @Test func aFailedWriteRollsBackOnlyItsOwnChanges() async throws {
        let queue = try DatabaseQueue()
        try await queue.write { db in try db.execute(sql: "CREATE TABLE t (x INTEGER PRIMARY KEY)") }
        let batcher = SQLiteWriteBatcher(writer: queue)

        // Holds the writer so that the three writes below queue up behind it and go in one transaction.
        let holder = Task {
            try await batcher.write { db in
                try db.execute(sql: "INSERT INTO t (x) VALUES (0)")
                Thread.sleep(forTimeInterval: 0.3)
            }
        }
        try await Task.sleep(for: .milliseconds(100))
        async let a: Void = batcher.write { db in try db.execute(sql: "INSERT INTO t (x) VALUES (1)") }
        async let b: Void = batcher.write { db in
            try db.execute(sql: "INSERT INTO t (x) VALUES (2)")
            throw HubError(.conflict, "refused after writing")
        }
        async let c: Void = batcher.write { db in try db.execute(sql: "INSERT INTO t (x) VALUES (3)") }
        try await holder.value
        try await a
        var refused: HubError?
        do { try await b } catch let error as HubError { refused = error }
        #expect(refused?.code == .conflict)
        try await c

        let rows = try await queue.read { db in try Int.fetchAll(db, sql: "SELECT x FROM t ORDER BY x") }
        #expect(rows == [0, 1, 3], "the failed write's row is gone, the others are committed")
        #expect(batcher.stats.writes == 4)
        #expect(batcher.stats.transactions == 2, "the three queued writes shared one transaction")
    }

    /// A write's own error comes back as it was thrown, and the writes after it still run.
    @Test func errorsComeBackAsThrown() async throws {
        let queue = try DatabaseQueue()
        let batcher = SQLiteWriteBatcher(writer: queue)
        await #expect(throws: HubError.self) {
            try await batcher.write { _ in throw HubError(.notFound, "no such attempt") }
        }
        let value = try await batcher.write { db in try Int.fetchOne(db, sql: "SELECT 41 + 1") }
        #expect(value == 42)
    }
}
