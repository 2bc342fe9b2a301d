import ExamHubDomain
import ExamHubWire
import NIOCore

/// The v1 ops of PROTOCOL.md section 3 that this node serves, dispatched from one complete text message.
extension ConnectionHandler {
    func handleMessage(_ buffer: inout ByteBuffer) {
        switch rateLimiter.admit(nowNanos: NIODeadline.now().uptimeNanoseconds) {
        case .allow:
            break
        case .refuse:
            services.metrics.rateLimited.increment()
            let id = buffer.withUnsafeReadableBytes { try? Envelope.decode($0) }?.id
            return fail(HubError(.rateLimited, "too many messages; slow down"), id: id)
        case .close:
            services.metrics.rateLimited.increment()
            return close(.rateLimited)
        }
        let limits = JSONParser.Limits(maxDepth: services.configuration.maxJSONDepth)
        let decoded: Result<Envelope, Envelope.DecodeFailure> = buffer.withUnsafeReadableBytes { bytes in
            do throws(Envelope.DecodeFailure) { return .success(try Envelope.decode(bytes, limits: limits)) } catch {
                return .failure(error)
            }
        }
        let envelope: Envelope
        switch decoded {
        case .success(let e): envelope = e
        case .failure(let failure): return fail(failure.error, id: failure.id)
        }
        switch auth {
        case .waiting:
            guard envelope.op == "hello" else {
                return fail(.unauthorized("send hello with a token first"), id: envelope.id)
            }
            hello(envelope)
        case .verifying:
            if pendingWhileVerifying.count < 32 {
                pendingWhileVerifying.append(buffer)
            } else {
                fail(HubError(.rateLimited, "wait for the hello reply"), id: envelope.id)
            }
        case .authenticated(let principal):
            dispatch(envelope, principal: principal)
        }
    }

    private func dispatch(_ envelope: Envelope, principal: Principal) {
        currentOp = envelope.op
        do throws(HubError) {
            switch envelope.op {
            case "ping":
                reply(envelope.id) { buffer in
                    ServerFrame.writeKey(into: &buffer, "serverTime", first: true)
                    buffer.writeJSONTimestamp(millis: WallClock.nowMillis())
                }
            case "hello":
                throw .badRequest("already authenticated; use refresh to replace the token")
            case "refresh":
                try refresh(envelope, principal: principal)
            case "subscribe":
                try subscribe(envelope, principal: principal)
            case "unsubscribe":
                let name = try channelName(envelope)
                let key = ChannelKey(tenant: principal.tenant, name: name)
                if subscriptions.remove(key) != nil, let loop = context?.eventLoop {
                    services.hub.unsubscribe(key, subscriberID: subscriberID, on: loop)
                }
                reply(envelope.id) { _ in }
            case "publish":
                try publish(envelope, principal: principal)
            case "attempt.join":
                try attemptJoin(envelope, principal: principal)
            case "answer.save":
                try answerSave(envelope, principal: principal)
            case "attempt.submit":
                try attemptSubmit(envelope, principal: principal)
            case "telemetry":
                try telemetry(envelope, principal: principal)
            case "proctor.watch":
                try proctorWatch(envelope, principal: principal)
            case "proctor.action":
                try proctorAction(envelope, principal: principal)
            case "chat.send":
                try chatSend(envelope, principal: principal)
            case "chat.cancel":
                try chatCancel(envelope, principal: principal)
            default:
                throw .badRequest("unknown op \"\(envelope.op.prefix(64))\"")
            }
        } catch {
            fail(error, id: envelope.id)
        }
    }

    // MARK: Replies

    /// Sends an ok reply when the request had an id.
    func reply(_ id: Int64?, _ writeData: (inout ByteBuffer) -> Void) {
        guard let id, let context else { return }
        var buffer = context.channel.allocator.webSocketPayloadBuffer(capacity: 96)
        ServerFrame.writeOK(into: &buffer, id: id, writeData)
        send(buffer)
    }

    /// Sends an error reply, or an `error` event on channel `conn` when there is no id to answer.
    func fail(_ error: HubError, id: Int64?) {
        guard let context else { return }
        services.metrics.countError(error.code.rawValue)
        if let detail = error.debugDetail {
            logger.debug("request refused", metadata: ["examhub.code": "\(error.code)", "examhub.detail": "\(detail)"])
        }
        var buffer = context.channel.allocator.webSocketPayloadBuffer(capacity: 128)
        if let id {
            ServerFrame.writeError(into: &buffer, id: id, error: error)
        } else {
            connSeq += 1
            ServerFrame.writeEvent(
                into: &buffer, channel: "conn", seq: connSeq, type: "error", tsMillis: WallClock.nowMillis(),
                data: .object(["code": .string(error.code.rawValue), "message": .string(error.message)]))
        }
        send(buffer)
    }

