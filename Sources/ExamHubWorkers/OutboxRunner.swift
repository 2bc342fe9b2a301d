import ExamHubDomain
import ExamHubStore
import Foundation
import Logging
import ServiceLifecycle

/// What a worker does with a claimed batch.
public protocol OutboxProcessor: Sendable {
    var worker: OutboxWorker { get }
    /// Works on a batch this worker holds. Returns what succeeded and what failed (with why).
    func process(_ events: [OutboxEvent], owner: String, now: Int64) async -> OutboxBatchOutcome
}

/// The result of one batch.
public struct OutboxBatchOutcome: Sendable {
    /// Events that succeeded and still need marking done.
    public var succeeded: [String] = []
    /// Events that succeeded and are already marked done (the analytics worker marks them with its roll-ups).
    public var completed: [String] = []
    /// Events that failed, with a short reason (no secrets).
    public var failed: [String: String] = [:]

    public init(succeeded: [String] = [], completed: [String] = [], failed: [String: String] = [:]) {
        self.succeeded = succeeded
        self.completed = completed
        self.failed = failed
    }
}

/// Runs one worker: claim a batch, process it, mark successes done, schedule retries (or park as dead) for
/// failures; sleep when idle. Purges old finished events hourly and keeps the backlog gauges fresh.
///
/// Delivery is at least once: a worker killed mid-batch leaves its claims to expire, and whichever worker claims
/// them next works on them again, with the same event ids. Graceful shutdown finishes the batch in hand first.
public final class OutboxRunner: Service, Sendable {
    let store: any Store
    let processor: any OutboxProcessor
    let configuration: WorkerConfiguration
    let metrics: WorkerMetrics
    let logger: Logger
    /// Names this worker's claims in the store (host, process, worker, random).
    public let owner: String

    public init(
        store: any Store, processor: any OutboxProcessor, configuration: WorkerConfiguration, metrics: WorkerMetrics,
        logger: Logger
    ) {
        self.store = store
        self.processor = processor
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        let host = ProcessInfo.processInfo.hostName
        let random = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        self.owner = "\(host):\(ProcessInfo.processInfo.processIdentifier):\(processor.worker.rawValue):\(random)"
    }

    static func nowMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    public func run() async throws {
        let worker = processor.worker
        logger.info("outbox worker started", metadata: ["examhub.worker": "\(worker.rawValue)"])
        var nextPurge = Self.nowMillis() + 60_000
        var nextBacklog: Int64 = 0
        var failuresInARow = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let now = Self.nowMillis()
            if now >= nextBacklog {
                nextBacklog = now + configuration.backlogRefreshMillis
                await refreshBacklog(now: now)
            }
            if now >= nextPurge {
                nextPurge = now + 3_600_000
                await purge(now: now)
            }
            let claimed: Int
            do {
                claimed = try await runOnce(now: now)
                failuresInARow = 0
            } catch {
                failuresInARow += 1
                logger.warning(
                    "outbox worker: the store failed", metadata: ["examhub.worker": "\(worker.rawValue)", "examhub.error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(min(10_000, 250 << min(failuresInARow, 6))))
                continue
            }
            if claimed < configuration.batchSize {
                try? await Task.sleep(for: .milliseconds(configuration.pollMillis))
            }
        }
        logger.info("outbox worker stopped", metadata: ["examhub.worker": "\(worker.rawValue)"])
    }

    /// Claims and processes one batch; returns how many events it claimed.
    @discardableResult
    public func runOnce(now: Int64) async throws(HubError) -> Int {
        let worker = processor.worker
        let events = try await store.claimOutbox(
            worker, owner: owner, limit: configuration.batchSize, leaseMillis: configuration.leaseMillis, now: now)
        guard !events.isEmpty else { return 0 }
        let outcome = await processor.process(events, owner: owner, now: now)
        let finished = Self.nowMillis()
        if !outcome.succeeded.isEmpty {
            try await store.completeOutbox(worker, owner: owner, ids: outcome.succeeded, now: finished)
        }
        metrics.delivered(worker, result: "ok", count: outcome.succeeded.count + outcome.completed.count)
        if !outcome.failed.isEmpty {
            let attemptsByID = Dictionary(events.map { ($0.id, $0.attempts) }, uniquingKeysWith: { a, _ in a })
            var failures: [OutboxFailure] = []
            var dead = 0
            for (id, reason) in outcome.failed {
                let next = configuration.retry.nextTry(afterAttempts: attemptsByID[id] ?? 1, now: finished)
                if next == nil {
                    dead += 1
                    logger.error(
                        "outbox event parked as dead",
                        metadata: ["examhub.worker": "\(worker.rawValue)", "examhub.event": "\(id)", "examhub.error": "\(reason)"])
                }
                failures.append(OutboxFailure(id: id, error: reason, retryAtMillis: next))
            }
            try await store.failOutbox(worker, owner: owner, failures: failures, now: finished)
            metrics.delivered(worker, result: "retry", count: failures.count - dead)
            metrics.delivered(worker, result: "dead", count: dead)
        }
        return events.count
    }

    func refreshBacklog(now: Int64) async {
        do {
            let backlog = try await store.outboxBacklog(processor.worker)
            metrics.backlog(processor.worker, backlog, now: now)
        } catch {
            logger.debug("outbox backlog unavailable", metadata: ["examhub.error": "\(error)"])
        }
    }

    func purge(now: Int64) async {
        // Only one of the two workers needs to purge; the analytics worker does (it is the one always running).
        guard processor.worker == .analytics else { return }
        do {
            let gone = try await store.purgeOutbox(before: now - Int64(configuration.retentionDays) * 86_400_000)
            if gone > 0 { logger.info("outbox purged", metadata: ["examhub.events": "\(gone)"]) }
        } catch {
            logger.warning("outbox purge failed", metadata: ["examhub.error": "\(error)"])
        }
    }
}
