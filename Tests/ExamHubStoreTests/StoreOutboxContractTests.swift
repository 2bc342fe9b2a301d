import ExamHubDomain
import ExamHubStore
import Testing

/// The outbox part of the `Store` contract (claims, leases, retries, dead letters, analytics roll-ups), on SQLite
/// and PostgreSQL alike.
@Suite struct StoreOutboxContractTests {
    typealias F = Fixture

    /// Three candidates join, two save: 3 `attempt.joined` and 2 `answers.saved` events.
    func seed(_ store: any Store) async throws -> [AttemptSnapshot] {
        let exam = F.exam()
        try await store.createExam(tenant: "t1", definition: exam, now: F.t0)
        var attempts: [AttemptSnapshot] = []
        for (i, who) in ["c1", "c2", "c3"].enumerated() {
            attempts.append(try await store.joinAttempt(tenant: "t1", exam: exam, candidate: who, now: F.t0 + Int64(i)))
        }
        _ = try await store.applySaves(
            [F.save(attempts[0], "q1", .string("a"), op: "o1"), F.save(attempts[0], "q3", .int(3), op: "o2")], now: F.t0 + 10)
        _ = try await store.applySaves([F.save(attempts[1], "q1", .string("b"), op: "o3")], now: F.t0 + 11)
        return attempts
    }

    @Test(arguments: Backend.allCases)
    func claimsAreExclusiveWhileTheLeaseHoldsAndEachWorkerHasItsOwnProgress(backend: Backend) async throws {
        try await withStore(backend) { db in
            _ = try await seed(db.store)
            let now = F.t0 + 100
            let a = try await db.store.claimOutbox(.notifications, owner: "A", limit: 3, leaseMillis: 1000, now: now)
            let b = try await db.store.claimOutbox(.notifications, owner: "B", limit: 10, leaseMillis: 1000, now: now)
            #expect(a.count == 3 && b.count == 2)
            #expect(Set(a.map(\.id)).isDisjoint(with: b.map(\.id)))
            #expect(a.map(\.atMillis) == a.map(\.atMillis).sorted(), "oldest first")
            #expect(a.allSatisfy { $0.attempts == 1 && $0.lastError == nil })
            #expect(try await db.store.claimOutbox(.notifications, owner: "C", limit: 10, leaseMillis: 1000, now: now).isEmpty)
            // The analytics worker sees every event, whatever the notification worker holds.
            #expect(try await db.store.claimOutbox(.analytics, owner: "X", limit: 10, leaseMillis: 1000, now: now).count == 5)

            // Done only for the holder; a stranger's completion changes nothing.
            #expect(try await db.store.completeOutbox(.notifications, owner: "B", ids: a.map(\.id), now: now) == 0)
            #expect(try await db.store.completeOutbox(.notifications, owner: "A", ids: a.map(\.id), now: now) == 3)
            let backlog = try await db.store.outboxBacklog(.notifications)
            #expect(backlog.pending == 2 && backlog.dead == 0 && backlog.oldestMillis != nil)

            // B is killed: its lease runs out and C takes the events over, as a second try.
            let taken = try await db.store.claimOutbox(.notifications, owner: "C", limit: 10, leaseMillis: 1000, now: now + 1001)
            #expect(Set(taken.map(\.id)) == Set(b.map(\.id)))
            #expect(taken.allSatisfy { $0.attempts == 2 })
            #expect(try await db.store.completeOutbox(.notifications, owner: "B", ids: b.map(\.id), now: now + 1002) == 0)
            #expect(try await db.store.completeOutbox(.notifications, owner: "C", ids: b.map(\.id), now: now + 1002) == 2)
            #expect(try await db.store.outboxBacklog(.notifications).pending == 0)
            #expect(try await db.store.outboxBacklog(.analytics).pending == 5)
        }
    }

