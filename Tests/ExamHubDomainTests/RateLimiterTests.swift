import ExamHubDomain
import Testing

@Suite struct RateLimiterTests {
    @Test func bucketAllowsBurstThenRefills() {
        var b = TokenBucket(ratePerSecond: 10, burst: 3, nowNanos: 0)
        // 0.1 s refills one token.
        let times: [UInt64] = [0, 0, 0, 0, 100_000_000, 100_000_000, 10_000_000_000]
        let results = times.map { b.take(nowNanos: $0) }
        #expect(results == [true, true, true, false, true, false, true])
    }

    @Test func limiterRefusesThenCloses() {
        var l = RateLimiter(ratePerSecond: 1, burst: 1, closeAfter: 2, nowNanos: 0)
        let results = (0..<4).map { _ in l.admit(nowNanos: 0) }
        #expect(results == [.allow, .refuse, .refuse, .close])
    }

    @Test func limiterForgivesSlowlyAfterAllowedMessages() {
        var l = RateLimiter(ratePerSecond: 1, burst: 1, closeAfter: 2, nowNanos: 0)
        // Two strikes, then eight well-spaced messages take them away; then two strikes are allowed again.
        var t: UInt64 = 0
        #expect([l.admit(nowNanos: t), l.admit(nowNanos: t), l.admit(nowNanos: t)] == [.allow, .refuse, .refuse])
        for _ in 0..<8 {
            t += 1_000_000_000
            #expect(l.admit(nowNanos: t) == .allow)
        }
        #expect([l.admit(nowNanos: t), l.admit(nowNanos: t), l.admit(nowNanos: t)] == [.refuse, .refuse, .close])
    }

    @Test func aFloodThatRefillsLetThroughIsStillClosed() {
        // Twice the allowed rate: one message in two passes, yet the strikes grow and the socket is closed.
        var l = RateLimiter(ratePerSecond: 10, burst: 1, closeAfter: 5, nowNanos: 0)
        var decisions: [RateLimiter.Decision] = []
        var t: UInt64 = 0
        while decisions.last != .close && decisions.count < 100 {
            decisions.append(l.admit(nowNanos: t))
            t += 50_000_000  // 20 messages a second
        }
        #expect(decisions.last == .close)
        #expect(decisions.contains(.allow))
    }

    @Test func errorCodesMapToHTTP() {
        #expect(HubError.Code.all.count == 11)
        #expect(HubError.Code.badRequest.httpStatus == 400)
        #expect(HubError.Code.unauthorized.httpStatus == 401)
        #expect(HubError.Code.forbidden.httpStatus == 403)
        #expect(HubError.Code.notFound.httpStatus == 404)
        #expect(HubError.Code.conflict.httpStatus == 409)
        #expect(HubError.Code.rateLimited.httpStatus == 429)
        #expect(HubError.Code.unavailable.httpStatus == 503)
        #expect(HubError.Code.internal.httpStatus == 500)
        #expect(Set(HubError.Code.all.map(\.rawValue)).count == 11)
    }
}
