import ExamHubDomain
import ExamHubStore
import Testing

/// The chat part of the `Store` contract, on SQLite and PostgreSQL alike.
@Suite struct StoreChatContractTests {
    typealias F = Fixture

    @Test(arguments: Backend.allCases)
    func conversationsMessagesAndUsage(backend: Backend) async throws {
        try await withStore(backend) { db in
            let c = try await db.store.openConversation(id: "cv-1", tenant: "t1", owner: "u1", attemptID: "a-1", now: F.t0)
            #expect(c == ConversationRecord(id: "cv-1", tenant: "t1", owner: "u1", attemptID: "a-1", createdMillis: F.t0))
            // Opening again (even by someone else) returns it unchanged: the caller checks the owner.
            let again = try await db.store.openConversation(id: "cv-1", tenant: "t2", owner: "u9", attemptID: nil, now: F.t0 + 9)
            #expect(again == c)
            #expect(try await db.store.channelResource(.chat("cv-1")) == .conversation(tenant: "t1", owner: "u1"))

            let user = ChatMessageRecord(
                id: "m-1", conversationID: "cv-1", tenant: "t1", role: "user", text: "how much time is left?",
                clientMsgID: "c-1", replyID: "m-2", createdMillis: F.t0 + 1)
            #expect(try await db.store.appendChatMessage(user) == user)
            var repeated = user
            repeated.id = "m-3"
            repeated.replyID = "m-4"
            #expect(try await db.store.appendChatMessage(repeated) == user, "the same clientMsgId returns the original")
            let answer = ChatMessageRecord(
                id: "m-2", conversationID: "cv-1", tenant: "t1", role: "assistant", text: "You have 20 minutes left.",
                intent: "time_left", source: "intent", createdMillis: F.t0 + 1)
            _ = try await db.store.appendChatMessage(answer)
            let later = ChatMessageRecord(
                id: "m-5", conversationID: "cv-1", tenant: "t1", role: "user", text: "thanks", clientMsgID: "c-2",
                replyID: "m-6", createdMillis: F.t0 + 5)
            _ = try await db.store.appendChatMessage(later)
            #expect(try await db.store.chatHistory(conversationID: "cv-1", limit: 10).map(\.id) == ["m-1", "m-2", "m-5"])
            #expect(try await db.store.chatHistory(conversationID: "cv-1", limit: 2).map(\.id) == ["m-2", "m-5"])
            #expect(try await db.store.chatHistory(conversationID: "cv-none", limit: 2).isEmpty)
            #expect(try await db.outboxCounts()["chat.turn"] == 1)

            try await db.store.recordLLMUsage(LLMUsageRecordRow(
                tenant: "t1", conversationID: "cv-1", provider: "p1", model: "m", inputTokens: 10, outputTokens: 5,
                completed: true, atMillis: F.t0 + 10))
            try await db.store.recordLLMUsage(LLMUsageRecordRow(
                tenant: "t1", conversationID: "cv-1", provider: "p2", model: "m", inputTokens: 1, outputTokens: 2,
                completed: false, atMillis: F.t0 + 20))
            #expect(try await db.store.llmTokensByTenant(since: F.t0) == ["t1": 18])
            #expect(try await db.store.llmTokensByTenant(since: F.t0 + 15) == ["t1": 3])
            #expect(try await db.outboxCounts()["llm.usage"] == 2)
        }
    }
}
