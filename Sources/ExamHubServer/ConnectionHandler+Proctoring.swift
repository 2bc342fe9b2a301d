import ExamHubDomain
import ExamHubProctoring
import ExamHubStore
import ExamHubWire
import NIOCore

/// `telemetry`, `proctor.watch` and `proctor.action` (PROTOCOL.md sections 3, 4 and 4a; issue 4).
extension ConnectionHandler {
    /// Most attempts a roster lists.
    static let maxRoster = 10_000

    func telemetry(_ envelope: Envelope, principal: Principal) throws(HubError) {
        guard principal.role == .candidate else { throw .forbidden("only candidates send telemetry") }
        let attemptID = try envelope.string("attemptId", maxBytes: 128)
        guard ChannelName.isValidID(attemptID) else { throw .notFound("no such attempt") }
        let events = envelope.fields["events"]
        let id = envelope.id
        let proctoring = services.proctoring
        // The hot path: the attempt is live on this node and its identity cached: no store, no hop.
        if let identity = services.directory.cachedIdentity(attemptID: attemptID) {
            try Self.checkOwner(identity, principal)
            if let ingested = try proctoring.ingest(attemptID: attemptID, events: events, now: WallClock.nowMillis()) {
                return replyAccepted(id, ingested.accepted)
            }
        }
        let directory = services.directory
        let store = services.store
        offLoop({ () async throws(HubError) -> AttemptDirectory.Identity in
            guard let snapshot = try await store.attempt(id: attemptID), snapshot.tenant == principal.tenant else {
                throw .notFound("no such attempt")
            }
            directory.remember(snapshot)
            let identity = AttemptDirectory.Identity(
                tenant: snapshot.tenant, examID: snapshot.examID, candidate: snapshot.candidate)
            try Self.checkOwner(identity, principal)
            guard let exam = try await directory.exam(tenant: snapshot.tenant, id: snapshot.examID) else {
                throw .notFound("no such exam")
            }
            let flags = try await store.flags(attemptIDs: [attemptID])[attemptID] ?? []
            proctoring.load(snapshot, exam: exam, storedFlags: flags)
            return identity
        }) { handler, result in
            do throws(HubError) {
                let identity = try result.get()
                try Self.checkOwner(identity, principal)
                guard let ingested = try proctoring.ingest(attemptID: attemptID, events: events, now: WallClock.nowMillis())
                else { throw HubError(.unavailable, "the attempt could not be loaded; try again") }
                handler.replyAccepted(id, ingested.accepted)
            } catch {
                handler.fail(error, id: id)
            }
        }
    }

    private func replyAccepted(_ id: Int64?, _ count: Int) {
        reply(id) { buffer in
            ServerFrame.writeKey(into: &buffer, "accepted", first: true)
            buffer.writeJSONInt(count)
        }
    }

    /// The attempt must be the candidate's own, in their tenant, and in their token's `exams`.
    static func checkOwner(_ identity: AttemptDirectory.Identity, _ principal: Principal) throws(HubError) {
        guard identity.tenant == principal.tenant else { throw .notFound("no such attempt") }
        guard identity.candidate == principal.userID else { throw .forbidden("not your attempt") }
        guard principal.mayAccessExam(identity.examID) else {
            throw .forbidden("this token is not valid for exam \(identity.examID)")
        }
    }

    // MARK: proctor.watch

    func proctorWatch(_ envelope: Envelope, principal: Principal) throws(HubError) {
        guard principal.role == .proctor || principal.role == .admin else {
            throw .forbidden("only proctors and admins watch exams")
        }
        let examID = try envelope.string("examId", maxBytes: 128)
        guard ChannelName.isValidID(examID) else { throw .badRequest("\"examId\" is not a valid exam id") }
        guard principal.mayAccessExam(examID) else { throw .forbidden("this token is not valid for exam \(examID)") }
        let key = ChannelKey(tenant: principal.tenant, name: .examProctor(examID))
        guard
            subscriptions.contains(key)
                || subscriptions.count + pendingSubscribes < services.configuration.maxSubscriptionsPerConnection
        else {
            throw HubError(.tooLarge, "at most \(services.configuration.maxSubscriptionsPerConnection) subscriptions per socket")
        }
        let id = envelope.id
        let directory = services.directory
        let store = services.store
        let proctoring = services.proctoring
        pendingSubscribes += 1
        offLoop({ () async throws(HubError) -> Void in
            guard try await directory.exam(tenant: principal.tenant, id: examID) != nil else {
                throw .notFound("no exam \(examID)")
            }
        }) { handler, result in
            handler.pendingSubscribes -= 1
            if case .failure(let error) = result { return handler.fail(error, id: id) }
            // Subscribe first and hold the channel's events, then read the roster: a change in between is in the
            // roster or arrives as an event after the reply, never lost.
            if !handler.subscriptions.contains(key), let loop = handler.context?.eventLoop {
                _ = handler.services.hub.subscribe(key, subscriber: handler, on: loop, since: nil, now: WallClock.nowMillis())
                handler.subscriptions.insert(key)
            }
            handler.holdEvents += 1
            let cluster = handler.services.cluster
            handler.offLoop({ () async throws(HubError) -> JSONValue in
                let attempts = try await store.attempts(tenant: principal.tenant, examID: examID, limit: Self.maxRoster)
                let flags = try await store.flags(attemptIDs: attempts.map(\.id))
                // Several nodes: sockets on the other nodes count as connected too (this node's alone if unknown).
                let presence = try? await cluster?.presence(of: attempts.map(\.id))
                return proctoring.roster(attempts, storedFlags: flags, presence: presence, now: WallClock.nowMillis())
            }) { handler, roster in
                handler.holdEvents -= 1
                switch roster {
                case .failure(let error): handler.fail(error, id: id)
                case .success(let roster):
                    handler.reply(id) { buffer in
                        ServerFrame.writeKey(into: &buffer, "roster", first: true)
                        buffer.writeJSONValue(roster)
                    }
                }
                handler.releaseHeldEvents()
            }
        }
    }

