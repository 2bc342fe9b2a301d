import ExamHubWire
import Histogram
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket

/// What a load connection does once its socket is open.
enum Workload: String, Sendable {
    /// Text frames on `/v1/echo`, echoed back.
    case echo
    /// `ping` ops on `/v1/socket` after `hello`.
    case ping
    /// `hello`, then nothing: idle authenticated sockets.
    case idle
}

/// Counters and a latency histogram for the connections of one event loop. Touched only on that loop.
final class LoopStats: @unchecked Sendable {
    var messages = 0
    var errors = 0
    var ready = 0
    var closedEarly = 0
    var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
}

/// One load connection: authenticates if needed, then keeps `inFlight` requests outstanding while `running`.
final class LoadHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let workload: Workload
    let inFlight: Int
    let token: String?
    let payload: String
    let stats: LoopStats
    let running: NIOLockedValueBox<Bool>
    let readyPromise: EventLoopPromise<Void>
    private var sendTimes: [UInt64] = []
    private var head = 0
    private var nextID: Int64 = 1
    private var authenticated = false

    init(workload: Workload, inFlight: Int, token: String?, payload: String, stats: LoopStats,
         running: NIOLockedValueBox<Bool>, readyPromise: EventLoopPromise<Void>) {
        self.workload = workload
        self.inFlight = inFlight
        self.token = token
        self.payload = payload
        self.stats = stats
        self.running = running
        self.readyPromise = readyPromise
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if workload == .echo {
            becameReady(context: context)
        } else {
            send(context: context, #"{"op":"hello","id":0,"token":"\#(token ?? "")"}"#, timed: false)
            context.flush()
        }
    }

    private func becameReady(context: ChannelHandlerContext) {
        authenticated = true
        stats.ready += 1
        readyPromise.succeed(())
    }

    /// Starts the request loop (called on this connection's loop once every connection is ready).
    func start(context: ChannelHandlerContext) {
        guard workload != .idle else { return }
        for _ in 0..<inFlight { sendRequest(context: context) }
        context.flush()
    }

    private func sendRequest(context: ChannelHandlerContext) {
        switch workload {
        case .echo: send(context: context, payload, timed: true)
        case .ping:
            nextID += 1
            send(context: context, #"{"op":"ping","id":\#(nextID)}"#, timed: true)
        case .idle: break
        }
    }

    private func send(context: ChannelHandlerContext, _ text: String, timed: Bool) {
        var buffer = context.channel.allocator.buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        if timed { sendTimes.append(NIODeadline.now().uptimeNanoseconds) }
        let frame = WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: buffer)
        context.write(wrapOutboundOut(frame), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            if !authenticated {
                let text = String(buffer: frame.data)
                if text.contains("\"ok\":true") { becameReady(context: context) } else {
                    stats.errors += 1
                    readyPromise.fail(LoadError.helloRefused(text))
                }
                return
            }
            if workload == .ping, frame.data.readableBytes > 0, !frame.data.readableBytesView.starts(with: Array(#"{"op":"reply","id":"#.utf8)) {
                stats.errors += 1
            }
            if head < sendTimes.count {
                let sent = sendTimes[head]
                head += 1
                if head > 4096 {
                    sendTimes.removeFirst(head)
                    head = 0
                }
                stats.latency.record(NIODeadline.now().uptimeNanoseconds - sent)
            }
            stats.messages += 1
            if running.withLockedValue({ $0 }) { sendRequest(context: context) }
        case .ping:
            var data = frame.data
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: data.readSlice(length: data.readableBytes) ?? data)
            context.write(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            stats.closedEarly += 1
            context.close(promise: nil)
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        stats.errors += 1
        readyPromise.fail(error)
        context.close(promise: nil)
    }
}

enum LoadError: Error {
    case helloRefused(String)
    case upgradeFailed
}

/// Sends the HTTP upgrade request once the TCP connection is up.
final class UpgradeRequester: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart
    let host: String
    let path: String
    let bearer: String?
    let extensions: String?

    init(host: String, path: String, bearer: String?, extensions: String? = nil) {
        self.host = host
        self.path = path
        self.bearer = bearer
        self.extensions = extensions
    }

    func channelActive(context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host)
        headers.add(name: "Content-Length", value: "0")
        headers.add(name: "Sec-WebSocket-Protocol", value: "examhub.v1.json")
        if let bearer { headers.add(name: "Authorization", value: "Bearer \(bearer)") }
        if let extensions { headers.add(name: "Sec-WebSocket-Extensions", value: extensions) }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A response that reaches here means the upgrade was refused.
        if case .head(let head) = unwrapInboundIn(data) {
            context.fireErrorCaught(LoadError.upgradeFailed)
            _ = head
        }
    }
}

