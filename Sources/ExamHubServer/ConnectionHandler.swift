import ExamHubDomain
import ExamHubWire
import Logging
import NIOCore
import NIOWebSocket

/// One WebSocket connection, after the upgrade: reassembles messages from NIOWebSocket's frames, validates
/// UTF-8 and close codes (the codec checks neither), enforces limits and flow control, and hands each complete
/// message to the op dispatch in `ConnectionHandler+Ops.swift`. Everything runs on the channel's event loop;
/// only token verification and store calls leave it, and their results are handed back to it.
final class ConnectionHandler: ChannelDuplexHandler, ChannelSubscriber {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = Never
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    /// What the socket speaks.
    enum Mode {
        /// The v1 JSON protocol at `/v1/socket`.
        case hub
        /// A plain echo at `/v1/echo` (dev mode), for conformance suites.
        case echo
    }

    enum AuthState {
        case waiting
        case verifying
        case authenticated(Principal)
    }

    let services: HubServices
    let mode: Mode
    let subscriberID: UInt64
    let connID: String
    /// The connection's logger (metadata `examhub.conn`, `examhub.user`), made when first needed: logging is
    /// rare, and an idle socket should not carry a logger of its own.
    var logger: Logger {
        var logger = services.logger
        logger[metadataKey: "examhub.conn"] = "\(connID)"
        if let remoteIP { logger[metadataKey: "examhub.ip"] = "\(remoteIP)" }
        if case .authenticated(let p) = auth { logger[metadataKey: "examhub.user"] = "\(p.tenant)/\(p.userID)" }
        return logger
    }
    var context: ChannelHandlerContext?
    /// The frame encoder's context: a write made through it skips the encoder (for pre-framed channel events).
    var framedWrites: ChannelHandlerContext?
    var auth: AuthState = .waiting
    /// Frames received while the `hello` token is being verified, handled once it is.
    var pendingWhileVerifying: [ByteBuffer] = []
    var subscriptions: Set<ChannelKey> = []
    /// The client's IP address (the TCP peer, or the client named by a trusted proxy), for the per-IP connection
    /// count and logs: the address the upgrade took its slot for (`HubServices.reserveConnection`); this handler
    /// gives the slot back when the socket closes.
    let remoteIP: String?
    /// permessage-deflate, when the upgrade agreed it (made in `handlerAdded`, on the socket's loop).
    var deflate: SocketDeflate?
    private let deflateAgreement: PerMessageDeflate.Agreement?
    /// Attempts this socket joined: it counts in their presence until it closes.
    var joinedAttempts: Set<String> = []
    /// Conversations this socket asked in: their LLM answers stop when it closes.
    var chatConversations: Set<String> = []
    /// Chat messages per second (2, burst 10): the assistant is not a flood target.
    var chatBucket = TokenBucket(ratePerSecond: 2, burst: 10, nowNanos: NIODeadline.now().uptimeNanoseconds)
    /// Subscribes waiting for a store lookup; they count against the subscription limit.
    var pendingSubscribes = 0
    /// Saves waiting for an attempt or exam lookup, kept in arrival order (a save never overtakes an earlier one).
    var saveBacklog: [PendingSave] = []
    var saveLookupInFlight = false
    /// Saves handed to the group commit and not yet answered; a submit waits until they are.
    var outstandingSaves = 0
    /// Work waiting for `outstandingSaves` to reach zero (a submit sent after saves).
    var afterSaves: [() -> Void] = []
    /// While above zero, channel events are held (an `attempt.join` reply must go out before them).
    var holdEvents = 0
    /// The op being dispatched (names the span of its work off the loop when tracing is on).
    var currentOp = ""
    var heldEvents: [OutboundEvent] = []
    var rateLimiter: RateLimiter
    var connSeq: UInt64 = 0

    // Message reassembly.
    private var message: ByteBuffer?
    private var messageIsText = false
    /// The message's first frame had RSV1 (permessage-deflate): inflated once complete.
    private var messageCompressed = false
    private var utf8 = UTF8Validator()

    // Lifecycle.
    private(set) var closing = false
    private var needsFlush = false
    private var readPending = false
    private var unwritableSince: NIODeadline?
    // Deadlines in the event loop's clock (`eventLoop.now`), checked by `tick`.
    private var lastHeard = NIODeadline.uptimeNanoseconds(0)
    private var lastPing = NIODeadline.uptimeNanoseconds(0)
    /// When an unauthenticated socket is closed with 4001.
    private var authDeadline: NIODeadline?
    /// When the token expires, closing the socket with 4001.
    private var expiryDeadline: NIODeadline?
    private var closeTimer: Scheduled<Void>?

