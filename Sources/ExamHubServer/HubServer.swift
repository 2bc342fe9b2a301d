import ExamHubAuth
import ExamHubDomain
import ExamHubProctoring
import ExamHubStore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import ServiceLifecycle

/// The socket server: HTTP/1.1 with the WebSocket upgrade at `/v1/socket` (and `/v1/echo` in dev mode), as a
/// swift-service-lifecycle `Service`. On graceful shutdown it stops accepting, closes every socket with 1001 spread
/// over `drainSpreadSeconds`, waits for them (at most `drainSeconds` more), and returns.
public final class HubServer: Service, Sendable {
    /// The subprotocol of PROTOCOL.md section 1.
    public static let subprotocol = "examhub.v1.json"

    private let services: HubServices
    private let group: MultiThreadedEventLoopGroup
    private let onServerRunning: @Sendable (SocketAddress) -> Void

    /// The channel hub, for components that publish events (and tests).
    public var hub: ChannelHub { services.hub }
    /// The group commit of saves: run it as a service started before this server (so it stops after it).
    public var saveBatcher: SaveBatcher { services.batcher }
    /// The deadline sweep: run it as a service started before this server.
    public let clockService: AttemptClockService
    /// Telemetry evidence writes, the retention purge and idle-attempt eviction: run it as a service started
    /// before this server (so the last evidence is written after the sockets close).
    public var proctoringService: some Service { services.proctoring }
    /// What a ``ClusterRelay`` feeds the events and presence of the other nodes into.
    public var clusterSink: any ClusterSink { HubClusterSink(hub: services.hub, proctoring: services.proctoring) }

