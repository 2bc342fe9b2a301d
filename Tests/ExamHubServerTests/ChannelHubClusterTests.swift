import ExamHubDomain
import ExamHubWire
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import Testing

@testable import ExamHubServer

/// A relay that records what the hub hands it and answers reads from a prepared slice.
final class RecordingRelay: ClusterRelay {
    let nodeID = "n-test"
    let published = NIOLockedValueBox<[ClusterPublication]>([])
    let slice = NIOLockedValueBox<ChannelLogSlice?>(nil)
    let presence = NIOLockedValueBox<[PresenceChange]>([])

    func publish(_ event: ClusterPublication, acknowledged: (@Sendable (Result<ChannelPosition, HubError>) -> Void)?) {
        published.withLockedValue { $0.append(event) }
        acknowledged?(.success(ChannelPosition(epoch: "e", seq: 1)))
    }

    func read(_ key: ChannelKey, since: ChannelPosition?, limit: Int, minMillis: Int64) async throws(HubError)
        -> ChannelLogSlice
    {
        guard let s = slice.withLockedValue({ $0 }) else { throw HubError(.unavailable, "no slice") }
        return s
    }

    func presenceChanged(_ change: PresenceChange) {
        presence.withLockedValue { $0.append(change) }
    }

    func presence(of attemptIDs: [String]) async throws(HubError) -> [String: AttemptPresence] { [:] }
}

/// A subscriber that keeps the frames it is given.
final class CollectingSubscriber: ChannelSubscriber, @unchecked Sendable {
    let subscriberID: UInt64
    var frames: [JSONValue] = []

    init(_ id: UInt64) { subscriberID = id }

    func deliverEvent(_ event: inout OutboundEvent) {
        if let value = try? JSONParser.parse(String(buffer: event.frame)) { frames.append(value) }
    }

    func flushDelivered() {}

    var seqs: [Int64] { frames.compactMap { if case .int(let s)? = $0["seq"] { return s } else { return nil } } }
}

@Suite struct ChannelHubClusterTests {
    let key = ChannelKey(tenant: "t1", name: .attempt("a1"))

    func event(_ seq: UInt64, epoch: String = "ep1", n: Int = 0) -> ClusterEvent {
        ClusterEvent(
            key: key, epoch: epoch, seq: seq, type: "answer.saved", tsMillis: 1_000, data: #"{"n":\#(n)}"#,
            origin: "n-other")
    }

    func make() -> (ChannelHub, RecordingRelay, EmbeddedEventLoop) {
        let loop = EmbeddedEventLoop()
        let relay = RecordingRelay()
        return (ChannelHub(group: loop, historySize: 10, historyAgeSeconds: 60, relay: relay), relay, loop)
    }

    @Test func aPublishGoesToTheRelayAndIsDeliveredOnlyWhenItComesBackNumbered() {
        let (hub, relay, loop) = make()
        let sub = CollectingSubscriber(1)
        _ = hub.subscribe(key, subscriber: sub, on: loop, since: nil, now: 0)
        #expect(hub.publish(key, type: "answer.saved", data: .object(["n": .int(1)]), now: 5) == nil)
        loop.run()
        #expect(sub.frames.isEmpty)
        #expect(relay.published.withLockedValue { $0.map(\.data) } == [#"{"n":1}"#])
        #expect(hub.receive(event(41, n: 1), now: 5) == .applied)
        loop.run()
        #expect(sub.seqs == [41])
        #expect(sub.frames.first?["data"]?["n"] == .int(1))
        #expect(sub.frames.first?["ch"] == .string("attempt:a1"))
    }

    @Test func channelsNobodyFollowsAreSkipped() {
        let (hub, _, _) = make()
        #expect(hub.receive(event(1), now: 0) == .notFollowed)
        #expect(!hub.isFollowing(key))
    }

    @Test func eventsAreAppliedInOrderDuplicatesDroppedAndHolesReported() {
        let (hub, _, loop) = make()
        let sub = CollectingSubscriber(1)
        _ = hub.subscribe(key, subscriber: sub, on: loop, since: nil, now: 0)
        #expect(hub.followedChannels().first?.position == nil, "no event seen: numbering unknown")
        #expect(hub.receive(event(7), now: 0) == .applied)
        #expect(hub.receive(event(8), now: 0) == .applied)
        #expect(hub.receive(event(8), now: 0) == .duplicate)
        #expect(hub.receive(event(3), now: 0) == .duplicate)
        #expect(hub.receive(event(10), now: 0) == .gap(after: 8))
        #expect(hub.receive(event(9), now: 0) == .applied)
        #expect(hub.receive(event(10), now: 0) == .applied)
        #expect(hub.receive(event(13), now: 0, force: true) == .applied)
        loop.run()
        #expect(sub.seqs == [7, 8, 9, 10, 13])
        #expect(hub.followedChannels().first?.position == ChannelPosition(epoch: "ep1", seq: 13))
        // Recovery from memory works up to the hole, not across it.
        #expect(hub.answersFromMemory(key, since: ChannelPosition(epoch: "ep1", seq: 8), now: 0) == false)
        #expect(hub.answersFromMemory(key, since: ChannelPosition(epoch: "ep1", seq: 12), now: 0))
        #expect(hub.answersFromMemory(key, since: ChannelPosition(epoch: "old", seq: 2), now: 0))
    }