    // MARK: hello and refresh

    private func hello(_ envelope: Envelope) {
        let token: String
        do throws(HubError) {
            token = try envelope.string("token", maxBytes: 8192)
        } catch {
            return fail(error, id: envelope.id)
        }
        auth = .verifying
        let verifier = services.verifier
        offLoop({ () async throws(HubError) -> Principal in try await verifier.verify(token) }) { handler, result in
            handler.finishHello(result, id: envelope.id)
        }
    }

    private func finishHello(_ result: Result<Principal, HubError>, id: Int64?) {
        switch result {
        case .failure(let error):
            services.metrics.authFailures.increment()
            auth = .waiting
            fail(error, id: id)
        case .success(let principal):
            authenticated(principal)
            reply(id) { buffer in
                self.writeHelloData(into: &buffer, principal)
            }
        }
        // Frames pipelined behind the hello: served now, or (after a refused hello) each answered `unauthorized`.
        var queued = pendingWhileVerifying
        pendingWhileVerifying.removeAll()
        for index in queued.indices {
            handleMessage(&queued[index])
        }
    }

    private func writeHelloData(into buffer: inout ByteBuffer, _ principal: Principal) {
        ServerFrame.writeKey(into: &buffer, "connId", first: true)
        buffer.writeJSONString(connID)
        ServerFrame.writeKey(into: &buffer, "user")
        buffer.writeStaticString("{\"id\":")
        buffer.writeJSONString(principal.userID)
        buffer.writeStaticString(",\"tenant\":")
        buffer.writeJSONString(principal.tenant)
        buffer.writeStaticString(",\"role\":")
        buffer.writeJSONString(principal.role.rawValue)
        buffer.writeStaticString("}")
        ServerFrame.writeKey(into: &buffer, "serverTime")
        buffer.writeJSONTimestamp(millis: WallClock.nowMillis())
        ServerFrame.writeKey(into: &buffer, "heartbeatSec")
        buffer.writeJSONInt(services.configuration.heartbeatSeconds)
        ServerFrame.writeKey(into: &buffer, "exp")
        buffer.writeJSONInt(principal.expiresAt)
    }

    private func refresh(_ envelope: Envelope, principal current: Principal) throws(HubError) {
        let token = try envelope.string("token", maxBytes: 8192)
        let verifier = services.verifier
        offLoop({ () async throws(HubError) -> Principal in try await verifier.verify(token) }) { handler, result in
            switch result {
            case .failure(let error):
                handler.services.metrics.authFailures.increment()
                handler.fail(error, id: envelope.id)
            case .success(let fresh):
                guard fresh.userID == current.userID, fresh.tenant == current.tenant, fresh.role == current.role else {
                    handler.fail(.forbidden("a refreshed token must be for the same user, tenant and role"), id: envelope.id)
                    break
                }
                handler.authenticated(fresh)
                handler.reply(envelope.id) { buffer in
                    ServerFrame.writeKey(into: &buffer, "exp", first: true)
                    buffer.writeJSONInt(fresh.expiresAt)
                }
            }
        }
    }

    // MARK: Channels

    private func channelName(_ envelope: Envelope) throws(HubError) -> ChannelName {
        let raw = try envelope.string("ch", maxBytes: 256)
        guard let name = ChannelName(raw) else {
            throw .badRequest("unknown channel \"\(raw.prefix(64))\": expected attempt:<id>, exam:<id>:proctor or chat:<id>")
        }
        return name
    }

    private func subscribe(_ envelope: Envelope, principal: Principal) throws(HubError) {
        let name = try channelName(envelope)
        var parsedSince: (epoch: String, seq: UInt64)?
        if let raw = try envelope.optionalObject("since") {
            guard case .string(let epoch)? = raw["epoch"], epoch.utf8.count <= 64 else {
                throw .badRequest("\"since.epoch\" must be a string")
            }
            guard let seq = raw["seq"], case .int(let n) = seq, n >= 0 else {
                throw .badRequest("\"since.seq\" must be a non-negative integer")
            }
            parsedSince = (epoch, UInt64(n))
        }
        let since = parsedSince
        let key = ChannelKey(tenant: principal.tenant, name: name)
        guard
            subscriptions.contains(key)
                || subscriptions.count + pendingSubscribes < services.configuration.maxSubscriptionsPerConnection
        else {
            throw HubError(.tooLarge, "at most \(services.configuration.maxSubscriptionsPerConnection) subscriptions per socket")
        }
        guard ChannelPolicy.needsResource(name) else {
            try ChannelPolicy.authorizeSubscribe(principal, to: name, resource: nil)
            return completeSubscribe(key, since: since, id: envelope.id)
        }
        let store = services.store
        pendingSubscribes += 1
        offLoop({ () async throws(HubError) -> ChannelResource in try await store.channelResource(name) }) {
            handler, result in
            handler.pendingSubscribes -= 1
            do throws(HubError) {
                try ChannelPolicy.authorizeSubscribe(principal, to: name, resource: try result.get())
                handler.completeSubscribe(key, since: since, id: envelope.id)
            } catch {
                handler.fail(error, id: envelope.id)
            }
        }
    }

