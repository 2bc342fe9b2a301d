import Foundation
import NIOConcurrencyHelpers

/// Per-tenant daily token budgets, tracked in memory (UTC days, by an injected clock).
///
/// The gateway checks a tenant before calling any provider and charges it when an answer ends. Usage is not
/// persisted here: the hub persists ``LLMUsageRecord``s and may restore today's totals at start with
/// ``record(tenant:tokens:)``. Counts are per process; several nodes each enforce their own share.
public final class TokenBudget: Sendable {
    private struct Usage {
        var day: Int
        var tokens: Int
    }

    private let limit: @Sendable (String) -> Int?
    private let now: @Sendable () -> Date
    private let usage = NIOLockedValueBox<[String: Usage]>([:])

    /// A budget with per-tenant limits (`nil`: unlimited) and a clock.
    public init(limit: @escaping @Sendable (String) -> Int?, now: @escaping @Sendable () -> Date = { Date() }) {
        self.limit = limit
        self.now = now
    }

    /// The budget a configuration declares.
    public convenience init(configuration: LLMConfiguration, now: @escaping @Sendable () -> Date = { Date() }) {
        let defaultLimit = configuration.dailyTokenBudget
        let perTenant = configuration.tenantDailyTokenBudgets
        self.init(limit: { perTenant[$0] ?? defaultLimit }, now: now)
    }

    private var today: Int { Int((now().timeIntervalSince1970 / 86_400).rounded(.down)) }

    /// Tokens `tenant` used today.
    public func used(tenant: String) -> Int {
        let day = today
        return usage.withLockedValue { all in
            guard let entry = all[tenant], entry.day == day else { return 0 }
            return entry.tokens
        }
    }

    /// Tokens `tenant` may still use today; `nil` when unlimited.
    public func remaining(tenant: String) -> Int? {
        guard let limit = limit(tenant) else { return nil }
        return max(0, limit - used(tenant: tenant))
    }

    /// Throws `budgetExceeded` when `tenant` has no tokens left today.
    public func check(tenant: String) throws(LLMError) {
        if let remaining = remaining(tenant: tenant), remaining <= 0 {
            throw LLMError(.budgetExceeded, message: "the tenant's daily token budget is used up")
        }
    }

    /// Charges `tokens` to `tenant` for today.
    public func record(tenant: String, tokens: Int) {
        let day = today
        usage.withLockedValue { all in
            var entry = all[tenant] ?? Usage(day: day, tokens: 0)
            if entry.day != day { entry = Usage(day: day, tokens: 0) }
            entry.tokens += max(0, tokens)
            all[tenant] = entry
        }
    }
}
