import ExamHubDomain
import ExamHubStore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Tracing
import ServiceLifecycle

/// Group commit for `answer.save` (issue 3): saves from every connection queue here, and one writer commits them
/// in batches, one transaction per batch. While a commit runs, new saves gather for the next one, so batches grow
/// with load and a lone save waits for nobody. Every save's future completes only after its own commit.
///
/// On graceful shutdown it stops taking new saves only after the socket server has drained (it is started before
/// the server, so it stops after it), commits what is queued, and returns.
public final class SaveBatcher: Service, Sendable {
    /// Limits of one batch.
    public struct Configuration: Sendable {
        /// Most saves in one transaction (`EXAMHUB_COMMIT_MAX_BATCH`, 1,000).
        public var maxBatch: Int = 1000
        /// Extra time to wait for more saves before a commit, in milliseconds (`EXAMHUB_COMMIT_WINDOW_MS`, 0: commit
        /// as soon as the previous commit is done).
        public var windowMillis: Int = 0

        public init(maxBatch: Int = 1000, windowMillis: Int = 0) {
            self.maxBatch = maxBatch
            self.windowMillis = windowMillis
        }
    }

    struct Pending: Sendable {
        var command: SaveCommand
        var promise: EventLoopPromise<SaveOutcome>
        /// When it was queued, for `examhub_save_ack_seconds`.
        var queuedAt: NIODeadline
    }

    private let store: any Store
    /// Where `answer.saved` goes: published here, in commit order, so events follow version order.
    private let hub: ChannelHub?
    private let configuration: Configuration
    private let logger: Logger
    private let metrics: HubMetrics?
    private let queue = NIOLockedValueBox<[Pending]>([])
    private let signal: AsyncStream<Void>
    private let signalContinuation: AsyncStream<Void>.Continuation
    private let closed = NIOLockedValueBox(false)
    /// Batches committed and saves in them, for metrics and the benchmark.
    public let stats = NIOLockedValueBox<(batches: Int, saves: Int)>((0, 0))

    public init(
        store: any Store, hub: ChannelHub? = nil, configuration: Configuration = .init(), logger: Logger,
        metrics: HubMetrics? = nil
    ) {
        self.store = store
        self.hub = hub
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        (signal, signalContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues a save; the future completes on `loop` after the save is committed (or refused).
    public func submit(_ command: SaveCommand, on loop: any EventLoop) -> EventLoopFuture<SaveOutcome> {
        let promise = loop.makePromise(of: SaveOutcome.self)
        if closed.withLockedValue({ $0 }) {
            promise.fail(HubError(.unavailable, "server draining, reconnect elsewhere"))
            return promise.futureResult
        }
        let pending = Pending(command: command, promise: promise, queuedAt: .now())
        queue.withLockedValue { $0.append(pending) }
        signalContinuation.yield()
        return promise.futureResult
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            for await _ in signal {
                await drainQueue()
            }
        } onGracefulShutdown: {
            self.signalContinuation.finish()
        }
        closed.withLockedValue { $0 = true }
        await drainQueue()
    }

    private func drainQueue() async {
        while true {
            if configuration.windowMillis > 0 {
                try? await Task.sleep(for: .milliseconds(configuration.windowMillis))
            }
            let batch: [Pending] = queue.withLockedValue { q in
                let n = min(q.count, configuration.maxBatch)
                let head = Array(q.prefix(n))
                q.removeFirst(n)
                return head
            }
            if batch.isEmpty { return }
            await commit(batch)
        }
    }

    private func commit(_ batch: [Pending]) async {
        await withSpan("examhub.store.commit", ofKind: .internal) { span in
            span.attributes["examhub.saves"] = batch.count
            await commitTraced(batch)
        }
    }

    private func commitTraced(_ batch: [Pending]) async {
        do {
            let started = NIODeadline.now()
            let results = try await store.applySaves(batch.map(\.command), now: WallClock.nowMillis())
            let committed = NIODeadline.now()
            metrics?.saveCommit.recordNanoseconds((committed - started).nanoseconds)
            logger.trace(
                "group commit",
                metadata: ["examhub.saves": "\(batch.count)", "examhub.duration": "\(committed - started)"])
            stats.withLockedValue { $0 = ($0.batches + 1, $0.saves + batch.count) }
            let now = WallClock.nowMillis()
            for (pending, result) in zip(batch, results) {
                if let hub, case .success(let outcome) = result, !outcome.replayed {
                    AttemptEvents.answerSaved(
                        hub: hub, tenant: pending.command.tenant, attemptID: pending.command.attemptID, outcome: outcome,
                        now: now)
                }
                pending.promise.completeWith(result.mapError { $0 as any Error })
                metrics?.saveAck.recordNanoseconds((committed - pending.queuedAt).nanoseconds)
            }
            if results.count < batch.count {
                for pending in batch[results.count...] {
                    pending.promise.fail(HubError(.internal, "the store returned too few results"))
                }
            }
        } catch {
            logger.warning("group commit failed", metadata: ["examhub.error": "\(error)", "examhub.saves": "\(batch.count)"])
            for pending in batch { pending.promise.fail(error) }
        }
    }
}
