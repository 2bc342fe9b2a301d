import ExamHubDomain
import ExamHubPostgres
import ExamHubStore
import Foundation
import Testing

/// What only PostgreSQL has: URL settings, several nodes on one database, and an unreachable or restarting server.
@Suite struct PostgresStoreTests {
    typealias F = Fixture

    // MARK: URLs

    @Test func parsesURLs() throws {
        let s = try PostgresSettings(parsing: "postgres://hub:p%40ss%2Fw%3Ard@db.example.com:6543/exam%20hub?sslmode=require")
        #expect(s.host == "db.example.com")
        #expect(s.port == 6543)
        #expect(s.username == "hub")
        #expect(s.password == "p@ss/w:rd")
        #expect(s.database == "exam hub")
        #expect(s.sslMode == .require)
        #expect(!s.description.contains("p@ss"))

        let local = try PostgresSettings(parsing: "postgresql://u@localhost/db")
        #expect(local.port == 5432 && local.password == nil && local.sslMode == .disable)
        #expect(try PostgresSettings(parsing: "postgres://u:p@127.0.0.1:5433/db").sslMode == .disable)
        #expect(try PostgresSettings(parsing: "postgres://u:p@[::1]:5433/db").host == "::1")
        #expect(try PostgresSettings(parsing: "postgres://u:p@10.0.0.5/db").sslMode == .prefer)
        #expect(try PostgresSettings(parsing: "postgres://u:p@h/db?sslmode=disable&connect_timeout=7").connectTimeoutSeconds == 7)
        #expect(try PostgresSettings(parsing: "postgres://u@h").database == "u")
        #expect(try PostgresSettings(parsing: "postgres://u:@h/d").password == "")

        for bad in [
            "mysql://u@h/db", "postgres://h/db", "postgres://:p@h/db", "postgres://u@/db", "postgres://u@h:0/db",
            "postgres://u@h:99999/db", "postgres://u@h:x/db", "postgres://u@h/db?sslmode=maybe",
            "postgres://u@h/db?foo=bar", "postgres://u:%zz@h/db", "postgres://u@[::1/db",
        ] {
            #expect(throws: HubError.self, "\(bad)") { try PostgresSettings(parsing: bad) }
        }
        #expect(throws: HubError.self) { try PostgresStore(url: .sqliteInMemory, logger: testLogger) }
    }

    // MARK: Several nodes

    @Test func twoNodesJoiningAtOnceShareOneAttempt() async throws {
        try await withStore(.postgres) { db in
            try await withSecondNode(db) { other in
                let exam = F.exam()
                let nodes: [any Store] = [db.store, other]
                let ids = try await withThrowingTaskGroup(of: String.self) { group in
                    for i in 0..<16 {
                        group.addTask {
                            try await nodes[i % 2].joinAttempt(tenant: "t1", exam: exam, candidate: "u1", now: F.t0).id
                        }
                    }
                    var ids = Set<String>()
                    for try await id in group { ids.insert(id) }
                    return ids
                }
                #expect(ids.count == 1)
                #expect(try await db.sql("SELECT count(*) FROM attempts") == "1")
                #expect(try await db.outboxCounts()["attempt.joined"] == 1)
            }
        }
    }

    @Test func twoNodesSavingOneQuestionGetDistinctVersions() async throws {
        try await withStore(.postgres) { db in
            try await withSecondNode(db) { other in
                let a = try await db.store.joinAttempt(tenant: "t1", exam: F.exam(), candidate: "u1", now: F.t0)
                let b = try await db.store.joinAttempt(tenant: "t1", exam: F.exam(), candidate: "u2", now: F.t0)
                let nodes: [any Store] = [db.store, other]
                let saved = try await withThrowingTaskGroup(of: [String: [Int64]].self) { group in
                    for i in 0..<20 {
                        group.addTask {
                            // Batches touch both attempts in both orders: locking in id order must not deadlock.
                            let first = i % 2 == 0 ? a : b
                            let second = i % 2 == 0 ? b : a
                            let batch = [
                                F.save(first, "q1", .int(Int64(i)), op: "n\(i)-1"),
                                F.save(second, "q1", .int(Int64(i)), op: "n\(i)-2"),
                                F.save(a, "q1", .int(Int64(i)), op: "n\(i)-1"),  // a replay when first is a
                            ]
                            let results = try await nodes[i % 2].applySaves(batch, now: F.t0 + 1)
                            var out: [String: [Int64]] = [:]
                            for (save, result) in zip(batch, results) {
                                guard let o = result.outcome, !o.replayed else { continue }
                                out[save.attemptID, default: []].append(o.version)
                            }
                            return out
                        }
                    }
                    var all: [String: [Int64]] = [:]
                    for try await part in group { all.merge(part, uniquingKeysWith: +) }
                    return all
                }
                // a: 20 saves from "-1" or "-2" plus 10 more from the odd batches; b: 20. No version twice, none skipped.
                #expect(saved[a.id]?.sorted() == Array(1...30))
                #expect(saved[b.id]?.sorted() == Array(1...20))
                #expect(try await db.store.attempt(id: a.id)?.answers["q1"]?.version == 30)
                #expect(try await db.store.attempt(id: b.id)?.answers["q1"]?.version == 20)
                #expect(try await db.sql("SELECT count(*) FROM save_ops") == "50")
            }
        }
    }

