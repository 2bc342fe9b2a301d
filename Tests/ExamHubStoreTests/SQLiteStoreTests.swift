import ExamHubDomain
import ExamHubStore
import Foundation
import Logging
import Testing

@Suite struct SQLiteStoreTests {
    func tempURL() -> (DatabaseURL, String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("examhub-store-\(UUID().uuidString)")
        return (.sqlite(path: dir.path + "/nested/db.sqlite"), dir.path)
    }

    @Test func migratesIdempotentlyAndCreatesTheFolder() async throws {
        let (url, dir) = tempURL()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try SQLiteStore(url: url, logger: Logger(label: "test"))
        #expect(try await store.appliedMigrations() == [])
        try await store.migrate()
        try await store.migrate()
        #expect(try await store.appliedMigrations() == Migrations.all.map(\.name))
        try await store.ping()
        await store.close()
        // Reopening keeps what was applied.
        let again = try SQLiteStore(url: url, logger: Logger(label: "test"))
        #expect(try await again.appliedMigrations() == Migrations.all.map(\.name))
        await again.close()
    }

    @Test func resolvesChannelResources() async throws {
        let store = try SQLiteStore(url: .sqliteInMemory, logger: Logger(label: "test"))
        try await store.migrate()
        try await store.insertAttempt(
            AttemptRecord(id: "a1", tenant: "t1", examID: "e1", candidate: "u1", deadlineMillis: 10, startedMillis: 0))
        try await store.insertConversation(id: "c1", tenant: "t1", owner: "u1")
        #expect(try await store.channelResource(.attempt("a1")) == .attempt(tenant: "t1", examID: "e1", candidate: "u1"))
        #expect(try await store.channelResource(.attempt("zz")) == .missing)
        #expect(try await store.channelResource(.chat("c1")) == .conversation(tenant: "t1", owner: "u1"))
        #expect(try await store.channelResource(.chat("zz")) == .missing)
        await #expect(throws: HubError.self) {
            try await store.insertAttempt(
                AttemptRecord(id: "a1", tenant: "t1", examID: "e1", candidate: "u1", deadlineMillis: 10, startedMillis: 0))
        }
        await store.close()
    }

    /// Writes that arrive together share one transaction (one fsync), and a write that fails inside it rolls back
    /// alone: the others commit and their callers get their own results.
    @Test func concurrentWritesShareTransactionsAndFailAlone() async throws {
        let (url, dir) = tempURL()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try SQLiteStore(url: url, logger: Logger(label: "test"))
        try await store.migrate()
        for i in 0..<50 {
            try await store.insertAttempt(AttemptRecord(
                id: "old-\(i)", tenant: "t1", examID: "e1", candidate: "u\(i)", deadlineMillis: 10, startedMillis: 0))
        }
        let before = store.writeStats
        // 200 new attempts and 50 duplicates of existing ones, all at once.
        // Each write's outcome: "ok", or the protocol code it failed with.
        let results = await withTaskGroup(of: (String, String).self) { group in
            for i in 0..<250 {
                let id = i < 200 ? "new-\(i)" : "old-\(i - 200)"
                group.addTask {
                    do {
                        try await store.insertAttempt(AttemptRecord(
                            id: id, tenant: "t1", examID: "e1", candidate: "c\(i)", deadlineMillis: 10, startedMillis: 0))
                        return (id, "ok")
                    } catch {
                        return (id, (error as? HubError)?.code.rawValue ?? "\(error)")
                    }
                }
            }
            var out: [String: String] = [:]
            for await (id, code) in group { out[id] = code }
            return out
        }
        #expect(results.count == 250)
        for i in 0..<200 {
            #expect(results["new-\(i)"] == "ok", "new-\(i) was committed")
            #expect(try await store.channelResource(.attempt("new-\(i)")) == .attempt(tenant: "t1", examID: "e1", candidate: "c\(i)"))
        }
        for i in 0..<50 {
            #expect(results["old-\(i)"] == HubError.Code.conflict.rawValue, "old-\(i) refused as a duplicate")
            // The refused write changed nothing: the first candidate is still there.
            #expect(try await store.channelResource(.attempt("old-\(i)")) == .attempt(tenant: "t1", examID: "e1", candidate: "u\(i)"))
        }
        let after = store.writeStats
        #expect(after.writes - before.writes == 250)
        #expect(after.transactions - before.transactions < 250, "writes queued together share a transaction")
        await store.close()
    }

    /// The write-ahead log is copied into the database file by the background checkpointer, long before the
    /// writer's own fallback threshold (64 MiB) would make the writer do it inside a commit.
    @Test func walIsCheckpointedInTheBackground() async throws {
        let (url, dir) = tempURL()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        guard case .sqlite(let path) = url else { return }
        let store = try SQLiteStore(url: url, logger: Logger(label: "test"))
        try await store.migrate()
        func size(_ file: String) -> Int {
            ((try? FileManager.default.attributesOfItem(atPath: file))?[.size] as? Int) ?? 0
        }
        let filler = String(repeating: "x", count: 2000)
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<2000 {
                group.addTask {
                    try? await store.insertAttempt(AttemptRecord(
                        id: "a-\(i)", tenant: "t1", examID: "e1", candidate: "\(i)-\(filler)", deadlineMillis: 10,
                        startedMillis: 0))
                }
            }
        }
        #expect(try await store.channelResource(.attempt("a-1999")) != .missing)
        // About 4 MB written: far below the writer's fallback, so only the background connection can have moved it.
        var copied = size(path)
        for _ in 0..<100 where copied < 3_000_000 {
            try await Task.sleep(for: .milliseconds(50))
            copied = size(path)
        }
        #expect(copied >= 3_000_000, "database file \(copied) bytes, WAL \(size(path + "-wal")) bytes")
        await store.close()
    }

    @Test func parsesDatabaseURLs() throws {
        #expect(try DatabaseURL(parsing: "sqlite://./.examhub/examhub.db") == .sqlite(path: "./.examhub/examhub.db"))
        #expect(try DatabaseURL(parsing: "sqlite:///var/db.sqlite") == .sqlite(path: "/var/db.sqlite"))
        #expect(try DatabaseURL(parsing: "sqlite://:memory:") == .sqliteInMemory)
        #expect(throws: HubError.self) { try DatabaseURL(parsing: "mysql://x") }
        #expect(throws: HubError.self) { try DatabaseURL(parsing: "sqlite://") }
        let pg = try DatabaseURL(parsing: "postgres://user:secret@localhost:5432/db")
        #expect(!pg.description.contains("secret"))
    }

    @Test func unopenablePathIsUnavailable() {
        #expect(throws: HubError.self) {
            _ = try SQLiteStore(url: .sqlite(path: "/proc/nope/db.sqlite"), logger: Logger(label: "test"))
        }
    }
}
