import ExamHubDomain
import NIOCore

/// Everything `examhub serve` can be told, with the defaults of PROTOCOL.md section 7. Built once at the edge
/// (flags and `EXAMHUB_*` variables, see `examhub`'s `ServeCommand`) and passed down.
public struct HubConfiguration: Sendable {
    /// Listen address (`EXAMHUB_HOST`, default `127.0.0.1`).
    public var host: String = "127.0.0.1"
    /// Listen port (`EXAMHUB_PORT`, default 8080; 0 picks a free port, reported by `onServerRunning`).
    public var port: Int = 8080
    /// Dev mode (`EXAMHUB_DEV`): printed tokens, `*` origins, `/v1/echo`.
    public var devMode: Bool = true
    /// Allowed `Origin` values (`EXAMHUB_ALLOWED_ORIGINS`); `["*"]` only in dev mode. Requests with no
    /// `Origin` header (non-browser clients) are always allowed.
    public var allowedOrigins: [String] = ["*"]
    /// Largest application message in bytes (`EXAMHUB_MAX_MESSAGE_BYTES`, 256 KiB): larger closes with 1009.
    public var maxMessageBytes: Int = 262_144
    /// Seconds a socket may stay unauthenticated (`EXAMHUB_AUTH_TIMEOUT`, 5): then closed with 4001.
    public var authTimeoutSeconds: Double = 5
    /// Seconds between server WebSocket pings (`EXAMHUB_HEARTBEAT_SEC`, 25); a peer silent for two
    /// heartbeats is closed as dead.
    public var heartbeatSeconds: Int = 25
    /// Messages per second allowed per connection (`EXAMHUB_RATE_LIMIT`, 200) with a burst of
    /// `rateBurst` (`EXAMHUB_RATE_BURST`, 400).
    public var ratePerSecond: Double = 200
    public var rateBurst: Double = 400
    /// Strikes after which the socket is closed with 4008 (`EXAMHUB_RATE_CLOSE_AFTER`, 50): each refused message
    /// adds one, each allowed message takes a quarter away (see `RateLimiter`).
    public var rateCloseAfter: Int = 50
    /// Most open sockets (`EXAMHUB_MAX_CONNECTIONS`, 100,000); more are refused with HTTP 503.
    public var maxConnections: Int = 100_000
    /// Most open sockets from one IP address (`EXAMHUB_MAX_CONNECTIONS_PER_IP`, 0: no limit, the default, since a
    /// whole exam hall may share one NAT address); more are refused with HTTP 429.
    public var maxConnectionsPerIP: Int = 0
    /// Most channels one socket may subscribe to (`EXAMHUB_MAX_SUBSCRIPTIONS`, 256).
    public var maxSubscriptionsPerConnection: Int = 256
    /// Events kept per channel for recovery (`EXAMHUB_HISTORY_SIZE`, 1,000) and their age limit in seconds
    /// (`EXAMHUB_HISTORY_AGE_SEC`, 300).
    public var historySize: Int = 1000
    public var historyAgeSeconds: Int = 300
    /// Outbound buffer water marks per socket in bytes (`EXAMHUB_WRITE_LOW`, 64 KiB; `EXAMHUB_WRITE_HIGH`,
    /// 256 KiB). Above the high mark the socket stops reading.
    public var writeBufferLow: Int = 65_536
    public var writeBufferHigh: Int = 262_144
    /// Slow-consumer policy: a socket whose unsent bytes exceed `maxOutboundBytes` (`EXAMHUB_MAX_OUTBOUND`,
    /// 4 MiB), or that stays above the high water mark for `slowConsumerSeconds` (`EXAMHUB_SLOW_CONSUMER_SEC`,
    /// 30), is closed with 1008; it reconnects and recovers what it missed with `since`.
    public var maxOutboundBytes: Int = 4 * 1_048_576
    public var slowConsumerSeconds: Double = 30
    /// Seconds to receive a complete HTTP request, head and body, the WebSocket upgrade request included
    /// (`EXAMHUB_HEADER_TIMEOUT`, 10), counted from the connection's start or the previous response: a slower
    /// client (slow loris, or one that never sends) is closed.
    public var headerTimeoutSeconds: Double = 10
    /// Seconds the drain waits for sockets to close after the last 1001 is sent (`EXAMHUB_DRAIN_SEC`, 10).
    public var drainSeconds: Double = 10
    /// True when a tracer is bootstrapped (`EXAMHUB_OTLP_ENDPOINT`): socket ops then run inside spans. Off, the op
    /// path creates no span at all.
    public var tracingEnabled = false
    /// Seconds over which the drain spreads its 1001 closes (`EXAMHUB_DRAIN_SPREAD_SEC`, 5; 0: all at once), so
    /// that the clients of a node that stops do not all reconnect to the other nodes in the same instant. The
    /// longest drain is this plus `drainSeconds`.
    public var drainSpreadSeconds: Double = 5
    /// Seconds between returns of freed heap memory to the system (`EXAMHUB_MALLOC_TRIM_SEC`, 60; 0: never). glibc
    /// keeps what was freed in per-thread arenas; under churn (answers in the recovery history coming and going,
    /// sockets reconnecting) the process's RSS then creeps up while the bytes in use stay flat. A 30-minute soak
    /// measured it: +70 MiB over 15 minutes, all of it given back by one `malloc_trim`. Linux with glibc only.
    public var mallocTrimSeconds: Double = 60
    /// Event loop threads (`EXAMHUB_THREADS`, default: the number of cores).
    public var eventLoopThreads: Int = NIOCore.System.coreCount
    /// Group commit: most saves per transaction (`EXAMHUB_COMMIT_MAX_BATCH`, 1,000) and extra milliseconds to wait
    /// for more before committing (`EXAMHUB_COMMIT_WINDOW_MS`, 0: batches form while the previous commit runs).
    public var commitMaxBatch: Int = 1000
    public var commitWindowMillis: Int = 0
    /// Deepest JSON nesting accepted in a frame (32).
    public var maxJSONDepth: Int = 32
    /// Telemetry frames per second per attempt (`EXAMHUB_TELEMETRY_RATE`, 10) with a burst of
    /// `telemetryBurst` (`EXAMHUB_TELEMETRY_BURST`, 20), shared by every tab of the attempt; more get `rate_limited`.
    public var telemetryRatePerSecond: Double = 10
    public var telemetryBurst: Double = 20
    /// Days telemetry evidence is kept (`EXAMHUB_TELEMETRY_RETENTION_DAYS`, 30); flags and the audit log are kept.
    public var telemetryRetentionDays: Double = 30
    /// Milliseconds between evidence writes (`EXAMHUB_TELEMETRY_FLUSH_MS`, 200): every batch received meanwhile
    /// goes in one transaction.
    public var telemetryFlushMillis: Int = 200
    /// TLS (`EXAMHUB_TLS_CERT`, `EXAMHUB_TLS_KEY`: PEM files of the certificate chain and its private key): when
    /// both are set the port serves `https://` and `wss://` only (TLS 1.2 or newer); SIGHUP reloads them. Unset
    /// (the default): plain HTTP, for a node behind a TLS-terminating load balancer.
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    /// Proxies whose `Forwarded` / `X-Forwarded-For` headers name the client (`EXAMHUB_TRUSTED_PROXIES`,
    /// addresses and CIDR blocks; default none: the TCP peer is the client). Used for the per-IP limit and logs.
    public var trustedProxies: TrustedProxies = .none
    /// permessage-deflate on `/v1/socket` (`EXAMHUB_COMPRESSION` and friends, see ``CompressionConfiguration``).
    public var compression = CompressionConfiguration()

