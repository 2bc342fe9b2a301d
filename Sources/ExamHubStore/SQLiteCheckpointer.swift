import Foundation
import GRDB
import Logging

/// Copies the write-ahead log back into the database file from a connection of its own, so that the writer does
/// not have to.
///
/// SQLite's default is that the connection whose commit takes the WAL past 1,000 pages checkpoints it then and there:
/// it writes those pages into the database file and fsyncs it, inside that commit. With one writer and a
/// group commit that everything waits for, that is a pause for every queued save. Measured under `exam-wave` with
/// 10,000 candidates, those checkpoints were about half of the writer's commit time. Here a background connection
/// runs a passive checkpoint (one that never waits for, nor blocks, readers or the writer) every `interval`, and the
/// writer's own automatic checkpoint is left as a safety valve at `writerFallbackPages`, for when the background one
/// falls behind (a long reader holds old pages, or the disk is full).
final class SQLiteCheckpointer: Sendable {
    /// How often the background connection checkpoints (250 ms).
    static let interval: Duration = .milliseconds(250)
    /// The writer's `wal_autocheckpoint`, used only when the background checkpoints fall behind (16,000 pages:
    /// 64 MiB at SQLite's 4 KiB pages).
    static let writerFallbackPages = 16_000

    private let connection: DatabaseQueue
    private let task: Task<Void, Never>

    /// Opens a second connection to the database at `path` (already in WAL mode) and starts checkpointing.
    init(path: String, logger: Logger) throws {
        var config = Configuration()
        config.label = "examhub.checkpointer"
        let connection = try DatabaseQueue(path: path, configuration: config)
        self.connection = connection
        self.task = Task {
            var failing = false
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.interval)
                if Task.isCancelled { break }
                do {
                    try await connection.writeWithoutTransaction { db in _ = try db.checkpoint(.passive) }
                    if failing {
                        failing = false
                        logger.info("WAL checkpoints work again")
                    }
                } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY {
                    // Another process on the same file (a worker, a CLI command) is checkpointing: nothing to do.
                    continue
                } catch {
                    // Once per failing spell: the writer's own checkpoints take over meanwhile.
                    if !failing {
                        failing = true
                        logger.warning("WAL checkpoint failed", metadata: ["examhub.error": "\(error)"])
                    }
                }
            }
        }
    }

    /// Stops checkpointing and closes the connection.
    func close() async {
        task.cancel()
        await task.value
        try? connection.close()
    }
}
