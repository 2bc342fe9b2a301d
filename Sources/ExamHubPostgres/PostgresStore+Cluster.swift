import ExamHubDomain
import ExamHubStore
import Foundation
import Logging
import NIOConcurrencyHelpers
import PostgresNIO

/// One event of the shared channel log (`channel_events`, see ``CrossNodeSchema``).
public struct ChannelLogEntry: Sendable, Equatable {
    public var tenant: String
    /// The channel's wire name (`exam:e1:proctor`).
    public var channel: String
    public var epoch: String
    public var seq: Int64
    public var type: String
    public var tsMillis: Int64
    /// The id of the node that published it.
    public var node: String
    /// The event's `data`, as JSON text.
    public var data: String

    public init(
        tenant: String, channel: String, epoch: String, seq: Int64, type: String, tsMillis: Int64, node: String,
        data: String
    ) {
        self.tenant = tenant
        self.channel = channel
        self.epoch = epoch
        self.seq = seq
        self.type = type
        self.tsMillis = tsMillis
        self.node = node
        self.data = data
    }
}

/// An event to append to the shared channel log.
public struct ChannelLogAppend: Sendable {
    /// Unique per event: appending the same id again returns the first append's position and notifies nobody.
    public var eventID: String
    public var tenant: String
    public var channel: String
    public var type: String
    public var tsMillis: Int64
    public var data: String

    public init(eventID: String, tenant: String, channel: String, type: String, tsMillis: Int64, data: String) {
        self.eventID = eventID
        self.tenant = tenant
        self.channel = channel
        self.type = type
        self.tsMillis = tsMillis
        self.data = data
    }
}

/// Where a node stands in one channel, to read what it missed: the events after `afterSeq` of `epoch`, or, when
/// the node does not know the channel's numbering yet (`epoch` nil), those stamped `minMillis` or later.
public struct ChannelLogCursor: Sendable {
    public var tenant: String
    public var channel: String
    public var epoch: String?
    public var afterSeq: Int64
    public var minMillis: Int64

    public init(tenant: String, channel: String, epoch: String?, afterSeq: Int64, minMillis: Int64) {
        self.tenant = tenant
        self.channel = channel
        self.epoch = epoch
        self.afterSeq = afterSeq
        self.minMillis = minMillis
    }
}

/// One node's sockets in one attempt, and the events that announce the attempt's presence when it changes.
public struct PresenceUpdate: Sendable {
    public var attemptID: String
    public var tenant: String
    public var examID: String
    public var candidate: String
    public var sockets: Int64
    public var joinedData: String
    public var leftData: String

    public init(
        attemptID: String, tenant: String, examID: String, candidate: String, sockets: Int64, joinedData: String,
        leftData: String
    ) {
        self.attemptID = attemptID
        self.tenant = tenant
        self.examID = examID
        self.candidate = candidate
        self.sockets = sockets
        self.joinedData = joinedData
        self.leftData = leftData
    }
}

/// The shared channel log, node heartbeats and presence of several nodes on one database (``CrossNodeSchema``),
/// and the LISTEN connection that tells a node about every new event.
extension PostgresStore {
    /// Appends events, in order per channel, in one transaction; returns each one's `seq` and epoch, in the order
    /// given. Every event is notified on ``CrossNodeSchema/notifyChannel`` when the transaction commits.
    public func appendChannelEvents(node: String, _ events: [ChannelLogAppend]) async throws(HubError)
        -> [(seq: Int64, epoch: String)]
    {
        guard !events.isEmpty else { return [] }
        for e in events {
            try Self.refuseNUL(e.eventID, e.tenant, e.channel, e.type, e.data)
        }
        let logger = self.logger
        let ids = events.map(\.eventID)
        let tenants = events.map(\.tenant)
        let channels = events.map(\.channel)
        let types = events.map(\.type)
        let stamps = events.map(\.tsMillis)
        let data = events.map(\.data)
        let rows = try await connection("appendChannelEvents") { conn in
            try await conn.query(
                """
                SELECT o_index, o_seq, o_epoch FROM examhub_publish(
                    \(node), \(ids)::text[], \(tenants)::text[], \(channels)::text[], \(types)::text[],
                    \(stamps)::bigint[], \(data)::text[])
                """, logger: logger
            ).collect()
        }
        var out = [(seq: Int64, epoch: String)?](repeating: nil, count: events.count)
        for row in rows {
            let (index, seq, epoch): (Int64, Int64, String)
            do { (index, seq, epoch) = try row.decode((Int64, Int64, String).self) } catch {
                throw HubError(.internal, "a channel log answer is unreadable", debugDetail: "\(error)")
            }
            guard index >= 1, index <= events.count else { continue }
            out[Int(index) - 1] = (seq, epoch)
        }
        var positions: [(seq: Int64, epoch: String)] = []
        for position in out {
            guard let position else { throw HubError(.internal, "the channel log numbered too few events") }
            positions.append(position)
        }
        return positions
    }

