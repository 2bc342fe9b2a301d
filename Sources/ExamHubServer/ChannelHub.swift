import ExamHubDomain
import ExamHubWire
import NIOConcurrencyHelpers
import NIOCore

/// Something that receives a channel's events: a connection, always called on its own event loop.
protocol ChannelSubscriber: AnyObject {
    /// The subscriber's identity within its loop.
    var subscriberID: UInt64 { get }
    /// Writes an already-encoded event frame without flushing (compressing it through `event`'s per-loop cache
    /// when the socket negotiated permessage-deflate).
    func deliverEvent(_ event: inout OutboundEvent)
    /// Flushes what `deliverEvent` wrote.
    func flushDelivered()
}

/// Channel fan-out (PROTOCOL.md section 4): per-channel `seq` and `epoch`, a bounded history for recovery, and
/// per-event-loop subscriber registries.
///
/// A publish takes its channel's shard lock once: it assigns the next `seq`, encodes the frame once into one
/// `ByteBuffer`, appends it to the history, and enqueues one `execute` per event loop that has subscribers
/// (while still holding the lock, so every loop sees a channel's events in `seq` order). On each loop, the
/// registry writes the shared buffer to every local subscriber and flushes each of them once per burst.
///
/// With a ``ClusterRelay`` (several nodes on one PostgreSQL), `seq` and `epoch` belong to the shared database
/// instead: a publish goes to the relay, and events come back, from every node, through ``receive(_:now:force:)``,
/// which does the rest exactly as above (see `ChannelHub+Cluster.swift`).
public final class ChannelHub: Sendable {
    struct ChannelState: Sendable {
        /// The channel's epoch; with a relay, empty until the node learns it (``synced``).
        var epoch: String
        var history: ChannelHistory<ByteBuffer>
        /// Event loops with subscribers, and how many subscriptions each has.
        var loops: [ObjectIdentifier: (loop: any EventLoop, count: Int)] = [:]
        var lastActiveMillis: Int64
        /// Whether `epoch` and the history's `lastSeq` are the shared log's (always, without a relay). A channel a
        /// node starts following is not, until its first event arrives: from then on events arrive in order.
        var synced = true
        /// When this node started holding the channel.
        var createdMillis: Int64 = 0
    }

    /// The outcome of a subscribe.
    public struct Subscribed: Sendable {
        public var epoch: String
        public var seq: UInt64
        public var recovered: Bool
        /// Missed events, in order, to write after the reply.
        public var replay: [ByteBuffer]
    }

    let shards: [NIOLockedValueBox<[ChannelKey: ChannelState]>]
    let registries: [ObjectIdentifier: LoopRegistry]
    let historySize: Int
    let historyAgeMillis: Int64
    let metrics: HubMetrics?
    /// The other nodes, when several share the database (`nil`: this node numbers its channels itself).
    let relay: (any ClusterRelay)?

    /// One registry per loop of `group`; `historySize` events kept per channel for `historyAgeSeconds`; with a
    /// `relay`, channels are shared with the other nodes of the cluster.
    public init(
        group: any EventLoopGroup, historySize: Int, historyAgeSeconds: Int, metrics: HubMetrics? = nil,
        relay: (any ClusterRelay)? = nil
    ) {
        self.shards = (0..<64).map { _ in NIOLockedValueBox([:]) }
        var registries: [ObjectIdentifier: LoopRegistry] = [:]
        for loop in group.makeIterator() {
            registries[ObjectIdentifier(loop)] = LoopRegistry(loop: loop)
        }
        self.registries = registries
        self.historySize = historySize
        self.historyAgeMillis = Int64(historyAgeSeconds) * 1000
        self.metrics = metrics
        self.relay = relay
    }

    func shard(for key: ChannelKey) -> NIOLockedValueBox<[ChannelKey: ChannelState]> {
        var hasher = Hasher()
        hasher.combine(key)
        return shards[Int(UInt(bitPattern: hasher.finalize()) % UInt(shards.count))]
    }

    func newState(now: Int64) -> ChannelState {
        guard relay == nil else {
            // Epoch and numbering come from the shared log, with the channel's first event.
            return ChannelState(
                epoch: "", history: ChannelHistory(capacity: historySize, maxAgeMillis: historyAgeMillis),
                lastActiveMillis: now, synced: false, createdMillis: now)
        }
        return ChannelState(
            epoch: Self.makeEpoch(), history: ChannelHistory(capacity: historySize, maxAgeMillis: historyAgeMillis),
            lastActiveMillis: now, createdMillis: now)
    }

