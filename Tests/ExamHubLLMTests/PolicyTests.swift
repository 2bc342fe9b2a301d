import Foundation
import NIOConcurrencyHelpers
import XCTest

@testable import ExamHubLLM

/// A clock tests move by hand.
final class TestClock: Sendable {
    private let value = NIOLockedValueBox(Date(timeIntervalSince1970: 1_800_000_000))
    var now: Date { value.withLockedValue { $0 } }
    func advance(_ seconds: TimeInterval) { value.withLockedValue { $0.addTimeInterval(seconds) } }
}

final class PolicyTests: XCTestCase {
    func testHistoryWindowKeepsSystemPromptsAndNewestTurns() {
        let messages: [LLMMessage] = [
            .system("rules"), .user("u1"), .assistant("a1"), .user("u2"), .assistant("a2"), .user("u3"),
        ]
        XCTAssertEqual(LLMHistoryWindow(maxMessages: 3, maxCharacters: 1000).apply(to: messages),
                       [.system("rules"), .assistant("a2"), .user("u3")])
        XCTAssertEqual(LLMHistoryWindow(maxMessages: 100, maxCharacters: 10).apply(to: messages),
                       [.system("rules"), .assistant("a2"), .user("u3")])
        XCTAssertEqual(LLMHistoryWindow(maxMessages: 100, maxCharacters: 1000).apply(to: messages), messages)
        // The newest message is kept even when it alone is over the limit.
        XCTAssertEqual(LLMHistoryWindow(maxMessages: 1, maxCharacters: 2).apply(to: [.system("s"), .user("long")]),
                       [.system("s"), .user("long")])
    }

    func testCircuitBreakerOpensHalfOpensAndCloses() {
        let start = Date(timeIntervalSince1970: 0)
        var breaker = CircuitBreaker(settings: .init(failureThreshold: 2, cooldown: .seconds(10)))
        XCTAssertTrue(breaker.allowAttempt(now: start))
        breaker.recordFailure(now: start)
        XCTAssertEqual(breaker.state, .closed(failures: 1))
        breaker.recordSuccess()
        XCTAssertEqual(breaker.state, .closed(failures: 0))
        breaker.recordFailure(now: start)
        breaker.recordFailure(now: start)
        XCTAssertEqual(breaker.state, .open(until: start.addingTimeInterval(10)))
        XCTAssertFalse(breaker.allowAttempt(now: start.addingTimeInterval(9)))
        XCTAssertTrue(breaker.allowAttempt(now: start.addingTimeInterval(10)))
        XCTAssertEqual(breaker.state, .halfOpen(probing: true))
        XCTAssertFalse(breaker.allowAttempt(now: start.addingTimeInterval(10)), "one probe at a time")
        breaker.recordFailure(now: start.addingTimeInterval(11))
        XCTAssertEqual(breaker.state, .open(until: start.addingTimeInterval(21)))
        XCTAssertTrue(breaker.allowAttempt(now: start.addingTimeInterval(21)))
        breaker.recordNeutral()
        XCTAssertEqual(breaker.state, .halfOpen(probing: false))
        XCTAssertTrue(breaker.allowAttempt(now: start.addingTimeInterval(21)))
        breaker.recordSuccess()
        XCTAssertEqual(breaker.state, .closed(failures: 0))
    }

    func testTokenBudgetPerTenantPerDay() {
        let clock = TestClock()
        let budget = TokenBudget(configuration: LLMConfiguration(dailyTokenBudget: 100,
                                                                 tenantDailyTokenBudgets: ["big": 1000]),
                                 now: { clock.now })
        XCTAssertNoThrow(try budget.check(tenant: "t"))
        budget.record(tenant: "t", tokens: 60)
        XCTAssertEqual(budget.remaining(tenant: "t"), 40)
        budget.record(tenant: "t", tokens: 40)
        XCTAssertThrowsError(try budget.check(tenant: "t")) { error in
            XCTAssertEqual((error as? LLMError)?.code, .budgetExceeded)
        }
        XCTAssertNoThrow(try budget.check(tenant: "other"))
        budget.record(tenant: "big", tokens: 500)
        XCTAssertNoThrow(try budget.check(tenant: "big"))
        clock.advance(86_400)
        XCTAssertEqual(budget.used(tenant: "t"), 0)
        XCTAssertNoThrow(try budget.check(tenant: "t"))
        let unlimited = TokenBudget(configuration: LLMConfiguration(), now: { clock.now })
        unlimited.record(tenant: "t", tokens: 1 << 40)
        XCTAssertNil(unlimited.remaining(tenant: "t"))
        XCTAssertNoThrow(try unlimited.check(tenant: "t"))
    }

    func testFailurePolicy() {
        let settings = LLMConfiguration.RetrySettings(baseDelay: .seconds(1), maxDelay: .seconds(8),
                                                      maxRetryAfter: .seconds(10))
        func action(_ error: LLMError, emitted: Int = 0, retries: Int = 0, maxRetries: Int = 2)
            -> FailurePolicy.Action
        {
            FailurePolicy.action(after: error, emittedCharacters: emitted, retries: retries, maxRetries: maxRetries,
                                 settings: settings, jitter: 1)
        }
        let serverError = LLMError(.unavailable, message: "HTTP 500")
        XCTAssertEqual(action(serverError), .retry(after: .seconds(1)))
        XCTAssertEqual(action(serverError, retries: 1), .retry(after: .seconds(2)))
        XCTAssertEqual(action(serverError, retries: 2), .nextProvider, "retries exhausted")
        XCTAssertEqual(action(serverError, emitted: 1), .fail, "never retry after text was emitted")
        XCTAssertEqual(action(LLMError(.timeout, message: "t"), emitted: 5), .fail)
        XCTAssertEqual(action(LLMError(.rateLimited, message: "429", retryAfter: .seconds(3))),
                       .retry(after: .seconds(3)))
        XCTAssertEqual(action(LLMError(.rateLimited, message: "429", retryAfter: .seconds(60))), .nextProvider)
        XCTAssertEqual(action(LLMError(.timeout, message: "first token")), .retry(after: .seconds(1)))
        XCTAssertEqual(action(LLMError(.badRequest, message: "401")), .nextProvider, "no retry of a refused request")
        XCTAssertEqual(action(LLMError(.badResponse, message: "json")), .nextProvider)
        XCTAssertEqual(action(LLMError(.cancelled, message: "c")), .fail)
        XCTAssertFalse(FailurePolicy.countsAgainstProvider(LLMError(.badRequest, message: "401")))
        XCTAssertFalse(FailurePolicy.countsAgainstProvider(LLMError(.cancelled, message: "c")))
        XCTAssertTrue(FailurePolicy.countsAgainstProvider(serverError))
    }

    func testErrorDescriptionIsSafeAndDebugHasDetail() {
        let error = LLMError(.rateLimited, provider: "p", message: "rate limited (HTTP 429)", detail: "body")
        XCTAssertEqual(error.description, "LLMError.rateLimited (p): rate limited (HTTP 429)")
        XCTAssertEqual(error.debugDescription, "LLMError.rateLimited (p): rate limited (HTTP 429) [body]")
    }
}