    /// A channel's head (created, at `seq` 0 with a new epoch, when nothing was published on it yet) and, when
    /// `sinceEpoch` is its epoch, the events after `afterSeq` (at most `limit`, none stamped before `minMillis`).
    public func channelLog(
        tenant: String, channel: String, sinceEpoch: String?, afterSeq: Int64, limit: Int, minMillis: Int64
    ) async throws(HubError) -> (epoch: String, seq: Int64, events: [ChannelLogEntry]) {
        try Self.refuseNUL(tenant, channel)
        let logger = self.logger
        let now = Int64(WallClockMillis.now())
        let wanted = sinceEpoch ?? ""
        return try await connection("channelLog") { conn -> (epoch: String, seq: Int64, events: [ChannelLogEntry]) in
            var heads = try await conn.query(
                "SELECT epoch, seq FROM channel_heads WHERE tenant = \(tenant) AND channel = \(channel)", logger: logger
            ).collect()
            if heads.isEmpty {
                heads = try await conn.query(
                    """
                    INSERT INTO channel_heads AS h (tenant, channel, epoch, seq, updated_ms)
                    VALUES (\(tenant), \(channel), substr(md5(random()::text || clock_timestamp()::text), 1, 16), 0, \(now))
                    ON CONFLICT (tenant, channel) DO UPDATE SET updated_ms = h.updated_ms
                    RETURNING h.epoch, h.seq
                    """, logger: logger
                ).collect()
            }
            guard let head = heads.first else { throw HubError(.internal, "the channel head was not created") }
            let (epoch, seq) = try head.decode((String, Int64).self)
            guard wanted == epoch, afterSeq < seq, limit > 0 else { return (epoch, seq, []) }
            // Only up to the head read above: later events reach the node as notifications.
            let rows = try await conn.query(
                """
                SELECT tenant, channel, epoch, seq, type, ts_ms, node, data FROM channel_events
                WHERE tenant = \(tenant) AND channel = \(channel) AND epoch = \(epoch)
                  AND seq > \(afterSeq) AND seq <= \(seq) AND ts_ms >= \(minMillis)
                ORDER BY seq LIMIT \(limit)
                """, logger: logger
            ).collect()
            return (epoch, seq, try rows.map(Self.logEntry(from:)))
        }
    }

    /// One event of the log (for a notification too big to carry its data).
    public func channelEvent(tenant: String, channel: String, epoch: String, seq: Int64) async throws(HubError)
        -> ChannelLogEntry?
    {
        try Self.refuseNUL(tenant, channel, epoch)
        let logger = self.logger
        return try await connection("channelEvent") { conn in
            try await conn.query(
                """
                SELECT tenant, channel, epoch, seq, type, ts_ms, node, data FROM channel_events
                WHERE tenant = \(tenant) AND channel = \(channel) AND epoch = \(epoch) AND seq = \(seq)
                """, logger: logger
            ).collect().first.map(Self.logEntry(from:))
        }
    }

