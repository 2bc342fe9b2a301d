import Testing

@testable import ExamHubServer

/// The connection count behind `EXAMHUB_MAX_CONNECTIONS` and `EXAMHUB_MAX_CONNECTIONS_PER_IP`: a check and its count
/// are one step, and a released slot is free again.
@Suite struct ConnectionSlotsTests {
    @Test func nodeLimit() {
        var slots = ConnectionSlots()
        #expect(slots.reserve(ip: nil, max: 2, maxPerIP: 0) == nil)
        #expect(slots.reserve(ip: nil, max: 2, maxPerIP: 0) == nil)
        #expect(slots.reserve(ip: nil, max: 2, maxPerIP: 0) == .full)
        #expect(slots.open == 2)
        #expect(slots.release(ip: nil) == 1)
        #expect(slots.reserve(ip: nil, max: 2, maxPerIP: 0) == nil)
    }

    @Test func perAddressLimit() {
        var slots = ConnectionSlots()
        for _ in 0..<3 { #expect(slots.reserve(ip: "10.0.0.1", max: 100, maxPerIP: 3) == nil) }
        #expect(slots.reserve(ip: "10.0.0.1", max: 100, maxPerIP: 3) == .tooManyFromAddress)
        #expect(slots.reserve(ip: "10.0.0.2", max: 100, maxPerIP: 3) == nil)  // another address is not affected
        #expect(slots.open == 4)
        _ = slots.release(ip: "10.0.0.1")
        #expect(slots.reserve(ip: "10.0.0.1", max: 100, maxPerIP: 3) == nil)
        for _ in 0..<3 { _ = slots.release(ip: "10.0.0.1") }
        _ = slots.release(ip: "10.0.0.2")
        #expect(slots.open == 0)
        #expect(slots.perIP.isEmpty)  // no entry kept for addresses with no socket
    }

    @Test func releaseNeverGoesBelowZero() {
        var slots = ConnectionSlots()
        #expect(slots.release(ip: "10.0.0.1") == 0)
        #expect(slots.reserve(ip: nil, max: 1, maxPerIP: 0) == nil)
    }
}