    @Test func aNewEpochRestartsEverySubscriberFromItsFirstEvent() {
        let (hub, _, loop) = make()
        let sub = CollectingSubscriber(1)
        _ = hub.subscribe(key, subscriber: sub, on: loop, since: nil, now: 0)
        #expect(hub.receive(event(5), now: 0) == .applied)
        loop.run()
        let late = CollectingSubscriber(2)
        _ = hub.subscribe(key, subscriber: late, on: loop, since: nil, now: 0)  // from seq 5 on
        #expect(hub.receive(event(1, epoch: "ep2"), now: 0) == .applied)
        #expect(hub.receive(event(2, epoch: "ep2"), now: 0) == .applied)
        loop.run()
        #expect(sub.seqs == [5, 1, 2])
        #expect(late.seqs == [1, 2])
        #expect(hub.followedChannels().first?.position == ChannelPosition(epoch: "ep2", seq: 2))
    }

    @Test func aSubscribeMemoryCannotAnswerMergesTheLogWithWhatArrivedSince() async throws {
        let (hub, _, loop) = make()
        // Not followed: the log is needed, and the channel is followed from now on.
        #expect(!hub.answersFromMemory(key, since: ChannelPosition(epoch: "ep1", seq: 2), now: 0))
        #expect(hub.isFollowing(key))
        // While the log is read, events 5 and 6 arrive.
        #expect(hub.receive(event(5), now: 0) == .applied)
        #expect(hub.receive(event(6), now: 0) == .applied)
        let slice = ChannelLogSlice(head: ChannelPosition(epoch: "ep1", seq: 5), events: [event(3), event(4), event(5)])
        let sub = CollectingSubscriber(1)
        let result = hub.subscribe(
            key, subscriber: sub, on: loop, since: ChannelPosition(epoch: "ep1", seq: 2), slice: slice, now: 0)
        #expect(result.recovered)
        #expect(result.epoch == "ep1" && result.seq == 6)
        let replayed = result.replay.compactMap { try? JSONParser.parse(String(buffer: $0)) }
        #expect(replayed.compactMap { $0["seq"] } == [.int(3), .int(4), .int(5), .int(6)])
        #expect(hub.receive(event(7), now: 0) == .applied)
        loop.run()
        #expect(sub.seqs == [7])

        // A log that misses some of the events asked for: not recovered, nothing replayed.
        let partial = ChannelLogSlice(head: ChannelPosition(epoch: "ep1", seq: 7), events: [event(5), event(6), event(7)])
        let other = CollectingSubscriber(2)
        let r2 = hub.subscribe(
            key, subscriber: other, on: loop, since: ChannelPosition(epoch: "ep1", seq: 1), slice: partial, now: 0)
        #expect(!r2.recovered && r2.replay.isEmpty && r2.seq == 7)
    }

    @Test func aSubscribeOnAChannelWithNoEventSeenYetTakesTheLogsHead() {
        let (hub, _, loop) = make()
        #expect(!hub.answersFromMemory(key, since: nil, now: 0))
        let sub = CollectingSubscriber(1)
        let result = hub.subscribe(
            key, subscriber: sub, on: loop, since: nil, slice: ChannelLogSlice(head: ChannelPosition(epoch: "ep1", seq: 9), events: []),
            now: 0)
        #expect(result.epoch == "ep1" && result.seq == 9 && !result.recovered)
        // An event at or below the head still in flight is not delivered again; the next ones are.
        #expect(hub.receive(event(9), now: 0) == .applied)
        #expect(hub.receive(event(10), now: 0) == .applied)
        loop.run()
        #expect(sub.seqs == [10])
    }

    @Test func logSliceCompleteness() {
        let since = ChannelPosition(epoch: "ep1", seq: 2)
        #expect(ChannelLogSlice(head: ChannelPosition(epoch: "ep1", seq: 2), events: []).isComplete(after: since))
        #expect(ChannelLogSlice(head: ChannelPosition(epoch: "ep1", seq: 4), events: [event(3), event(4)]).isComplete(after: since))
        #expect(!ChannelLogSlice(head: ChannelPosition(epoch: "ep1", seq: 4), events: [event(4)]).isComplete(after: since))
        #expect(!ChannelLogSlice(head: ChannelPosition(epoch: "ep1", seq: 4), events: [event(3), event(5)]).isComplete(after: since))
        #expect(!ChannelLogSlice(head: ChannelPosition(epoch: "ep2", seq: 4), events: []).isComplete(after: since))
        #expect(!ChannelLogSlice(head: ChannelPosition(epoch: "ep1", seq: 1), events: []).isComplete(after: since))
    }
}
