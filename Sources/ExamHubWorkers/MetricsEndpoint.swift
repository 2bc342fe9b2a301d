import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle

/// A tiny HTTP endpoint for a worker running alone (`examhub worker … --metrics-port`): `GET /metrics` (Prometheus
/// text) and `GET /healthz`. Everything else is 404. Runs until graceful shutdown.
public final class MetricsEndpoint: Service, Sendable {
    let host: String
    let port: Int
    let registry: PrometheusCollectorRegistry
    let logger: Logger

    public init(host: String, port: Int, registry: PrometheusCollectorRegistry, logger: Logger) {
        self.host = host
        self.port = port
        self.registry = registry
        self.logger = logger
    }

    public func run() async throws {
        let registry = self.registry
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(registry: registry))
                }
            }
            .bind(host: host, port: port).get()
        logger.info("worker metrics listening", metadata: ["examhub.address": "\(channel.localAddress.map { "\($0)" } ?? "")"])
        try? await gracefulShutdown()
        try? await channel.close()
    }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let registry: PrometheusCollectorRegistry
        var head: HTTPRequestHead?

        init(registry: PrometheusCollectorRegistry) { self.registry = registry }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h): head = h
            case .body: break
            case .end:
                guard let h = head else { return }
                let (status, type, body): (HTTPResponseStatus, String, String)
                switch (h.method, h.uri.split(separator: "?").first.map(String.init) ?? h.uri) {
                case (.GET, "/metrics"): (status, type, body) = (.ok, "text/plain; version=0.0.4", registry.emitToString())
                case (.GET, "/healthz"): (status, type, body) = (.ok, "application/json", #"{"ok":true}"#)
                default: (status, type, body) = (.notFound, "application/json", #"{"error":{"code":"not_found","message":"no such route"}}"#)
                }
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: type)
                headers.add(name: "Content-Length", value: String(body.utf8.count))
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: status, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                head = nil
            }
        }
    }
}
