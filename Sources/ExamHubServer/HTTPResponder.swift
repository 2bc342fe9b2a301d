import ExamHubDomain
import ExamHubWire
import NIOCore
import NIOHTTP1

/// The HTTP routes of PROTOCOL.md section 6 that live on this node (`/healthz`, `/readyz`, `/metrics`), the
/// browser client and dev-mode demo pages (`HTTPResponder+Client.swift`), the answers to refused WebSocket
/// upgrades, and JSON errors for everything else. Also enforces the request timeout (slow-loris protection): a
/// connection must deliver a complete request, head and body, within `EXAMHUB_HEADER_TIMEOUT` of opening (or of
/// the previous response on a kept-alive connection), or it is closed. The WebSocket upgrade request is covered
/// too: this handler is removed when the upgrade completes, which cancels the timer, so an upgraded socket does
/// no extra work for it.
final class HTTPResponder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let services: HubServices
    private let upgrade: UpgradeState
    private var head: HTTPRequestHead?
    private var bodyBytes = 0
    private var body: [UInt8] = []
    private var headTimer: Scheduled<Void>?
    /// Largest request body accepted (1 MiB).
    static let maxBody = 1_048_576

    init(services: HubServices, upgrade: UpgradeState) {
        self.services = services
        self.upgrade = upgrade
    }

    func handlerAdded(context: ChannelHandlerContext) {
        armHeadTimer(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        headTimer?.cancel()
    }

    private func armHeadTimer(context: ChannelHandlerContext) {
        headTimer?.cancel()
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let timeout = TimeAmount.milliseconds(Int64(services.configuration.headerTimeoutSeconds * 1000))
        headTimer = context.eventLoop.scheduleTask(in: timeout) {
            loopBound.value.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            bodyBytes = 0
            body.removeAll()
        case .body(let chunk):
            bodyBytes += chunk.readableBytes
            if bodyBytes <= Self.maxBody { body.append(contentsOf: chunk.readableBytesView) }
        case .end:
            headTimer?.cancel()
            headTimer = nil
            guard let head else { return }
            self.head = nil
            if bodyBytes > Self.maxBody {
                return respondError(context: context, head: head, HubError(.tooLarge, "request body too large"))
            }
            route(context: context, head: head)
        }
    }

    private func route(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        if HTTPAPI.matches(method: head.method, path: path) {
            return api(context: context, head: head, path: path)
        }
        if Self.isClientPath(path) {
            return clientRoute(context: context, head: head, path: path)
        }
        switch (head.method, path) {
        case (.GET, "/healthz"):
            respond(context: context, head: head, status: .ok, json: "{\"status\":\"ok\"}")
        case (.GET, "/readyz"):
            readiness(context: context, head: head)
        case (.GET, "/metrics"):
            var buffer = context.channel.allocator.buffer(capacity: 4096)
            buffer.writeString(services.metrics.render())
            respond(context: context, head: head, status: .ok, contentType: "text/plain; version=0.0.4", body: buffer)
        case (.GET, "/v1/socket"), (.GET, "/v1/echo"):
            if path == "/v1/echo" && !services.configuration.devMode {
                return respondError(context: context, head: head, .notFound("no route for GET /v1/echo"))
            }
            // The upgrader declined: say why.
            var refusal = upgrade.refusal ?? .notAnUpgrade
            upgrade.refusal = nil
            var headers = HTTPHeaders()
            if refusal.status == .badRequest, let version = head.headers.first(name: "Sec-WebSocket-Version"),
                version != "13"
            {
                // RFC 6455 section 4.4: say which version this server speaks.
                refusal = .unsupportedVersion
                headers.add(name: "Sec-WebSocket-Version", value: "13")
            }
            respondError(context: context, head: head, refusal.error, status: refusal.status, headers: headers)
        default:
            let known = ["/healthz", "/readyz", "/metrics", "/v1/socket", "/v1/echo"]
            if known.contains(path) {
                respondError(
                    context: context, head: head, HubError(.badRequest, "method \(head.method) not allowed"),
                    status: .methodNotAllowed)
            } else {
                respondError(context: context, head: head, .notFound("no route for \(head.method) \(path.prefix(128))"))
            }
        }
    }

    private func readiness(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let draining = services.isDraining
        let store = services.store
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.makeFutureWithTask { () -> Bool in
            do {
                try await store.ping()
                return true
            } catch {
                return false
            }
        }.whenSuccess { storeOK in
            let (responder, context) = loopBound.value
            let ready = storeOK && !draining
            responder.respond(
                context: context, head: head, status: ready ? .ok : .serviceUnavailable,
                json: "{\"ready\":\(ready),\"store\":\(storeOK),\"draining\":\(draining)}")
        }
    }

    private func api(context: ChannelHandlerContext, head: HTTPRequestHead, path: String) {
        let api = HTTPAPI(services: services)
        let body = self.body
        self.body = []
        let authorization = head.headers.first(name: "Authorization")
        let query = head.uri.split(separator: "?", maxSplits: 1).dropFirst().first.map(String.init)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.makeFutureWithTask {
            await api.handle(method: head.method, path: path, query: query, authorization: authorization, body: body)
        }.whenSuccess { response in
            let (responder, context) = loopBound.value
            var buffer = context.channel.allocator.buffer(capacity: 256)
            buffer.writeJSONValue(response.body)
            responder.respond(
                context: context, head: head, status: response.status, contentType: "application/json", body: buffer)
        }
    }

    func respondError(
        context: ChannelHandlerContext, head: HTTPRequestHead, _ error: HubError, status: HTTPResponseStatus? = nil,
        headers: HTTPHeaders = [:]
    ) {
        var body = context.channel.allocator.buffer(capacity: 128)
        body.writeStaticString("{\"error\":")
        ServerFrame.writeErrorObject(into: &body, error)
        body.writeStaticString("}")
        respond(
            context: context, head: head, status: status ?? HTTPResponseStatus(statusCode: error.code.httpStatus),
            contentType: "application/json", body: body, headers: headers)
    }

    func respond(context: ChannelHandlerContext, head: HTTPRequestHead, status: HTTPResponseStatus, json: String) {
        var body = context.channel.allocator.buffer(capacity: json.utf8.count)
        body.writeString(json)
        respond(context: context, head: head, status: status, contentType: "application/json", body: body)
    }

    /// Writes a response. `extra` headers may set `Cache-Control` (default `no-store`) and add others; a 304 has
    /// no body.
    func respond(
        context: ChannelHandlerContext, head: HTTPRequestHead, status: HTTPResponseStatus, contentType: String,
        body: ByteBuffer, headers extra: HTTPHeaders = [:]
    ) {
        let keepAlive = head.isKeepAlive && !services.isDraining
        var headers = extra
        headers.add(name: "Content-Type", value: contentType)
        if status != .notModified { headers.add(name: "Content-Length", value: String(body.readableBytes)) }
        if !extra.contains(name: "Cache-Control") { headers.add(name: "Cache-Control", value: "no-store") }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let responseHead = HTTPResponseHead(version: head.version, status: status, headers: headers)
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        if head.method != .HEAD && status != .notModified {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { loopBound.value.close(promise: nil) }
        }
        if keepAlive { armHeadTimer(context: context) }
    }
}

