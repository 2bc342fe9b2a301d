import ExamHubDomain
import ExamHubStore
import ExamHubWire
import NIOCore
import Tracing

/// `attempt.join`, `answer.save` and `attempt.submit` (PROTOCOL.md section 3, guarantees 5.1 to 5.4).
extension ConnectionHandler {
    /// Runs `work` off the event loop and hands its result back to this connection on its loop (unless the
    /// socket has closed meanwhile), flushing after.
    func offLoop<T: Sendable>(
        _ work: @escaping @Sendable () async throws(HubError) -> T,
        then done: @escaping (ConnectionHandler, Result<T, HubError>) -> Void
    ) {
        guard let context else { return }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let doneBound = NIOLoopBound(done, eventLoop: context.eventLoop)
        let spanName = services.configuration.tracingEnabled ? "examhub.op " + currentOp : nil
        context.eventLoop.makeFutureWithTask { () -> Result<T, HubError> in
            guard let spanName else {
                do throws(HubError) { return .success(try await work()) } catch { return .failure(error) }
            }
            return await withSpan(spanName, ofKind: .server) { span in
                do throws(HubError) {
                    return .success(try await work())
                } catch {
                    span.attributes["examhub.error"] = error.code.rawValue
                    span.setStatus(SpanStatus(code: .error, message: error.code.rawValue))
                    return .failure(error)
                }
            }
        }.whenSuccess { result in
            let handler = loopBound.value
            guard handler.context != nil, !handler.closing else { return }
            doneBound.value(handler, result)
            handler.flushNow()
        }
    }

    func attemptJoin(_ envelope: Envelope, principal: Principal) throws(HubError) {
        guard principal.role == .candidate else { throw .forbidden("only candidates join attempts") }
        let examID = try envelope.string("examId", maxBytes: 128)
        guard ChannelName.isValidID(examID) else { throw .badRequest("\"examId\" is not a valid exam id") }
        guard principal.mayAccessExam(examID) else { throw .forbidden("this token is not valid for exam \(examID)") }
        let directory = services.directory
        let store = services.store
        let id = envelope.id
        offLoop({ () async throws(HubError) -> (ExamDefinition, AttemptSnapshot) in
            guard let exam = try await directory.exam(tenant: principal.tenant, id: examID) else {
                throw .notFound("no exam \(examID)")
            }
            let snapshot = try await store.joinAttempt(
                tenant: principal.tenant, exam: exam, candidate: principal.userID, now: WallClock.nowMillis())
            directory.remember(snapshot)
            return (exam, snapshot)
        }) { handler, result in
            switch result {
            case .failure(let error):
                handler.fail(error, id: id)
            case .success(let (exam, joined)):
                // Subscribe first and hold the channel's events, then read the answers: a save committed in between
                // is in the answers or arrives as an event after the reply, never lost.
                let key = ChannelKey(tenant: joined.tenant, name: .attempt(joined.id))
                if !handler.subscriptions.contains(key), let loop = handler.context?.eventLoop {
                    _ = handler.services.hub.subscribe(
                        key, subscriber: handler, on: loop, since: nil, now: WallClock.nowMillis())
                    handler.subscriptions.insert(key)
                }
                handler.holdEvents += 1
                let proctoring = handler.services.proctoring
                handler.offLoop({ () async throws(HubError) -> AttemptSnapshot in
                    let snapshot = try await store.attempt(id: joined.id) ?? joined
                    if !proctoring.isLive(snapshot.id) {
                        // Flags raised before (on another run of the node) keep counting in the risk.
                        let flags = try await store.flags(attemptIDs: [snapshot.id])[snapshot.id] ?? []
                        proctoring.load(snapshot, exam: exam, storedFlags: flags)
                    }
                    return snapshot
                }) { handler, reread in
                    handler.holdEvents -= 1
                    switch reread {
                    case .failure(let error): handler.fail(error, id: id)
                    case .success(let snapshot):
                        handler.reply(id) { buffer in
                            Self.writeJoinData(into: &buffer, exam: exam, snapshot: snapshot)
                        }
                        if handler.joinedAttempts.insert(snapshot.id).inserted {
                            handler.services.proctoring.socketJoined(snapshot, exam: exam, now: WallClock.nowMillis())
                        }
                    }
                    handler.releaseHeldEvents()
                }
            }
        }
    }

