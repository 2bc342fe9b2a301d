import ExamHubDomain
import ExamHubStore
import NIOConcurrencyHelpers

/// In-memory caches of what never changes once stored: exam definitions by (tenant, id), and each attempt's
/// identity (tenant, exam, candidate). Bounded; misses go to the store.
final class AttemptDirectory: Sendable {
    struct Identity: Sendable, Hashable {
        var tenant: String
        var examID: String
        var candidate: String
    }

    private struct ExamKey: Hashable {
        var tenant: String
        var id: String
    }

    private let exams = NIOLockedValueBox<[ExamKey: ExamDefinition]>([:])
    private let attempts = NIOLockedValueBox<[String: Identity]>([:])
    private let store: any Store
    private let limit = 100_000

    init(store: any Store) {
        self.store = store
    }

    func exam(tenant: String, id: String) async throws(HubError) -> ExamDefinition? {
        let key = ExamKey(tenant: tenant, id: id)
        if let cached = exams.withLockedValue({ $0[key] }) { return cached }
        guard let exam = try await store.exam(tenant: tenant, id: id) else { return nil }
        exams.withLockedValue { cache in
            if cache.count >= limit { cache.removeAll(keepingCapacity: true) }
            cache[key] = exam
        }
        return exam
    }

    /// The cached exam, without a store lookup.
    func cachedExam(tenant: String, id: String) -> ExamDefinition? {
        exams.withLockedValue { $0[ExamKey(tenant: tenant, id: id)] }
    }

    /// The cached attempt identity, without a store lookup.
    func cachedIdentity(attemptID: String) -> Identity? {
        attempts.withLockedValue { $0[attemptID] }
    }

    func remember(_ snapshot: AttemptSnapshot) {
        attempts.withLockedValue { cache in
            if cache.count >= limit { cache.removeAll(keepingCapacity: true) }
            cache[snapshot.id] = Identity(tenant: snapshot.tenant, examID: snapshot.examID, candidate: snapshot.candidate)
        }
    }

    func identity(attemptID: String) async throws(HubError) -> Identity? {
        if let cached = attempts.withLockedValue({ $0[attemptID] }) { return cached }
        guard let snapshot = try await store.attempt(id: attemptID) else { return nil }
        remember(snapshot)
        return Identity(tenant: snapshot.tenant, examID: snapshot.examID, candidate: snapshot.candidate)
    }
}
