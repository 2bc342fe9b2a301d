import ExamHubAuth
import ExamHubDomain
import ExamHubIntents
import ExamHubLLM
import ExamHubProctoring
import ExamHubStore
import ExamHubWire
import Logging
import NIOConcurrencyHelpers
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What every connection and route shares: configuration, the channel hub, the store, the token verifier,
/// metrics, and the node's connection bookkeeping. Immutable or lock-protected; safe from any loop.
final class HubServices: Sendable {
    let configuration: HubConfiguration
    let hub: ChannelHub
    let store: any Store
    let verifier: TokenVerifier
    let metrics: HubMetrics
    let logger: Logger
    let batcher: SaveBatcher
    let directory: AttemptDirectory
    let proctoring: ProctoringService
    /// The assistant, when this node has one (intents loaded at start).
    let chat: ChatService?
    /// Signs the tokens of `GET /demo/token`; set only in dev mode, where the node knows its HS256 secret.
    let devTokenMinter: TokenMinter?
    /// The other nodes sharing the database, when there are (see ``ClusterRelay``).
    let cluster: (any ClusterRelay)?
    /// Connection slots taken on this node: open WebSocket connections plus upgrades under way that passed the
    /// limits, in all and per remote IP address (kept only when a per-IP limit is configured).
    private let slots = NIOLockedValueBox(ConnectionSlots())
    let draining = NIOLockedValueBox(false)
    /// The TLS context when the node serves TLS itself.
    let tls: TLSCertificateStore?
    /// Bytes of `EXAMHUB_COMPRESSION_MEMORY_MB` held by sockets' own inflaters (clients keeping their context).
    let inflateMemoryInUse = NIOLockedValueBox(0)
    private let nextID = NIOLockedValueBox<UInt64>(0)
    let nodePrefix: String

    init(
        configuration: HubConfiguration, hub: ChannelHub, store: any Store, verifier: TokenVerifier, metrics: HubMetrics,
        logger: Logger, batcher: SaveBatcher? = nil, profiles: ProfileLibrary = ProfileLibrary(),
        assistant: AssistantSetup? = nil, devTokenMinter: TokenMinter? = nil, cluster: (any ClusterRelay)? = nil,
        tls: TLSCertificateStore? = nil
    ) {
        self.tls = tls
        self.devTokenMinter = configuration.devMode ? devTokenMinter : nil
        self.cluster = cluster
        self.chat = assistant.map {
            ChatService(catalog: $0.catalog, gateway: $0.gateway, store: store, hub: hub, metrics: metrics, logger: logger)
        }
        self.batcher = batcher ?? SaveBatcher(store: store, logger: logger)
        self.proctoring = ProctoringService(
            library: profiles, hub: hub,
            writer: TelemetryWriter(
                store: store, logger: logger, metrics: metrics, retentionDays: configuration.telemetryRetentionDays),
            configuration: configuration, metrics: metrics, cluster: cluster)
        self.directory = AttemptDirectory(store: store)
        self.configuration = configuration
        self.hub = hub
        self.store = store
        self.verifier = verifier
        self.metrics = metrics
        self.logger = logger
        self.nodePrefix = String(UInt32.random(in: 0...UInt32.max), radix: 36)
    }

    func makeConnectionID() -> (UInt64, String) {
        let n = nextID.withLockedValue { value -> UInt64 in
            value += 1
            return value
        }
        return (n, "c-\(nodePrefix)-\(String(n, radix: 36))")
    }

    var isDraining: Bool { draining.withLockedValue { $0 } }

    /// Open WebSocket connections on this node (upgrades under way included).
    var openConnections: Int { slots.withLockedValue { $0.open } }