/// Opens one WebSocket to the hub on `loop` (`Authorization: Bearer` on the upgrade), installs the handler that
/// `make` builds once upgraded, and succeeds when that handler reports ready through the promise it was given.
/// `transport` adds TLS first in the pipeline and permessage-deflate between the frame codec and the handler.
enum WebSocketConnector {
    static func connect<H: ChannelHandler>(
        loop: any EventLoop, host: String, port: Int, path: String, bearer: String?, transport: Transport = .plain,
        make: @escaping @Sendable (EventLoopPromise<Void>) -> H
    ) -> EventLoopFuture<(any Channel, NIOLoopBound<H>)> {
        let ready = loop.makePromise(of: Void.self)
        let handlerPromise = loop.makePromise(of: NIOLoopBound<H>.self)
        let bootstrap = ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                let upgrader = NIOWebSocketClientUpgrader(maxFrameSize: 1 << 20, upgradePipelineHandler: { channel, response in
                    channel.eventLoop.makeCompletedFuture {
                        if transport.compression, let stats = transport.wire[ObjectIdentifier(channel.eventLoop)] {
                            let agreement = PerMessageDeflate.clientAgreement(
                                responseLines: response.headers["Sec-WebSocket-Extensions"])
                            try channel.pipeline.syncOperations.addHandler(
                                ClientDeflateHandler(agreement: agreement, stats: stats))
                        }
                        let handler = make(ready)
                        try channel.pipeline.syncOperations.addHandler(handler)
                        if !transport.compression, let subscriber = handler as? SubscriberSocket {
                            // Broadcast subscribers read frames straight from the socket's bytes (see RawFrameReader):
                            // the reader goes in front of the handler, and NIO's frame decoder leaves (before the
                            // server sends anything: it answers the subscribe this socket has not sent yet).
                            let decoder = try channel.pipeline.syncOperations.context(
                                handlerType: ByteToMessageHandler<WebSocketFrameDecoder>.self)
                            try channel.pipeline.syncOperations.addHandler(
                                RawFrameReader(subscriber: subscriber), position: .after(decoder.handler))
                            channel.pipeline.syncOperations.removeHandler(context: decoder, promise: nil)
                        }
                        handlerPromise.succeed(NIOLoopBound(handler, eventLoop: channel.eventLoop))
                    }
                })
                return channel.eventLoop.makeCompletedFuture {
                    if let tls = transport.tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: nil))
                    }
                    let requester = UpgradeRequester(
                        host: "\(host):\(port)", path: path, bearer: bearer,
                        extensions: transport.compression ? Transport.offer : nil)
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(
                        withClientUpgrade: (upgraders: [upgrader], completionHandler: { ctx in
                            ctx.pipeline.removeHandler(name: "upgrade-requester", promise: nil)
                        }))
                    try channel.pipeline.syncOperations.addHandler(requester, name: "upgrade-requester")
                }
            }
        // Both promises always complete: a refused connection fails them here, and a socket that closes before its
        // handler said ready (upgrade refused, hub gone) fails them when it closes (a later failure is ignored).
        return bootstrap.connect(host: host, port: port).flatMapError { error in
            ready.fail(error)
            handlerPromise.fail(error)
            return loop.makeFailedFuture(error)
        }.flatMap { channel in
            channel.closeFuture.whenComplete { _ in
                ready.fail(LoadError.upgradeFailed)
                handlerPromise.fail(LoadError.upgradeFailed)
            }
            return ready.futureResult.and(handlerPromise.futureResult).map { (channel, $0.1) }
        }
    }
}

/// Single fields read from the text of a hub frame. The hub writes compact JSON with a fixed key order, so the first
/// occurrence of a key is the one meant; enough for a load tester, which must not pay for a full parse per frame.
enum FrameText {
    /// The first string value of `"name":"…"` in `text`.
    static func string(_ text: String, _ name: String) -> String? {
        guard let r = text.range(of: "\"\(name)\":\"") else { return nil }
        let rest = text[r.upperBound...]
        guard let end = rest.firstIndex(of: "\"") else { return nil }
        return String(rest[..<end])
    }

    /// The first integer value of `"name":N` in `text`.
    static func int(_ text: String, _ name: String) -> Int64? {
        guard let r = text.range(of: "\"\(name)\":") else { return nil }
        return Int64(text[r.upperBound...].prefix { $0.isNumber })
    }
}
