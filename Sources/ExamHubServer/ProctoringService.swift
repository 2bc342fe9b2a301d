import ExamHubDomain
import ExamHubProctoring
import ExamHubStore
import ExamHubWire
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// The live side of proctoring on this node (issue 4): one ``AttemptMonitor`` per attempt seen here, the
/// attempt's presence (sockets joined, last seen) and its telemetry rate limit, and the events of the
/// `exam:<id>:proctor` channel: `candidate.joined/left/state`, `flag.raised`, `risk.changed`.
///
/// Telemetry is evaluated synchronously on the socket's event loop under one of 64 shard locks (no task hop);
/// evidence and flags are handed to the ``TelemetryWriter``, which stores them in batches.
///
/// Several nodes (a ``ClusterRelay``): presence is the cluster's. This node tells the relay when its own sockets of
/// an attempt go from none to some and back, and the relay announces `candidate.joined` / `candidate.left` when the
/// attempt's presence on all nodes together changes; the roster's `connected` is the cluster's too. Telemetry is
/// scored by the node that receives it (each node scores the tabs it holds), and a `candidate.state` published by
/// another node updates the attempt held here, so a paused or closed attempt is refused on every node.
final class ProctoringService: Service, Sendable {
    /// What the node knows about one live attempt.
    struct LiveAttempt: Sendable {
        var tenant: String
        var examID: String
        var candidate: String
        var state: AttemptState
        var deadlineMillis: Int64
        var monitor: AttemptMonitor
        /// Sockets of this node that joined the attempt (two tabs are one candidate).
        var sockets = 0
        var lastSeenMillis: Int64?
        var risk = 0
        var bucket: TokenBucket
    }

    /// What a telemetry frame did.
    struct Ingested {
        var accepted: Int
    }

    let library: ProfileLibrary
    private let shards: [NIOLockedValueBox<[String: LiveAttempt]>]
    private let hub: ChannelHub
    let writer: TelemetryWriter
    private let configuration: HubConfiguration
    private let metrics: HubMetrics
    private let cluster: (any ClusterRelay)?

    init(
        library: ProfileLibrary, hub: ChannelHub, writer: TelemetryWriter, configuration: HubConfiguration,
        metrics: HubMetrics, cluster: (any ClusterRelay)? = nil
    ) {
        self.cluster = cluster
        self.library = library
        self.hub = hub
        self.writer = writer
        self.configuration = configuration
        self.metrics = metrics
        self.shards = (0..<64).map { _ in NIOLockedValueBox([:]) }
    }

    private func shard(_ attemptID: String) -> NIOLockedValueBox<[String: LiveAttempt]> {
        var hasher = Hasher()
        hasher.combine(attemptID)
        return shards[Int(UInt(bitPattern: hasher.finalize()) % UInt(shards.count))]
    }

    private func newLive(_ snapshot: AttemptSnapshot, exam: ExamDefinition, flags: [Flag]) -> LiveAttempt {
        // An exam whose profile no longer resolves (a profile file removed since) falls back to `default`.
        let profile = (try? library.profile(for: exam, tenant: snapshot.tenant))
            ?? library.profile(named: "default", tenant: snapshot.tenant)
            ?? ProctoringProfile(name: "default", rules: [])
        return LiveAttempt(
            tenant: snapshot.tenant, examID: snapshot.examID, candidate: snapshot.candidate, state: snapshot.clock.state,
            deadlineMillis: snapshot.clock.deadlineMillis, monitor: AttemptMonitor(profile: profile, flags: flags),
            bucket: TokenBucket(
                ratePerSecond: configuration.telemetryRatePerSecond, burst: configuration.telemetryBurst,
                nowNanos: NIODeadline.now().uptimeNanoseconds))
    }

    /// Whether the attempt is live on this node (its monitor exists).
    func isLive(_ attemptID: String) -> Bool {
        shard(attemptID).withLockedValue { $0[attemptID] != nil }
    }

