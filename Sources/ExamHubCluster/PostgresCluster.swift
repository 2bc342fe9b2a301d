import CoreMetrics
import ExamHubDomain
import ExamHubPostgres
import ExamHubServer
import ExamHubStore
import Logging
import NIOConcurrencyHelpers
import PostgresNIO
import Prometheus
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Several `examhub serve` nodes on one PostgreSQL: the ``ClusterRelay`` of a node, over the shared channel log and
/// LISTEN/NOTIFY (schema: `CrossNodeSchema`).
///
/// **Publishing.** Events from every socket queue here; one writer appends them in batches (one transaction and
/// one round trip per batch, formed while the previous one commits, like the save group commit). The database
/// numbers each event (the channel's head row, updated and so locked until commit, gives `seq + 1`), stores it in
/// `channel_events` and `pg_notify`s it. An event carries an id of this node's, so a batch retried after a time-out
/// is not appended twice.
///
/// **Receiving.** One pooled connection LISTENs. Notifications arrive in commit order, and a channel's events commit
/// in `seq` order, so each channel's events arrive in order; each goes to the node's ``ClusterSink`` (its hub),
/// the node's own included: a node delivers its own events when the database has numbered them, like everyone
/// else's. Channels nobody on this node follows are skipped after reading the notification's header. A payload
/// over PostgreSQL's 8,000-byte limit carries only the header, and the data is read from the log.
///
/// **Losing the connection.** The listener reconnects with back-off (0.1 s doubling to 5 s) and, once LISTENing
/// again, reads from the log every event after the last one it holds of each channel it follows (or, for a channel
/// it has seen nothing of yet, every event stamped since the loss, less 5 s for clock skew), and feeds them in order
/// before the notifications that queued meanwhile. A hole in a channel's numbering found later (a notification
/// lost some other way) is filled from the log the same way. What the log no longer holds (older than the history
/// age) stays a hole: recoveries across it answer `recovered: false`.
///
/// **Presence.** Each node records, per attempt, its own sockets (`cluster_presence`) and beats every
/// ``ClusterConfiguration/heartbeatSeconds``; `candidate.joined` / `candidate.left` are announced by the database
/// function that records a change, in the same transaction, when the attempt's presence on all live nodes changes.
/// Any node drops the presence of a node silent for three heartbeats (killed, or cut off) and announces who left.
///
/// Limits: every node reads every notification's header (one LISTEN channel for all), so the cluster's total event
/// rate is what bounds it, not the number of nodes; presence of a dead node lingers up to four heartbeats; node
/// clocks are assumed to agree within a few seconds (NTP).
public final class PostgresCluster: ClusterRelay, Service, Sendable {
    public let nodeID: String

    struct Pending: Sendable {
        var append: ChannelLogAppend
        var acknowledged: (@Sendable (Result<ChannelPosition, HubError>) -> Void)?
    }

    let store: PostgresStore
    let configuration: ClusterConfiguration
    let logger: Logger
    let sink = NIOLockedValueBox<(any ClusterSink)?>(nil)
    private let queue = NIOLockedValueBox<[Pending]>([])
    private let publishSignal: AsyncStream<Void>
    private let publishContinuation: AsyncStream<Void>.Continuation
    private let presenceQueue = NIOLockedValueBox<(order: [String], latest: [String: PresenceChange])>(([], [:]))
    private let presenceSignal: AsyncStream<Void>
    private let presenceContinuation: AsyncStream<Void>.Continuation
    private let counter = NIOLockedValueBox<UInt64>(0)
    /// Set when the node stops: writes still failing then are given up at this time.
    private let stopDeadline = NIOLockedValueBox<ContinuousClock.Instant?>(nil)
    let startedMillis: Int64

    let received: CoreMetrics.Counter
    private let appended: CoreMetrics.Counter
    private let dropped: CoreMetrics.Counter
    let reconnects: CoreMetrics.Counter
    let recovered: CoreMetrics.Counter
    let listening: CoreMetrics.Gauge

    /// A node of the cluster on `store`, its metrics on `metrics`' registry.
    public init(store: PostgresStore, configuration: ClusterConfiguration, metrics: HubMetrics, logger: Logger) {
        self.nodeID = "n" + String(UInt64.random(in: 1...UInt64.max), radix: 36)
        self.store = store
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "examhub.node"] = "\(nodeID)"
        self.logger = logger
        (publishSignal, publishContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        (presenceSignal, presenceContinuation) = AsyncStream.makeStream(
            of: Void.self, bufferingPolicy: .bufferingNewest(1))
        self.startedMillis = Self.nowMillis()
        let factory = PrometheusMetricsFactory(registry: metrics.registry)
        received = CoreMetrics.Counter(label: "examhub_cluster_events_received_total", factory: factory)
        appended = CoreMetrics.Counter(label: "examhub_cluster_events_appended_total", factory: factory)
        dropped = CoreMetrics.Counter(label: "examhub_cluster_events_dropped_total", factory: factory)
        reconnects = CoreMetrics.Counter(label: "examhub_cluster_listen_reconnects_total", factory: factory)
        recovered = CoreMetrics.Counter(label: "examhub_cluster_events_recovered_total", factory: factory)
        listening = CoreMetrics.Gauge(label: "examhub_cluster_listening", factory: factory)
    }

