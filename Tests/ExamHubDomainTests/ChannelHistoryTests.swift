import ExamHubDomain
import Testing

@Suite struct ChannelHistoryTests {
    func payloads(_ r: ChannelHistory<String>.Recovery) -> [String]? {
        if case .recovered(let p) = r { return p }
        return nil
    }

    @Test func appendsWithIncreasingSeq() {
        var h = ChannelHistory<String>(capacity: 3, maxAgeMillis: 1000)
        #expect(h.append("a", atMillis: 0) == 1)
        #expect(h.append("b", atMillis: 0) == 2)
        #expect(h.lastSeq == 2)
        #expect(payloads(h.events(after: 0, now: 0)) == ["a", "b"])
        #expect(payloads(h.events(after: 1, now: 0)) == ["b"])
        #expect(payloads(h.events(after: 2, now: 0)) == [])
    }

    @Test func gapWhenCapacityExceeded() {
        var h = ChannelHistory<String>(capacity: 3, maxAgeMillis: 1000)
        for s in ["a", "b", "c", "d", "e"] { h.append(s, atMillis: 0) }
        #expect(h.count == 3)
        #expect(h.oldestSeq == 3)
        #expect(payloads(h.events(after: 2, now: 0)) == ["c", "d", "e"])
        if case .gap = h.events(after: 1, now: 0) {} else { Issue.record("expected a gap") }
        if case .gap = h.events(after: 0, now: 0) {} else { Issue.record("expected a gap") }
    }

    @Test func gapWhenTooOld() {
        var h = ChannelHistory<String>(capacity: 10, maxAgeMillis: 100)
        h.append("a", atMillis: 0)
        h.append("b", atMillis: 50)
        #expect(payloads(h.events(after: 0, now: 90)) == ["a", "b"])
        if case .gap = h.events(after: 0, now: 120) {} else { Issue.record("expected a gap") }
        #expect(payloads(h.events(after: 1, now: 120)) == ["b"])
        h.prune(now: 1000)
        #expect(h.count == 0)
        #expect(payloads(h.events(after: 2, now: 1000)) == [])
    }

    @Test func futureSeqIsAGap() {
        var h = ChannelHistory<String>(capacity: 10, maxAgeMillis: 100)
        h.append("a", atMillis: 0)
        if case .gap = h.events(after: 5, now: 0) {} else { Issue.record("expected a gap") }
    }

    @Test func zeroCapacityKeepsCountingSeq() {
        var h = ChannelHistory<String>(capacity: 0, maxAgeMillis: 100)
        #expect(h.append("a", atMillis: 0) == 1)
        #expect(h.append("b", atMillis: 0) == 2)
        if case .gap = h.events(after: 1, now: 0) {} else { Issue.record("expected a gap") }
        #expect(payloads(h.events(after: 2, now: 0)) == [])
    }

    @Test func slotsFollowTheEventsHeldNotTheCapacity() {
        // A quiet channel: one event every 2 s, 30 s of age, capacity 1,000: about 15 events held at a time.
        var h = ChannelHistory<Int>(capacity: 1000, maxAgeMillis: 30_000)
        for i in 1...5000 { h.append(i, atMillis: Int64(i) * 2000) }
        #expect(h.count == 16)
        #expect(h.slotCount <= 64, "slots \(h.slotCount) for \(h.count) events")
        if case .recovered(let p) = h.events(after: 4984, now: 10_000_000) { #expect(p == Array(4985...5000)) } else {
            Issue.record("expected recovery")
        }
        // A burst fills it up to the capacity, no further; once the burst ages out, the slots are given back.
        for i in 5001...7000 { h.append(i, atMillis: 10_000_000) }
        #expect(h.count == 1000 && h.slotCount == 1000)
        #expect(h.oldestSeq == 6001)
        h.prune(now: 10_000_000 + 30_001)
        #expect(h.count == 0 && h.slotCount <= 8)
        h.append(7001, atMillis: 10_100_000)
        if case .recovered(let p) = h.events(after: 7000, now: 10_100_000) { #expect(p == [7001]) } else {
            Issue.record("expected recovery")
        }
    }

    @Test func shrinkingKeepsOrderAcrossTheWrap() {
        var h = ChannelHistory<Int>(capacity: 64, maxAgeMillis: 100)
        for i in 1...100 { h.append(i, atMillis: 0) }  // wrapped: holds 37...100
        #expect(h.count == 64)
        for i in 101...110 { h.append(i, atMillis: 90) }
        h.prune(now: 150)  // everything at 0 is too old: 101...110 stay, the ring shrinks
        #expect(h.count == 10 && h.slotCount < 64)
        if case .recovered(let p) = h.events(after: 100, now: 150) { #expect(p == Array(101...110)) } else {
            Issue.record("expected recovery")
        }
    }

    @Test func ringWrapsManyTimes() {
        var h = ChannelHistory<Int>(capacity: 4, maxAgeMillis: 1_000_000)
        for i in 1...1000 { h.append(i, atMillis: Int64(i)) }
        if case .recovered(let p) = h.events(after: 996, now: 1000) { #expect(p == [997, 998, 999, 1000]) } else {
            Issue.record("expected recovery")
        }
    }
}

@Suite struct ChannelHistoryAssignedSeqTests {
    func payloads(_ r: ChannelHistory<String>.Recovery) -> [String]? {
        if case .recovered(let p) = r { return p }
        return nil
    }

    @Test func restartContinuesAfterTheGivenSeq() {
        var h = ChannelHistory<String>(capacity: 5, maxAgeMillis: 1000)
        h.append("a", atMillis: 0)
        h.restart(after: 40)
        #expect(h.lastSeq == 40)
        #expect(h.count == 0)
        #expect(payloads(h.events(after: 40, now: 0)) == [])
        if case .gap = h.events(after: 39, now: 0) {} else { Issue.record("events before the restart are not held") }
        #expect(h.append("b", atMillis: 0) == 41)
        #expect(payloads(h.events(after: 40, now: 0)) == ["b"])
    }

    @Test func assignedSeqsInOrderRecoverLikeLocalOnes() {
        var h = ChannelHistory<String>(capacity: 5, maxAgeMillis: 1000)
        h.restart(after: 9)
        #expect(h.append("j", seq: 10, atMillis: 0) == true)
        #expect(h.append("k", seq: 11, atMillis: 0) == true)
        #expect(h.lastSeq == 11)
        #expect(payloads(h.events(after: 9, now: 0)) == ["j", "k"])
        #expect(h.append("k again", seq: 11, atMillis: 0) == false)
        #expect(h.append("older", seq: 3, atMillis: 0) == false)
        #expect(payloads(h.events(after: 9, now: 0)) == ["j", "k"])
    }

    @Test func aSkippedSeqIsAHoleNoRecoverySpans() {
        var h = ChannelHistory<String>(capacity: 10, maxAgeMillis: 1000)
        #expect(h.append("a", seq: 1, atMillis: 0) == true)
        #expect(h.append("d", seq: 4, atMillis: 0) == true)
        #expect(h.append("e", seq: 5, atMillis: 0) == true)
        #expect(h.lastSeq == 5)
        if case .gap = h.events(after: 1, now: 0) {} else { Issue.record("2 and 3 are missing") }
        if case .gap = h.events(after: 2, now: 0) {} else { Issue.record("3 is missing") }
        #expect(payloads(h.events(after: 3, now: 0)) == ["d", "e"])
        #expect(payloads(h.events(after: 4, now: 0)) == ["e"])
    }
}