    /// Makes the attempt live with its stored flags (after a restart the risk carries on), unless it already is.
    func load(_ snapshot: AttemptSnapshot, exam: ExamDefinition, storedFlags: [FlagRecord]) {
        let flags = storedFlags.compactMap(Self.flag(from:))
        shard(snapshot.id).withLockedValue { live in
            if live[snapshot.id] == nil { live[snapshot.id] = newLive(snapshot, exam: exam, flags: flags) }
        }
    }

    // MARK: Presence

    /// A socket joined the attempt; the first socket announces `candidate.joined` (the cluster's first, with
    /// several nodes).
    func socketJoined(_ snapshot: AttemptSnapshot, exam: ExamDefinition, now: Int64) {
        let joined: LiveAttempt? = shard(snapshot.id).withLockedValue { live in
            if live[snapshot.id] == nil { live[snapshot.id] = newLive(snapshot, exam: exam, flags: []) }
            live[snapshot.id]?.sockets += 1
            live[snapshot.id]?.lastSeenMillis = now
            live[snapshot.id]?.state = snapshot.clock.state
            live[snapshot.id]?.deadlineMillis = snapshot.clock.deadlineMillis
            return live[snapshot.id].flatMap { $0.sockets == 1 ? $0 : nil }
        }
        guard let joined else { return }
        if let cluster {
            return cluster.presenceChanged(presenceChange(snapshot.id, joined, now: now))
        }
        publishProctor(
            tenant: snapshot.tenant, examID: snapshot.examID, type: "candidate.joined",
            data: Self.joinedData(snapshot.id, joined), now: now)
    }

    /// A socket that had joined the attempt closed; the last one announces `candidate.left` (the cluster's last,
    /// with several nodes).
    func socketLeft(attemptID: String, now: Int64) {
        let left: LiveAttempt? = shard(attemptID).withLockedValue { live in
            guard var a = live[attemptID] else { return nil }
            a.sockets = max(0, a.sockets - 1)
            a.lastSeenMillis = now
            live[attemptID] = a
            return a.sockets == 0 ? a : nil
        }
        guard let left else { return }
        if let cluster {
            return cluster.presenceChanged(presenceChange(attemptID, left, now: now))
        }
        publishProctor(tenant: left.tenant, examID: left.examID, type: "candidate.left",
            data: Self.leftData(attemptID, left, now: now), now: now)
    }

    private static func joinedData(_ attemptID: String, _ a: LiveAttempt) -> [String: JSONValue] {
        [
            "attemptId": .string(attemptID), "candidate": .string(a.candidate), "state": .string(a.state.rawValue),
            "deadline": .string(Timestamp.format(millis: a.deadlineMillis)), "connected": .bool(true),
        ]
    }

    private static func leftData(_ attemptID: String, _ a: LiveAttempt, now: Int64) -> [String: JSONValue] {
        [
            "attemptId": .string(attemptID), "candidate": .string(a.candidate),
            "lastSeen": .string(Timestamp.format(millis: now)),
        ]
    }

    private func presenceChange(_ attemptID: String, _ a: LiveAttempt, now: Int64) -> PresenceChange {
        PresenceChange(
            attemptID: attemptID, tenant: a.tenant, examID: a.examID, candidate: a.candidate, sockets: a.sockets,
            atMillis: now, joinedData: JSONValue.object(Self.joinedData(attemptID, a)).jsonText,
            leftData: JSONValue.object(Self.leftData(attemptID, a, now: now)).jsonText)
    }

    /// This node's presence in every attempt it holds sockets of.
    func localPresence(now: Int64) -> [PresenceChange] {
        var out: [PresenceChange] = []
        for shard in shards {
            shard.withLockedValue { live in
                for (id, a) in live where a.sockets > 0 { out.append(presenceChange(id, a, now: now)) }
            }
        }
        return out
    }

    /// Another node changed the attempt's state (`candidate.state` from the shared channel log): the copy held
    /// here follows, so telemetry for a closed attempt is refused here too.
    func remoteStateChanged(attemptID: String, state: AttemptState, deadlineMillis: Int64?) {
        shard(attemptID).withLockedValue { live in
            guard live[attemptID] != nil else { return }
            live[attemptID]?.state = state
            if let deadlineMillis { live[attemptID]?.deadlineMillis = deadlineMillis }
        }
    }