    static func makeEpoch() -> String {
        let value = UInt64.random(in: 1...UInt64.max)
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    func registry(for loop: any EventLoop) -> LoopRegistry? {
        registries[ObjectIdentifier(loop)]
    }

    /// Subscribes `subscriber` (on `loop`, which must be the current loop) to `key`, recovering from `since` from this
    /// node's memory. With a relay, the `subscribe` op reads the shared log first when memory is not enough
    /// (``answersFromMemory(_:since:now:)``); this one serves the implicit subscriptions of
    /// `attempt.join`, `proctor.watch` and `chat.send`, whose `epoch` and `seq` nobody reads.
    func subscribe(
        _ key: ChannelKey, subscriber: any ChannelSubscriber, on loop: any EventLoop, since: (epoch: String, seq: UInt64)?,
        now: Int64
    ) -> Subscribed {
        loop.preconditionInEventLoop()
        guard let registry = registry(for: loop) else {
            preconditionFailure("subscriber on a loop outside the hub's group")
        }
        let alreadySubscribed = registry.contains(key, subscriber.subscriberID)
        let result: (Subscribed, UInt64) = shard(for: key).withLockedValue { states in
            // Mutate in place (`default:` subscript): copying the state out would copy its whole history.
            states[key, default: newState(now: now)].history.prune(now: now)
            states[key, default: newState(now: now)].lastActiveMillis = now
            if !alreadySubscribed {
                let id = ObjectIdentifier(loop)
                let count = states[key, default: newState(now: now)].loops[id]?.count ?? 0
                states[key, default: newState(now: now)].loops[id] = (loop, count + 1)
            }
            let epoch = states[key, default: newState(now: now)].epoch
            let latest = states[key, default: newState(now: now)].history.lastSeq
            var recovered = false
            var replay: [ByteBuffer] = []
            if let since, since.epoch == epoch,
                case .recovered(let events) = states[key, default: newState(now: now)].history.events(
                    after: since.seq, now: now)
            {
                recovered = true
                replay = events
            }
            return (Subscribed(epoch: epoch, seq: latest, recovered: recovered, replay: replay), latest)
        }
        registry.add(key, subscriber, afterSeq: result.1)
        return result.0
    }

    /// Removes one subscription; returns whether there was one.
    @discardableResult
    func unsubscribe(_ key: ChannelKey, subscriberID: UInt64, on loop: any EventLoop) -> Bool {
        guard let registry = registry(for: loop), registry.remove(key, subscriberID) else { return false }
        shard(for: key).withLockedValue { states in
            let id = ObjectIdentifier(loop)
            guard let entry = states[key]?.loops[id] else { return }
            states[key]?.loops[id] = entry.count > 1 ? (entry.loop, entry.count - 1) : nil
        }
        return true
    }

    /// Publishes an event on `key`: returns its `seq` and the channel's epoch. With a relay the shared log numbers
    /// the event, later: the event is handed to the relay and `nil` is returned (use
    /// ``publishAcknowledged(_:type:data:now:)`` to learn its position).
    @discardableResult
    public func publish(_ key: ChannelKey, type: String, data: JSONValue, now: Int64) -> (seq: UInt64, epoch: String)? {
        metrics?.eventsPublished.increment()
        if let relay {
            relay.publish(ClusterPublication(key: key, type: type, tsMillis: now, data: data.jsonText), acknowledged: nil)
            return nil
        }
        let channelName = key.name.description
        return shard(for: key).withLockedValue { states in
            // Mutate in place (`default:` subscript): copying the state out would copy its whole history.
            let seq = states[key, default: newState(now: now)].history.lastSeq + 1
            var frame = ByteBufferAllocator().buffer(capacity: 128)
            ServerFrame.writeEvent(into: &frame, channel: channelName, seq: seq, type: type, tsMillis: now, data: data)
            let encoded = frame
            states[key, default: newState(now: now)].history.append(encoded, atMillis: now)
            states[key, default: newState(now: now)].lastActiveMillis = now
            let epoch = states[key, default: newState(now: now)].epoch
            for (_, entry) in states[key, default: newState(now: now)].loops {
                guard let registry = registries[ObjectIdentifier(entry.loop)] else { continue }
                entry.loop.execute { registry.deliver(key, seq: seq, frame: encoded) }
            }
            return (seq, epoch)
        }
    }

    /// Forgets channels with no subscribers whose newest event is older than the history age; their next use
    /// starts a new epoch. Returns how many were forgotten.
    @discardableResult
    public func sweep(now: Int64) -> Int {
        var removed = 0
        for shard in shards {
            shard.withLockedValue { states in
                for (key, state) in states where state.loops.isEmpty && now - state.lastActiveMillis > historyAgeMillis {
                    states[key] = nil
                    removed += 1
                }
            }
        }
        return removed
    }

    /// The number of channels currently held (for metrics and tests).
    public var channelCount: Int {
        shards.reduce(0) { $0 + $1.withLockedValue { $0.count } }
    }
}

/// The subscribers of one event loop. Touched only on that loop.
final class LoopRegistry: @unchecked Sendable {
    private struct Subscription {
        let subscriber: any ChannelSubscriber
        let afterSeq: UInt64
    }

