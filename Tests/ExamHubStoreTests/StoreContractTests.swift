import ExamHubDomain
import ExamHubStore
import Testing

/// The `Store` contract: every case runs against SQLite (a temporary file) and PostgreSQL (a real server started by
/// `PostgresServer`), and both must behave the same.
@Suite struct StoreContractTests {
    typealias F = Fixture

    // MARK: Schema

    @Test(arguments: Backend.allCases)
    func migrationsAreIdempotent(backend: Backend) async throws {
        try await withStore(backend, migrated: false) { db in
            #expect(try await db.store.appliedMigrations() == [])
            async let first: Void = db.store.migrate()
            async let second: Void = db.store.migrate()
            _ = try await (first, second)
            try await db.store.migrate()
            #expect(try await db.store.appliedMigrations() == Migrations.all.map(\.name))
            try await db.store.ping()
            #expect(try await db.sql("SELECT count(*) FROM schema_migrations") == "\(Migrations.all.count)")
        }
    }

    // MARK: Exams

    @Test(arguments: Backend.allCases)
    func examsAreCreatedReadAndConflict(backend: Backend) async throws {
        try await withStore(backend) { db in
            let exam = F.exam(id: "e1", durationSec: 900, graceSec: 15)
            try await db.store.createExam(tenant: "t1", definition: exam, now: F.t0)
            #expect(try await db.store.exam(tenant: "t1", id: "e1") == exam)
            #expect(try await db.store.exam(tenant: "t2", id: "e1") == nil)
            #expect(try await db.store.exam(tenant: "t1", id: "nope") == nil)
            let error = await expectHubError(.conflict) {
                try await db.store.createExam(tenant: "t1", definition: F.exam(id: "e1", durationSec: 60), now: F.t0)
            }
            #expect(error?.message.contains("e1") == true)
            #expect(try await db.store.exam(tenant: "t1", id: "e1") == exam)  // unchanged by the refused create
            try await db.store.createExam(tenant: "t2", definition: F.exam(id: "e1", durationSec: 60), now: F.t0)
            #expect(try await db.store.exam(tenant: "t2", id: "e1")?.durationSec == 60)
        }
    }

    // MARK: Join

    @Test(arguments: Backend.allCases)
    func joinCreatesThenReturnsTheSameAttempt(backend: Backend) async throws {
        try await withStore(backend) { db in
            let exam = F.exam(durationSec: 600, graceSec: 30)
            try await db.store.createExam(tenant: "t1", definition: exam, now: F.t0)
            let a = try await db.store.joinAttempt(tenant: "t1", exam: exam, candidate: "u1", now: F.t0)
            #expect(a.tenant == "t1" && a.examID == "e1" && a.candidate == "u1")
            #expect(a.clock.state == .inProgress)
            #expect(a.clock.deadlineMillis == F.t0 + 600_000)
            #expect(a.clock.graceMillis == 30_000)
            #expect(a.startedMillis == F.t0)
            #expect(a.answers.isEmpty)

            let again = try await db.store.joinAttempt(tenant: "t1", exam: exam, candidate: "u1", now: F.t0 + 5_000)
            #expect(again.id == a.id)
            #expect(again.clock == a.clock)
            #expect(again.startedMillis == F.t0)
            #expect(try await db.store.attempt(id: a.id) == a)
            #expect(try await db.store.channelResource(.attempt(a.id)) == .attempt(tenant: "t1", examID: "e1", candidate: "u1"))

            let other = try await db.store.joinAttempt(tenant: "t1", exam: exam, candidate: "u2", now: F.t0)
            #expect(other.id != a.id)
            let otherTenant = try await db.store.joinAttempt(tenant: "t2", exam: exam, candidate: "u1", now: F.t0)
            #expect(otherTenant.id != a.id)
            #expect(try await db.outboxCounts()["attempt.joined"] == 3)
        }
    }