    /// `remoteIP`: the address a connection slot was reserved for; the handler owns that slot from now on.
    init(
        services: HubServices, mode: Mode, principal: Principal?, remoteIP: String? = nil,
        deflate: PerMessageDeflate.Agreement? = nil
    ) {
        self.services = services
        self.mode = mode
        self.remoteIP = remoteIP
        self.deflateAgreement = mode == .hub ? deflate : nil
        let (n, id) = services.makeConnectionID()
        self.subscriberID = n
        self.connID = id
        self.rateLimiter = RateLimiter(
            ratePerSecond: services.configuration.ratePerSecond, burst: services.configuration.rateBurst,
            closeAfter: services.configuration.rateCloseAfter, nowNanos: NIODeadline.now().uptimeNanoseconds)
        if let principal { self.auth = .authenticated(principal) }
    }

    // MARK: Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // Writes made through the frame encoder's context start below it: how a pre-framed event goes out.
        framedWrites = try? context.pipeline.syncOperations.context(handlerType: WebSocketFrameEncoder.self)
        if let agreement = deflateAgreement, let registry = services.hub.registry(for: context.eventLoop) {
            let socketDeflate = SocketDeflate(
                agreement: agreement, configuration: services.configuration.compression,
                streams: registry.deflateStreams)
            services.reserveInflateMemory(socketDeflate.reservedBytes)
            deflate = socketDeflate
        }
        services.metrics.connectionsOpen.record(services.openConnections)
        services.metrics.connectionsTotal.increment()
        let now = context.eventLoop.now
        lastHeard = now
        lastPing = now
        switch auth {
        case .authenticated(let principal):
            setExpiry(principal)
        case .waiting, .verifying:
            if mode == .hub {
                authDeadline = now + .milliseconds(Int64(services.configuration.authTimeoutSeconds * 1000))
            }
        }
        services.hub.registry(for: context.eventLoop)?.addConnection(self)
        if mode == .hub { logger.debug("socket open") }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        tearDown(context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        tearDown(context: context)
        context.fireChannelInactive()
    }

    private func tearDown(context: ChannelHandlerContext) {
        guard self.context != nil else { return }
        for key in subscriptions {
            services.hub.unsubscribe(key, subscriberID: subscriberID, on: context.eventLoop)
        }
        subscriptions.removeAll()
        if !joinedAttempts.isEmpty {
            let now = WallClock.nowMillis()
            for attemptID in joinedAttempts { services.proctoring.socketLeft(attemptID: attemptID, now: now) }
            joinedAttempts.removeAll()
        }
        if let chat = services.chat {
            for cid in chatConversations { chat.cancel(conversationID: cid, connID: connID) }
            chatConversations.removeAll()
        }
        services.hub.registry(for: context.eventLoop)?.removeConnection(subscriberID)
        if let deflate {
            services.reserveInflateMemory(-deflate.reservedBytes)
            self.deflate = nil
        }
        closeTimer?.cancel()
        services.metrics.connectionsOpen.record(services.releaseConnection(from: remoteIP))
        self.context = nil
        framedWrites = nil
        if mode == .hub { logger.debug("socket closed") }
    }

    func authenticated(_ principal: Principal) {
        authDeadline = nil
        auth = .authenticated(principal)
        setExpiry(principal)
    }

    private func setExpiry(_ principal: Principal) {
        guard let context else { return }
        let remaining = max(0, principal.expiresAt * 1000 - WallClock.nowMillis())
        expiryDeadline = context.eventLoop.now + .milliseconds(remaining)
    }

    /// Called by the loop's registry a few times a second: the auth timeout, token expiry, heartbeat pings,
    /// dead peers and slow consumers, without a timer per socket.
    func tick(now: NIODeadline) {
        guard let context, !closing else { return }
        if let authDeadline, now >= authDeadline {
            return close(.unauthenticated)
        }
        if let expiryDeadline, now >= expiryDeadline {
            return close(.unauthenticated)
        }
        let beat = TimeAmount.seconds(Int64(services.configuration.heartbeatSeconds))
        if now - lastHeard > beat + beat {
            logger.debug("closing a dead peer")
            context.close(promise: nil)
            return
        }
        if let since = unwritableSince,
            now - since > .milliseconds(Int64(services.configuration.slowConsumerSeconds * 1000))
        {
            return slowConsumer()
        }
        if now - lastPing >= beat {
            lastPing = now
            let ping = WebSocketFrame(fin: true, opcode: .ping, data: context.channel.allocator.buffer(capacity: 0))
            context.writeAndFlush(wrapOutboundOut(ping), promise: nil)
        }
    }