    /// The events after each cursor, ordered by channel then `seq` (at most `limit` in all).
    public func channelEvents(after cursors: [ChannelLogCursor], limit: Int) async throws(HubError) -> [ChannelLogEntry] {
        let cursors = cursors.filter { !Self.hasNUL($0.tenant, $0.channel, $0.epoch ?? "") }
        guard !cursors.isEmpty, limit > 0 else { return [] }
        let logger = self.logger
        let tenants = cursors.map(\.tenant)
        let channels = cursors.map(\.channel)
        let epochs = cursors.map { $0.epoch ?? "" }
        let after = cursors.map(\.afterSeq)
        let minimum = cursors.map(\.minMillis)
        return try await connection("channelEvents") { conn in
            try await conn.query(
                """
                SELECT e.tenant, e.channel, e.epoch, e.seq, e.type, e.ts_ms, e.node, e.data
                FROM unnest(\(tenants)::text[], \(channels)::text[], \(epochs)::text[], \(after)::bigint[],
                            \(minimum)::bigint[]) AS w(tenant, channel, epoch, after_seq, min_ms)
                JOIN channel_events e ON e.tenant = w.tenant AND e.channel = w.channel
                WHERE (w.epoch <> '' AND e.epoch = w.epoch AND e.seq > w.after_seq)
                   OR (w.epoch = '' AND e.ts_ms >= w.min_ms)
                ORDER BY e.tenant, e.channel, e.epoch, e.seq
                LIMIT \(limit)
                """, logger: logger
            ).collect().map(Self.logEntry(from:))
        }
    }

    /// Deletes events stamped before `eventsBefore`, heads untouched since `headsBefore` (their channel starts a new
    /// epoch when used again), and presence records of attempts nobody has been connected to since `presenceBefore`.
    /// Returns how many events went.
    @discardableResult
    public func pruneChannelLog(eventsBefore: Int64, headsBefore: Int64, presenceBefore: Int64) async throws(HubError)
        -> Int
    {
        let logger = self.logger
        return try await connection("pruneChannelLog", timeout: .seconds(60)) { conn in
            let gone = try await conn.query(
                "DELETE FROM channel_events WHERE ts_ms < \(eventsBefore) RETURNING 1", logger: logger
            ).collect().count
            try await conn.query("DELETE FROM channel_heads WHERE updated_ms < \(headsBefore)", logger: logger)
            try await conn.query(
                "DELETE FROM cluster_presence WHERE sockets = 0 AND last_seen_ms < \(presenceBefore)", logger: logger)
            try await conn.query(
                "DELETE FROM presence_state WHERE NOT connected AND last_seen_ms < \(presenceBefore)", logger: logger)
            return gone
        }
    }

    // MARK: Nodes and presence

    /// Records the node as alive now; returns false when it was not registered (it is then): a node the others
    /// had given up on (its presence was dropped) must announce its presence again.
    public func heartbeat(node: String, now: Int64) async throws(HubError) -> Bool {
        let logger = self.logger
        return try await connection("heartbeat") { conn in
            let updated = try await conn.query(
                "UPDATE cluster_nodes SET heartbeat_ms = \(now) WHERE node = \(node) RETURNING 1", logger: logger
            ).collect()
            guard updated.isEmpty else { return true }
            try await conn.query(
                """
                INSERT INTO cluster_nodes (node, started_ms, heartbeat_ms) VALUES (\(node), \(now), \(now))
                ON CONFLICT (node) DO UPDATE SET heartbeat_ms = EXCLUDED.heartbeat_ms
                """, logger: logger)
            return false
        }
    }

    /// Drops the presence of nodes silent since `freshAfter` (announcing `candidate.left` where nobody is left) and
    /// their records; returns how many attempts were announced left.
    @discardableResult
    public func reapNodes(node: String, now: Int64, freshAfter: Int64) async throws(HubError) -> Int {
        let logger = self.logger
        return try await connection("reapNodes") { conn in
            let rows = try await conn.query(
                "SELECT examhub_reap(\(node), \(now), \(freshAfter))", logger: logger
            ).collect()
            return Int(try rows.first?.decode(Int32.self) ?? 0)
        }
    }