/// Per-socket state shared by the upgrader's two callbacks and the HTTP responder: the principal from a bearer
/// token, and why an upgrade was refused. Touched only on the channel's event loop.
final class UpgradeState: @unchecked Sendable {
    /// Why the upgrader declined, for the HTTP answer.
    struct Refusal {
        var status: HTTPResponseStatus
        var error: HubError

        static let notAnUpgrade = Refusal(
            status: .badRequest, error: .badRequest("this route expects a WebSocket upgrade (RFC 6455)"))
        static let origin = Refusal(status: .forbidden, error: .forbidden("origin not allowed"))
        static let draining = Refusal(
            status: .serviceUnavailable, error: HubError(.unavailable, "server draining, reconnect elsewhere"))
        static let full = Refusal(
            status: .serviceUnavailable, error: HubError(.unavailable, "connection limit reached"))
        static let tooManyFromAddress = Refusal(
            status: .tooManyRequests, error: HubError(.rateLimited, "too many connections from your address"))
        static let badKey = Refusal(
            status: .badRequest, error: .badRequest("Sec-WebSocket-Key must be 16 bytes in base64 (RFC 6455)"))
        static let unsupportedVersion = Refusal(
            status: HTTPResponseStatus(statusCode: 426),
            error: .badRequest("unsupported WebSocket version: this server speaks version 13 (RFC 6455)"))
    }

    /// Whether a `Sec-WebSocket-Key` is the base64 form of 16 bytes: 22 characters of the base64 alphabet, then
    /// "==" (padding bits are not checked, as lenient base64 decoders do not).
    static func isValidKey(_ key: String?) -> Bool {
        guard let key else { return false }
        let bytes = Array(key.utf8)
        guard bytes.count == 24, bytes[22] == UInt8(ascii: "="), bytes[23] == UInt8(ascii: "=") else { return false }
        for b in bytes[..<22] {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "/"):
                continue
            default:
                return false
            }
        }
        return true
    }

    var principal: Principal?
    var refusal: Refusal?
    var mode: ConnectionHandler.Mode = .hub
    /// What permessage-deflate the 101 response agreed.
    var deflate: PerMessageDeflate.Agreement?
    /// Whether this socket holds a connection slot (`HubServices.reserveConnection`) not yet handed to its
    /// `ConnectionHandler`, and the address it was taken for (the client's,
    /// behind trusted proxies: also what logs show).
    var slotHeld = false
    var slotIP: String?

    /// Gives back the connection slot if this socket still holds one.
    func releaseSlot(_ services: HubServices) {
        guard slotHeld else { return }
        slotHeld = false
        services.releaseConnection(from: slotIP)
    }
}