    // MARK: Inbound frames

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        lastHeard = context.eventLoop.now
        guard frame.maskKey != nil else { return failProtocol("client frames must be masked") }
        guard !frame.rsv2, !frame.rsv3 else { return failProtocol("reserved bits set") }
        // RSV1 means "compressed" only on the first frame of a data message, and only after permessage-deflate
        // was agreed; anywhere else it is a protocol error (RFC 7692 section 6.1).
        if frame.rsv1 && (deflate == nil || (frame.opcode != .text && frame.opcode != .binary)) {
            return failProtocol("reserved bits set")
        }
        // Unmasked into a copy with room for a frame header in front: an echo, or a reply built in place, then goes
        // out without a separate header buffer.
        var payload = frame.data
        if let key = frame.maskKey {
            payload = payload.webSocketUnmaskedCopy(key: (key[0], key[1], key[2], key[3]), allocator: context.channel.allocator)
        }
        switch frame.opcode {
        case .text, .binary:
            guard message == nil else { return failProtocol("new message before the previous one ended") }
            guard !closing else { return }
            if frame.opcode == .binary && mode == .hub { return close(.binaryRefused) }
            messageIsText = frame.opcode == .text
            messageCompressed = frame.rsv1
            utf8 = UTF8Validator()
            message = payload
            checkFragment(payload, fin: frame.fin)
        case .continuation:
            guard message != nil else { return failProtocol("continuation without a message") }
            message?.writeImmutableBuffer(payload)
            checkFragment(payload, fin: frame.fin)
        case .ping:
            guard !closing else { return }
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: payload)
            context.write(wrapOutboundOut(pong), promise: nil)
            needsFlush = true
        case .pong:
            break
        case .connectionClose:
            receivedClose(payload)
        default:
            failProtocol("reserved opcode")
        }
    }

    private func checkFragment(_ payload: ByteBuffer, fin: Bool) {
        guard var current = message else { return }
        if current.readableBytes > services.configuration.maxMessageBytes {
            message = nil
            return close(.tooBig)
        }
        if messageIsText && !messageCompressed {
            let ok = payload.withUnsafeReadableBytes { utf8.feed($0) }
            guard ok, !fin || utf8.isComplete else {
                message = nil
                return close(.invalidPayload)
            }
        }
        guard fin else { return }
        message = nil
        if closing { return }
        if messageCompressed {
            guard let inflated = inflate(current) else { return }
            current = inflated
        }
        switch mode {
        case .echo:
            let frame = WebSocketFrame(fin: true, opcode: messageIsText ? .text : .binary, data: current)
            context?.write(wrapOutboundOut(frame), promise: nil)
            needsFlush = true
        case .hub:
            services.metrics.messagesIn.increment()
            handleMessage(&current)
        }
    }

    private func receivedClose(_ payload: ByteBuffer) {
        guard let context else { return }
        var data = payload
        var reply = CloseCode.normal
        if data.readableBytes == 1 {
            reply = .protocolError
        } else if data.readableBytes >= 2, let raw = data.readInteger(as: UInt16.self) {
            let validCode: Bool
            switch raw {
            case 1000...1003, 1007...1011, 3000...4999: validCode = true
            default: validCode = false
            }
            let reasonValid = data.withUnsafeReadableBytes { UTF8Validator.isValid($0) }
            if !validCode {
                reply = .protocolError
            } else if !reasonValid {
                reply = .invalidPayload
            } else {
                reply = CloseCode(code: raw, reason: "")
            }
        }
        if closing {
            // We sent our close first; this is the answer. Close the TCP connection.
            context.close(promise: nil)
            return
        }
        closing = true
        var buffer = context.channel.allocator.buffer(capacity: 2)
        buffer.writeInteger(reply.code)
        let frame = WebSocketFrame(fin: true, opcode: .connectionClose, data: buffer)
        context.writeAndFlush(wrapOutboundOut(frame)).whenComplete { [loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)] _ in
            loopBound.value.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if needsFlush {
            needsFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let wsError = error as? NIOWebSocketError {
            // WebSocketProtocolErrorHandler (added by the upgrader) has already sent the close frame.
            logger.debug("websocket protocol error", metadata: ["examhub.error": "\(wsError)"])
        } else {
            logger.debug("connection error", metadata: ["examhub.error": "\(error)"])
        }
        context.close(promise: nil)
    }

    /// Inflates a complete compressed message and checks its UTF-8; `nil` (and the socket closing with 1009 or
    /// 1007) when it is too large once inflated, not deflate data, or not UTF-8.
    private func inflate(_ compressed: ByteBuffer) -> ByteBuffer? {
        guard let deflate, let context else { return nil }
        let limit = services.configuration.maxMessageBytes
        let plain: ByteBuffer
        do {
            plain = try deflate.decompress(compressed, limit: limit, allocator: context.channel.allocator)
        } catch .tooLarge {
            close(.tooBig)
            return nil
        } catch {
            close(CloseCode(code: 1007, reason: "invalid compressed data"))
            return nil
        }
        services.metrics.compression.received(raw: plain.readableBytes, wire: compressed.readableBytes)
        if messageIsText && !plain.withUnsafeReadableBytes({ UTF8Validator.isValid($0) }) {
            close(.invalidPayload)
            return nil
        }
        return plain
    }

    // MARK: Outbound

    /// Writes one text frame without flushing (flushed at the end of the read batch or by `flushNow`).
    func send(_ buffer: ByteBuffer) {
        guard let context, !closing else { return }
        context.write(wrapOutboundOut(textFrame(buffer, allocator: context.channel.allocator)), promise: nil)
        services.metrics.messagesOut.increment()
        needsFlush = true
    }

    /// Flushes now: for writes made outside a read batch (after an async step).
    func flushNow() {
        guard let context, needsFlush else { return }
        needsFlush = false
        context.flush()
    }

    func deliverEvent(_ event: inout OutboundEvent) {
        guard let context, !closing else { return }
        if holdEvents > 0 {
            heldEvents.append(event)
            return
        }
        if unwritableSince != nil {
            let buffered = (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
            if buffered + event.frame.readableBytes > services.configuration.maxOutboundBytes {
                return slowConsumer()
            }
        }
        if let framedWrites, !compresses(event) {
            // The same bytes for every subscriber on this loop: framed once, written as they are (no frame to
            // build, no header buffer, one iovec).
            framedWrites.write(NIOAny(event.framed(allocator: context.channel.allocator)), promise: nil)
        } else {
            context.write(wrapOutboundOut(eventFrame(&event, allocator: context.channel.allocator)), promise: nil)
        }
        services.metrics.messagesOut.increment()
    }

    func flushDelivered() {
        context?.flush()
    }

    /// Writes the events held during an `attempt.join`, in order.
    func releaseHeldEvents() {
        guard holdEvents == 0, !heldEvents.isEmpty else { return }
        let held = heldEvents
        heldEvents.removeAll()
        for var event in held { deliverEvent(&event) }
        needsFlush = true
    }

    private func slowConsumer() {
        services.metrics.slowConsumerCloses.increment()
        logger.info("closing a slow consumer")
        close(CloseCode(code: 1008, reason: "slow consumer: reconnect and recover with since"), grace: .seconds(1))
    }

    // Back-pressure: stop reading while the peer is not reading what we write.
    func read(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            context.read()
        } else {
            readPending = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            unwritableSince = nil
            if readPending {
                readPending = false
                context.read()
            }
        } else if unwritableSince == nil {
            unwritableSince = context.eventLoop.now
        }
        context.fireChannelWritabilityChanged()
    }

    /// Starts the closing handshake with `code`; the TCP connection is closed when the peer answers or after
    /// `grace`.
    func close(_ code: CloseCode, grace: TimeAmount = .seconds(3)) {
        guard let context, !closing else { return }
        closing = true
        var buffer = context.channel.allocator.buffer(capacity: 2 + code.reason.utf8.count)
        buffer.writeInteger(code.code)
        buffer.writeString(String(code.reason.utf8.prefix(123)) ?? "")
        let frame = WebSocketFrame(fin: true, opcode: .connectionClose, data: buffer)
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
        needsFlush = false
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        closeTimer = context.eventLoop.scheduleTask(in: grace) {
            loopBound.value.close(promise: nil)
        }
    }

    private func failProtocol(_ why: String) {
        logger.debug("protocol violation", metadata: ["examhub.reason": "\(why)"])
        message = nil
        close(.protocolError)
    }
}

