import ExamHubDomain
import ExamHubStore
import Testing

/// The proctoring part of the `Store` contract, on SQLite and PostgreSQL alike: evidence batches, flags upserted
/// with their outbox rows, proctor actions applied to the clock with an audit entry, and the retention purge.
@Suite struct StoreProctoringContractTests {
    typealias F = Fixture

    private func flag(_ attempt: AttemptSnapshot, _ code: String, first: Int64, last: Int64? = nil, count: Int = 1, isNew: Bool)
        -> FlagRecord
    {
        FlagRecord(
            attemptID: attempt.id, tenant: attempt.tenant, examID: attempt.examID, code: code, severity: "warning",
            firstMillis: first, lastMillis: last ?? first, count: count,
            evidence: .array([.object(["kind": .string("visibility.hidden")])]), isNew: isNew)
    }

    @Test(arguments: Backend.allCases)
    func telemetryAndFlagsAreStoredAndFlagsUpserted(backend: Backend) async throws {
        try await withStore(backend) { db in
            let exam = F.exam()
            try await db.store.createExam(tenant: "t1", definition: exam, now: F.t0)
            let a = try await db.store.joinAttempt(tenant: "t1", exam: exam, candidate: "u1", now: F.t0)
            let b = try await db.store.joinAttempt(tenant: "t1", exam: exam, candidate: "u2", now: F.t0)
            let batch = TelemetryRecord(
                attemptID: a.id, tenant: "t1", receivedMillis: F.t0, skewMillis: -40, eventCount: 2,
                eventsJSON: #"[["focus.lost",1,1,null],["focus.gained",2,2,null]]"#)
            try await db.store.recordTelemetry(
                [batch, batch], flags: [flag(a, "tab_switching", first: F.t0, isNew: true)], now: F.t0)
            // The same flag grown in a later batch, twice in one call, and another attempt's flag.
            try await db.store.recordTelemetry(
                [], flags: [
                    flag(a, "tab_switching", first: F.t0, last: F.t0 + 10, count: 2, isNew: false),
                    flag(a, "tab_switching", first: F.t0, last: F.t0 + 20, count: 3, isNew: false),
                    flag(b, "paste", first: F.t0 + 5, isNew: true),
                ], now: F.t0 + 20)
            try await db.store.recordTelemetry([], flags: [], now: F.t0)  // nothing to do is fine
            #expect(try await db.sql("SELECT count(*) FROM telemetry_batches") == "2")
            #expect(try await db.sql("SELECT sum(event_count) FROM telemetry_batches") == "4")
            let flags = try await db.store.flags(attemptIDs: [a.id, b.id, "a-none"])
            #expect(flags[a.id]?.count == 1)
            #expect(flags[a.id]?.first?.count == 3)
            #expect(flags[a.id]?.first?.lastMillis == F.t0 + 20)
            #expect(flags[a.id]?.first?.evidence == .array([.object(["kind": .string("visibility.hidden")])]))
            #expect(flags[b.id]?.map(\.code) == ["paste"])
            #expect(flags["a-none"] == nil)
            #expect(try await db.outboxCounts()["flag.raised"] == 2)

            #expect(try await db.store.purgeTelemetry(before: F.t0) == 0)
            #expect(try await db.store.purgeTelemetry(before: F.t0 + 1) == 2)
            #expect(try await db.sql("SELECT count(*) FROM telemetry_batches") == "0")
            #expect(try await db.store.flags(attemptIDs: [a.id])[a.id]?.count == 1, "flags outlive the raw evidence")
        }
    }

    @Test(arguments: Backend.allCases)
    func proctorActionsMoveTheClockAndAreAudited(backend: Backend) async throws {
        try await withStore(backend) { db in
            let exam = F.exam(durationSec: 600)
            try await db.store.createExam(tenant: "t1", definition: exam, now: F.t0)
            let a = try await db.store.joinAttempt(tenant: "t1", exam: exam, candidate: "u1", now: F.t0)
            func act(_ kind: ProctorActionKind, at t: Int64, minutes: Int? = nil, tenant: String = "t1") async throws
                -> AttemptSnapshot
            {
                try await db.store.applyProctorAction(
                    ProctorActionCommand(
                        attemptID: a.id, tenant: tenant, actor: "p1", actorRole: "proctor", action: kind,
                        message: kind == .warn ? "eyes on your screen" : nil, reason: "seen on camera", minutes: minutes),
                    now: t)
            }
            var s = try await act(.warn, at: F.t0 + 1_000)
            #expect(s.clock.state == .inProgress && s.clock.deadlineMillis == F.t0 + 600_000)
            s = try await act(.pause, at: F.t0 + 10_000)
            #expect(s.clock.state == .paused)
            await expectHubError(.conflict) { _ = try await act(.pause, at: F.t0 + 11_000) }
            s = try await act(.resume, at: F.t0 + 70_000)
            #expect(s.clock.state == .inProgress && s.clock.deadlineMillis == F.t0 + 660_000, "paused for 60 s")
            s = try await act(.extend, at: F.t0 + 80_000, minutes: 5)
            #expect(s.clock.deadlineMillis == F.t0 + 960_000)
            await expectHubError(.badRequest) { _ = try await act(.extend, at: F.t0 + 80_000) }
            await expectHubError(.notFound) { _ = try await act(.pause, at: F.t0 + 80_000, tenant: "t2") }
            s = try await act(.terminate, at: F.t0 + 90_000)
            #expect(s.clock.state == .terminated && s.clock.closedAtMillis == F.t0 + 90_000)
            await expectHubError(.attemptClosed) { _ = try await act(.warn, at: F.t0 + 91_000) }
            #expect(try await db.store.attempt(id: a.id)?.clock == s.clock)

            let log = try await db.store.auditLog(tenant: "t1", examID: "e1", attemptID: nil, limit: 100)
            #expect(log.map(\.action) == ["terminate", "extend", "resume", "pause", "warn"], "newest first; refusals not logged")
            #expect(log.last?.message == "eyes on your screen")
            #expect(log.allSatisfy { $0.actor == "p1" && $0.actorRole == "proctor" && $0.reason == "seen on camera" })
            #expect(log[1].minutes == 5 && log[1].deadlineAfterMillis == F.t0 + 960_000)
            #expect(log[0].stateAfter == "terminated")
            #expect(try await db.store.auditLog(tenant: "t1", examID: "e1", attemptID: a.id, limit: 2).count == 2)
            #expect(try await db.store.auditLog(tenant: "t1", examID: "e1", attemptID: "a-other", limit: 9).isEmpty)
            #expect(try await db.store.auditLog(tenant: "t2", examID: "e1", attemptID: nil, limit: 9).isEmpty)
            #expect(try await db.outboxCounts()["proctor.action"] == 5)
        }
    }

    @Test(arguments: Backend.allCases)
    func attemptsOfAnExamAreListedPerTenant(backend: Backend) async throws {
        try await withStore(backend) { db in
            let exam = F.exam()
            try await db.store.createExam(tenant: "t1", definition: exam, now: F.t0)
            for (i, u) in ["u1", "u2", "u3"].enumerated() {
                _ = try await db.store.joinAttempt(tenant: "t1", exam: exam, candidate: u, now: F.t0 + Int64(i))
            }
            _ = try await db.store.joinAttempt(tenant: "t2", exam: exam, candidate: "u9", now: F.t0)
            let listed = try await db.store.attempts(tenant: "t1", examID: "e1", limit: 100)
            #expect(listed.map(\.candidate) == ["u1", "u2", "u3"])
            #expect(try await db.store.attempts(tenant: "t1", examID: "e1", limit: 2).count == 2)
            #expect(try await db.store.attempts(tenant: "t1", examID: "e2", limit: 9).isEmpty)
        }
    }
}