    /// The attempt changed state (a proctor action, a submit, the deadline): `candidate.state` for the proctors.
    func stateChanged(_ snapshot: AttemptSnapshot, action: String?, now: Int64) {
        shard(snapshot.id).withLockedValue { live in
            live[snapshot.id]?.state = snapshot.clock.state
            live[snapshot.id]?.deadlineMillis = snapshot.clock.deadlineMillis
        }
        var data: [String: JSONValue] = [
            "attemptId": .string(snapshot.id), "candidate": .string(snapshot.candidate),
            "state": .string(snapshot.clock.state.rawValue),
            "deadline": .string(Timestamp.format(millis: snapshot.clock.deadlineMillis)),
        ]
        if let reason = snapshot.clock.reason { data["reason"] = .string(reason.rawValue) }
        if let action { data["action"] = .string(action) }
        publishProctor(tenant: snapshot.tenant, examID: snapshot.examID, type: "candidate.state", data: data, now: now)
    }

    // MARK: Telemetry

    /// Who an attempt belongs to.
    struct Who: Sendable {
        var tenant: String
        var examID: String
        var candidate: String
    }

    /// Validates and evaluates one `telemetry` frame of a live attempt, publishes what it raised and queues the
    /// evidence. `nil` when the attempt is not live here (the caller loads it and retries); throws
    /// `attempt_closed` for a closed attempt, `rate_limited` over the attempt's rate, `bad_request` for bad events.
    func ingest(attemptID: String, events raw: JSONValue?, now: Int64) throws(HubError) -> Ingested? {
        let nowNanos = NIODeadline.now().uptimeNanoseconds
        let result: Result<(Who, TelemetryBatch, MonitorOutcome, riskBefore: Int, risk: Int), HubError>? =
            shard(attemptID).withLockedValue { live in
                // Taken out and put back: the monitor's arrays stay uniquely referenced, so they are mutated in place
                // rather than copied on every frame.
                guard var a = live.removeValue(forKey: attemptID) else { return nil }
                defer { live[attemptID] = a }
                guard !a.state.isClosed else {
                    return .failure(HubError(.attemptClosed, "the attempt is \(a.state.rawValue)"))
                }
                guard a.bucket.take(nowNanos: nowNanos) else {
                    return .failure(HubError(.rateLimited, "too much telemetry for this attempt; batch events"))
                }
                let batch: TelemetryBatch
                do throws(HubError) {
                    batch = try TelemetryBatch(events: raw, now: now, clock: &a.monitor.clock)
                } catch {
                    return .failure(error)
                }
                let outcome = a.monitor.ingest(batch.events)
                let before = a.risk
                if !outcome.isEmpty { a.risk = a.monitor.risk(at: now) }
                a.lastSeenMillis = now
                return .success((Who(tenant: a.tenant, examID: a.examID, candidate: a.candidate), batch, outcome, before, a.risk))
            }
        guard let result else { return nil }
        let (attempt, batch, outcome, riskBefore, risk) = try result.get()
        metrics.telemetryEvents.increment(by: batch.events.count)
        writer.enqueue(
            TelemetryWriter.Pending(attemptID: attemptID, tenant: attempt.tenant, batch: batch),
            flags: outcome.changed.map { flag in
                Self.record(flag, attemptID: attemptID, attempt: attempt, isNew: outcome.raised.contains { $0.code == flag.code && $0.firstMillis == flag.firstMillis })
            })
        for flag in outcome.raised {
            metrics.flagsRaised.increment()
            publishProctor(
                tenant: attempt.tenant, examID: attempt.examID, type: "flag.raised",
                data: [
                    "attemptId": .string(attemptID), "candidate": .string(attempt.candidate), "code": .string(flag.code),
                    "severity": .string(flag.severity.rawValue), "at": .string(Timestamp.format(millis: flag.firstMillis)),
                    "evidence": .object(["events": .array(flag.evidence.map(\.json))]),
                ], now: now)
        }
        if risk != riskBefore {
            publishProctor(
                tenant: attempt.tenant, examID: attempt.examID, type: "risk.changed",
                data: ["attemptId": .string(attemptID), "risk": .int(Int64(risk))], now: now)
        }
        return Ingested(accepted: batch.events.count)
    }

