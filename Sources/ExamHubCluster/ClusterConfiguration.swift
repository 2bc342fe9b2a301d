/// Settings of a node in a cluster (several `examhub serve` on one PostgreSQL), built once at the edge.
public struct ClusterConfiguration: Sendable {
    /// Seconds between a node's heartbeats (`EXAMHUB_CLUSTER_HEARTBEAT_SEC`, 5). A node silent for three of them is
    /// taken for dead: its presence is dropped and `candidate.left` announced for its candidates.
    public var heartbeatSeconds: Double = 5
    /// Events kept per channel for recovery (`EXAMHUB_HISTORY_SIZE`): the most a `subscribe` reads from the log.
    public var historySize: Int = 1000
    /// Seconds events are kept (`EXAMHUB_HISTORY_AGE_SEC`, 300): older rows of the channel log are deleted.
    public var historyAgeSeconds: Int = 300
    /// Seconds a channel may stay silent before its head row is deleted (7 days); its next event starts a new epoch.
    public var headRetentionSeconds: Int = 7 * 86_400
    /// Seconds between two prunes of the channel log (60).
    public var pruneIntervalSeconds: Double = 60
    /// Most events appended in one transaction (500).
    public var maxBatch: Int = 500
    /// Most events waiting for the database (100,000); beyond, the oldest are dropped and counted: the database has
    /// been unreachable for long, and every node's channels stand still meanwhile anyway.
    public var maxQueued: Int = 100_000

    public init() {}

    /// How long a node's heartbeat counts, in milliseconds.
    var freshnessMillis: Int64 { Int64(heartbeatSeconds * 3000) }
}
