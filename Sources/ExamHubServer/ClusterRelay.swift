import ExamHubDomain

/// Several nodes on one database: what a node's ``ChannelHub`` and ``ProctoringService`` need from the others.
///
/// With a relay (the `ExamHubCluster` module implements one over PostgreSQL LISTEN/NOTIFY), a channel's events are
/// numbered by the shared database, not by the node: ``ChannelHub/publish(_:type:data:now:)`` hands the event to
/// the relay, which appends it to the shared channel log (one `seq` per channel for the whole cluster) and notifies
/// every node, this one included; each node feeds what it is told into its hub through a ``ClusterSink``, which
/// keeps the node's history in `seq` order and fans the event out to its own sockets exactly as a local publish
/// would. Without a relay (SQLite, one node) nothing of this runs and a publish is delivered at once.
public protocol ClusterRelay: Sendable {
    /// This node's id in the cluster (the `node` of the events it publishes).
    var nodeID: String { get }

    /// Queues an event for the shared channel log; `acknowledged`, when given, gets its position once committed
    /// (or an error when it could not be).
    func publish(
        _ event: ClusterPublication, acknowledged: (@Sendable (Result<ChannelPosition, HubError>) -> Void)?)

    /// The channel's current epoch and newest `seq` in the shared log and, when `since` is of that epoch, the events
    /// after it (at most `limit`, none older than `minMillis`), oldest first.
    func read(_ key: ChannelKey, since: ChannelPosition?, limit: Int, minMillis: Int64) async throws(HubError)
        -> ChannelLogSlice

    /// This node's count of sockets joined to an attempt went from none to some, or back to none: the cluster
    /// announces `candidate.joined` / `candidate.left` when the attempt's presence on all nodes together changes.
    func presenceChanged(_ change: PresenceChange)

    /// Whether each attempt has a socket on some live node, and when one was last seen.
    func presence(of attemptIDs: [String]) async throws(HubError) -> [String: AttemptPresence]
}

/// Where a channel stands: its epoch and a sequence number.
public struct ChannelPosition: Sendable, Hashable {
    public var epoch: String
    public var seq: UInt64

    public init(epoch: String, seq: UInt64) {
        self.epoch = epoch
        self.seq = seq
    }
}

/// An event this node publishes, before the shared log numbers it.
public struct ClusterPublication: Sendable {
    public var key: ChannelKey
    public var type: String
    public var tsMillis: Int64
    /// The event's `data`, as compact JSON text.
    public var data: String

    public init(key: ChannelKey, type: String, tsMillis: Int64, data: String) {
        self.key = key
        self.type = type
        self.tsMillis = tsMillis
        self.data = data
    }
}

/// A numbered event of the shared channel log, published by any node.
public struct ClusterEvent: Sendable {
    public var key: ChannelKey
    public var epoch: String
    public var seq: UInt64
    public var type: String
    public var tsMillis: Int64
    /// The event's `data`, as JSON text (valid: the publishing node encoded it).
    public var data: String
    /// The id of the node that published it.
    public var origin: String

    public init(
        key: ChannelKey, epoch: String, seq: UInt64, type: String, tsMillis: Int64, data: String, origin: String
    ) {
        self.key = key
        self.epoch = epoch
        self.seq = seq
        self.type = type
        self.tsMillis = tsMillis
        self.data = data
        self.origin = origin
    }

    /// Event types every node reads, whether or not it follows the channel, because they change what the node
    /// holds in memory: `candidate.state` (an attempt paused, resumed, extended or closed on another node).
    public static let typesEveryNodeReads: Set<String> = ["candidate.state"]
}

/// A channel's head in the shared log and the events asked for.
public struct ChannelLogSlice: Sendable {
    /// The channel's current epoch and newest `seq` (0 when nothing was published in this epoch yet).
    public var head: ChannelPosition
    /// The events after the `since` asked for, oldest first, when it was of the current epoch (else none).
    public var events: [ClusterEvent]

    public init(head: ChannelPosition, events: [ClusterEvent]) {
        self.head = head
        self.events = events
    }

    /// Whether `events` are exactly every event after `since` up to the head.
    public func isComplete(after since: ChannelPosition) -> Bool {
        guard since.epoch == head.epoch, since.seq <= head.seq else { return false }
        guard UInt64(events.count) == head.seq - since.seq else { return false }
        for (offset, event) in events.enumerated() where event.seq != since.seq + UInt64(offset) + 1 {
            return false
        }
        return true
    }
}

/// What ``ChannelHub/receive(_:now:force:)`` did with an event of the shared log.
public enum ClusterReceiveOutcome: Sendable, Equatable {
    /// Added to the channel's history and delivered to this node's subscribers.
    case applied
    /// Already held (or older than what is held): nothing done.
    case duplicate
    /// Nobody on this node follows the channel: nothing done (the shared log holds it for later).
    case notFollowed
    /// Events between the newest held (`after`) and this one are missing: read them first, or force it.
    case gap(after: UInt64)
}

/// A channel this node follows: where it stands, for catching up after the notifications stopped for a while.
public struct FollowedChannel: Sendable {
    public var key: ChannelKey
    /// The channel's epoch and newest `seq` held, or `nil` when the node has not seen any of its events yet.
    public var position: ChannelPosition?
    /// When the node started following it.
    public var sinceMillis: Int64
}

/// A change of one node's presence in an attempt.
public struct PresenceChange: Sendable {
    public var attemptID: String
    public var tenant: String
    public var examID: String
    public var candidate: String
    /// This node's sockets joined to the attempt now.
    public var sockets: Int
    public var atMillis: Int64
    /// The `data` of `candidate.joined` and of `candidate.left`, as JSON text, for when the change is the cluster's.
    public var joinedData: String
    public var leftData: String
}

/// An attempt's presence across the cluster.
public struct AttemptPresence: Sendable, Equatable {
    public var connected: Bool
    public var lastSeenMillis: Int64?

    public init(connected: Bool, lastSeenMillis: Int64?) {
        self.connected = connected
        self.lastSeenMillis = lastSeenMillis
    }
}

/// What a ``ClusterRelay`` feeds: this node's hub and proctoring state (``HubServer/clusterSink``).
public protocol ClusterSink: Sendable {
    /// Whether this node follows the channel (holds it in memory: it has, or recently had, subscribers).
    func isFollowing(_ key: ChannelKey) -> Bool
    /// An event of the shared log, in `seq` order per channel; `force` accepts it over a gap that cannot be filled.
    func receive(_ event: ClusterEvent, force: Bool) -> ClusterReceiveOutcome
    /// The channels this node follows and where each stands.
    func followedChannels() -> [FollowedChannel]
    /// An event another node published whose type is in ``ClusterEvent/typesEveryNodeReads``.
    func remoteEvent(_ event: ClusterEvent)
    /// This node's presence in every attempt it holds sockets of (to announce again after the cluster lost it).
    func localPresence() -> [PresenceChange]
}
