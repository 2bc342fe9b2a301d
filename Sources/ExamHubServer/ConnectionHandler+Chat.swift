import ExamHubDomain
import ExamHubStore
import ExamHubWire
import NIOCore

/// `chat.send` and `chat.cancel` (PROTOCOL.md sections 3 and 4; issue 5).
extension ConnectionHandler {
    /// Most characters in one chat message.
    static let maxChatCharacters = 2000

    func chatSend(_ envelope: Envelope, principal: Principal) throws(HubError) {
        guard let chat = services.chat else { throw .badRequest("the assistant is not configured on this node") }
        let raw = try envelope.string("text", maxBytes: 8 * Self.maxChatCharacters)
        let text = raw.trimmingWhitespace
        guard !text.isEmpty else { throw .badRequest("\"text\" must not be empty") }
        guard text.count <= Self.maxChatCharacters else {
            throw HubError(.tooLarge, "a chat message may be at most \(Self.maxChatCharacters) characters")
        }
        guard !text.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\n" && $0 != "\t" || $0.value == 0x7F })
        else { throw .badRequest("\"text\" must not contain control characters") }
        let clientMsgID = try envelope.string("clientMsgId", maxBytes: 128)
        guard !clientMsgID.isEmpty, !clientMsgID.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
            throw .badRequest("\"clientMsgId\" must be 1-128 bytes without control characters")
        }
        var conversationID: String?
        if let value = envelope.fields["conversationId"], value != .null {
            guard case .string(let s) = value, ChannelName.isValidID(s) else {
                throw .badRequest("\"conversationId\" must be an id of [A-Za-z0-9_.-]")
            }
            conversationID = s
        }
        var attemptID: String?
        if let value = envelope.fields["attemptId"], value != .null {
            guard case .string(let s) = value, ChannelName.isValidID(s) else {
                throw .badRequest("\"attemptId\" must be an attempt id")
            }
            attemptID = s
        }
        guard chatBucket.take(nowNanos: NIODeadline.now().uptimeNanoseconds) else {
            throw HubError(.rateLimited, "too many chat messages; wait a moment")
        }
        let store = services.store
        let directory = services.directory
        let connID = self.connID
        let id = envelope.id
        let (askedConversation, askedAttempt) = (conversationID, attemptID)
        offLoop({ () async throws(HubError) -> (ChatService.Turn, replayed: Bool) in
            let now = WallClock.nowMillis()
            let cid = askedConversation ?? StoreCoding.newID(prefix: "cv")
            // The attempt the chat is about: the candidate's own, in their tenant and token.
            var attempt: AttemptSnapshot?
            if let attemptID = askedAttempt {
                guard principal.role == .candidate else { throw .forbidden("only candidates chat about an attempt") }
                guard let a = try await store.attempt(id: attemptID) else { throw .notFound("no such attempt") }
                try Self.checkOwner(
                    AttemptDirectory.Identity(tenant: a.tenant, examID: a.examID, candidate: a.candidate), principal)
                attempt = a
            }
            let conversation = try await store.openConversation(
                id: cid, tenant: principal.tenant, owner: principal.userID, attemptID: askedAttempt, now: now)
            guard conversation.tenant == principal.tenant, conversation.owner == principal.userID else {
                throw .forbidden("not your conversation")
            }
            if attempt == nil, let tied = conversation.attemptID, principal.role == .candidate,
                let a = try await store.attempt(id: tied), a.candidate == principal.userID
            {
                attempt = a  // a follow-up in a conversation started inside the attempt
            }
            var exam: ExamDefinition?
            if let a = attempt { exam = try await directory.exam(tenant: a.tenant, id: a.examID) }
            let user = ChatMessageRecord(
                id: StoreCoding.newID(prefix: "m"), conversationID: cid, tenant: principal.tenant, role: "user",
                text: text, clientMsgID: clientMsgID, replyID: StoreCoding.newID(prefix: "m"), createdMillis: now)
            let stored = try await store.appendChatMessage(user)
            let turn = ChatService.Turn(
                conversation: conversation, principal: principal, userMessageID: stored.id,
                messageID: stored.replyID ?? stored.id, text: text, attempt: attempt, exam: exam, connID: connID)
            return (turn, stored.id != user.id)
        }) { handler, result in
            switch result {
            case .failure(let error):
                handler.fail(error, id: id)
            case .success(let (turn, replayed)):
                let key = ChannelKey(tenant: turn.conversation.tenant, name: .chat(turn.conversation.id))
                if !handler.subscriptions.contains(key), let loop = handler.context?.eventLoop {
                    _ = handler.services.hub.subscribe(key, subscriber: handler, on: loop, since: nil, now: WallClock.nowMillis())
                    handler.subscriptions.insert(key)
                }
                handler.chatConversations.insert(turn.conversation.id)
                handler.reply(id) { buffer in
                    ServerFrame.writeKey(into: &buffer, "conversationId", first: true)
                    buffer.writeJSONString(turn.conversation.id)
                    ServerFrame.writeKey(into: &buffer, "messageId")
                    buffer.writeJSONString(turn.messageID)
                    if replayed {
                        ServerFrame.writeKey(into: &buffer, "replayed")
                        buffer.writeStaticString("true")
                    }
                }
                // A repeated clientMsgId is answered once: its events are on the channel (recover them with since).
                if !replayed {
                    Task { await chat.answer(turn) }
                }
            }
        }
    }

    func chatCancel(_ envelope: Envelope, principal: Principal) throws(HubError) {
        guard let chat = services.chat else { throw .badRequest("the assistant is not configured on this node") }
        let cid = try envelope.string("conversationId", maxBytes: 128)
        guard ChannelName.isValidID(cid) else { throw .badRequest("\"conversationId\" must be an id of [A-Za-z0-9_.-]") }
        let store = services.store
        let id = envelope.id
        offLoop({ () async throws(HubError) -> Bool in
            guard case .conversation(let tenant, let owner) = try await store.channelResource(.chat(cid)),
                tenant == principal.tenant
            else { throw .notFound("no conversation \(cid)") }
            guard owner == principal.userID else { throw .forbidden("not your conversation") }
            return chat.cancel(conversationID: cid)
        }) { handler, result in
            switch result {
            case .failure(let error): handler.fail(error, id: id)
            case .success(let cancelled):
                handler.reply(id) { buffer in
                    ServerFrame.writeKey(into: &buffer, "cancelled", first: true)
                    buffer.writeStaticString(cancelled ? "true" : "false")
                }
            }
        }
    }
}
