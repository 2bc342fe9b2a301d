import ExamHubDomain
import Foundation
import GRDB

/// Group commit for every write of the SQLite store.
///
/// SQLite has one writer, and each transaction pays an fsync (about 3 ms on the disks we run on), so writes
/// committed one by one top out at a few hundred a second. At an exam's start 10,000 candidates join, at its end
/// 10,000 submit: committed alone, those writes would hold every save queued behind them for seconds. Here writes
/// queue, and one loop commits everything queued in one transaction, each write in its own savepoint: a write that
/// fails (a refused submit, a duplicate id) rolls back alone and fails alone, and the others commit. While a
/// transaction commits, new writes gather for the next one, so batches grow with load and a lone write waits for
/// nobody.
///
/// A caller resumes only after the transaction holding its write has committed, so nothing is acknowledged before
/// it is durable. When SQLite rolls back the whole transaction (disk full, I/O error), or the commit fails, every
/// write of that batch fails with that error and none of them is stored.
final class SQLiteWriteBatcher: @unchecked Sendable {
    /// One queued write.
    private struct Job: Sendable {
        /// Runs the write in its own savepoint and returns how to resume its caller once the transaction commits.
        /// Throws only when the transaction itself is lost, which fails the whole batch.
        let run: @Sendable (Database) throws -> @Sendable () -> Void
        /// Resumes the caller with the error that failed the whole batch.
        let fail: @Sendable (any Error) -> Void
    }

    private let writer: any DatabaseWriter
    private let maxBatch: Int
    private let lock = NSLock()
    /// Writes waiting for the next transaction. Guarded by `lock`.
    private var queue: [Job] = []
    /// Whether a drain loop is running. Guarded by `lock`.
    private var draining = false
    /// Transactions committed and writes in them (for tests and the benchmark). Guarded by `lock`.
    private var committed: (transactions: Int, writes: Int) = (0, 0)

    /// - Parameters:
    ///   - writer: the database's single writer.
    ///   - maxBatch: most writes in one transaction.
    init(writer: any DatabaseWriter, maxBatch: Int = 1000) {
        self.writer = writer
        self.maxBatch = max(1, maxBatch)
    }

    /// Transactions committed so far and the writes they held.
    var stats: (transactions: Int, writes: Int) {
        lock.withLock { committed }
    }

    /// Runs `body` in the next group transaction and returns its result once that transaction has committed.
    /// Errors `body` throws are rethrown as they are; only its own changes are rolled back.
    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let job = Job(
                run: { db in
                    var outcome: Result<T, any Error> = .failure(HubError(.internal, "the write did not run"))
                    do {
                        try db.inSavepoint {
                            outcome = .success(try body(db))
                            return .commit
                        }
                    } catch {
                        // SQLite rolls the whole transaction back on some errors (SQLITE_FULL, SQLITE_IOERR, ...):
                        // then the writes before this one are gone too, and the batch must fail as a whole.
                        guard db.isInsideTransaction else { throw error }
                        outcome = .failure(error)
                    }
                    let settled = outcome
                    return { continuation.resume(with: settled) }
                },
                fail: { continuation.resume(throwing: $0) })
            enqueue(job)
        }
    }

    private func enqueue(_ job: Job) {
        let start: Bool = lock.withLock {
            queue.append(job)
            if draining { return false }
            draining = true
            return true
        }
        if start {
            Task { await self.drain() }
        }
    }

    private func drain() async {
        while true {
            let batch: [Job] = lock.withLock {
                if queue.isEmpty {
                    draining = false
                    return []
                }
                if queue.count <= maxBatch {
                    defer { queue = [] }
                    return queue
                }
                let head = Array(queue.prefix(maxBatch))
                queue.removeFirst(maxBatch)
                return head
            }
            if batch.isEmpty { return }
            await commit(batch)
        }
    }

    private func commit(_ batch: [Job]) async {
        do {
            let resumes = try await writer.write { db in try batch.map { try $0.run(db) } }
            lock.withLock { committed = (committed.transactions + 1, committed.writes + batch.count) }
            for resume in resumes { resume() }
        } catch {
            for job in batch { job.fail(error) }
        }
    }
}