    public init(
        configuration: HubConfiguration, store: any Store, verifier: TokenVerifier, metrics: HubMetrics = HubMetrics(),
        logger: Logger, profiles: ProfileLibrary = ProfileLibrary(), assistant: AssistantSetup? = nil,
        devTokenMinter: TokenMinter? = nil, cluster: (any ClusterRelay)? = nil, tls: TLSCertificateStore? = nil,
        onServerRunning: @escaping @Sendable (SocketAddress) -> Void = { _ in }
    ) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.eventLoopThreads)
        self.group = group
        let hub = ChannelHub(
            group: group, historySize: configuration.historySize, historyAgeSeconds: configuration.historyAgeSeconds,
            metrics: metrics, relay: cluster)
        let batcher = SaveBatcher(
            store: store, hub: hub,
            configuration: .init(maxBatch: configuration.commitMaxBatch, windowMillis: configuration.commitWindowMillis),
            logger: logger, metrics: metrics)
        self.services = HubServices(
            configuration: configuration, hub: hub, store: store, verifier: verifier, metrics: metrics, logger: logger,
            batcher: batcher, profiles: profiles, assistant: assistant,
            devTokenMinter: devTokenMinter, cluster: cluster, tls: tls)
        let proctoring = services.proctoring
        self.clockService = AttemptClockService(store: store, hub: hub, logger: logger) { attempt, now in
            proctoring.stateChanged(attempt, action: nil, now: now)
        }
        self.onServerRunning = onServerRunning
    }

    public func run() async throws {
        let services = self.services
        let config = services.configuration
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelOption(
                .writeBufferWaterMark,
                value: .init(low: config.writeBufferLow, high: config.writeBufferHigh))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try Self.addTLS(channel, services: services)
                    try Self.configurePipeline(channel, services: services)
                }
            }
            .bind(host: config.host, port: config.port).get()
        guard let address = channel.localAddress else { throw HubError(.internal, "server has no local address") }
        services.logger.info(
            "examhub listening",
            metadata: [
                "examhub.address": "\(address)", "examhub.dev": "\(config.devMode)",
                "examhub.tls": "\(services.tls.map { "on, serial \($0.summary.serialHex)" } ?? "off")",
            ])
        onServerRunning(address)

        let sweeper = group.next().scheduleRepeatedTask(initialDelay: .seconds(30), delay: .seconds(30)) { _ in
            services.hub.sweep(now: WallClock.nowMillis())
        }
        try? await gracefulShutdown()
        sweeper.cancel()
        await drain(serverChannel: channel)
        try await group.shutdownGracefully()
    }

    /// Readiness turns false and upgrades are refused at once; the listener closes; every socket gets 1001, the
    /// closes spread evenly over `drainSpreadSeconds` (per event loop, in slices: see `DrainSchedule`) so that the
    /// clients reconnect to the other nodes over that window, not in one burst. Sockets keep working until their
    /// slice comes. Returns when every socket is gone, or `drainSpreadSeconds + drainSeconds` after it began; the
    /// services started before this one (the group commit among them) then finish their in-flight work.
    private func drain(serverChannel: any Channel) async {
        let services = self.services
        let config = services.configuration
        let started = NIODeadline.now()
        services.draining.withLockedValue { $0 = true }
        services.logger.info(
            "draining: closing sockets with 1001",
            metadata: [
                "examhub.sockets": "\(services.openConnections)",
                "examhub.spread_sec": "\(config.drainSpreadSeconds)",
            ])
        try? await serverChannel.close()
        let window = TimeAmount.nanoseconds(Int64(config.drainSpreadSeconds * 1_000_000_000))
        for loop in group.makeIterator() {
            guard let registry = services.hub.registry(for: loop) else { continue }
            loop.execute { registry.drain(over: window) }
        }
        let deadline = started + window + .nanoseconds(Int64(config.drainSeconds * 1_000_000_000))
        while services.openConnections > 0 && NIODeadline.now() < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let left = services.openConnections
        services.logger.info(
            "drained",
            metadata: [
                "examhub.sockets_left": "\(left)",
                "examhub.drain_sec": "\(Double((NIODeadline.now() - started).nanoseconds / 1_000_000) / 1000)",
            ])
    }

    /// TLS first in the pipeline when the node serves it: each accepted connection takes the context current now
    /// (a SIGHUP reload changes it for later connections only).
    static func addTLS(_ channel: any Channel, services: HubServices) throws {
        guard let tls = services.tls else { return }
        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.context), name: "examhub.tls")
    }

    static func configurePipeline(_ channel: any Channel, services: HubServices) throws {
        let config = services.configuration
        let state = UpgradeState()
        let upgrader = NIOWebSocketServerUpgrader(
            maxFrameSize: config.maxMessageBytes,
            automaticErrorHandling: true,
            shouldUpgrade: { channel, head in
                shouldUpgrade(channel: channel, head: head, state: state, services: services)
            },
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    // No slot: the socket closed while upgrading and its slot was given back.
                    guard state.slotHeld else { throw ChannelError.ioOnClosedChannel }
                    let handler = ConnectionHandler(
                        services: services, mode: state.mode, principal: state.principal, remoteIP: state.slotIP,
                        deflate: state.deflate)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    state.slotHeld = false  // the handler gives the slot back when the socket closes
                }
            })
        // A slot reserved by `shouldUpgrade` whose upgrade never completed (the peer left, or the request timed
        // out, while the token was verified) is given back when the socket closes.
        channel.closeFuture.whenComplete { _ in state.releaseSlot(services) }
        let responder = HTTPResponder(services: services, upgrade: state)
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
            withServerUpgrade: (
                upgraders: [upgrader],
                completionHandler: { context in
                    context.pipeline.removeHandler(name: "examhub.http", promise: nil)
                }
            ),
            withErrorHandling: true)
        try channel.pipeline.syncOperations.addHandler(responder, name: "examhub.http")
    }

    private static func shouldUpgrade(
        channel: any Channel, head: HTTPRequestHead, state: UpgradeState, services: HubServices
    ) -> EventLoopFuture<HTTPHeaders?> {
        let config = services.configuration
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        switch path {
        case "/v1/socket": state.mode = .hub
        case "/v1/echo" where config.devMode: state.mode = .echo
        default: return channel.eventLoop.makeSucceededFuture(nil)
        }
        func refuse(_ refusal: UpgradeState.Refusal) -> EventLoopFuture<HTTPHeaders?> {
            state.releaseSlot(services)
            services.metrics.connectionsRefused.increment()
            state.refusal = refusal
            return channel.eventLoop.makeSucceededFuture(nil)
        }
        // RFC 6455 section 4.2.1: an HTTP/1.1 GET whose Sec-WebSocket-Key is 16 bytes in base64 (NIO checks the
        // version and that the key is there, not its form nor the method).
        let atLeast11 = head.version.major > 1 || (head.version.major == 1 && head.version.minor >= 1)
        guard head.method == .GET, atLeast11 else { return refuse(.notAnUpgrade) }
        guard UpgradeState.isValidKey(head.headers.first(name: "Sec-WebSocket-Key")) else {
            return refuse(.badKey)
        }
        guard config.isOriginAllowed(head.headers.first(name: "Origin")) else { return refuse(.origin) }
        guard !services.isDraining else { return refuse(.draining) }
        // The client's address (named by a trusted proxy, or the TCP peer). Its slot is taken now, before the token
        // is verified, so that racing upgrades cannot overshoot a limit.
        let ip = config.trustedProxies.clientAddress(peer: channel.remoteAddress?.ipAddress, headers: head.headers)
        switch services.reserveConnection(from: ip) {
        case .full: return refuse(.full)
        case .tooManyFromAddress: return refuse(.tooManyFromAddress)
        case nil:
            state.slotHeld = true
            state.slotIP = ip
        }

        var headers = HTTPHeaders()
        if state.mode == .hub, let agreement = services.negotiateDeflate(head.headers["Sec-WebSocket-Extensions"]) {
            headers.add(name: "Sec-WebSocket-Extensions", value: agreement.responseHeader)
            state.deflate = agreement
        }
        // `canonicalForm` splits comma-separated values and trims the spaces around them.
        let offered = head.headers[canonicalForm: "Sec-WebSocket-Protocol"]
        if offered.contains(where: { $0 == Substring(subprotocol) }) {
            headers.add(name: "Sec-WebSocket-Protocol", value: subprotocol)
        }
        guard state.mode == .hub, let authorization = head.headers.first(name: "Authorization") else {
            return channel.eventLoop.makeSucceededFuture(headers)
        }
        guard let token = BearerToken.parse(authorization) else {
            return refuse(.init(status: .unauthorized, error: .unauthorized("Authorization must be a Bearer token")))
        }
        let verifier = services.verifier
        let headersToSend = headers
        return channel.eventLoop.makeFutureWithTask { () -> Result<Principal, HubError> in
            do throws(HubError) { return .success(try await verifier.verify(token)) } catch { return .failure(error) }
        }.map { result -> HTTPHeaders? in
            switch result {
            case .success(let principal):
                state.principal = principal
                return headersToSend
            case .failure(let error):
                state.releaseSlot(services)
                services.metrics.authFailures.increment()
                services.metrics.connectionsRefused.increment()
                state.refusal = .init(status: .unauthorized, error: error)
                return nil
            }
        }
    }
}

/// Reads `Authorization: Bearer <token>` (scheme case-insensitive, RFC 6750); `nil` for anything else.
enum BearerToken {
    static func parse(_ header: String?) -> String? {
        guard let header, header.count > 7, header.prefix(7).lowercased() == "bearer " else { return nil }
        let token = header.dropFirst(7).drop(while: { $0 == " " })
        let trimmed = token.reversed().drop(while: { $0 == " " }).reversed()
        return trimmed.isEmpty ? nil : String(trimmed)
    }
}
