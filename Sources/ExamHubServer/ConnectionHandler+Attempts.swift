import ExamHubDomain
import ExamHubStore
import ExamHubWire
import NIOCore

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
        context.eventLoop.makeFutureWithTask { () -> Result<T, HubError> in
            do throws(HubError) { return .success(try await work()) } catch { return .failure(error) }
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
            case .success(let (exam, snapshot)):
                // Subscribe before the reply so no event is missed in between.
                let key = ChannelKey(tenant: snapshot.tenant, name: .attempt(snapshot.id))
                if !handler.subscriptions.contains(key), let loop = handler.context?.eventLoop {
                    _ = handler.services.hub.subscribe(
                        key, subscriber: handler, on: loop, since: nil, now: WallClock.nowMillis())
                    handler.subscriptions.insert(key)
                }
                handler.reply(id) { buffer in
                    Self.writeJoinData(into: &buffer, exam: exam, snapshot: snapshot)
                }
            }
        }
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
        let opID = try envelope.string("opId", maxBytes: 128)
        guard !opID.isEmpty else { throw .badRequest("\"opId\" must not be empty") }
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
        let directory = services.directory
        let id = envelope.id
        let command = SaveCommand(
            attemptID: attemptID, tenant: principal.tenant, candidate: principal.userID, qid: qid, value: value,
            opID: opID, baseVersion: baseVersion)
        let encodedBytes = encoded.readableBytes
        offLoop({ () async throws(HubError) -> Void in
            guard let identity = try await directory.identity(attemptID: attemptID), identity.tenant == principal.tenant
            else { throw .notFound("no such attempt") }
            guard identity.candidate == principal.userID else { throw .forbidden("not your attempt") }
            guard let exam = try await directory.exam(tenant: identity.tenant, id: identity.examID) else {
                throw .notFound("the attempt's exam is gone")
            }
            guard let question = exam.question(qid) else { throw .badRequest("no question \(qid) in this exam") }
            try AnswerRules.validate(value, for: question, encodedBytes: encodedBytes)
        }) { handler, result in
            if case .failure(let error) = result { return handler.fail(error, id: id) }
            guard let loop = handler.context?.eventLoop else { return }
            let hub = handler.services.hub
            let loopBound = NIOLoopBound(handler, eventLoop: loop)
            handler.services.batcher.submit(command, on: loop).whenComplete { saved in
                let handler = loopBound.value
                guard handler.context != nil else { return }
                switch saved {
                case .success(let outcome):
                    if !outcome.replayed {
                        AttemptEvents.answerSaved(
                            hub: hub, tenant: principal.tenant, attemptID: attemptID, outcome: outcome,
                            now: WallClock.nowMillis())
                    }
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
        }
    }

    func attemptSubmit(_ envelope: Envelope, principal: Principal) throws(HubError) {
        guard principal.role == .candidate else { throw .forbidden("only candidates submit their attempts") }
        let attemptID = try envelope.string("attemptId", maxBytes: 128)
        let opID = try envelope.string("opId", maxBytes: 128)
        let directory = services.directory
        let store = services.store
        let hub = services.hub
        let id = envelope.id
        offLoop({ () async throws(HubError) -> AttemptSnapshot in
            guard let identity = try await directory.identity(attemptID: attemptID), identity.tenant == principal.tenant
            else { throw .notFound("no such attempt") }
            guard identity.candidate == principal.userID else { throw .forbidden("not your attempt") }
            let now = WallClock.nowMillis()
            let snapshot = try await store.submitAttempt(id: attemptID, reason: .candidate, opID: opID, now: now)
            if snapshot.clock.closedAtMillis == now {  // a fresh submit, not a replay of the same opId
                AttemptEvents.submitted(hub: hub, attempt: snapshot, now: now)
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