    @Test(arguments: Backend.allCases)
    func failuresAreRetriedAtTheirTimeThenParkedAndReplayed(backend: Backend) async throws {
        try await withStore(backend) { db in
            _ = try await seed(db.store)
            let now = F.t0 + 100
            let batch = try await db.store.claimOutbox(.notifications, owner: "A", limit: 2, leaseMillis: 1000, now: now)
            try await db.store.failOutbox(.notifications, owner: "A", failures: [
                OutboxFailure(id: batch[0].id, error: "webhook http://h: HTTP 500", retryAtMillis: now + 5000),
                OutboxFailure(id: batch[1].id, error: "webhook http://h: timed out", retryAtMillis: nil),
            ], now: now)
            // Not due yet: the three others come first.
            let next = try await db.store.claimOutbox(.notifications, owner: "A", limit: 10, leaseMillis: 1000, now: now + 1)
            #expect(next.count == 3 && !next.map(\.id).contains(batch[0].id))
            try await db.store.completeOutbox(.notifications, owner: "A", ids: next.map(\.id), now: now + 1)
            let retried = try await db.store.claimOutbox(.notifications, owner: "A", limit: 10, leaseMillis: 1000, now: now + 5000)
            #expect(retried.map(\.id) == [batch[0].id])
            #expect(retried[0].attempts == 2 && retried[0].lastError == "webhook http://h: HTTP 500")
            try await db.store.completeOutbox(.notifications, owner: "A", ids: retried.map(\.id), now: now + 5000)

            let dead = try await db.store.deadLetters(.notifications, limit: 10)
            #expect(dead.map(\.id) == [batch[1].id] && dead[0].lastError == "webhook http://h: timed out")
            #expect(try await db.store.outboxBacklog(.notifications).dead == 1)
            #expect(try await db.store.deadLetters(.analytics, limit: 10).isEmpty)
            #expect(try await db.store.replayDeadLetters(.notifications, ids: ["no-such-id"], now: now) == 0)
            #expect(try await db.store.replayDeadLetters(.notifications, ids: nil, now: now + 6000) == 1)
            let again = try await db.store.claimOutbox(.notifications, owner: "A", limit: 10, leaseMillis: 1000, now: now + 6000)
            #expect(again.map(\.id) == [batch[1].id] && again[0].attempts == 1, "tries start over after a replay")
        }
    }

    @Test(arguments: Backend.allCases)
    func analyticsCountsEachEventOnceEvenWhenALeaseIsTakenOver(backend: Backend) async throws {
        try await withStore(backend) { db in
            let attempts = try await seed(db.store)
            _ = try await db.store.submitAttempt(id: attempts[0].id, reason: .candidate, opID: "s1", now: F.t0 + 400_000)
            let now = F.t0 + 500_000
            let first = try await db.store.claimOutbox(.analytics, owner: "A", limit: 100, leaseMillis: 1000, now: now)
            #expect(first.count == 6)
            // A stalls; B takes the batch over and counts it. A's late apply counts nothing.
            let second = try await db.store.claimOutbox(.analytics, owner: "B", limit: 100, leaseMillis: 1000, now: now + 2000)
            #expect(second.count == 6)
            let applied = try await db.store.applyAnalytics(owner: "B", events: second, now: now + 2000)
            #expect(applied.applied.count == 6)
            #expect(try await db.store.applyAnalytics(owner: "A", events: first, now: now + 2001).applied.isEmpty)

            let stats = try await db.store.examStats(tenant: "t1", examID: "e1")
            func value(_ metric: String, _ key: String) -> Int64? {
                stats.first { $0.metric == metric && $0.key == key }?.value
            }
            #expect(value("attempts", "started") == 3)
            #expect(value("attempts", "submitted") == 1)
            #expect(value("saves", "") == 3)
            #expect(value("submit_seconds", "600") == 1, "400 s to submit falls in the 600 s bucket")
            #expect(try await db.store.examStats(tenant: "t2", examID: "e1").isEmpty)
            #expect(try await db.store.outboxBacklog(.analytics).pending == 0)

            // Purged once both workers are done, and only then.
            #expect(try await db.store.purgeOutbox(before: now + 10_000) == 0)
            let all = try await db.store.claimOutbox(.notifications, owner: "N", limit: 100, leaseMillis: 1000, now: now)
            try await db.store.completeOutbox(.notifications, owner: "N", ids: all.map(\.id), now: now)
            #expect(try await db.store.purgeOutbox(before: F.t0 + 5) == 3, "the joins at t0...t0+2")
            #expect(try await db.store.purgeOutbox(before: now + 10_000) == 3)
        }
    }
}