    // MARK: Roster

    /// One roster entry per attempt: the stored state merged with what is live here (and, with several nodes, the
    /// cluster's presence: `connected` when a socket is on any live node).
    func roster(
        _ attempts: [AttemptSnapshot], storedFlags: [String: [FlagRecord]], presence: [String: AttemptPresence]? = nil,
        now: Int64
    ) -> JSONValue {
        .array(attempts.map { a in
            let live = shard(a.id).withLockedValue { $0[a.id] }
            var flags = live?.monitor.flags ?? []
            // Flags stored by an earlier run of the node that the live monitor does not hold.
            for stored in storedFlags[a.id] ?? [] where !flags.contains(where: {
                $0.code == stored.code && $0.firstMillis == stored.firstMillis
            }) {
                if let f = Self.flag(from: stored) { flags.append(f) }
            }
            flags.sort { $0.firstMillis < $1.firstMillis }
            let risk = live?.monitor.profile.risk.risk(of: flags, at: now) ?? RiskModel().risk(of: flags, at: now)
            var state = a.clock.state
            var deadline = a.clock.deadlineMillis
            // The store is the truth for the clock; the live copy may be newer only if an action just landed.
            if let live, live.state != state, a.clock.state == .inProgress || a.clock.state == .paused {
                state = live.state
                deadline = live.deadlineMillis
            }
            let elsewhere = presence?[a.id]
            let connected = (live?.sockets ?? 0) > 0 || elsewhere?.connected == true
            let lastSeen = [live?.lastSeenMillis, elsewhere?.lastSeenMillis].compactMap { $0 }.max()
            return .object([
                "attemptId": .string(a.id), "candidate": .string(a.candidate), "state": .string(state.rawValue),
                "deadline": .string(Timestamp.format(millis: deadline)), "risk": .int(Int64(risk)),
                "flags": .array(flags.map(\.summaryJSON)), "connected": .bool(connected),
                "lastSeen": lastSeen.map { .string(Timestamp.format(millis: $0)) } ?? .null,
            ])
        })
    }

    /// The flags and risk of one attempt, for `GET /v1/attempts/{id}`.
    func flagsAndRisk(of attemptID: String, stored: [FlagRecord], now: Int64) -> (flags: [Flag], risk: Int) {
        let live = shard(attemptID).withLockedValue { $0[attemptID] }
        var flags = live?.monitor.flags ?? []
        for s in stored where !flags.contains(where: { $0.code == s.code && $0.firstMillis == s.firstMillis }) {
            if let f = Self.flag(from: s) { flags.append(f) }
        }
        flags.sort { $0.firstMillis < $1.firstMillis }
        let model = live?.monitor.profile.risk ?? RiskModel()
        return (flags, model.risk(of: flags, at: now))
    }

    // MARK: Housekeeping

    /// Forgets attempts with no socket here that were last seen `idleMillis` ago (they load again on demand).
    @discardableResult
    func evictIdle(now: Int64, idleMillis: Int64 = 7_200_000) -> Int {
        var evicted = 0
        for shard in shards {
            shard.withLockedValue { live in
                for (id, a) in live where a.sockets == 0 && (a.lastSeenMillis ?? 0) < now - idleMillis {
                    live[id] = nil
                    evicted += 1
                }
            }
        }
        return evicted
    }