    @Test(arguments: Backend.allCases)
    func concurrentJoinsOfOneCandidateMakeOneAttempt(backend: Backend) async throws {
        try await withStore(backend) { db in
            let exam = F.exam()
            let store = db.store
            let ids = try await withThrowingTaskGroup(of: String.self) { group in
                for i in 0..<8 {
                    group.addTask {
                        try await store.joinAttempt(tenant: "t1", exam: exam, candidate: "u1", now: F.t0 + Int64(i)).id
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

    @Test(arguments: Backend.allCases)
    func joinAfterTheDeadlineSubmitsWithTimeUp(backend: Backend) async throws {
        try await withStore(backend) { db in
            let exam = F.exam(durationSec: 60, graceSec: 10)
            let a = try await db.store.joinAttempt(tenant: "t1", exam: exam, candidate: "u1", now: F.t0)
            _ = try await db.store.applySaves([F.save(a, "q1", .string("kept"), op: "o1")], now: F.t0 + 1_000)
            let late = try await db.store.joinAttempt(tenant: "t1", exam: exam, candidate: "u1", now: F.t0 + 60_000)
            #expect(late.id == a.id)
            #expect(late.clock.state == .submitted)
            #expect(late.clock.reason == .timeUp)
            #expect(late.clock.closedAtMillis == F.t0 + 60_000)
            #expect(late.answers["q1"]?.value == .string("kept"))
            let stored = try await db.store.attempt(id: a.id)
            #expect(stored?.clock == late.clock)
            // Joining once more changes nothing.
            let again = try await db.store.joinAttempt(tenant: "t1", exam: exam, candidate: "u1", now: F.t0 + 90_000)
            #expect(again.clock == late.clock)
            #expect(try await db.outboxCounts()["attempt.submitted"] == 1)
        }
    }

    // MARK: Saves

    @Test(arguments: Backend.allCases)
    func versionsIncreasePerQuestion(backend: Backend) async throws {
        try await withStore(backend) { db in
            let a = try await db.store.joinAttempt(tenant: "t1", exam: F.exam(), candidate: "u1", now: F.t0)
            let r1 = try await db.store.applySaves([F.save(a, "q1", .string("one"), op: "o1")], now: F.t0 + 1)
            let r2 = try await db.store.applySaves([F.save(a, "q1", .string("two"), op: "o2")], now: F.t0 + 2)
            let r3 = try await db.store.applySaves([F.save(a, "q2", .string("a"), op: "o3")], now: F.t0 + 3)
            #expect(r1.first?.outcome == SaveOutcome(qid: "q1", version: 1, savedAtMillis: F.t0 + 1, value: .string("one"), replayed: false))
            #expect(r2.first?.outcome?.version == 2)
            #expect(r3.first?.outcome?.version == 1)
            let stored = try #require(try await db.store.attempt(id: a.id))
            #expect(stored.answers["q1"] == StoredAnswer(value: .string("two"), version: 2, savedAtMillis: F.t0 + 2))
            #expect(stored.answers["q2"] == StoredAnswer(value: .string("a"), version: 1, savedAtMillis: F.t0 + 3))
            // A rejoin returns the answers too.
            let rejoined = try await db.store.joinAttempt(tenant: "t1", exam: F.exam(), candidate: "u1", now: F.t0 + 4)
            #expect(rejoined.answers == stored.answers)
            #expect(try await db.outboxCounts()["answers.saved"] == 3)
        }
    }

    @Test(arguments: Backend.allCases)
    func valuesRoundTripExactly(backend: Backend) async throws {
        try await withStore(backend) { db in
            let a = try await db.store.joinAttempt(tenant: "t1", exam: F.exam(), candidate: "u1", now: F.t0)
            let values: [JSONValue] = [
                .string("héllo \"world\"\n\t\\ 🎓 \u{0}\u{1F}"), .int(-42), .double(3.25), .bool(true), .null,
                .array([.string("x"), .int(1), .array([])]), .object(["k": .object(["n": .null]), "e": .string("")]),
                .string(String(repeating: "long ", count: 10_000)),
            ]
            for (i, v) in values.enumerated() {
                let r = try await db.store.applySaves([F.save(a, "q\(i)", v, op: "v\(i)")], now: F.t0 + 1)
                #expect(r.first?.outcome?.value == v)
            }
            let stored = try #require(try await db.store.attempt(id: a.id))
            for (i, v) in values.enumerated() { #expect(stored.answers["q\(i)"]?.value == v) }
        }
    }

    @Test(arguments: Backend.allCases)
    func aReplayedOpIDReturnsTheOriginalReply(backend: Backend) async throws {
        try await withStore(backend) { db in
            let a = try await db.store.joinAttempt(tenant: "t1", exam: F.exam(), candidate: "u1", now: F.t0)
            let first = try await db.store.applySaves([F.save(a, "q1", .string("first"), op: "op-1")], now: F.t0 + 10)
            #expect(first.first?.outcome?.replayed == false)
            // The same opId again, even with another value and later: the original reply, no new version.
            let replay = try await db.store.applySaves([F.save(a, "q1", .string("other"), op: "op-1")], now: F.t0 + 99)
            let outcome = try #require(replay.first?.outcome)
            #expect(outcome.replayed)
            #expect(outcome.version == 1)
            #expect(outcome.qid == "q1")
            #expect(outcome.savedAtMillis == F.t0 + 10)
            #expect(outcome.value == .null)
            let stored = try #require(try await db.store.attempt(id: a.id))
            #expect(stored.answers["q1"] == StoredAnswer(value: .string("first"), version: 1, savedAtMillis: F.t0 + 10))
            #expect(try await db.outboxCounts()["answers.saved"] == 1)
            // opIds are per attempt: another attempt may use the same one.
            let b = try await db.store.joinAttempt(tenant: "t1", exam: F.exam(), candidate: "u2", now: F.t0)
            let other = try await db.store.applySaves([F.save(b, "q1", .string("b"), op: "op-1")], now: F.t0 + 11)
            #expect(other.first?.outcome?.replayed == false)
        }
    }

    @Test(arguments: Backend.allCases)
    func aStaleBaseVersionIsAConflictWithTheCurrentValue(backend: Backend) async throws {
        try await withStore(backend) { db in
            let a = try await db.store.joinAttempt(tenant: "t1", exam: F.exam(), candidate: "u1", now: F.t0)
            // baseVersion 0 on an unanswered question is current.
            let r1 = try await db.store.applySaves([F.save(a, "q1", .string("v1"), op: "o1", base: 0)], now: F.t0 + 1)
            #expect(r1.first?.outcome?.version == 1)
            _ = try await db.store.applySaves([F.save(a, "q1", .string("v2"), op: "o2", base: 1)], now: F.t0 + 2)
            let stale = try await db.store.applySaves([F.save(a, "q1", .string("lost?"), op: "o3", base: 1)], now: F.t0 + 3)
            guard case .failure(let error)? = stale.first else {
                Issue.record("expected a conflict, got \(stale)")
                return
            }
            #expect(error.code == .conflict)
            #expect(error.details == .object(["version": .int(2), "value": .string("v2")]))
            // Nothing changed, and the refused opId is not remembered: retried with the right base it applies.
            #expect(try await db.store.attempt(id: a.id)?.answers["q1"]?.version == 2)
            let retried = try await db.store.applySaves([F.save(a, "q1", .string("v3"), op: "o3", base: 2)], now: F.t0 + 4)
            #expect(retried.first?.outcome == SaveOutcome(qid: "q1", version: 3, savedAtMillis: F.t0 + 4, value: .string("v3"), replayed: false))
            // A base version on an unanswered question that is not 0: conflict with version 0 and null.
            let ahead = try await db.store.applySaves([F.save(a, "q2", .string("a"), op: "o4", base: 3)], now: F.t0 + 5)
            guard case .failure(let unanswered)? = ahead.first else {
                Issue.record("expected a conflict, got \(ahead)")
                return
            }
            #expect(unanswered.details == .object(["version": .int(0), "value": .null]))
        }
    }

    @Test(arguments: Backend.allCases)
    func savesToClosedOrPausedAttemptsAreRefused(backend: Backend) async throws {
        try await withStore(backend) { db in
            for (id, state) in [("paused-1", "paused"), ("term-1", "terminated"), ("late-1", "in_progress")] {
                try await db.store.insertAttempt(AttemptRecord(
                    id: id, tenant: "t1", examID: "exam-\(id)", candidate: "u1", state: state,
                    deadlineMillis: state == "in_progress" ? F.t0 - 1 : F.t0 + 600_000, startedMillis: F.t0 - 600_000))
            }
            let a = try await db.store.joinAttempt(tenant: "t1", exam: F.exam(), candidate: "u2", now: F.t0)
            _ = try await db.store.submitAttempt(id: a.id, reason: .candidate, opID: "s1", now: F.t0 + 1)
            let saves = [
                SaveCommand(attemptID: "paused-1", tenant: "t1", candidate: "u1", qid: "q1", value: .string("x"), opID: "p", baseVersion: nil),
                SaveCommand(attemptID: "term-1", tenant: "t1", candidate: "u1", qid: "q1", value: .string("x"), opID: "t", baseVersion: nil),
                SaveCommand(attemptID: "late-1", tenant: "t1", candidate: "u1", qid: "q1", value: .string("x"), opID: "l", baseVersion: nil),
                F.save(a, "q1", .string("x"), op: "after-submit"),
            ]
            let results = try await db.store.applySaves(saves, now: F.t0 + 2)
            #expect(results.map(\.code) == [.attemptPaused, .attemptClosed, .attemptClosed, .attemptClosed])
            #expect(try await db.sql("SELECT count(*) FROM answers") == "0")
            #expect(try await db.sql("SELECT count(*) FROM save_ops WHERE op_id NOT LIKE 'submit:%'") == "0")
        }
    }

    @Test(arguments: Backend.allCases)
    func savesWithinGraceAfterATimeUpSubmitAreAccepted(backend: Backend) async throws {
        try await withStore(backend) { db in
            let exam = F.exam(durationSec: 60, graceSec: 30)
            let a = try await db.store.joinAttempt(tenant: "t1", exam: exam, candidate: "u1", now: F.t0)
            let deadline = F.t0 + 60_000
            let due = try await db.store.submitDueAttempts(now: deadline)
            #expect(due.map(\.id) == [a.id])
            let inGrace = try await db.store.applySaves([F.save(a, "q1", .string("typed in time"), op: "g1")], now: deadline + 30_000)
            #expect(inGrace.first?.outcome?.version == 1)
            let tooLate = try await db.store.applySaves([F.save(a, "q1", .string("too late"), op: "g2")], now: deadline + 30_001)
            #expect(tooLate.first?.code == .attemptClosed)
            // In progress past deadline + grace (no sweep yet) is refused too; within it, accepted.
            let b = try await db.store.joinAttempt(tenant: "t1", exam: exam, candidate: "u2", now: F.t0)
            let r = try await db.store.applySaves(
                [F.save(b, "q1", .string("ok"), op: "b1"), F.save(b, "q1", .string("no"), op: "b2")], now: deadline + 10_000)
            #expect(r.first?.outcome?.version == 1)
            let r2 = try await db.store.applySaves([F.save(b, "q1", .string("no"), op: "b3")], now: deadline + 30_001)
            #expect(r2.first?.code == .attemptClosed)
            #expect(try await db.store.attempt(id: a.id)?.answers["q1"]?.value == .string("typed in time"))
        }
    }

    @Test(arguments: Backend.allCases)
    func anotherCandidatesOrAnUnknownAttemptIsRefused(backend: Backend) async throws {
        try await withStore(backend) { db in
            let a = try await db.store.joinAttempt(tenant: "t1", exam: F.exam(), candidate: "u1", now: F.t0)
            let results = try await db.store.applySaves([
                F.save(a, "q1", .string("x"), op: "o1", candidate: "u2"),
                F.save(a, "q1", .string("x"), op: "o2", tenant: "t2"),
                SaveCommand(attemptID: "a-nope", tenant: "t1", candidate: "u1", qid: "q1", value: .string("x"), opID: "o3", baseVersion: nil),
            ], now: F.t0 + 1)
            #expect(results.map(\.code) == [.forbidden, .notFound, .notFound])
            #expect(try await db.store.attempt(id: a.id)?.answers.isEmpty == true)
            #expect(try await db.store.attempt(id: "a-nope") == nil)
        }
    }

    @Test(arguments: Backend.allCases)
    func aBatchWithMixedOutcomesAnswersEachSaveInOrder(backend: Backend) async throws {
        try await withStore(backend) { db in
            let a = try await db.store.joinAttempt(tenant: "t1", exam: F.exam(), candidate: "u1", now: F.t0)
            let b = try await db.store.joinAttempt(tenant: "t1", exam: F.exam(), candidate: "u2", now: F.t0)
            try await db.store.insertAttempt(AttemptRecord(
                id: "paused-1", tenant: "t1", examID: "e1", candidate: "u3", state: "paused",
                deadlineMillis: F.t0 + 600_000, startedMillis: F.t0))
            _ = try await db.store.applySaves([F.save(a, "q3", .int(7), op: "before")], now: F.t0 + 1)
            let batch: [SaveCommand] = [
                F.save(a, "q1", .string("a1"), op: "m1"),  // ok, v1
                F.save(a, "q1", .string("a2"), op: "m2", base: 1),  // ok, v2 (sees m1 in the same batch)
                F.save(a, "q1", .string("a3"), op: "m3", base: 1),  // conflict: at 2 with a2
                F.save(a, "q1", .string("dup"), op: "m1"),  // replay of m1 within the batch
                F.save(a, "q3", .int(8), op: "before"),  // replay from an earlier batch
                F.save(b, "q1", .string("b1"), op: "m1"),  // ok: opIds are per attempt
                F.save(a, "q2", .string("a"), op: "m4", candidate: "u2"),  // forbidden
                SaveCommand(attemptID: "zz", tenant: "t1", candidate: "u1", qid: "q1", value: .null, opID: "m5", baseVersion: nil),
                SaveCommand(attemptID: "paused-1", tenant: "t1", candidate: "u3", qid: "q1", value: .null, opID: "m6", baseVersion: nil),
                F.save(a, "q2", .string("b"), op: "m7"),  // ok, v1
                F.save(a, "q1", .null, op: "m8"),  // ok, v3 (null clears)
            ]
            let results = try await db.store.applySaves(batch, now: F.t0 + 5)
            #expect(results.count == batch.count)
            #expect(results.map(\.code) == [nil, nil, .conflict, nil, nil, nil, .forbidden, .notFound, .attemptPaused, nil, nil])
            #expect(results.map { $0.outcome?.version } == [1, 2, nil, 1, 1, 1, nil, nil, nil, 1, 3])
            #expect(results.map { $0.outcome?.replayed } == [false, false, nil, true, true, false, nil, nil, nil, false, false])
            if case .failure(let conflict) = results[2] {
                #expect(conflict.details == .object(["version": .int(2), "value": .string("a2")]))
            }
            #expect(results[3].outcome?.savedAtMillis == F.t0 + 5)
            #expect(results[4].outcome?.savedAtMillis == F.t0 + 1)
            let stored = try #require(try await db.store.attempt(id: a.id))
            #expect(stored.answers["q1"] == StoredAnswer(value: .null, version: 3, savedAtMillis: F.t0 + 5))
            #expect(stored.answers["q2"]?.version == 1)
            #expect(stored.answers["q3"] == StoredAnswer(value: .int(7), version: 1, savedAtMillis: F.t0 + 1))
            #expect(try await db.store.attempt(id: b.id)?.answers["q1"]?.value == .string("b1"))
            // One answers.saved event per attempt per batch: 1 (before) + a + b.
            #expect(try await db.outboxCounts()["answers.saved"] == 3)
            #expect(try await db.store.applySaves([], now: F.t0).isEmpty)
        }
    }

    @Test(arguments: Backend.allCases)
    func concurrentBatchesOnOneQuestionNeverReuseAVersion(backend: Backend) async throws {
        try await withStore(backend) { db in
            let a = try await db.store.joinAttempt(tenant: "t1", exam: F.exam(), candidate: "u1", now: F.t0)
            let store = db.store
            let versions = try await withThrowingTaskGroup(of: [Int64].self) { group in
                for i in 0..<10 {
                    group.addTask {
                        let batch = (0..<5).map { j in F.save(a, "q1", .int(Int64(i * 10 + j)), op: "c\(i)-\(j)") }
                        return try await store.applySaves(batch, now: F.t0 + 1).compactMap { $0.outcome?.version }
                    }
                }
                var all: [Int64] = []
                for try await v in group { all += v }
                return all
            }
            #expect(versions.sorted() == Array(1...50))
            #expect(try await db.store.attempt(id: a.id)?.answers["q1"]?.version == 50)
        }
    }

    // MARK: Submit

    @Test(arguments: Backend.allCases)
    func submitIsIdempotentPerOpID(backend: Backend) async throws {
        try await withStore(backend) { db in
            let a = try await db.store.joinAttempt(tenant: "t1", exam: F.exam(), candidate: "u1", now: F.t0)
            let s = try await db.store.submitAttempt(id: a.id, reason: .candidate, opID: "s1", now: F.t0 + 100)
            #expect(s.clock.state == .submitted)
            #expect(s.clock.reason == .candidate)
            #expect(s.clock.closedAtMillis == F.t0 + 100)
            let replay = try await db.store.submitAttempt(id: a.id, reason: .candidate, opID: "s1", now: F.t0 + 200)
            #expect(replay.clock == s.clock)
            await expectHubError(.attemptClosed) {
                try await db.store.submitAttempt(id: a.id, reason: .candidate, opID: "s2", now: F.t0 + 300)
            }
            await expectHubError(.attemptClosed) {
                try await db.store.submitAttempt(id: a.id, reason: .proctor, opID: nil, now: F.t0 + 300)
            }
            await expectHubError(.notFound) {
                try await db.store.submitAttempt(id: "a-nope", reason: .candidate, opID: "s1", now: F.t0)
            }
            #expect(try await db.store.attempt(id: a.id)?.clock == s.clock)
            #expect(try await db.outboxCounts()["attempt.submitted"] == 1)
        }
    }

    @Test(arguments: Backend.allCases)
    func submitFollowsTheClockRules(backend: Backend) async throws {
        try await withStore(backend) { db in
            try await db.store.insertAttempt(AttemptRecord(
                id: "p1", tenant: "t1", examID: "e1", candidate: "u1", state: "paused", deadlineMillis: F.t0 + 60_000,
                startedMillis: F.t0))
            await expectHubError(.attemptPaused) {
                try await db.store.submitAttempt(id: "p1", reason: .candidate, opID: "s1", now: F.t0 + 1)
            }
            let byProctor = try await db.store.submitAttempt(id: "p1", reason: .proctor, opID: nil, now: F.t0 + 2)
            #expect(byProctor.clock.state == .submitted && byProctor.clock.reason == .proctor)
            // A candidate's submit after deadline + grace is refused.
            let exam = F.exam(durationSec: 60, graceSec: 5)
            let late = try await db.store.joinAttempt(tenant: "t1", exam: exam, candidate: "u2", now: F.t0)
            await expectHubError(.attemptClosed) {
                try await db.store.submitAttempt(id: late.id, reason: .candidate, opID: "s9", now: F.t0 + 65_001)
            }
            #expect(try await db.store.attempt(id: late.id)?.clock.state == .inProgress)
        }
    }

    @Test(arguments: Backend.allCases)
    func submitDueAttemptsSubmitsWhatIsDueOnce(backend: Backend) async throws {
        try await withStore(backend) { db in
            let exam = F.exam(durationSec: 60)
            let due1 = try await db.store.joinAttempt(tenant: "t1", exam: exam, candidate: "u1", now: F.t0)
            let due2 = try await db.store.joinAttempt(tenant: "t2", exam: exam, candidate: "u1", now: F.t0 + 10)
            let notYet = try await db.store.joinAttempt(tenant: "t1", exam: exam, candidate: "u2", now: F.t0 + 30_000)
            let submitted = try await db.store.joinAttempt(tenant: "t1", exam: exam, candidate: "u3", now: F.t0)
            _ = try await db.store.submitAttempt(id: submitted.id, reason: .candidate, opID: "s", now: F.t0 + 1)
            try await db.store.insertAttempt(AttemptRecord(
                id: "paused-1", tenant: "t1", examID: "e1", candidate: "u4", state: "paused", deadlineMillis: F.t0,
                startedMillis: F.t0 - 60_000))

            let now = F.t0 + 60_010
            let done = try await db.store.submitDueAttempts(now: now)
            #expect(Set(done.map(\.id)) == [due1.id, due2.id])
            for s in done {
                #expect(s.clock.state == .submitted && s.clock.reason == .timeUp)
                #expect(s.clock.closedAtMillis == s.clock.deadlineMillis)
                #expect(try await db.store.attempt(id: s.id)?.clock == s.clock)
            }
            #expect(try await db.store.submitDueAttempts(now: now).isEmpty)
            #expect(try await db.store.attempt(id: notYet.id)?.clock.state == .inProgress)
            #expect(try await db.store.attempt(id: "paused-1")?.clock.state == .paused)
            #expect(try await db.store.attempt(id: submitted.id)?.clock.reason == .candidate)
            #expect(try await db.outboxCounts()["attempt.submitted"] == 3)
            let later = try await db.store.submitDueAttempts(now: F.t0 + 90_000)
            #expect(later.map(\.id) == [notYet.id])
        }
    }

    // MARK: Channels

    @Test(arguments: Backend.allCases)
    func channelResourcesAndInserts(backend: Backend) async throws {
        try await withStore(backend) { db in
            try await db.store.insertAttempt(
                AttemptRecord(id: "a1", tenant: "t1", examID: "e1", candidate: "u1", deadlineMillis: 10, startedMillis: 0))
            try await db.store.insertConversation(id: "c1", tenant: "t1", owner: "u1")
            #expect(try await db.store.channelResource(.attempt("a1")) == .attempt(tenant: "t1", examID: "e1", candidate: "u1"))
            #expect(try await db.store.channelResource(.attempt("zz")) == .missing)
            #expect(try await db.store.channelResource(.chat("c1")) == .conversation(tenant: "t1", owner: "u1"))
            #expect(try await db.store.channelResource(.chat("zz")) == .missing)
            #expect(try await db.store.channelResource(.examProctor("e1")) == .missing)
            await expectHubError(.conflict) {
                try await db.store.insertAttempt(
                    AttemptRecord(id: "a1", tenant: "t1", examID: "e1", candidate: "u9", deadlineMillis: 10, startedMillis: 0))
            }
            await expectHubError(.conflict) {
                try await db.store.insertAttempt(
                    AttemptRecord(id: "a2", tenant: "t1", examID: "e1", candidate: "u1", deadlineMillis: 10, startedMillis: 0))
            }
            await expectHubError(.conflict) { try await db.store.insertConversation(id: "c1", tenant: "t2", owner: "u2") }
            #expect(try await db.store.channelResource(.chat("c1")) == .conversation(tenant: "t1", owner: "u1"))
        }
    }

    @Test(arguments: Backend.allCases)
    func aClosedStoreRefusesWork(backend: Backend) async throws {
        try await withStore(backend) { db in
            await db.store.close()
            do {
                try await db.store.ping()
                Issue.record("ping succeeded on a closed store")
            } catch {
                // Either store may say so its own way; it must not hang or crash.
            }
        }
    }
}