    /// Records this node's sockets per attempt; where an attempt's presence on all live nodes (heartbeat at or
    /// after `freshAfter`) changes, announces `candidate.joined` or `candidate.left` on its exam's proctor channel,
    /// in the same transaction.
    public func updatePresence(node: String, now: Int64, freshAfter: Int64, _ updates: [PresenceUpdate])
        async throws(HubError)
    {
        let updates = updates.filter { !Self.hasNUL($0.attemptID, $0.tenant, $0.examID, $0.candidate) }
        guard !updates.isEmpty else { return }
        let logger = self.logger
        try await connection("updatePresence") { conn in
            try await conn.query(
                """
                SELECT examhub_presence(
                    \(node), \(now), \(freshAfter), \(updates.map(\.attemptID))::text[], \(updates.map(\.tenant))::text[],
                    \(updates.map(\.examID))::text[], \(updates.map(\.candidate))::text[],
                    \(updates.map(\.sockets))::bigint[], \(updates.map(\.joinedData))::text[],
                    \(updates.map(\.leftData))::text[])
                """, logger: logger)
        }
    }

    /// Removes the node and its presence (after its sockets were counted out), for a node that stops.
    public func leaveCluster(node: String) async throws(HubError) {
        let logger = self.logger
        try await transaction("leaveCluster") { conn in
            try await conn.query("DELETE FROM cluster_presence WHERE node = \(node)", logger: logger)
            try await conn.query("DELETE FROM cluster_nodes WHERE node = \(node)", logger: logger)
        }
    }

    /// Whether each attempt is connected on some live node, as last announced, and when it was last seen.
    public func presence(of attemptIDs: [String]) async throws(HubError) -> [String: (connected: Bool, lastSeen: Int64)] {
        let ids = attemptIDs.filter { !Self.hasNUL($0) }
        guard !ids.isEmpty else { return [:] }
        let logger = self.logger
        return try await connection("presence") { conn in
            var out: [String: (connected: Bool, lastSeen: Int64)] = [:]
            for row in try await conn.query(
                "SELECT attempt_id, connected, last_seen_ms FROM presence_state WHERE attempt_id = ANY(\(ids)::text[])",
                logger: logger
            ).collect() {
                let (id, connected, seen) = try row.decode((String, Bool, Int64).self)
                out[id] = (connected, seen)
            }
            return out
        }
    }

    // MARK: LISTEN

    /// Holds one pooled connection LISTENing on `channel` (its `application_name` set to `applicationName`, so an
    /// operator can find it in `pg_stat_activity`) and hands the notifications to `consume`; returns or throws when
    /// `consume` does, when the connection is lost (`unavailable`), or when the calling task is cancelled.
    public func listen(
        on channel: String, applicationName: String,
        _ consume: @escaping @Sendable (PostgresNotificationSequence) async throws -> Void
    ) async throws(HubError) {
        guard let (client, _) = pool.current() else { throw HubError(.unavailable, "the database store is closed") }
        let logger = self.logger
        let leased = NIOLockedValueBox(false)
        do {
            // Waiting for the connection is bounded like any call; listening, once connected, is not.
            try await withDeadline(
                options.operationTimeout, extendedTo: .seconds(Int64(Int32.max)),
                started: { leased.withLockedValue { $0 } }
            ) {
                try await client.withConnection { conn in
                    leased.withLockedValue { $0 = true }
                    try await conn.query(
                        "SELECT set_config('application_name', \(applicationName), false)", logger: logger)
                    try await conn.listen(on: channel) { notifications in
                        try await consume(notifications)
                    }
                    _ = try? await conn.query("SELECT set_config('application_name', 'examhub', false)", logger: logger)
                }
            }
            pool.noteSuccess()
        } catch {
            if error is CancellationError { return }
            throw Self.hubError(error, what: "listen", conflict: nil)
        }
    }

    static func logEntry(from row: PostgresRow) throws -> ChannelLogEntry {
        let (tenant, channel, epoch, seq, type, ts, node, data) = try row.decode(
            (String, String, String, Int64, String, Int64, String, String).self)
        return ChannelLogEntry(
            tenant: tenant, channel: channel, epoch: epoch, seq: seq, type: type, tsMillis: ts, node: node, data: data)
    }
}

/// Wall-clock milliseconds since 1970.
enum WallClockMillis {
    static func now() -> Int64 {
        Int64(Date().timeIntervalSince1970 * 1000)
    }
}