    let loop: any EventLoop
    /// permessage-deflate streams shared by this loop's sockets.
    let deflateStreams = LoopDeflateStreams()
    private var channels: [ChannelKey: [UInt64: Subscription]] = [:]
    /// Channels written to since the last flush (their subscribers are flushed together).
    private var dirty: Set<ChannelKey> = []
    private var flushScheduled = false

    init(loop: any EventLoop) {
        self.loop = loop
    }

    private var connections: [UInt64: ConnectionHandler] = [:]

    private var ticker: RepeatedTask?
    /// How often connections are ticked (auth timeout, expiry, heartbeat, slow consumers).
    static let tickInterval = TimeAmount.milliseconds(250)

    func addConnection(_ connection: ConnectionHandler) {
        connections[connection.subscriberID] = connection
        if ticker == nil {
            ticker = loop.scheduleRepeatedTask(initialDelay: Self.tickInterval, delay: Self.tickInterval) { _ in
                self.tickAll()
            }
        }
    }

    private func tickAll() {
        let now = loop.now
        for connection in Array(connections.values) { connection.tick(now: now) }
    }

    func removeConnection(_ id: UInt64) {
        connections[id] = nil
    }

    /// Starts the closing handshake with 1001 on every connection of this loop.
    func drainAll() {
        for connection in Array(connections.values) {
            connection.close(.draining)
            connection.flushNow()
        }
    }

    /// Closes this loop's connections with 1001 spread evenly over `window` (see `DrainSchedule`): those open now,
    /// oldest first, in slices fired one after another by a single timer; any opened meanwhile go with the last
    /// slice. A connection that closed on its own before its slice is skipped. Call on this loop.
    func drain(over window: TimeAmount) {
        loop.preconditionInEventLoop()
        let ids = connections.keys.sorted()
        let schedule = DrainSchedule(count: ids.count, window: window)
        guard !schedule.slices.isEmpty else { return }
        runDrainSlice(0, of: schedule, ids: ids, started: loop.now)
    }

    private func runDrainSlice(_ index: Int, of schedule: DrainSchedule, ids: [UInt64], started: NIODeadline) {
        for id in ids[schedule.slices[index].range] {
            guard let connection = connections[id] else { continue }
            connection.close(.draining)
            connection.flushNow()
        }
        let next = index + 1
        guard next < schedule.slices.count else {
            drainAll()
            return
        }
        // If the loop shuts down first (every socket gone early), the task is cancelled: nothing is left to close.
        loop.scheduleTask(deadline: started + schedule.slices[next].offset) {
            self.runDrainSlice(next, of: schedule, ids: ids, started: started)
        }
    }

    func contains(_ key: ChannelKey, _ id: UInt64) -> Bool {
        channels[key]?[id] != nil
    }

    func add(_ key: ChannelKey, _ subscriber: any ChannelSubscriber, afterSeq: UInt64) {
        channels[key, default: [:]][subscriber.subscriberID] = Subscription(subscriber: subscriber, afterSeq: afterSeq)
    }

    /// The channel's numbering started again (a new epoch from the shared log): every subscriber takes events
    /// from the first of the new epoch on.
    func resetPositions(_ key: ChannelKey) {
        guard let subs = channels[key] else { return }
        for (id, sub) in subs {
            channels[key]?[id] = Subscription(subscriber: sub.subscriber, afterSeq: 0)
        }
    }

    func remove(_ key: ChannelKey, _ id: UInt64) -> Bool {
        guard let sub = channels[key]?.removeValue(forKey: id) else { return false }
        if channels[key]?.isEmpty == true { channels[key] = nil }
        // Written but not flushed yet: flush now, the channel's flush will no longer see this subscriber.
        if dirty.contains(key) { sub.subscriber.flushDelivered() }
        return true
    }

    func deliver(_ key: ChannelKey, seq: UInt64, frame: ByteBuffer) {
        guard let subs = channels[key] else { return }
        var event = OutboundEvent(frame: frame, channel: key.name)
        var wrote = false
        for (_, sub) in subs where seq > sub.afterSeq {
            sub.subscriber.deliverEvent(&event)
            wrote = true
        }
        // One mark per channel, not per subscriber: a broadcast to thousands costs one set insert here, and their
        // sockets are flushed together once the loop has delivered everything queued before the flush.
        guard wrote else { return }
        dirty.insert(key)
        if !flushScheduled {
            flushScheduled = true
            loop.execute { self.flushAll() }
        }
    }

    private func flushAll() {
        flushScheduled = false
        let toFlush = dirty
        dirty.removeAll(keepingCapacity: true)
        for key in toFlush {
            guard let subs = channels[key] else { continue }
            for (_, sub) in subs { sub.subscriber.flushDelivered() }
        }
    }
}