    /// Where received events go: the node's hub (``HubServer/clusterSink``). Set before ``run()``.
    public func attach(_ sink: any ClusterSink) {
        self.sink.withLockedValue { $0 = sink }
    }

    // MARK: ClusterRelay

    public func publish(
        _ event: ClusterPublication, acknowledged: (@Sendable (Result<ChannelPosition, HubError>) -> Void)?
    ) {
        let channel = event.key.name.description
        guard ![event.key.tenant, event.type, event.data].contains(where: { $0.utf8.contains(0) }) else {
            acknowledged?(.failure(.badRequest("events may not contain NUL characters")))
            return
        }
        let n = counter.withLockedValue { value -> UInt64 in
            value += 1
            return value
        }
        let pending = Pending(
            append: ChannelLogAppend(
                eventID: "\(nodeID)-\(String(n, radix: 36))", tenant: event.key.tenant, channel: channel,
                type: event.type, tsMillis: event.tsMillis, data: event.data),
            acknowledged: acknowledged)
        let overflow: [Pending] = queue.withLockedValue { q in
            q.append(pending)
            guard q.count > configuration.maxQueued else { return [] }
            let excess = Array(q.prefix(q.count - configuration.maxQueued))
            q.removeFirst(excess.count)
            return excess
        }
        for lost in overflow {
            dropped.increment()
            lost.acknowledged?(.failure(HubError(.unavailable, "the database has been unreachable for too long")))
        }
        publishContinuation.yield()
    }

    public func read(_ key: ChannelKey, since: ChannelPosition?, limit: Int, minMillis: Int64) async throws(HubError)
        -> ChannelLogSlice
    {
        let after = Int64(clamping: since?.seq ?? 0)
        let log = try await store.channelLog(
            tenant: key.tenant, channel: key.name.description, sinceEpoch: since?.epoch, afterSeq: after,
            limit: limit, minMillis: minMillis)
        return ChannelLogSlice(
            head: ChannelPosition(epoch: log.epoch, seq: UInt64(max(0, log.seq))),
            events: log.events.compactMap(Self.event(from:)))
    }

    public func presenceChanged(_ change: PresenceChange) {
        presenceQueue.withLockedValue { q in
            if q.latest[change.attemptID] == nil { q.order.append(change.attemptID) }
            q.latest[change.attemptID] = change
        }
        presenceContinuation.yield()
    }

    public func presence(of attemptIDs: [String]) async throws(HubError) -> [String: AttemptPresence] {
        try await store.presence(of: attemptIDs).mapValues {
            AttemptPresence(connected: $0.connected, lastSeenMillis: $0.lastSeen)
        }
    }

    // MARK: Service