    @Test func twoNodesSweepingDeadlinesSubmitEachAttemptOnce() async throws {
        try await withStore(.postgres) { db in
            try await withSecondNode(db) { other in
                let exam = F.exam(durationSec: 60)
                var ids = Set<String>()
                for i in 0..<30 {
                    ids.insert(try await db.store.joinAttempt(tenant: "t1", exam: exam, candidate: "u\(i)", now: F.t0).id)
                }
                let nodes: [any Store] = [db.store, other, db.store, other]
                let swept = try await withThrowingTaskGroup(of: [String].self) { group in
                    for node in nodes {
                        group.addTask { try await node.submitDueAttempts(now: F.t0 + 60_000).map(\.id) }
                    }
                    var all: [String] = []
                    for try await s in group { all += s }
                    return all
                }
                #expect(swept.count == 30)
                #expect(Set(swept) == ids)
                #expect(try await db.outboxCounts()["attempt.submitted"] == 30)
            }
        }
    }

    @Test func aSecondNodeMigratingFindsTheSchemaApplied() async throws {
        try await withStore(.postgres, migrated: false) { db in
            try await withSecondNode(db) { other in
                async let one: Void = db.store.migrate()
                async let two: Void = other.migrate()
                _ = try await (one, two)
                #expect(try await other.appliedMigrations() == Migrations.all.map(\.name))
                #expect(try await db.sql("SELECT count(*) FROM schema_migrations") == "\(Migrations.all.count)")
            }
        }
    }

    // MARK: Unreachable

    @Test func anUnreachableServerIsUnavailableQuickly() async throws {
        let port = try PostgresServer.freePort()  // nothing listens there
        var options = PostgresStore.Options()
        options.operationTimeout = .seconds(2)
        options.pingTimeout = .seconds(1)
        let store = try PostgresStore(url: .postgres("postgres://u:p@127.0.0.1:\(port)/db"), options: options, logger: testLogger)
        let clock = ContinuousClock()
        let start = clock.now
        await expectHubError(.unavailable) { try await store.ping() }
        await expectHubError(.unavailable) { try await store.migrate() }
        await expectHubError(.unavailable) {
            try await store.applySaves([SaveCommand(attemptID: "a", tenant: "t", candidate: "u", qid: "q", value: .null, opID: "o", baseVersion: nil)], now: 0)
        }
        #expect(clock.now - start < .seconds(8))
        await store.close()
        await expectHubError(.unavailable) { try await store.ping() }
    }

    @Test func wrongCredentialsAreUnavailableNotAHang() async throws {
        let server = try await PostgresServer.shared.value
        var options = PostgresStore.Options()
        options.operationTimeout = .seconds(3)
        let store = try PostgresStore(
            url: .postgres("postgres://\(PostgresServer.user):wrong@127.0.0.1:\(server.port)/postgres"), options: options,
            logger: testLogger)
        await expectHubError(.unavailable) { try await store.ping() }
        await store.close()
    }

    @Test func identifiersWithNULFailAloneNotTheBatch() async throws {
        try await withStore(.postgres) { db in
            let a = try await db.store.joinAttempt(tenant: "t1", exam: F.exam(), candidate: "u1", now: F.t0)
            let results = try await db.store.applySaves([
                F.save(a, "q1", .string("ok"), op: "o1"),
                F.save(a, "q\u{0}", .string("x"), op: "o2"),
                F.save(a, "q2", .string("ok"), op: "o\u{0}"),
                F.save(a, "q2", .string("ok"), op: "o3"),
            ], now: F.t0 + 1)
            #expect(results.map(\.code) == [nil, .badRequest, .badRequest, nil])
            #expect(try await db.store.attempt(id: "a\u{0}") == nil)
            #expect(try await db.store.channelResource(.attempt("a\u{0}")) == .missing)
        }
    }