    /// Registers the subscription, replies, then writes the missed events in order. With several nodes, a channel
    /// this node cannot answer for from memory is read from the shared channel log first.
    func completeSubscribe(_ key: ChannelKey, since: (epoch: String, seq: UInt64)?, id: Int64?) {
        guard let context else { return }
        let hub = services.hub
        let position = since.map { ChannelPosition(epoch: $0.epoch, seq: $0.seq) }
        guard !hub.answersFromMemory(key, since: position, now: WallClock.nowMillis()) else {
            let result = hub.subscribe(key, subscriber: self, on: context.eventLoop, since: since, now: WallClock.nowMillis())
            return finishSubscribe(key, result, id: id)
        }
        pendingSubscribes += 1
        offLoop({ () async throws(HubError) -> ChannelLogSlice in
            try await hub.readLog(key, since: position, now: WallClock.nowMillis())
        }) { handler, read in
            handler.pendingSubscribes -= 1
            switch read {
            case .failure(let error):
                handler.fail(error, id: id)
            case .success(let slice):
                guard let loop = handler.context?.eventLoop else { return }
                let result = hub.subscribe(
                    key, subscriber: handler, on: loop, since: position, slice: slice, now: WallClock.nowMillis())
                handler.finishSubscribe(key, result, id: id)
            }
        }
    }

    private func finishSubscribe(_ key: ChannelKey, _ result: ChannelHub.Subscribed, id: Int64?) {
        subscriptions.insert(key)
        reply(id) { buffer in
            ServerFrame.writeKey(into: &buffer, "epoch", first: true)
            buffer.writeJSONString(result.epoch)
            ServerFrame.writeKey(into: &buffer, "seq")
            buffer.writeJSONInt(result.seq)
            ServerFrame.writeKey(into: &buffer, "recovered")
            buffer.writeStaticString(result.recovered ? "true" : "false")
        }
        for frame in result.replay { send(frame) }
    }

    private func publish(_ envelope: Envelope, principal: Principal) throws(HubError) {
        let name = try channelName(envelope)
        try ChannelPolicy.authorizePublish(principal, to: name, resource: nil)
        let type = try envelope.string("type", maxBytes: 64)
        guard !type.isEmpty else { throw .badRequest("\"type\" must not be empty") }
        let data = envelope.fields["data"] ?? .object([:])
        guard case .object = data else { throw .badRequest("\"data\" must be an object") }
        let key = ChannelKey(tenant: principal.tenant, name: name)
        guard ChannelPolicy.needsResource(name) else {
            return completePublish(key, type: type, data: data, id: envelope.id)
        }
        let store = services.store
        offLoop({ () async throws(HubError) -> ChannelResource in try await store.channelResource(name) }) {
            handler, result in
            do throws(HubError) {
                try ChannelPolicy.authorizePublish(principal, to: name, resource: try result.get())
                handler.completePublish(key, type: type, data: data, id: envelope.id)
            } catch {
                handler.fail(error, id: envelope.id)
            }
        }
    }

    private func completePublish(_ key: ChannelKey, type: String, data: JSONValue, id: Int64?) {
        let hub = services.hub
        guard hub.relay != nil, id != nil else {
            if let published = hub.publish(key, type: type, data: data, now: WallClock.nowMillis()) {
                replyPublished(ChannelPosition(epoch: published.epoch, seq: published.seq), id: id)
            }
            return
        }
        // Several nodes: the shared channel log numbers the event; the answer waits for its commit.
        offLoop({ () async throws(HubError) -> ChannelPosition in
            try await hub.publishAcknowledged(key, type: type, data: data, now: WallClock.nowMillis())
        }) { handler, result in
            switch result {
            case .failure(let error): handler.fail(error, id: id)
            case .success(let position): handler.replyPublished(position, id: id)
            }
        }
    }

    private func replyPublished(_ position: ChannelPosition, id: Int64?) {
        reply(id) { buffer in
            ServerFrame.writeKey(into: &buffer, "epoch", first: true)
            buffer.writeJSONString(position.epoch)
            ServerFrame.writeKey(into: &buffer, "seq")
            buffer.writeJSONInt(position.seq)
        }
    }
}