    /// Runs the writer, the presence writer, the listener and the housekeeping (heartbeat, reaping dead nodes,
    /// pruning the log). On graceful shutdown, started before the socket server, it runs after the server has
    /// drained: it writes what the closing sockets left (their presence, the last events), leaves the cluster
    /// (its presence goes at once, not after three heartbeats), and stops listening.
    public func run() async throws {
        let background = Task {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.listenLoop() }
                group.addTask { await self.housekeepingLoop() }
            }
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in self.publishSignal { await self.writeEvents() }
                await self.writeEvents()
            }
            group.addTask {
                for await _ in self.presenceSignal { await self.writePresence() }
                await self.writePresence()
                do {
                    try await self.store.leaveCluster(node: self.nodeID)
                } catch {
                    self.logger.warning("leaving the cluster failed", metadata: ["examhub.error": "\(error)"])
                }
            }
            try? await gracefulShutdown()
            stopDeadline.withLockedValue { $0 = ContinuousClock.now + .seconds(5) }
            presenceContinuation.finish()
            publishContinuation.finish()
        }
        background.cancel()
        await background.value
    }

    // MARK: Writing

    /// Appends the queued events in batches until the queue is empty; on failure retries with back-off, until the
    /// stop deadline once the node is stopping (then the rest is dropped).
    private func writeEvents() async {
        var backoff = Duration.milliseconds(50)
        var failures = 0
        while true {
            let batch: [Pending] = queue.withLockedValue { q in
                let n = min(q.count, configuration.maxBatch)
                let head = Array(q.prefix(n))
                q.removeFirst(n)
                return head
            }
            if batch.isEmpty { return }
            do {
                let positions = try await store.appendChannelEvents(node: nodeID, batch.map(\.append))
                appended.increment(by: batch.count)
                failures = 0
                backoff = .milliseconds(50)
                for (pending, position) in zip(batch, positions) {
                    pending.acknowledged?(
                        .success(ChannelPosition(epoch: position.epoch, seq: UInt64(max(0, position.seq)))))
                }
            } catch {
                failures += 1
                let expired = stopDeadline.withLockedValue { $0 }.map { ContinuousClock.now >= $0 } ?? false
                // An error that is not about reaching the database is not going to pass: after a few tries the batch
                // is dropped rather than holding every later event back.
                if expired || (error.code != .unavailable && failures >= 5) {
                    logger.error(
                        "channel events dropped", metadata: ["examhub.error": "\(error)", "examhub.events": "\(batch.count)"])
                    dropped.increment(by: batch.count)
                    for pending in batch { pending.acknowledged?(.failure(error)) }
                    if expired {
                        let rest = queue.withLockedValue { q -> [Pending] in
                            defer { q.removeAll() }
                            return q
                        }
                        dropped.increment(by: rest.count)
                        for pending in rest { pending.acknowledged?(.failure(error)) }
                        return
                    }
                    failures = 0
                    continue
                }
                if failures == 1 {
                    logger.warning("channel events not appended; retrying", metadata: ["examhub.error": "\(error)"])
                }
                queue.withLockedValue { $0.insert(contentsOf: batch, at: 0) }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(2))
            }
        }
    }

    /// Records the queued presence changes, latest per attempt, until none is left (or the stop deadline passes).
    private func writePresence() async {
        var backoff = Duration.milliseconds(50)
        var failures = 0
        while true {
            let changes: [PresenceChange] = presenceQueue.withLockedValue { q in
                defer { q = ([], [:]) }
                return q.order.compactMap { q.latest[$0] }
            }
            if changes.isEmpty { return }
            let now = Self.nowMillis()
            do {
                try await store.updatePresence(
                    node: nodeID, now: now, freshAfter: now - configuration.freshnessMillis,
                    changes.map {
                        PresenceUpdate(
                            attemptID: $0.attemptID, tenant: $0.tenant, examID: $0.examID, candidate: $0.candidate,
                            sockets: Int64($0.sockets), joinedData: $0.joinedData, leftData: $0.leftData)
                    })
                failures = 0
                backoff = .milliseconds(50)
            } catch {
                failures += 1
                if let deadline = stopDeadline.withLockedValue({ $0 }), ContinuousClock.now >= deadline {
                    logger.warning("presence changes not recorded", metadata: ["examhub.error": "\(error)"])
                    return
                }
                if failures == 1 {
                    logger.warning("presence changes not recorded; retrying", metadata: ["examhub.error": "\(error)"])
                }
                // Put back what no newer change replaced meanwhile.
                presenceQueue.withLockedValue { q in
                    var order: [String] = []
                    for change in changes where q.latest[change.attemptID] == nil {
                        q.latest[change.attemptID] = change
                        order.append(change.attemptID)
                    }
                    q.order = order + q.order.filter { !order.contains($0) }
                }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(2))
            }
        }
    }

    // MARK: Housekeeping

    private func housekeepingLoop() async {
        var lastPrune = Int64(0)
        while !Task.isCancelled {
            let now = Self.nowMillis()
            do {
                let known = try await store.heartbeat(node: nodeID, now: now)
                if !known, let sink = sink.withLockedValue({ $0 }) {
                    // Registered just now: at start (nothing to say), or after the others gave this node up.
                    for change in sink.localPresence() { presenceChanged(change) }
                }
                try await store.reapNodes(node: nodeID, now: now, freshAfter: now - configuration.freshnessMillis)
                if Double(now - lastPrune) >= configuration.pruneIntervalSeconds * 1000 {
                    lastPrune = now
                    let gone = try await store.pruneChannelLog(
                        eventsBefore: now - Int64(configuration.historyAgeSeconds) * 1000 - 60_000,
                        headsBefore: now - Int64(configuration.headRetentionSeconds) * 1000,
                        presenceBefore: now - 86_400_000)
                    if gone > 0 { logger.debug("channel log pruned", metadata: ["examhub.events": "\(gone)"]) }
                }
            } catch {
                logger.debug("cluster housekeeping failed", metadata: ["examhub.error": "\(error)"])
            }
            try? await Task.sleep(for: .milliseconds(Int64(configuration.heartbeatSeconds * 1000)))
        }
    }

    // MARK: Helpers

    static func event(from entry: ChannelLogEntry) -> ClusterEvent? {
        guard let name = ChannelName(entry.channel), entry.seq >= 1 else { return nil }
        return ClusterEvent(
            key: ChannelKey(tenant: entry.tenant, name: name), epoch: entry.epoch, seq: UInt64(entry.seq),
            type: entry.type, tsMillis: entry.tsMillis, data: entry.data, origin: entry.node)
    }

    static func nowMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}