    /// Takes a connection slot for a socket from `ip` if `EXAMHUB_MAX_CONNECTIONS` and
    /// `EXAMHUB_MAX_CONNECTIONS_PER_IP` allow one, checking and counting in one step: upgrades that race each other
    /// (on several event loops, or while their tokens are verified) cannot overshoot a limit. The slot is given
    /// back with `releaseConnection(from:)`.
    func reserveConnection(from ip: String?) -> ConnectionSlots.Refusal? {
        let config = configuration
        return slots.withLockedValue { slots in
            slots.reserve(ip: config.maxConnectionsPerIP > 0 ? ip : nil, max: config.maxConnections,
                maxPerIP: config.maxConnectionsPerIP)
        }
    }

    /// The permessage-deflate agreement for an upgrade offering `extensionHeaders` (`Sec-WebSocket-Extensions`
    /// lines), or `nil`: compression off, nothing offered, or nothing acceptable. Clients may keep their
    /// compression context while the memory budget has room (a soft limit: upgrades racing for the last bytes may
    /// pass it by a few sockets).
    func negotiateDeflate(_ extensionHeaders: [String]) -> PerMessageDeflate.Agreement? {
        let settings = configuration.compression
        guard settings.enabled, !extensionHeaders.isEmpty else { return nil }
        let offers = PerMessageDeflate.offers(in: extensionHeaders)
        let inUse = inflateMemoryInUse.withLockedValue { $0 }
        guard var agreement = PerMessageDeflate.negotiate(offers, policy: settings.policy(inflateBytesInUse: inUse))
        else { return nil }
        if !agreement.clientNoContextTakeover,
            inUse + CompressionConfiguration.inflaterCost(windowBits: agreement.clientWindowBits)
                > settings.memoryBudgetBytes,
            let shared = PerMessageDeflate.negotiate(
                offers, policy: .init(maxWindowBits: settings.maxWindowBits, allowClientContextTakeover: false))
        {
            agreement = shared
        }
        return agreement
    }

    /// Takes (`bytes` > 0) or gives back (< 0) compression memory budget.
    func reserveInflateMemory(_ bytes: Int) {
        guard bytes != 0 else { return }
        inflateMemoryInUse.withLockedValue { $0 += bytes }
    }

    /// Gives back a slot taken by `reserveConnection(from:)`; returns the connections still open.
    @discardableResult
    func releaseConnection(from ip: String?) -> Int {
        let perIP = configuration.maxConnectionsPerIP > 0
        return slots.withLockedValue { $0.release(ip: perIP ? ip : nil) }
    }
}

/// The node's connection count, in all and per IP address, as one value so a check and its count are one step.
struct ConnectionSlots {
    enum Refusal {
        /// `EXAMHUB_MAX_CONNECTIONS` reached.
        case full
        /// `EXAMHUB_MAX_CONNECTIONS_PER_IP` reached for this address.
        case tooManyFromAddress
    }

    private(set) var open = 0
    private(set) var perIP: [String: Int] = [:]

    /// Counts one more socket (from `ip`, when per-IP counting is on) unless a limit is reached.
    mutating func reserve(ip: String?, max: Int, maxPerIP: Int) -> Refusal? {
        guard open < max else { return .full }
        if let ip {
            let n = perIP[ip] ?? 0
            guard maxPerIP <= 0 || n < maxPerIP else { return .tooManyFromAddress }
            perIP[ip] = n + 1
        }
        open += 1
        return nil
    }

    mutating func release(ip: String?) -> Int {
        open = Swift.max(0, open - 1)
        if let ip, let n = perIP[ip] { perIP[ip] = n > 1 ? n - 1 : nil }
        return open
    }
}

/// What the assistant needs: the validated intent files and the LLM gateway (nil or not enabled: intents only).
public struct AssistantSetup: Sendable {
    public var catalog: IntentCatalog
    public var gateway: LLMGateway?

    public init(catalog: IntentCatalog, gateway: LLMGateway?) {
        self.catalog = catalog
        self.gateway = gateway
    }
}

/// Wall-clock time in milliseconds since 1970 (the protocol's clock; `NIODeadline` is monotonic).
enum WallClock {
    static func nowMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}