    public init() {}

    /// Checks the combination of values; the error names the offending setting.
    public func validate() throws(HubError) {
        func fail(_ m: String) -> HubError { HubError(.badRequest, m) }
        guard (0...65535).contains(port) else { throw fail("EXAMHUB_PORT must be 0-65535") }
        guard maxMessageBytes >= 1024, maxMessageBytes <= 64 * 1_048_576 else {
            throw fail("EXAMHUB_MAX_MESSAGE_BYTES must be between 1 KiB and 64 MiB")
        }
        guard authTimeoutSeconds > 0 else { throw fail("EXAMHUB_AUTH_TIMEOUT must be positive") }
        guard headerTimeoutSeconds > 0 else { throw fail("EXAMHUB_HEADER_TIMEOUT must be positive") }
        guard heartbeatSeconds > 0 else { throw fail("EXAMHUB_HEARTBEAT_SEC must be positive") }
        guard ratePerSecond > 0, rateBurst >= 1 else { throw fail("EXAMHUB_RATE_LIMIT and _BURST must be positive") }
        guard maxConnections > 0 else { throw fail("EXAMHUB_MAX_CONNECTIONS must be positive") }
        guard maxConnectionsPerIP >= 0 else { throw fail("EXAMHUB_MAX_CONNECTIONS_PER_IP must be 0 (no limit) or more") }
        guard historySize >= 0, historyAgeSeconds >= 0 else { throw fail("history limits must be >= 0") }
        guard writeBufferLow > 0, writeBufferHigh > writeBufferLow else {
            throw fail("EXAMHUB_WRITE_HIGH must be above EXAMHUB_WRITE_LOW")
        }
        guard maxOutboundBytes >= writeBufferHigh else { throw fail("EXAMHUB_MAX_OUTBOUND must be >= EXAMHUB_WRITE_HIGH") }
        guard commitMaxBatch >= 1, commitWindowMillis >= 0, commitWindowMillis <= 1000 else {
            throw fail("EXAMHUB_COMMIT_MAX_BATCH must be >= 1 and EXAMHUB_COMMIT_WINDOW_MS 0-1000")
        }
        guard telemetryRatePerSecond > 0, telemetryBurst >= 1 else {
            throw fail("EXAMHUB_TELEMETRY_RATE and _BURST must be positive")
        }
        guard telemetryRetentionDays > 0 else { throw fail("EXAMHUB_TELEMETRY_RETENTION_DAYS must be positive") }
        guard (10...10_000).contains(telemetryFlushMillis) else { throw fail("EXAMHUB_TELEMETRY_FLUSH_MS must be 10-10000") }
        guard drainSeconds >= 0 else { throw fail("EXAMHUB_DRAIN_SEC must be >= 0") }
        guard (0...600).contains(drainSpreadSeconds) else { throw fail("EXAMHUB_DRAIN_SPREAD_SEC must be 0-600") }
        guard eventLoopThreads >= 1 else { throw fail("EXAMHUB_THREADS must be >= 1") }
        guard mallocTrimSeconds == 0 || (0.1...86_400).contains(mallocTrimSeconds) else {
            throw fail("EXAMHUB_MALLOC_TRIM_SEC must be 0 (never) or 0.1-86400")
        }
        switch (tlsCertificatePath, tlsKeyPath) {
        case (nil, nil), (.some, .some): break
        case (.some, nil): throw fail("EXAMHUB_TLS_CERT is set without EXAMHUB_TLS_KEY: set both, or neither")
        case (nil, .some): throw fail("EXAMHUB_TLS_KEY is set without EXAMHUB_TLS_CERT: set both, or neither")
        }
        try compression.validate()
        if allowedOrigins.contains("*") && !devMode {
            throw fail("EXAMHUB_ALLOWED_ORIGINS may be * only in dev mode")
        }
    }

    /// Whether an `Origin` header value is allowed (`nil`: no header, a non-browser client).
    public func isOriginAllowed(_ origin: String?) -> Bool {
        guard let origin else { return true }
        if devMode && allowedOrigins.contains("*") { return true }
        return allowedOrigins.contains(origin)
    }
}

