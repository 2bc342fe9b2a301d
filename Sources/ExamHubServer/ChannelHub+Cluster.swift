import ExamHubDomain
import ExamHubWire
import NIOCore

/// Channels shared by several nodes (a ``ClusterRelay`` is set): events numbered by the shared log arrive through
/// ``receive(_:now:force:)``, and a `subscribe` this node cannot answer from memory reads the shared log.
///
/// A node holds only the channels it follows (those its sockets subscribed to, kept for the history age after the
/// last one left); events of other channels are skipped without being decoded. A channel starts unsynced: its
/// epoch and numbering are unknown until its first event arrives. The shared log's notifications reach a node in
/// commit order, and a channel's events commit in `seq` order (its head row is locked while one is appended), so
/// from that first event on the node sees every later one in order; a hole means notifications were lost (the
/// LISTEN connection dropped) and the relay reads the missing events from the log before going on.
extension ChannelHub {
    /// Whether this node follows the channel.
    public func isFollowing(_ key: ChannelKey) -> Bool {
        shard(for: key).withLockedValue { $0[key] != nil }
    }

    /// Takes an event of the shared log: adds it to the channel's history and delivers it to this node's
    /// subscribers, if it is the next one of a channel this node follows. `force` accepts an event over a hole
    /// (events that can no longer be read): the hole stays in the history, so no recovery spans it.
    @discardableResult
    public func receive(_ event: ClusterEvent, now: Int64, force: Bool = false) -> ClusterReceiveOutcome {
        let key = event.key
        guard event.seq >= 1 else { return .duplicate }
        return shard(for: key).withLockedValue { states -> ClusterReceiveOutcome in
            // Taken out and put back, so the history is mutated in place rather than copied.
            guard var state = states.removeValue(forKey: key) else { return .notFollowed }
            defer { states[key] = state }
            var renumbered = false
            if !state.synced || state.epoch != event.epoch {
                // First event seen (everything after it arrives in order), or the channel started a new epoch in
                // the shared log (its head was dropped after a long silence): subscribers take it from here.
                renumbered = state.synced
                state.epoch = event.epoch
                state.history.restart(after: event.seq - 1)
                state.synced = true
            }
            let last = state.history.lastSeq
            if event.seq <= last { return .duplicate }
            if event.seq > last + 1 && !force { return .gap(after: last) }
            var frame = ByteBufferAllocator().buffer(capacity: 96 + event.data.utf8.count)
            ServerFrame.writeEvent(
                into: &frame, channel: key.name.description, seq: event.seq, type: event.type, tsMillis: event.tsMillis,
                rawData: event.data.utf8)
            let encoded = frame
            state.history.append(encoded, seq: event.seq, atMillis: now)
            // `lastActiveMillis` is left alone: a channel nobody here subscribes to any more is swept after the
            // history age even while other nodes keep publishing on it (a later `subscribe` reads the shared log).
            let seq = event.seq
            for (_, entry) in state.loops {
                guard let registry = registries[ObjectIdentifier(entry.loop)] else { continue }
                if renumbered {
                    entry.loop.execute {
                        registry.resetPositions(key)
                        registry.deliver(key, seq: seq, frame: encoded)
                    }
                } else {
                    entry.loop.execute { registry.deliver(key, seq: seq, frame: encoded) }
                }
            }
            return .applied
        }
    }

    /// The channels this node follows and where each stands.
    public func followedChannels() -> [FollowedChannel] {
        var out: [FollowedChannel] = []
        for shard in shards {
            shard.withLockedValue { states in
                for (key, state) in states {
                    out.append(
                        FollowedChannel(
                            key: key,
                            position: state.synced ? ChannelPosition(epoch: state.epoch, seq: state.history.lastSeq) : nil,
                            sinceMillis: state.createdMillis))
                }
            }
        }
        return out
    }