    /// Flushes evidence every `telemetryFlushMillis`, purges old evidence hourly and forgets idle attempts.
    func run() async throws {
        await writer.purge(now: WallClock.nowMillis())
        await cancelWhenGracefulShutdown {
            var lastHousekeeping = WallClock.nowMillis()
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(self.configuration.telemetryFlushMillis))
                await self.writer.flush()
                let now = WallClock.nowMillis()
                if now - lastHousekeeping >= 3_600_000 {
                    lastHousekeeping = now
                    await self.writer.purge(now: now)
                    self.evictIdle(now: now)
                }
            }
        }
        await writer.flush()  // what arrived before the drain
    }

    // MARK: Helpers

    private func publishProctor(tenant: String, examID: String, type: String, data: [String: JSONValue], now: Int64) {
        hub.publish(ChannelKey(tenant: tenant, name: .examProctor(examID)), type: type, data: .object(data), now: now)
    }

    static func record(_ flag: Flag, attemptID: String, attempt: Who, isNew: Bool) -> FlagRecord {
        FlagRecord(
            attemptID: attemptID, tenant: attempt.tenant, examID: attempt.examID, code: flag.code,
            severity: flag.severity.rawValue, firstMillis: flag.firstMillis, lastMillis: flag.lastMillis, count: flag.count,
            evidence: .array(flag.evidence.map(\.json)), isNew: isNew)
    }

    static func flag(from r: FlagRecord) -> Flag? {
        guard let severity = FlagSeverity(rawValue: r.severity) else { return nil }
        return Flag(
            code: r.code, severity: severity, firstMillis: r.firstMillis, lastMillis: r.lastMillis, count: r.count)
    }
}

/// Stores telemetry evidence and flags in batches: everything queued during `flushMillis` goes to the store in one
/// transaction (one row per telemetry frame, not per event). While the store is unreachable, flags are kept and
/// retried; evidence beyond `maxQueued` batches is dropped (and counted) rather than growing memory without bound.
final class TelemetryWriter: Sendable {
    /// A frame's events waiting to be stored (encoded at flush time, off the event loops).
    struct Pending: Sendable {
        var attemptID: String
        var tenant: String
        var batch: TelemetryBatch

        var record: TelemetryRecord {
            TelemetryRecord(
                attemptID: attemptID, tenant: tenant, receivedMillis: batch.receivedMillis, skewMillis: batch.skewMillis,
                eventCount: batch.events.count, eventsJSON: batch.events.compactJSON)
        }
    }

    private struct Queue {
        var batches: [Pending] = []
        var flags: [FlagRecord] = []
    }

    private let queue = NIOLockedValueBox(Queue())
    private let store: any Store
    private let logger: Logger
    private let metrics: HubMetrics
    private let retentionMillis: Int64
    private let maxQueued = 200_000

    init(store: any Store, logger: Logger, metrics: HubMetrics, retentionDays: Double) {
        self.store = store
        self.logger = logger
        self.metrics = metrics
        self.retentionMillis = Int64(retentionDays * 86_400_000)
    }

    func enqueue(_ batch: Pending, flags: [FlagRecord]) {
        let dropped: Bool = queue.withLockedValue { q in
            q.flags.append(contentsOf: flags)
            guard q.batches.count < maxQueued else { return true }
            q.batches.append(batch)
            return false
        }
        if dropped { metrics.telemetryDropped.increment() }
    }

    /// Writes what is queued; returns how many batches were written.
    @discardableResult
    func flush() async -> Int {
        let taken = queue.withLockedValue { q -> Queue in
            let out = q
            q = Queue()
            return out
        }
        guard !taken.batches.isEmpty || !taken.flags.isEmpty else { return 0 }
        do {
            try await store.recordTelemetry(taken.batches.map(\.record), flags: taken.flags, now: WallClock.nowMillis())
            return taken.batches.count
        } catch {
            // Put it back in front of what came meanwhile; the next flush retries.
            queue.withLockedValue { q in
                q.flags = taken.flags + q.flags
                let room = max(0, maxQueued - q.batches.count)
                q.batches = Array(taken.batches.suffix(room)) + q.batches
            }
            logger.warning("telemetry evidence not stored; retrying", metadata: ["examhub.error": "\(error)"])
            return 0
        }
    }

    /// Deletes evidence older than the retention period.
    @discardableResult
    func purge(now: Int64) async -> Int {
        do {
            let n = try await store.purgeTelemetry(before: now - retentionMillis)
            if n > 0 { logger.info("purged old telemetry evidence", metadata: ["examhub.batches": "\(n)"]) }
            return n
        } catch {
            logger.warning("telemetry purge failed", metadata: ["examhub.error": "\(error)"])
            return 0
        }
    }

}
