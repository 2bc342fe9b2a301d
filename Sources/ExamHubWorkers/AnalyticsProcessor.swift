import ExamHubStore
import Tracing

/// The analytics worker: folds events into per-exam roll-ups (``ExamRollup``) in the store, in the same
/// transaction that marks them done, so a batch taken over after a crash is never counted twice.
public struct AnalyticsProcessor: OutboxProcessor {
    public let worker = OutboxWorker.analytics
    let store: any Store
    let metrics: WorkerMetrics

    public init(store: any Store, metrics: WorkerMetrics) {
        self.store = store
        self.metrics = metrics
    }

    public func process(_ events: [OutboxEvent], owner: String, now: Int64) async -> OutboxBatchOutcome {
        await withSpan("examhub.outbox.analytics") { span in
            span.attributes["examhub.events"] = events.count
            return await processTraced(events, owner: owner, now: now)
        }
    }

    private func processTraced(_ events: [OutboxEvent], owner: String, now: Int64) async -> OutboxBatchOutcome {
        do {
            let batch = try await store.applyAnalytics(owner: owner, events: events, now: now)
            metrics.counted(batch.stats)
            return OutboxBatchOutcome(completed: batch.applied)
        } catch {
            // The transaction rolled back: the whole batch is tried again later.
            var failed: [String: String] = [:]
            for e in events { failed[e.id] = "store: \(error.message)" }
            return OutboxBatchOutcome(failed: failed)
        }
    }
}