    // MARK: proctor.action

    func proctorAction(_ envelope: Envelope, principal: Principal) throws(HubError) {
        guard principal.role == .proctor || principal.role == .admin else {
            throw .forbidden("only proctors and admins act on attempts")
        }
        let attemptID = try envelope.string("attemptId", maxBytes: 128)
        guard ChannelName.isValidID(attemptID) else { throw .notFound("no such attempt") }
        let actionName = try envelope.string("action", maxBytes: 32)
        guard let action = ProctorActionKind(rawValue: actionName) else {
            throw .badRequest("\"action\" must be one of warn, pause, resume, terminate, extend")
        }
        let message = try Self.optionalText(envelope, "message", maxBytes: 2000)
        let reason = try Self.optionalText(envelope, "reason", maxBytes: 1000)
        var minutes: Int?
        if let raw = envelope.fields["minutes"], raw != .null {
            guard action == .extend else { throw .badRequest("\"minutes\" is only for extend") }
            guard case .int(let m) = raw, (1...1440).contains(m) else {
                throw .badRequest("\"minutes\" must be an integer in 1...1440")
            }
            minutes = Int(m)
        }
        if action == .extend, minutes == nil { throw .badRequest("extend needs \"minutes\" (1-1440)") }
        if action == .warn, message == nil { throw .badRequest("warn needs a \"message\" for the candidate") }
        let command = ProctorActionCommand(
            attemptID: attemptID, tenant: principal.tenant, actor: principal.userID, actorRole: principal.role.rawValue,
            action: action, message: message, reason: reason, minutes: minutes)
        let id = envelope.id
        let directory = services.directory
        let store = services.store
        let hub = services.hub
        let proctoring = services.proctoring
        let metrics = services.metrics
        offLoop({ () async throws(HubError) -> AttemptSnapshot in
            guard let identity = try await directory.identity(attemptID: attemptID), identity.tenant == principal.tenant
            else { throw .notFound("no such attempt") }
            guard principal.mayAccessExam(identity.examID) else {
                throw .forbidden("this token is not valid for exam \(identity.examID)")
            }
            let now = WallClock.nowMillis()
            let snapshot = try await store.applyProctorAction(command, now: now)
            metrics.proctorActions.increment()
            AttemptEvents.proctorAction(hub: hub, command: command, attempt: snapshot, now: now)
            proctoring.stateChanged(snapshot, action: action.rawValue, now: now)
            return snapshot
        }) { handler, result in
            switch result {
            case .failure(let error):
                handler.fail(error, id: id)
            case .success(let snapshot):
                handler.reply(id) { buffer in
                    ServerFrame.writeKey(into: &buffer, "state", first: true)
                    buffer.writeJSONString(snapshot.clock.state.rawValue)
                    ServerFrame.writeKey(into: &buffer, "deadline")
                    buffer.writeJSONTimestamp(millis: snapshot.clock.deadlineMillis)
                }
            }
        }
    }

    /// An optional string field: absent or null is `nil`; empty after trimming is `nil`; control characters other
    /// than newlines and tabs are refused.
    static func optionalText(_ envelope: Envelope, _ key: String, maxBytes: Int) throws(HubError) -> String? {
        guard let raw = envelope.fields[key], raw != .null else { return nil }
        guard case .string(let s) = raw else { throw .badRequest("\"\(key)\" must be a string") }
        guard s.utf8.count <= maxBytes else { throw HubError(.tooLarge, "\"\(key)\" may be at most \(maxBytes) bytes") }
        guard !s.utf8.contains(where: { ($0 < 0x20 && $0 != 0x0A && $0 != 0x09) || $0 == 0x7F }) else {
            throw .badRequest("\"\(key)\" must not contain control characters")
        }
        let trimmed = s.trimmingWhitespace
        return trimmed.isEmpty ? nil : trimmed
    }
}

extension String {
    /// The string without leading and trailing spaces, tabs and newlines.
    var trimmingWhitespace: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[first...last])
    }
}

extension AttemptEvents {
    /// The candidate-facing event of a proctor action on `attempt:<id>`.
    static func proctorAction(hub: ChannelHub, command: ProctorActionCommand, attempt: AttemptSnapshot, now: Int64) {
        let key = ChannelKey(tenant: attempt.tenant, name: .attempt(attempt.id))
        var data: [String: JSONValue] = [:]
        let deadline = JSONValue.string(Timestamp.format(millis: attempt.clock.deadlineMillis))
        switch command.action {
        case .warn:
            data["message"] = .string(command.message ?? "")
        case .pause:
            if let m = command.message { data["message"] = .string(m) }
        case .resume:
            data["deadline"] = deadline
            if let m = command.message { data["message"] = .string(m) }
        case .extend:
            data["deadline"] = deadline
            data["minutes"] = .int(Int64(command.minutes ?? 0))
            if let m = command.message { data["message"] = .string(m) }
        case .terminate:
            // The candidate reads the message; the proctor's reason stays in the audit log.
            data["reason"] = .string(command.message ?? "Your attempt was ended by a proctor.")
        }
        hub.publish(key, type: command.action.eventType, data: .object(data), now: now)
    }
}
