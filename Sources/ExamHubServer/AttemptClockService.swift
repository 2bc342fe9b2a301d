import ExamHubDomain
import ExamHubStore
import ExamHubWire
import Logging
import ServiceLifecycle

/// The server-owned clock (PROTOCOL.md guarantee 5.4): submits every attempt whose deadline has passed with
/// reason `time_up`, once at start-up (attempts whose deadline passed while the hub was down) and then every
/// `intervalMillis`, and puts `attempt.submitted` on each attempt's channel.
public final class AttemptClockService: Service, Sendable {
    private let store: any Store
    private let hub: ChannelHub
    private let logger: Logger
    private let intervalMillis: Int
    private let onSubmitted: @Sendable (AttemptSnapshot, Int64) -> Void

    /// `onSubmitted` hears of every attempt submitted at its deadline (the proctors' `candidate.state`).
    public init(
        store: any Store, hub: ChannelHub, logger: Logger, intervalMillis: Int = 500,
        onSubmitted: @escaping @Sendable (AttemptSnapshot, Int64) -> Void = { _, _ in }
    ) {
        self.store = store
        self.hub = hub
        self.logger = logger
        self.intervalMillis = intervalMillis
        self.onSubmitted = onSubmitted
    }

    /// Submits what is due now; returns how many attempts were submitted.
    @discardableResult
    public func sweep() async -> Int {
        let now = WallClock.nowMillis()
        do {
            let due = try await store.submitDueAttempts(now: now)
            for attempt in due {
                AttemptEvents.submitted(hub: hub, attempt: attempt, now: now)
                onSubmitted(attempt, now)
            }
            if !due.isEmpty {
                logger.info("submitted attempts at their deadline", metadata: ["examhub.count": "\(due.count)"])
            }
            return due.count
        } catch {
            logger.warning("deadline sweep failed", metadata: ["examhub.error": "\(error)"])
            return 0
        }
    }

    public func run() async throws {
        await sweep()
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(self.intervalMillis))
                if Task.isCancelled { break }
                await self.sweep()
            }
        }
    }
}

/// The events of the `attempt:<id>` channel, in one place.
enum AttemptEvents {
    static func submitted(hub: ChannelHub, attempt: AttemptSnapshot, now: Int64) {
        let key = ChannelKey(tenant: attempt.tenant, name: .attempt(attempt.id))
        var data: [String: JSONValue] = ["reason": .string(attempt.clock.reason?.rawValue ?? "candidate")]
        if let at = attempt.clock.closedAtMillis { data["submittedAt"] = .string(Timestamp.format(millis: at)) }
        hub.publish(key, type: "attempt.submitted", data: .object(data), now: now)
    }

    static func answerSaved(hub: ChannelHub, tenant: String, attemptID: String, outcome: SaveOutcome, now: Int64) {
        let key = ChannelKey(tenant: tenant, name: .attempt(attemptID))
        hub.publish(
            key, type: "answer.saved",
            data: .object([
                "qid": .string(outcome.qid), "version": .int(outcome.version), "value": outcome.value,
                "savedAt": .string(Timestamp.format(millis: outcome.savedAtMillis)),
            ]), now: now)
    }
}