    /// A client operation id: 1-128 bytes, no control characters.
    static func opID(_ envelope: Envelope) throws(HubError) -> String {
        let opID = try envelope.string("opId", maxBytes: 128)
        guard !opID.isEmpty else { throw .badRequest("\"opId\" must not be empty") }
        guard !opID.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
            throw .badRequest("\"opId\" must not contain control characters")
        }
        return opID
    }

    static func writeJoinData(into buffer: inout ByteBuffer, exam: ExamDefinition, snapshot: AttemptSnapshot) {
        ServerFrame.writeKey(into: &buffer, "attemptId", first: true)
        buffer.writeJSONString(snapshot.id)
        ServerFrame.writeKey(into: &buffer, "state")
        buffer.writeJSONString(snapshot.clock.state.rawValue)
        ServerFrame.writeKey(into: &buffer, "deadline")
        buffer.writeJSONTimestamp(millis: snapshot.clock.deadlineMillis)
        ServerFrame.writeKey(into: &buffer, "serverTime")
        buffer.writeJSONTimestamp(millis: WallClock.nowMillis())
        ServerFrame.writeKey(into: &buffer, "answers")
        var answers: [String: JSONValue] = [:]
        for (qid, answer) in snapshot.answers {
            answers[qid] = .object(["value": answer.value, "version": .int(answer.version)])
        }
        buffer.writeJSONValue(.object(answers))
        ServerFrame.writeKey(into: &buffer, "questions")
        buffer.writeJSONValue(.array(exam.questions.map(\.json)))
        if let reason = snapshot.clock.reason {
            ServerFrame.writeKey(into: &buffer, "reason")
            buffer.writeJSONString(reason.rawValue)
        }
    }

    func answerSave(_ envelope: Envelope, principal: Principal) throws(HubError) {
        guard principal.role == .candidate else { throw .forbidden("only candidates save answers") }
        let attemptID = try envelope.string("attemptId", maxBytes: 128)
        let qid = try envelope.string("qid", maxBytes: 128)
        let opID = try Self.opID(envelope)
        guard ChannelName.isValidID(attemptID) else { throw .notFound("no such attempt") }
        guard let value = envelope.fields["value"] else { throw .badRequest("missing \"value\"") }
        var baseVersion: Int64?
        if let raw = envelope.fields["baseVersion"], raw != .null {
            guard case .int(let b) = raw, b >= 0 else { throw .badRequest("\"baseVersion\" must be a non-negative integer") }
            baseVersion = b
        }
        var encoded = ByteBufferAllocator().buffer(capacity: 64)
        encoded.writeJSONValue(value)
        guard encoded.readableBytes <= AnswerRules.maxValueBytes else {
            throw HubError(.tooLarge, "an answer may be at most \(AnswerRules.maxValueBytes) bytes")
        }
        let save = PendingSave(
            command: SaveCommand(
                attemptID: attemptID, tenant: principal.tenant, candidate: principal.userID, qid: qid, value: value,
                // Saves and submits keep their op ids in one table: the prefixes keep them apart.
                opID: "save:" + opID, baseVersion: baseVersion),
            encodedBytes: encoded.readableBytes, id: envelope.id, exams: principal.exams)
        saveBacklog.append(save)
        drainSaveBacklog()
    }

    /// Hands saves to the group commit in arrival order. A save whose attempt or exam is not cached yet waits for
    /// one store lookup, and every later save of this socket waits behind it.
    func drainSaveBacklog() {
        guard !saveLookupInFlight else { return }
        let directory = services.directory
        while let save = saveBacklog.first {
            let command = save.command
            guard let identity = directory.cachedIdentity(attemptID: command.attemptID),
                let exam = directory.cachedExam(tenant: identity.tenant, id: identity.examID)
            else {
                saveLookupInFlight = true
                offLoop({ () async throws(HubError) -> Void in
                    if let identity = try await directory.identity(attemptID: command.attemptID) {
                        _ = try await directory.exam(tenant: identity.tenant, id: identity.examID)
                    }
                }) { handler, result in
                    handler.saveLookupInFlight = false
                    if case .failure(let error) = result {
                        // The store is unreachable: this save fails; later ones try again.
                        let failed = handler.saveBacklog.removeFirst()
                        handler.fail(error, id: failed.id)
                    } else if handler.services.directory.cachedIdentity(attemptID: command.attemptID) == nil {
                        let failed = handler.saveBacklog.removeFirst()
                        handler.fail(.notFound("no such attempt"), id: failed.id)
                    }
                    handler.drainSaveBacklog()
                }
                return
            }
            saveBacklog.removeFirst()
            do throws(HubError) {
                guard identity.tenant == command.tenant else { throw .notFound("no such attempt") }
                guard identity.candidate == command.candidate else { throw .forbidden("not your attempt") }
                if let exams = save.exams, !exams.contains(identity.examID) {
                    throw .forbidden("this token is not valid for exam \(identity.examID)")
                }
                guard let question = exam.question(command.qid) else {
                    throw .badRequest("no question \(command.qid) in this exam")
                }
                try AnswerRules.validate(command.value, for: question, encodedBytes: save.encodedBytes)
                commitSave(save)
            } catch {
                fail(error, id: save.id)
            }
        }
        runAfterSavesIfIdle()
    }

    private func commitSave(_ save: PendingSave) {
        guard let loop = context?.eventLoop else { return }
        let loopBound = NIOLoopBound(self, eventLoop: loop)
        let command = save.command
        let id = save.id
        outstandingSaves += 1
        services.batcher.submit(command, on: loop).whenComplete { saved in
            let handler = loopBound.value
            handler.outstandingSaves -= 1
            if handler.context != nil {
                switch saved {
                case .success(let outcome):
                    // `answer.saved` was published by the group commit, in commit (version) order.
                    handler.reply(id) { buffer in
                        ServerFrame.writeKey(into: &buffer, "qid", first: true)
                        buffer.writeJSONString(outcome.qid)
                        ServerFrame.writeKey(into: &buffer, "version")
                        buffer.writeJSONInt(outcome.version)
                        ServerFrame.writeKey(into: &buffer, "savedAt")
                        buffer.writeJSONTimestamp(millis: outcome.savedAtMillis)
                    }
                case .failure(let error):
                    handler.fail(error as? HubError ?? HubError(.unavailable, "the save was not committed"), id: id)
                }
                handler.flushNow()
            }
            handler.runAfterSavesIfIdle()
        }
    }

    /// Runs what waited for this socket's saves (a submit), once none is queued or being committed.
    func runAfterSavesIfIdle() {
        guard outstandingSaves == 0, saveBacklog.isEmpty, !saveLookupInFlight, !afterSaves.isEmpty else { return }
        let work = afterSaves
        afterSaves.removeAll()
        for w in work { w() }
    }

    func attemptSubmit(_ envelope: Envelope, principal: Principal) throws(HubError) {
        guard principal.role == .candidate else { throw .forbidden("only candidates submit their attempts") }
        let attemptID = try envelope.string("attemptId", maxBytes: 128)
        let opID = try Self.opID(envelope)
        guard ChannelName.isValidID(attemptID) else { throw .notFound("no such attempt") }
        let directory = services.directory
        let store = services.store
        let hub = services.hub
        let proctoring = services.proctoring
        let id = envelope.id
        // A submit sent after saves is applied after them.
        guard outstandingSaves == 0 && saveBacklog.isEmpty else {
            afterSaves.append { [unowned self] in
                do throws(HubError) { try self.attemptSubmit(envelope, principal: principal) } catch {
                    self.fail(error, id: id)
                }
                self.flushNow()
            }
            return
        }
        offLoop({ () async throws(HubError) -> AttemptSnapshot in
            guard let identity = try await directory.identity(attemptID: attemptID) else { throw .notFound("no such attempt") }
            try Self.checkOwner(identity, principal)
            let now = WallClock.nowMillis()
            let snapshot = try await store.submitAttempt(id: attemptID, reason: .candidate, opID: opID, now: now)
            if snapshot.clock.closedAtMillis == now {  // a fresh submit, not a replay of the same opId
                AttemptEvents.submitted(hub: hub, attempt: snapshot, now: now)
                proctoring.stateChanged(snapshot, action: nil, now: now)
            }
            return snapshot
        }) { handler, result in
            switch result {
            case .failure(let error):
                handler.fail(error, id: id)
            case .success(let snapshot):
                handler.reply(id) { buffer in
                    ServerFrame.writeKey(into: &buffer, "state", first: true)
                    buffer.writeJSONString(snapshot.clock.state.rawValue)
                    ServerFrame.writeKey(into: &buffer, "submittedAt")
                    buffer.writeJSONTimestamp(millis: snapshot.clock.closedAtMillis ?? WallClock.nowMillis())
                }
            }
        }
    }
}

/// A validated-shape `answer.save` waiting its turn.
struct PendingSave {
    var command: SaveCommand
    var encodedBytes: Int
    var id: Int64?
    /// The token's `exams` claim.
    var exams: Set<String>?
}