    // MARK: The outage

    /// Stops the server under a live store, checks that calls fail fast with `unavailable`, starts it again, and
    /// checks that the same store object serves again by itself, with nothing acknowledged lost.
    @Test(.timeLimit(.minutes(3)))
    func theStoreSurvivesADatabaseRestart() async throws {
        let server = try await PostgresServer.start()  // its own server: the shared one keeps serving other tests
        do {
            try await outage(on: server)
        } catch {
            await server.destroy()
            throw error
        }
        await server.destroy()
    }

    private func outage(on server: PostgresServer) async throws {
        let url = try await server.createDatabase()
        var options = PostgresStore.Options()
        options.operationTimeout = .seconds(3)
        options.pingTimeout = .seconds(2)
        options.reconnectAfter = .seconds(2)
        let store = try PostgresStore(url: .postgres(url), options: options, logger: testLogger)
        do {
            try await outage(of: store, on: server)
        } catch {
            await store.close()
            throw error
        }
        await store.close()
    }

    private func outage(of store: PostgresStore, on server: PostgresServer) async throws {
        try await store.migrate()
        let exam = F.exam(durationSec: 3600)
        try await store.createExam(tenant: "t1", definition: exam, now: F.t0)
        let a = try await store.joinAttempt(tenant: "t1", exam: exam, candidate: "u1", now: F.t0)
        let before = try await store.applySaves([F.save(a, "q1", .string("acked"), op: "before")], now: F.t0 + 1)
        #expect(before.first?.outcome?.version == 1)

        // Down: a crash (no clean shutdown), connections dropped.
        try await server.stopServer(mode: "immediate")
        let clock = ContinuousClock()
        var start = clock.now
        await expectHubError(.unavailable) { try await store.ping() }
        #expect(clock.now - start < .seconds(4), "ping took \(clock.now - start)")
        start = clock.now
        await expectHubError(.unavailable) {
            try await store.applySaves([F.save(a, "q1", .string("during"), op: "during")], now: F.t0 + 2)
        }
        #expect(clock.now - start < .seconds(5), "save took \(clock.now - start)")
        start = clock.now
        await expectHubError(.unavailable) { try await store.attempt(id: a.id) }
        await expectHubError(.unavailable) { try await store.submitDueAttempts(now: F.t0) }
        #expect(clock.now - start < .seconds(8))
        // A longer outage, with /readyz-style pings all along: the pool's back-off grows meanwhile.
        let downUntil = clock.now + .seconds(8)
        while clock.now < downUntil {
            await expectHubError(.unavailable) { try await store.ping() }
        }

        // Up again: the same store object recovers by itself.
        try await server.startServer()
        start = clock.now
        var recovered = false
        while clock.now - start < .seconds(60) {
            do {
                try await store.ping()
                recovered = true
                break
            } catch {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        #expect(recovered, "the store did not serve again within 60 s of the restart")
        #expect(clock.now - start < .seconds(10), "recovery took \(clock.now - start)")
        print("postgres outage test: store serving again \(clock.now - start) after the server restarted")

        // Nothing acknowledged was lost, the failed save is retried with its opId, and concurrent work is fine.
        let stored = try #require(try await store.attempt(id: a.id))
        #expect(stored.answers["q1"] == StoredAnswer(value: .string("acked"), version: 1, savedAtMillis: F.t0 + 1))
        let retried = try await store.applySaves([F.save(a, "q1", .string("during"), op: "during")], now: F.t0 + 3)
        #expect(retried.first?.outcome?.version == 2)
        let replay = try await store.applySaves([F.save(a, "q1", .string("x"), op: "before")], now: F.t0 + 4)
        #expect(replay.first?.outcome?.replayed == true)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<12 {
                group.addTask {
                    _ = try await store.joinAttempt(tenant: "t1", exam: exam, candidate: "c\(i)", now: F.t0)
                    try await store.ping()
                }
            }
            try await group.waitForAll()
        }
        #expect(try await store.submitDueAttempts(now: F.t0).isEmpty)
    }
}