    /// Publishes and waits until the event has its position (with a relay: committed to the shared log).
    public func publishAcknowledged(_ key: ChannelKey, type: String, data: JSONValue, now: Int64) async throws(HubError)
        -> ChannelPosition
    {
        guard let relay else {
            guard let local = publish(key, type: type, data: data, now: now) else {
                throw HubError(.internal, "the event was not numbered")
            }
            return ChannelPosition(epoch: local.epoch, seq: local.seq)
        }
        metrics?.eventsPublished.increment()
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<ChannelPosition, HubError>, Never>) in
            relay.publish(
                ClusterPublication(key: key, type: type, tsMillis: now, data: data.jsonText),
                acknowledged: { continuation.resume(returning: $0) })
        }
        return try result.get()
    }

    /// For the `subscribe` op: whether this node's memory answers it (always without a relay; with one, when the
    /// node follows the channel, knows its numbering, and holds every event after `since`). When it does not, the
    /// node starts following the channel now, before the caller reads the shared log
    /// (``readLog(_:since:now:)``), so that nothing published meanwhile is lost, and then subscribes with what it
    /// read (``subscribe(_:subscriber:on:since:slice:now:)``).
    func answersFromMemory(_ key: ChannelKey, since: ChannelPosition?, now: Int64) -> Bool {
        guard relay != nil else { return true }
        return shard(for: key).withLockedValue { states in
            guard let state = states[key] else {
                states[key] = newState(now: now)
                return false
            }
            guard state.synced else { return false }
            guard let since, since.epoch == state.epoch else { return true }  // another epoch: nothing to recover
            if case .recovered = state.history.events(after: since.seq, now: now) { return true }
            return false
        }
    }

    /// Reads the channel's head and the events after `since` from the shared log (within the history's size and age).
    func readLog(_ key: ChannelKey, since: ChannelPosition?, now: Int64) async throws(HubError) -> ChannelLogSlice {
        guard let relay else { throw HubError(.internal, "no shared channel log on a single node") }
        return try await relay.read(key, since: since, limit: historySize, minMillis: now - historyAgeMillis)
    }

    /// Subscribes with what the shared log said: its events after `since` up to its head, then what this node
    /// received after that head. On `loop`, which must be the current loop.
    func subscribe(
        _ key: ChannelKey, subscriber: any ChannelSubscriber, on loop: any EventLoop, since: ChannelPosition?,
        slice: ChannelLogSlice, now: Int64
    ) -> Subscribed {
        loop.preconditionInEventLoop()
        guard let registry = registry(for: loop) else {
            preconditionFailure("subscriber on a loop outside the hub's group")
        }
        let alreadySubscribed = registry.contains(key, subscriber.subscriberID)
        let head = slice.head
        let result: (Subscribed, UInt64) = shard(for: key).withLockedValue { states in
            var state = states.removeValue(forKey: key) ?? newState(now: now)
            defer { states[key] = state }
            state.history.prune(now: now)
            state.lastActiveMillis = now
            if !alreadySubscribed {
                let id = ObjectIdentifier(loop)
                state.loops[id] = (loop, (state.loops[id]?.count ?? 0) + 1)
            }
            var latest = head.seq
            var recovered = false
            var replay: [ByteBuffer] = []
            if let since, slice.isComplete(after: since) {
                recovered = true
                replay = slice.events.map { event in
                    var frame = ByteBufferAllocator().buffer(capacity: 96 + event.data.utf8.count)
                    ServerFrame.writeEvent(
                        into: &frame, channel: key.name.description, seq: event.seq, type: event.type,
                        tsMillis: event.tsMillis, rawData: event.data.utf8)
                    return frame
                }
            }
            // What this node received after the log's head (it was read while notifications kept coming).
            if state.synced, state.epoch == head.epoch, state.history.lastSeq > head.seq {
                latest = state.history.lastSeq
                if recovered {
                    if case .recovered(let newer) = state.history.events(after: head.seq, now: now) {
                        replay += newer
                    } else {
                        recovered = false
                        replay = []
                    }
                }
            }
            return (Subscribed(epoch: head.epoch, seq: latest, recovered: recovered, replay: replay), latest)
        }
        registry.add(key, subscriber, afterSeq: result.1)
        return result.0
    }
}
